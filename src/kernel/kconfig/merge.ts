/**
 * src/kernel/kconfig/ owns Kconfig, the pure part: fragments (this module: parse, merge, apply),
 * the check of a final .config against what was requested (verify.ts), Kconfig expressions
 * (expr.ts) and files (parse.ts), and "why was this option dropped", read from the kernel's own
 * Kconfig files (explain.ts); values.ts compares values the way kconfig does, versions.ts reads
 * the kernel version ranges that fragments scope options to (`# pmemlab-when: linux < 5.19`).
 *
 * Nothing here touches the disk or runs a program: files come in as text and through a reader
 * function, so the unit tests can use small synthetic Kconfig trees.
 */
import {ExitCode, PmemlabError, usageError} from '../../core/errors.js'
import {normaliseValue, sameValue} from './values.js'
import {formatVersion, inRange, parseKernelVersion, parseVersionRange, VersionRangeError, type VersionRange} from './versions.js'

/** One `CONFIG_X=value` or `# CONFIG_X is not set` line. Symbols are kept without the CONFIG_ prefix. */
export interface Assignment {
  symbol: string
  /** y, m, n, a quoted string ("..." with its quotes) or a number (decimal or 0x hex). */
  value: string
  file: string
  line: number
  /** From a `# pmemlab-when: linux ...` line above it: the option is requested of these versions only. */
  range?: VersionRange
}

export interface FragmentInput {
  /** Shown in messages: a path, or "--set". */
  name: string
  text: string
  /** A user's fragment (--config FILE, --set): it may override earlier fragments. */
  user?: boolean
}

const ASSIGNMENT = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/
const NOT_SET = /^#\s*CONFIG_([A-Za-z0-9_]+) is not set\s*$/
const VALUE = /^(?:[ymn]|"(?:[^"\\]|\\.)*"|-?\d+|0[xX][0-9a-fA-F]+)$/
/** `# pmemlab-when: RANGE`; a comment that starts `# pmemlab-when` without the colon is a mistake worth saying. */
const WHEN = /^#\s*pmemlab-when\s*:(.*)$/

/** `CONFIG_X=value` or `# CONFIG_X is not set` as {symbol, value}; undefined for any other line. */
function readAssignment(line: string): {symbol: string; value: string} | undefined {
  const notSet = NOT_SET.exec(line)
  if (notSet) return {symbol: notSet[1], value: 'n'}
  const assignment = ASSIGNMENT.exec(line)
  return assignment && VALUE.test(assignment[2]) ? {symbol: assignment[1], value: assignment[2]} : undefined
}

const scopesNothing = (place: string, range: VersionRange) =>
  usageError(`${place}: "# pmemlab-when: linux ${range.text}" scopes nothing`, 'put it directly above the CONFIG_ line it is for')

/**
 * Parses a fragment or a whole .config. Comments and blank lines are skipped; anything else is an
 * error naming file:line, as is a `# pmemlab-when:` range that cannot be read or that is not
 * directly above an option.
 */
export function parseFragment(text: string, file: string): Assignment[] {
  const result: Assignment[] = []
  const lines = text.split('\n')
  let scope: {range: VersionRange; place: string} | undefined
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim()
    const place = `${file}:${index + 1}`
    const assignment = readAssignment(line)
    if (assignment) {
      result.push({...assignment, file, line: index + 1, ...(scope ? {range: scope.range} : {})})
      scope = undefined
      continue
    }
    if (scope) throw scopesNothing(scope.place, scope.range)
    if (line === '') continue
    if (/^#\s*pmemlab-when\b/.test(line)) {
      const when = WHEN.exec(line)
      if (!when) throw usageError(`${place}: "${line}" is not a version range`, 'write "# pmemlab-when: linux < 5.19" (or another range) above the option it is for')
      try {
        scope = {range: parseVersionRange(when[1]), place}
      } catch (error) {
        if (error instanceof VersionRangeError) throw usageError(`${place}: # pmemlab-when: ${error.message}`)
        throw error
      }
      continue
    }
    if (line.startsWith('#')) continue
    throw usageError(
      `${place}: "${line}" is not a Kconfig assignment`,
      /#\s*pmemlab-when\b/.test(line)
        ? 'put "# pmemlab-when: linux ..." on a line of its own, above the option (kconfig allows no comment after a value)'
        : 'write CONFIG_NAME=y, =m, =n, ="text" or =123, or "# CONFIG_NAME is not set"',
    )
  }
  if (scope) throw scopesNothing(scope.place, scope.range)
  return result
}

/** `CONFIG_X=y`, `X=y` or `CONFIG_X` (meaning =y), as given to --set. */
export function parseSet(text: string): {symbol: string; value: string} {
  const match = /^(?:CONFIG_)?([A-Za-z0-9_]+)(?:=(.*))?$/.exec(text.trim())
  const value = match?.[2] ?? 'y'
  if (!match || !VALUE.test(value)) {
    throw usageError(`--set ${text}: expected CONFIG_NAME=VALUE`, 'for example --set CONFIG_KASAN=y, --set CONFIG_NR_CPUS=4 or --set CONFIG_LOCALVERSION="-lab"')
  }
  return {symbol: match[1], value}
}

export interface MergedOption extends Assignment {
  user: boolean
}

export interface Override {
  symbol: string
  from: MergedOption
  to: MergedOption
}

export interface MergeResult {
  /** Symbol (without CONFIG_) -> the value that won, in first-seen order. */
  options: Map<string, MergedOption>
  /** Each time a user fragment replaced an earlier value. */
  overrides: Override[]
  /**
   * Options left out because their `# pmemlab-when:` range excludes the kernel being built (and no
   * other line requests the symbol): reported as "not in this version", never verified.
   */
  notInVersion: Array<Assignment & {range: VersionRange}>
}

/** Where an option came from, for messages: "kernel-configs/pmem.config:12" or "--set CONFIG_X=n". */
export function origin(option: Pick<Assignment, 'file' | 'line' | 'symbol' | 'value'>): string {
  return option.file === '--set' ? `--set CONFIG_${option.symbol}=${option.value}` : `${option.file}:${option.line}`
}

/**
 * Merges fragments in order, for one kernel version (makefileVersion's "6.1.192"): an option whose
 * `# pmemlab-when:` range excludes it is left out, before anything else is decided. Two checked-in
 * fragments (or two lines of one) that give a symbol different values are an error naming both
 * places and both values; a user fragment overrides whatever came before it, and the override is
 * recorded so that the caller can log it. Without a version, a scoped option is an error.
 */
export function mergeFragments(fragments: readonly FragmentInput[], kernelVersion?: string): MergeResult {
  const options = new Map<string, MergedOption>()
  const overrides: Override[] = []
  const outOfRange: MergeResult['notInVersion'] = []
  const version = kernelVersion === undefined ? undefined : parseKernelVersion(kernelVersion)
  for (const fragment of fragments) {
    for (const assignment of parseFragment(fragment.text, fragment.name)) {
      const {range} = assignment
      if (range) {
        if (!version) {
          throw new PmemlabError(
            `${origin(assignment)} is scoped to linux ${range.text}, but ${kernelVersion === undefined ? 'no kernel version was given' : `the kernel's version "${kernelVersion}" cannot be read`}`,
            ExitCode.failure,
          )
        }
        if (!inRange(range, version)) {
          outOfRange.push({...assignment, range})
          continue
        }
      }
      const next: MergedOption = {...assignment, user: fragment.user === true}
      const previous = options.get(assignment.symbol)
      if (previous && !sameValue(previous.value, next.value)) {
        if (!next.user) {
          throw new PmemlabError(
            `conflicting fragments: ${origin(previous)} sets CONFIG_${previous.symbol}=${previous.value} but ${origin(next)} sets CONFIG_${next.symbol}=${next.value}${version ? ` (for linux ${formatVersion(version)})` : ''}`,
            ExitCode.failure,
            'checked-in fragments must agree; override a value with --config FILE or --set instead',
          )
        }
        overrides.push({symbol: assignment.symbol, from: previous, to: next})
        options.delete(assignment.symbol) // re-insert: the override's position is where it was set
      }
      if (!previous || !sameValue(previous.value, next.value) || next.user) options.set(assignment.symbol, next)
    }
  }
  return {options, overrides, notInVersion: outOfRange.filter((option) => !options.has(option.symbol))}
}

/** One fragment line: `CONFIG_X=y` or `# CONFIG_X is not set`. */
export function renderAssignment(symbol: string, value: string): string {
  return value === 'n' ? `# CONFIG_${symbol} is not set` : `CONFIG_${symbol}=${value}`
}

/** The merged fragment as text, sorted by symbol: the form that goes into the cache key. */
export function renderFragment(options: ReadonlyMap<string, Pick<Assignment, 'value'>>): string {
  const symbols = [...options.keys()].sort()
  return symbols.map((symbol) => renderAssignment(symbol, normaliseValue(options.get(symbol)!.value))).join('\n') + (symbols.length > 0 ? '\n' : '')
}

/**
 * Applies a merged fragment to a .config the way merge_config.sh does: every line that mentions one
 * of the symbols is removed, and the fragment is appended (later lines win in kconfig, which
 * matters for choices: the appended `=y` member is the one chosen).
 */
export function applyFragment(configText: string, options: ReadonlyMap<string, Pick<Assignment, 'value'>>): string {
  const kept = configText.split('\n').filter((line) => {
    const match = ASSIGNMENT.exec(line.trim()) ?? NOT_SET.exec(line.trim())
    return !(match && options.has(match[1]))
  })
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop()
  return `${kept.join('\n')}\n# pmemlab fragment\n${renderFragment(options)}`
}

/** A .config as symbol -> value ('n' for "is not set"; absent symbols are simply missing). */
export function parseDotConfig(text: string): Map<string, string> {
  const values = new Map<string, string>()
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    const notSet = NOT_SET.exec(trimmed)
    if (notSet) {
      values.set(notSet[1], 'n')
      continue
    }
    const match = ASSIGNMENT.exec(trimmed)
    if (match) values.set(match[1], match[2])
  }
  return values
}

/**
 * src/kernel/kconfig/ owns Kconfig, the pure part: fragments (this module: parse, merge, apply),
 * the check of a final .config against what was requested (verify.ts), Kconfig expressions
 * (expr.ts) and files (parse.ts), and "why was this option dropped", read from the kernel's own
 * Kconfig files (explain.ts); values.ts compares values the way kconfig does.
 *
 * Nothing here touches the disk or runs a program: files come in as text and through a reader
 * function, so the unit tests can use small synthetic Kconfig trees.
 */
import {ExitCode, PmemlabError, usageError} from '../../core/errors.js'
import {normaliseValue, sameValue} from './values.js'

/** One `CONFIG_X=value` or `# CONFIG_X is not set` line. Symbols are kept without the CONFIG_ prefix. */
export interface Assignment {
  symbol: string
  /** y, m, n, a quoted string ("..." with its quotes) or a number (decimal or 0x hex). */
  value: string
  file: string
  line: number
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

/** Parses a fragment or a whole .config. Comments and blank lines are skipped; anything else is an error. */
export function parseFragment(text: string, file: string): Assignment[] {
  const result: Assignment[] = []
  const lines = text.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim()
    if (line === '') continue
    const notSet = NOT_SET.exec(line)
    if (notSet) {
      result.push({symbol: notSet[1], value: 'n', file, line: index + 1})
      continue
    }
    if (line.startsWith('#')) continue
    const match = ASSIGNMENT.exec(line)
    if (!match || !VALUE.test(match[2])) {
      throw usageError(
        `${file}:${index + 1}: "${line}" is not a Kconfig assignment`,
        'write CONFIG_NAME=y, =m, =n, ="text" or =123, or "# CONFIG_NAME is not set"',
      )
    }
    result.push({symbol: match[1], value: match[2], file, line: index + 1})
  }
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
}

/** Where an option came from, for messages: "kernel-configs/pmem.config:12" or "--set CONFIG_X=n". */
export function origin(option: Pick<Assignment, 'file' | 'line' | 'symbol' | 'value'>): string {
  return option.file === '--set' ? `--set CONFIG_${option.symbol}=${option.value}` : `${option.file}:${option.line}`
}

/**
 * Merges fragments in order. Two checked-in fragments (or two lines of one) that give a symbol
 * different values are an error naming both places and both values; a user fragment overrides
 * whatever came before it, and the override is recorded so that the caller can log it.
 */
export function mergeFragments(fragments: readonly FragmentInput[]): MergeResult {
  const options = new Map<string, MergedOption>()
  const overrides: Override[] = []
  for (const fragment of fragments) {
    for (const assignment of parseFragment(fragment.text, fragment.name)) {
      const next: MergedOption = {...assignment, user: fragment.user === true}
      const previous = options.get(assignment.symbol)
      if (previous && !sameValue(previous.value, next.value)) {
        if (!next.user) {
          throw new PmemlabError(
            `conflicting fragments: ${origin(previous)} sets CONFIG_${previous.symbol}=${previous.value} but ${origin(next)} sets CONFIG_${next.symbol}=${next.value}`,
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
  return {options, overrides}
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

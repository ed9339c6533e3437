/**
 * Kernel versions, and the version ranges a fragment scopes an option to:
 *
 *   # pmemlab-when: linux < 5.19
 *   CONFIG_ND_BLK=y
 *
 * The range is a comment on the line above the option, so the fragment stays a plain kconfig
 * fragment for merge_config.sh and friends (a trailing comment would not: kconfig reads it as
 * part of a string or number value, and merge_config.sh compares whole lines).
 *
 * A range is one or more comparisons joined by commas (`linux >= 5.3, < 5.19`). A version is
 * MAJOR, MAJOR.MINOR or MAJOR.MINOR.SUBLEVEL; a shorter one names the whole series, so `< 5.19`
 * and `>= 5.3` start at 5.19.0 and 5.3.0 while `<= 5.18` and `> 5.18` take in or leave out every
 * 5.18.N. A release candidate counts as its release (6.13-rc3 is 6.13): symbols come and go in
 * the merge window, before rc1.
 */

export interface KernelVersion {
  major: number
  minor: number
  sublevel: number
}

type Operator = '<' | '<=' | '>' | '>='

export interface VersionRange {
  /** As written after `linux`, normalised: ">= 5.3, < 5.19". */
  text: string
  /** parts: how many of MAJOR.MINOR.SUBLEVEL were written (5.19 is the series 5.19.N). */
  bounds: Array<{op: Operator; version: KernelVersion; parts: 1 | 2 | 3}>
}

// Each part below 1000, so that a version is one ordered integer (5.18.19 < 5.19.0).
const PART = '\\d{1,3}'
const VERSION = new RegExp(`^(${PART})(?:\\.(${PART}))?(?:\\.(${PART}))?$`)
const BOUND = /^(<=|>=|<|>)\s*(.*)$/

export function formatVersion(version: KernelVersion): string {
  return `${version.major}.${version.minor}${version.sublevel ? `.${version.sublevel}` : ''}`
}

const ordinal = (version: KernelVersion) => version.major * 1_000_000 + version.minor * 1000 + version.sublevel

/**
 * A built kernel's version as makefileVersion() gives it ("6.1.192", "6.1", "6.13-rc3"); the
 * EXTRAVERSION is ignored. Undefined when it does not start with MAJOR.MINOR.
 */
export function parseKernelVersion(text: string): KernelVersion | undefined {
  const match = new RegExp(`^(${PART})\\.(${PART})(?:\\.(${PART}))?(?![\\d.])`).exec(text.trim())
  if (!match) return undefined
  return {major: Number(match[1]), minor: Number(match[2]), sublevel: Number(match[3] ?? 0)}
}

/** The error of a range that cannot be read, without its place (the caller adds file:line). */
export class VersionRangeError extends Error {}

const EXAMPLE = 'for example "# pmemlab-when: linux < 5.19" or "# pmemlab-when: linux >= 5.3, < 5.19"'

/** Reads `linux >= 5.3, < 5.19` (what follows `# pmemlab-when:`). Throws VersionRangeError saying what is wrong. */
export function parseVersionRange(text: string): VersionRange {
  if (text.trim() === '') throw new VersionRangeError(`names no version range: ${EXAMPLE}`)
  const subject = /^linux\b\s*(.*)$/.exec(text.trim())
  if (!subject) throw new VersionRangeError(`"${text.trim()}" does not start with "linux": ${EXAMPLE}`)
  if (subject[1].trim() === '') throw new VersionRangeError(`"${text.trim()}" names no version: ${EXAMPLE}`)
  const bounds: VersionRange['bounds'] = []
  for (const part of subject[1].split(',')) {
    const bound = BOUND.exec(part.trim())
    if (!bound) throw new VersionRangeError(`"${part.trim()}" is not a comparison: write <, <=, > or >= before the version, ${EXAMPLE}`)
    const op = bound[1] as Operator
    if (bound[2] === '') throw new VersionRangeError(`"${op}" names no version: ${EXAMPLE}`)
    const version = VERSION.exec(bound[2])
    if (!version) throw new VersionRangeError(`"${bound[2]}" is not a kernel version (write MAJOR.MINOR, e.g. 5.19, or MAJOR.MINOR.SUBLEVEL)`)
    const parts = version.slice(1).filter((part) => part !== undefined).length as 1 | 2 | 3
    bounds.push({op, parts, version: {major: Number(version[1]), minor: Number(version[2] ?? 0), sublevel: Number(version[3] ?? 0)}})
  }
  const written = (b: VersionRange['bounds'][number]) => [b.version.major, b.version.minor, b.version.sublevel].slice(0, b.parts).join('.')
  const range: VersionRange = {text: bounds.map((b) => `${b.op} ${written(b)}`).join(', '), bounds}
  const {from, below} = interval(range)
  if (from >= below) throw new VersionRangeError(`"linux ${range.text}" matches no kernel version`)
  return range
}

/** The range as a half-open interval of ordinals: from <= version < below. */
function interval(range: VersionRange): {from: number; below: number} {
  let from = 0
  let below = Number.POSITIVE_INFINITY
  for (const {op, version, parts} of range.bounds) {
    const first = ordinal(version)
    // The first version after the series: 5.18 -> 5.19.0, 5 -> 6.0.0, 5.18.3 -> 5.18.4.
    const after = first + [1_000_000, 1000, 1][parts - 1]
    if (op === '>=') from = Math.max(from, first)
    else if (op === '>') from = Math.max(from, after)
    else if (op === '<') below = Math.min(below, first)
    else below = Math.min(below, after)
  }
  return {from, below}
}

export function inRange(range: VersionRange, version: KernelVersion): boolean {
  const {from, below} = interval(range)
  const at = ordinal(version)
  return from <= at && at < below
}

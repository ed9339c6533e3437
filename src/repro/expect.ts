/**
 * The expect block of a reproducer file: what counts as reproduced. Pure: the shape, and the
 * checks across its fields that name the line of a mistake.
 *
 *   expect:
 *     exit: nonzero                # or a status, 0 to 255; left out: the status does not count
 *     must: [warning, /dax_iomap/] # every one must show; classes, or regexes between slashes
 *     must_not: [panic]            # none may show
 *     timeout: 300                 # seconds the script may run (default 300)
 *
 * A class names what the kernel prints (oops, bug, warning, lockdep, panic: verdict.ts says which
 * console reports each takes in) or hang: the run did not end within the timeout, or the guest
 * stopped answering. A regex is matched against each console line without its timestamp.
 */
import {z} from 'zod'
import {closest, type LocatedYaml, type YamlPath} from '../core/located.js'

export const CLASSES = ['oops', 'bug', 'warning', 'lockdep', 'panic', 'hang'] as const
export type PatternClass = (typeof CLASSES)[number]

export type Pattern = {kind: 'class'; class: PatternClass; text: string} | {kind: 'regex'; source: string; flags: string; text: string}

export interface ReproExpect {
  exit?: number | 'nonzero'
  must: Pattern[]
  mustNot: Pattern[]
  timeoutSec: number
}

/** Seconds a run's script may take when expect names no timeout. */
export const DEFAULT_TIMEOUT_SEC = 300

// Entries are checked by parsePattern, which knows what a mapping there means.
const patterns = z
  .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.unknown()))
  .nullish()
  .transform((v) => v ?? [])

export const expectShape = z
  .object({
    exit: z
      .union([z.literal('nonzero'), z.number().int('write a whole number').min(0).max(255)], {errorMap: () => ({message: 'write nonzero or a status from 0 to 255'})})
      .optional(),
    must: patterns,
    must_not: patterns,
    timeout: z.number().positive().max(24 * 3600).default(DEFAULT_TIMEOUT_SEC),
  })
  .strict()

const PATTERN_FIX = `write one of ${CLASSES.join(', ')}, or a regex between slashes like /XFS.*corruption/i`

/** A pattern as written (a class name, or /regex/ with flags i, s or u), or the error at PATH. */
export function parsePattern(yaml: LocatedYaml, path: YamlPath, text: unknown): Pattern {
  if (text !== null && typeof text === 'object') {
    // `- /sysrq: Show/` is a mapping to YAML: the colon and space make the text before them a key.
    throw yaml.error(path, 'is a mapping, not a class or a regex', `quote a regex that holds ": ", like '/sysrq: Show Blocked State/'`)
  }
  if (typeof text !== 'string' || text === '') throw yaml.error(path, 'is not a class or a regex', PATTERN_FIX)
  if ((CLASSES as readonly string[]).includes(text)) return {kind: 'class', class: text as PatternClass, text}
  const regex = /^\/(.*)\/([a-z]*)$/s.exec(text)
  if (!regex) {
    const near = closest(text, CLASSES)
    throw yaml.error(path, `"${text}" is neither a class nor a regex`, near ? `did you mean "${near}"? ${PATTERN_FIX}` : PATTERN_FIX)
  }
  const [, source, flags] = regex
  // g and y would make a regex remember where it last matched; m means nothing line by line.
  const bad = [...flags].find((flag) => !'isu'.includes(flag))
  if (bad !== undefined) throw yaml.error(path, `${text}: the flag ${bad} is not taken`, 'use i (ignore case), s or u, or none')
  if (source === '') throw yaml.error(path, `${text} is empty and would match any line`, 'write what the line says between the slashes')
  try {
    new RegExp(source, flags)
  } catch (error) {
    throw yaml.error(path, `${text} is not a regex: ${(error as Error).message.replace(/^Invalid regular expression: /, '')}`)
  }
  return {kind: 'regex', source, flags, text}
}

/** Checks across the block's fields; AT is where it is written. */
export function checkExpect(yaml: LocatedYaml, e: z.infer<typeof expectShape>, at: YamlPath): ReproExpect {
  const read = (key: 'must' | 'must_not') => {
    // A single pattern may be written without a list: its position is then the key's value.
    const listed = Array.isArray(yaml.valueAt([...at, key]))
    return e[key].map((text, i) => parsePattern(yaml, listed ? [...at, key, i] : [...at, key], text))
  }
  const must = read('must')
  const mustNot = read('must_not')
  if (must.length === 0 && e.exit === undefined) {
    throw yaml.error(at, 'names nothing that counts as reproduced', 'give exit (a status or nonzero), must (what the console must show), or both')
  }
  must.forEach((pattern, i) => {
    const twice = mustNot.findIndex((other) => other.text === pattern.text)
    if (twice >= 0) throw yaml.error([...at, 'must_not', twice], `${pattern.text} is in must too`, 'keep it in one of them')
    if (must.findIndex((other) => other.text === pattern.text) !== i) throw yaml.error([...at, 'must', i], `${pattern.text} is listed twice`, 'list it once')
  })
  if (e.exit !== undefined && must.some((p) => p.kind === 'class' && p.class === 'hang')) {
    throw yaml.error(at, 'exit goes not with hang: a run that hangs has no exit status', 'remove exit:, or hang from must', 'exit')
  }
  return {exit: e.exit, must, mustNot, timeoutSec: e.timeout}
}

/**
 * YAML read with its positions kept, so that every mistake in one of pmemlab's files (a matrix,
 * a reproducer) is reported as one line naming FILE:LINE:COLUMN, what is wrong there, and what
 * to write instead. Pure: text in, data or a PmemlabError (exit 2) out.
 */
import {isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node} from 'yaml'
import {z, type ZodIssue} from 'zod'
import {usageError, type PmemlabError} from './errors.js'

export type YamlPath = ReadonlyArray<string | number>

/** A parsed YAML document that can say where any path of it was written. */
export class LocatedYaml {
  private constructor(
    readonly file: string,
    readonly data: unknown,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Parses TEXT. Plain scalars YAML would read as numbers become the text as written, except
   * the values of the keys in NUMBERS (dotted from the top: "retries", "run.runs"): a version
   * written 6.10 must stay "6.10", not the float 6.1.
   */
  static parse(text: string, file: string, numbers: ReadonlySet<string>): LocatedYaml {
    const lines = new LineCounter()
    const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
    const located = (data: unknown) => new LocatedYaml(file, data, doc, lines)
    const first = doc.errors[0]
    if (first) {
      const message = first.message.split('\n')[0].replace(/\.$/, '')
      throw located(undefined).errorAtOffset(first.pos[0], `${message}`, 'fix the YAML syntax there')
    }
    visit(doc, {
      Scalar(_key, node, path) {
        if (typeof node.value !== 'number' || node.type !== 'PLAIN') return
        const keys = keyPathOf(node, path)
        if (keys !== undefined && numbers.has(keys)) return
        node.value = node.source ?? String(node.value)
      },
    })
    return located(doc.toJS({maxAliasCount: 100}))
  }

  /**
   * The document as SHAPE reads it, after the checks every pmemlab file shares: a mapping (else
   * "is not a WHAT", pointing at EXAMPLE), with a `version:` that is FORMAT. Errors name their line.
   */
  versioned<T extends z.ZodTypeAny>(
    format: number,
    about: {what: string; example: string},
    shape: T,
    known: (path: YamlPath) => readonly string[],
  ): z.infer<T> {
    const raw = this.data
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw this.error([], `is not ${about.what}`, `see ${about.example}`)
    if (!('version' in raw)) throw this.error([], 'has no version', `add version: ${format} as its first line`)
    const version = (raw as {version: unknown}).version
    if (version !== format) throw this.error(['version'], `format ${JSON.stringify(version)} is not one this pmemlab reads`, `write version: ${format} (or upgrade pmemlab)`)
    const parsed = shape.safeParse(raw)
    if (!parsed.success) throw this.issueError(parsed.error.issues, known)
    return parsed.data
  }

  /** The data at PATH, as read (after the number rule above). */
  valueAt(path: YamlPath): unknown {
    let value = this.data
    for (const step of path) value = value && typeof value === 'object' ? (value as Record<string | number, unknown>)[step] : undefined
    return value
  }

  /** "FILE:LINE:COLUMN" of an offset in the text. */
  where(offset: number): string {
    const {line, col} = this.lines.linePos(offset)
    return `${this.file}:${line}:${col}`
  }

  /** "FILE:LINE:COLUMN" of PATH, or of its nearest written ancestor when PATH is not there. */
  whereIs(path: YamlPath, key?: string): string {
    return this.where(this.offsetOf(path, key))
  }

  errorAtOffset(offset: number, problem: string, fix?: string): PmemlabError {
    return usageError(`${this.where(offset)}: ${problem}`, fix)
  }

  /** The one-line error at PATH (at KEY's own position when given): "FILE:L:C: PATH: problem: fix". */
  error(path: YamlPath, problem: string, fix?: string, key?: string): PmemlabError {
    const name = pathText(key === undefined ? path : [...path, key])
    return usageError(`${this.whereIs(path, key)}: ${name ? `${name}: ` : ''}${problem}`, fix)
  }

  /** The error for the first zod issue in the file's order; KNOWN lists the keys an object at a path takes. */
  issueError(issues: readonly ZodIssue[], known: (path: YamlPath) => readonly string[]): PmemlabError {
    const ordered = [...issues].sort((a, b) => this.offsetOf(issueAt(a)) - this.offsetOf(issueAt(b)))
    const issue = ordered[0]
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0]
      const keys = known(issue.path)
      const near = closest(key, keys)
      return this.error(issue.path, `unknown key "${key}"`, `${near ? `did you mean "${near}"? ` : ''}expected ${keys.join(', ')}`, key)
    }
    const {problem, fix} = describeIssue(issue)
    return this.error(issue.path, problem, fix)
  }

  private offsetOf(path: YamlPath, key?: string): number {
    let node: Node | null | undefined = this.doc.contents
    let offset = node?.range?.[0] ?? 0
    for (const step of path) {
      const next: unknown = isMap(node) || isSeq(node) ? node.get(step, true) : undefined
      if (!next || typeof next !== 'object' || !('range' in next)) break
      node = next as Node
      offset = node.range?.[0] ?? offset
    }
    if (key !== undefined && isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === key)
      if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0]
    }
    return offset
  }
}

/**
 * "run.runs" for a scalar written as the value of key runs in the mapping under key run, where
 * ANCESTORS (the visitor's path) are the document, then mapping and pair in turn; undefined when
 * a list or a key that is not plain text lies on the way, or the scalar is a key itself.
 */
function keyPathOf(node: unknown, ancestors: readonly unknown[]): string | undefined {
  if (ancestors.length % 2 === 0) return undefined
  const keys: string[] = []
  for (let i = 1; i < ancestors.length; i += 2) {
    const [map, pair] = [ancestors[i], ancestors[i + 1]]
    if (!isMap(map) || !isPair(pair) || !isScalar(pair.key)) return undefined
    keys.push(String(pair.key.value))
  }
  const last = ancestors.at(-1)
  return isPair(last) && last.value === node ? keys.join('.') : undefined
}

/** kernels[2].build.version */
export function pathText(path: YamlPath): string {
  return path.map((step, i) => (typeof step === 'number' ? `[${step}]` : i === 0 ? step : `.${step}`)).join('')
}

// An unknown key is reported where it is written, not at the object holding it.
const issueAt = (issue: ZodIssue): YamlPath => (issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path)

const TYPE_WORDS: Record<string, string> = {array: 'a list', object: 'a mapping (key: value)', string: 'a string', number: 'a number', integer: 'a whole number', float: 'a fraction', boolean: 'true or false', null: 'nothing'}

function describeIssue(issue: ZodIssue): {problem: string; fix?: string} {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.received === 'undefined') return {problem: 'is missing', fix: `add it (${TYPE_WORDS[issue.expected] ?? issue.expected})`}
      return {problem: `expected ${TYPE_WORDS[issue.expected] ?? issue.expected}, found ${TYPE_WORDS[issue.received] ?? issue.received}`}
    case 'invalid_enum_value':
      return {problem: `"${String(issue.received)}" is not allowed`, fix: `write one of ${issue.options.join(', ')}`}
    case 'invalid_literal':
      return {problem: `must be ${JSON.stringify(issue.expected)}`, fix: issue.message === 'Invalid input' ? undefined : issue.message}
    case 'too_small':
      if (issue.type === 'array') return {problem: 'is empty', fix: issue.minimum === 1 ? 'list at least one' : `list at least ${issue.minimum}`}
      return {problem: issue.inclusive ? `must be at least ${issue.minimum}` : `must be more than ${issue.minimum}`}
    case 'too_big':
      if (issue.type === 'array') return {problem: 'is too long', fix: `list at most ${issue.maximum}`}
      return {problem: issue.inclusive ? `must be at most ${issue.maximum}` : `must be less than ${issue.maximum}`}
    case 'invalid_union':
      return {problem: issue.message}
    default:
      return {problem: issue.message}
  }
}

/** The known word nearest to WORD (at most two edits away), for "did you mean". */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: {name: string; distance: number} | undefined
  for (const name of known) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase())
    if (distance <= 2 && (!best || distance < best.distance)) best = {name, distance}
  }
  return best?.name
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]
}

// ---------------------------------------------------------------------------------------------
// Shapes the files' schemas share

export const text = z.string().min(1, 'is empty')
/** A list that may be left out or written empty (key with nothing after it). */
export const list = <T extends z.ZodTypeAny>(item: T) => z.array(item).nullish().transform((v) => v ?? [])

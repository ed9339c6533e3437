/**
 * A TAP (Test Anything Protocol) parser for versions 12 to 14: the plan, "ok"/"not ok" test
 * points with SKIP and TODO directives, "Bail out!", comments, YAML diagnostic blocks and
 * indented subtests. Pure: text in, a document out. TapParser also works line by line, so a
 * stream can be reported while it is still running.
 */

export interface TapDirective {
  kind: 'skip' | 'todo'
  reason: string
}

export interface TapAssert {
  /** The test point's number (counted when the line has none). */
  id: number
  ok: boolean
  /** The description, with the leading "- " and any directive removed, "\#" unescaped. */
  name: string
  directive?: TapDirective
  /** "# ..." comment lines that followed the test point (without the "# "). */
  diagnostics: string[]
  /** The YAML block that followed the test point, as text (without its --- and ... lines). */
  yaml?: string
  /** The indented stream that preceded the test point (a TAP 14 subtest). */
  subtest?: TapDocument
}

export interface TapPlan {
  start: number
  end: number
  /** "1..0 # SKIP why": the whole stream is skipped. */
  skipAll?: string
}

export interface TapDocument {
  version?: number
  plan?: TapPlan
  asserts: TapAssert[]
  bailOut?: string
  /** Comments before the first test point. */
  comments: string[]
  /** Lines that are not TAP (program output). */
  extra: string[]
  /** Problems with the stream itself: no plan, wrong count, numbers out of order. */
  problems: string[]
  /** Passed: no failing test point (TODO ones do not count), no bail out, no problem. */
  ok: boolean
}

/** Whether a test point counts as a failure: "not ok" without a TODO directive. */
export const failing = (a: TapAssert) => !a.ok && a.directive?.kind !== 'todo'

const VERSION = /^TAP version (\d+)\s*$/i
const PLAN = /^1\.\.(\d+)\s*(?:#\s*(.*))?$/
const ASSERT = /^(not )?ok\b(.*)$/
const BAIL = /^Bail out!\s*(.*)$/i
const SUBTEST_HEADER = /^#\s*Subtest(?::\s*(.*))?$/i

/** Splits "desc # SKIP why" at the first unescaped "#" that starts a directive. */
function splitDirective(text: string): {name: string; directive?: TapDirective} {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') {
      i++
      continue
    }
    if (text[i] !== '#') continue
    const match = /^#\s*(skip\S*|todo\S*)(?:\s+(.*))?$/i.exec(text.slice(i))
    if (match) {
      const kind = match[1].toLowerCase().startsWith('skip') ? 'skip' : 'todo'
      return {name: unescape(text.slice(0, i).trim()), directive: {kind, reason: (match[2] ?? '').trim()}}
    }
  }
  return {name: unescape(text.trim())}
}

const unescape = (text: string) => text.replaceAll('\\#', '#').replaceAll('\\\\', '\\')

function parseAssert(line: string, nextId: number): TapAssert | undefined {
  const match = ASSERT.exec(line)
  if (!match) return undefined
  let rest = match[2]
  if (rest !== '' && !/^\s/.test(rest)) return undefined // "okay", "oknot"
  rest = rest.trim()
  let id = nextId
  const number = /^(\d+)\b\s*(.*)$/.exec(rest)
  if (number) {
    id = Number(number[1])
    rest = number[2]
  }
  rest = rest.replace(/^-\s*/, '')
  const {name, directive} = splitDirective(rest)
  return {id, ok: !match[1], name, ...(directive ? {directive} : {}), diagnostics: []}
}

/** Leading spaces, a tab counting as four (TAP indents subtests by four spaces). */
function indentOf(line: string): number {
  let width = 0
  for (const char of line) {
    if (char === ' ') width++
    else if (char === '\t') width += 4
    else break
  }
  return width
}

/**
 * Incremental parser: feed lines or chunks with write(); onAssert is called for every top-level
 * test point as soon as its line arrives (its diagnostics and YAML may follow later).
 */
export class TapParser {
  private readonly doc: TapDocument = {asserts: [], comments: [], extra: [], problems: [], ok: false}
  private partial = ''
  private yaml?: {indent: number; lines: string[]; target: TapAssert}
  private child?: {indent: number; lines: string[]}
  private pendingSubtest?: TapDocument
  private pendingSubtestName?: string
  private last?: TapAssert
  private finished = false

  constructor(private readonly onAssert?: (a: TapAssert) => void) {}

  /** Feeds text (any chunking); complete lines are parsed at once. */
  write(chunk: string): this {
    this.partial += chunk
    let newline: number
    while ((newline = this.partial.indexOf('\n')) >= 0) {
      this.line(this.partial.slice(0, newline).replace(/\r$/, ''))
      this.partial = this.partial.slice(newline + 1)
    }
    return this
  }

  /** The test points seen so far. */
  get asserts(): readonly TapAssert[] {
    return this.doc.asserts
  }

  end(): TapDocument {
    if (!this.finished) {
      this.finished = true
      if (this.partial) this.line(this.partial.replace(/\r$/, ''))
      this.partial = ''
      this.closeYaml()
      this.closeChild()
      this.validate()
    }
    return this.doc
  }

  private line(raw: string): void {
    const indent = indentOf(raw)
    const text = raw.trim()
    // A YAML block runs from "---" to "..." below a test point; its lines are kept as they are.
    if (this.yaml) {
      if (text === '...' && indent <= this.yaml.indent) {
        this.closeYaml()
        return
      }
      if (text === '' || indent >= this.yaml.indent) {
        this.yaml.lines.push(raw.slice(Math.min(this.yaml.indent, indent)))
        return
      }
      this.closeYaml() // an unterminated block: tolerate it
    }
    // Indented by 4 or more: a subtest's stream, parsed once its parent's test point arrives.
    if (indent >= 4 && text !== '') {
      if (!this.child) {
        this.child = {indent, lines: []}
      }
      this.child.lines.push(raw.slice(Math.min(this.child.indent, indent)))
      return
    }
    if (text === '---' && this.last && indent > 0) {
      this.yaml = {indent, lines: [], target: this.last}
      return
    }
    if (this.child) this.closeChild()
    if (text === '') return

    const version = VERSION.exec(text)
    if (version) {
      this.doc.version = Number(version[1])
      return
    }
    const bail = BAIL.exec(text)
    if (bail) {
      this.doc.bailOut = bail[1].trim()
      return
    }
    const plan = PLAN.exec(text)
    if (plan) {
      if (this.doc.plan) this.doc.problems.push('more than one plan')
      const skip = plan[2] && /^skip\S*\s*(.*)$/i.exec(plan[2].trim())
      this.doc.plan = {start: 1, end: Number(plan[1]), ...(skip ? {skipAll: skip[1].trim()} : {})}
      return
    }
    const header = SUBTEST_HEADER.exec(text)
    if (header) {
      this.pendingSubtestName = header[1]?.trim()
      return
    }
    const assert = parseAssert(text, (this.last?.id ?? 0) + 1)
    if (assert) {
      if (this.pendingSubtest) assert.subtest = this.pendingSubtest
      if (!assert.name && this.pendingSubtestName) assert.name = this.pendingSubtestName
      this.pendingSubtest = undefined
      this.pendingSubtestName = undefined
      this.doc.asserts.push(assert)
      this.last = assert
      this.onAssert?.(assert)
      return
    }
    if (text.startsWith('#')) {
      const comment = text.replace(/^#\s?/, '')
      if (this.last) this.last.diagnostics.push(comment)
      else this.doc.comments.push(comment)
      return
    }
    if (/^pragma\s+[+-]/.test(text)) return
    this.doc.extra.push(raw)
  }

  private closeYaml(): void {
    if (!this.yaml) return
    this.yaml.target.yaml = this.yaml.lines.join('\n')
    this.yaml = undefined
  }

  private closeChild(): void {
    if (!this.child) return
    this.pendingSubtest = parseTap(this.child.lines.join('\n'))
    this.child = undefined
  }

  private validate(): void {
    const doc = this.doc
    if (!doc.plan) {
      if (!doc.bailOut) doc.problems.push(doc.asserts.length > 0 ? `no plan (${doc.asserts.length} tests ran)` : 'no plan and no tests')
    } else if (!doc.bailOut && doc.plan.end !== doc.asserts.length && !(doc.plan.end === 0 && doc.asserts.length === 0)) {
      doc.problems.push(`planned ${doc.plan.end} tests but ${doc.asserts.length} ran`)
    }
    doc.asserts.forEach((a, i) => {
      if (a.id !== i + 1) doc.problems.push(`test ${i + 1} is numbered ${a.id}`)
    })
    doc.ok = doc.bailOut === undefined && doc.problems.length === 0 && !doc.asserts.some(failing)
  }
}

/** Parses a whole TAP stream. */
export function parseTap(text: string): TapDocument {
  return new TapParser().write(text).end()
}

/** Whether text looks like TAP at all: a version line, a plan or a test point. */
export function looksLikeTap(text: string): boolean {
  return text.split('\n').some((line) => {
    const t = line.trim()
    return VERSION.test(t) || PLAN.test(t) || parseAssert(t, 1) !== undefined
  })
}

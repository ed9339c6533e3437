/**
 * TAP (Test Anything Protocol) streams read by tap-parser, as the documents pmemlab reports:
 * the plan, test points with SKIP and TODO directives, "Bail out!", comments, YAML diagnostic
 * blocks and subtests, plus the problems that fail a stream (no plan, wrong count, numbers out of
 * order). tap-parser does all the parsing; this module maps its events to a TapDocument and keeps
 * pmemlab's verdict rules. TapParser works line by line, so a stream is reported while it runs.
 */
import {lineType, lineTypes, parseDirective, Parser, Result, type Plan} from 'tap-parser'

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

const typeOf = (line: string) => lineType(line.endsWith('\n') ? line : `${line}\n`)?.[0]

function directiveOf(result: Result): TapDirective | undefined {
  const reason = (value: string | boolean) => (value === true ? '' : String(value))
  if (result.skip !== false) return {kind: 'skip', reason: reason(result.skip)}
  if (result.todo !== false) return {kind: 'todo', reason: reason(result.todo)}
  return undefined
}

/**
 * Builds the TapDocument of one tap-parser Parser, the root's or a subtest's, from its events.
 * tap-parser keeps only the parsed YAML object, so the block's text is taken from the lines it
 * reports while it reads the block.
 */
class DocumentBuilder {
  readonly doc: TapDocument = {asserts: [], comments: [], extra: [], problems: [], ok: false}
  /** Reported as its line arrived; tap-parser emits it later, after its YAML or subtest. */
  private early?: TapAssert
  /** The subtest that belongs to the next test point. */
  private child?: DocumentBuilder
  /** A test point line was read and no assert emitted yet: a YAML block may follow. */
  private yamlMayFollow = false
  private yaml?: {indent: string; lines: string[]; body: string; closed: boolean}
  /** The YAML text tap-parser is about to set aside as non-TAP (unterminated or not YAML). */
  private yamlGarbage?: string
  /** The line being fed, and whether it turned out to be a test point of this stream. */
  private feeding?: string
  private pointLine = false

  constructor(
    readonly parser: Parser,
    private readonly onAssert?: (a: TapAssert) => void,
  ) {
    parser.on('version', (version: number) => {
      if (!parser.syntheticPlan) this.doc.version = version
    })
    parser.on('plan', (plan: Plan) => this.plan(plan))
    parser.on('line', (line: string) => this.line(line))
    parser.on('assert', (result: Result) => this.assert(result))
    parser.on('comment', (line: string) => this.comment(line))
    parser.on('extra', (data: string) => this.extra(data))
    parser.on('bailout', (reason: string) => {
      this.doc.bailOut = reason
    })
    parser.on('child', (child: Parser) => {
      this.child = new DocumentBuilder(child)
      this.yamlMayFollow = false
    })
    parser.on('complete', () => this.validate())
  }

  /** Feeds one line (no newline); a test point is reported at once. */
  feed(line: string): void {
    this.feeding = `${line}\n`
    this.pointLine = false
    this.parser.write(this.feeding)
    this.feeding = undefined
    const parsed = this.pointLine ? lineType(`${line}\n`) : null
    if (!parsed) return
    const a = this.fromResult(new Result(parsed[1], this.parser))
    this.doc.asserts.push(a)
    this.early = a
    this.onAssert?.(a)
  }

  private fromResult(result: Result): TapAssert {
    const directive = directiveOf(result)
    return {
      id: result.id || (this.doc.asserts.at(-1)?.id ?? 0) + 1,
      ok: result.ok,
      name: result.name || this.child?.parser.name || '',
      ...(directive ? {directive} : {}),
      diagnostics: [],
    }
  }

  private plan(plan: Plan): void {
    if (this.parser.syntheticPlan) return // "1..0 # no tests found", made up for an empty stream
    const directive = parseDirective(plan.comment)
    const skipAll = directive && directive[0] === 'skip' ? (directive[1] === true ? '' : String(directive[1])) : undefined
    this.doc.plan = {start: plan.start, end: plan.end, ...(skipAll !== undefined ? {skipAll} : {})}
  }

  private line(line: string): void {
    const yaml = this.yaml
    if (yaml && !yaml.closed) {
      if (line === `${yaml.indent}...\n`) yaml.closed = true
      else {
        yaml.body += line
        yaml.lines.push(line.slice(yaml.indent.length, -1))
      }
      return
    }
    const start = /^([ \t]+)---\n$/.exec(line)
    if (start && this.yamlMayFollow && !yaml) {
      this.yaml = {indent: start[1], lines: [], body: '', closed: false}
      return
    }
    if (typeOf(line) === 'testPoint') {
      this.yamlMayFollow = true
      if (line === this.feeding) this.pointLine = true
    }
  }

  private assert(result: Result): void {
    const yaml = this.yaml
    this.yaml = undefined
    this.yamlMayFollow = false
    // As tap-parser hands it to 'extra' when the block is unterminated, or closed but not YAML.
    this.yamlGarbage = yaml && (yaml.closed ? `---\n${yaml.body}...\n` : `${yaml.indent}---\n${yaml.body}`)
    const a = this.early ?? this.fromResult(result)
    if (!this.early) {
      this.doc.asserts.push(a)
      this.onAssert?.(a)
    }
    this.early = undefined
    if (yaml) a.yaml = yaml.lines.join('\n')
    if (this.child) a.subtest = this.child.doc
    this.child = undefined
  }

  private comment(line: string): void {
    // tap-parser's own closing note ("test count(N) != plan(M)"), and subtest headers
    if (this.parser.results || lineTypes.subtest.test(line)) return
    const text = line.trim().replace(/^#\s?/, '')
    const last = this.doc.asserts.at(-1)
    if (last) last.diagnostics.push(text)
    else this.doc.comments.push(text)
  }

  private extra(data: string): void {
    if (data === this.yamlGarbage) {
      // The block stays the test point's YAML text, as it always was here.
      this.yamlGarbage = undefined
      return
    }
    for (const line of data.replace(/\n$/, '').split('\n')) {
      this.doc.extra.push(line)
      // TAP lines tap-parser set aside: they still make the stream wrong.
      const type = typeOf(line)
      if (type === 'plan') this.doc.problems.push(this.doc.plan ? 'more than one plan' : `a plan out of place: ${line}`)
      if (type === 'testPoint') {
        this.doc.problems.push(`a test point after the plan: ${line}`)
        if (`${line}\n` === this.feeding) this.pointLine = false
        this.yamlMayFollow = false
      }
    }
  }

  private validate(): void {
    const {doc} = this
    const ran = doc.asserts.length
    if (!doc.plan) {
      if (doc.bailOut === undefined) doc.problems.push(ran > 0 ? `no plan (${ran} tests ran)` : 'no plan and no tests')
    } else if (doc.bailOut === undefined) {
      const planned = doc.plan.end - doc.plan.start + 1
      if (planned !== ran && !(doc.plan.end === 0 && ran === 0)) doc.problems.push(`planned ${planned} tests but ${ran} ran`)
    }
    const first = doc.plan?.start ?? 1
    doc.asserts.forEach((a, i) => {
      if (a.id !== first + i) doc.problems.push(`test ${first + i} is numbered ${a.id}`)
    })
    doc.ok = doc.bailOut === undefined && doc.problems.length === 0 && !doc.asserts.some(failing)
  }
}

/**
 * Incremental parser: feed lines or chunks with write(); onAssert is called for every top-level
 * test point as soon as its line arrives (its diagnostics and YAML may follow later).
 */
export class TapParser {
  private readonly builder: DocumentBuilder
  private partial = ''
  private ended = false

  constructor(onAssert?: (a: TapAssert) => void) {
    this.builder = new DocumentBuilder(new Parser(), onAssert)
  }

  /** Feeds text (any chunking); complete lines are parsed at once. */
  write(chunk: string): this {
    if (this.ended) return this
    this.partial += chunk
    let newline: number
    while ((newline = this.partial.indexOf('\n')) >= 0) {
      this.builder.feed(this.partial.slice(0, newline).replace(/\r$/, ''))
      this.partial = this.partial.slice(newline + 1)
    }
    return this
  }

  /** The test points seen so far. */
  get asserts(): readonly TapAssert[] {
    return this.builder.doc.asserts
  }

  end(): TapDocument {
    if (!this.ended) {
      if (this.partial) this.builder.feed(this.partial.replace(/\r$/, ''))
      this.partial = ''
      this.ended = true
      this.builder.parser.end()
    }
    return this.builder.doc
  }
}

/** Parses a whole TAP stream. */
export function parseTap(text: string): TapDocument {
  return new TapParser().write(text).end()
}

/** Whether text looks like TAP at all: a version line, a plan or a test point. */
export function looksLikeTap(text: string): boolean {
  return text.split('\n').some((line) => {
    const type = typeOf(line.trim())
    return type === 'version' || type === 'plan' || type === 'testPoint'
  })
}

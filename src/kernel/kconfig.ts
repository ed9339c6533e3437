/**
 * Kconfig, the pure part: fragments (parse, merge, apply), the check of a final .config against
 * what was requested, and "why was this option dropped", read from the kernel's own Kconfig files.
 *
 * Nothing here touches the disk or runs a program: files come in as text and through a reader
 * function, so the unit tests can use small synthetic Kconfig trees.
 */
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'

// ------------------------------------------------------------------------------------------------
// Fragments
// ------------------------------------------------------------------------------------------------

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

function unquote(value: string): string {
  return value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value
}

function asNumber(value: string): number | undefined {
  if (/^-?\d+$/.test(value)) return Number(value)
  if (/^0[xX][0-9a-fA-F]+$/.test(value)) return Number.parseInt(value.slice(2), 16)
  return undefined
}

function normaliseValue(value: string): string {
  return value.trim()
}

function sameValue(a: string, b: string): boolean {
  if (a === b) return true
  const na = asNumber(a)
  const nb = asNumber(b)
  if (na !== undefined && nb !== undefined) return na === nb
  return unquote(a) === unquote(b) && (a.startsWith('"') || b.startsWith('"'))
}

// ------------------------------------------------------------------------------------------------
// Verify
// ------------------------------------------------------------------------------------------------

export interface Drop {
  symbol: string
  requested: string
  /** The value in the final .config; undefined when the symbol is not there at all. */
  actual: string | undefined
  option: Pick<Assignment, 'file' | 'line' | 'symbol' | 'value'>
}

/**
 * Every requested option whose value did not survive `make olddefconfig`. A requested n is
 * satisfied by an absent symbol; a requested m by y when modules are off (kconfig promotes it).
 */
export function verifyConfig(requested: ReadonlyMap<string, Pick<Assignment, 'file' | 'line' | 'symbol' | 'value'>>, finalConfig: string): Drop[] {
  const final = parseDotConfig(finalConfig)
  const modules = final.get('MODULES') === 'y'
  const drops: Drop[] = []
  for (const [symbol, option] of requested) {
    const want = normaliseValue(option.value)
    const actual = final.get(symbol)
    let ok: boolean
    if (want === 'n') ok = actual === undefined || actual === 'n'
    else if (want === 'm') ok = actual === 'm' || (actual === 'y' && !modules)
    else ok = actual !== undefined && sameValue(want, actual)
    if (!ok) drops.push({symbol, requested: want, actual, option})
  }
  return drops
}

// ------------------------------------------------------------------------------------------------
// Expressions
// ------------------------------------------------------------------------------------------------

export type CompareOp = '=' | '!=' | '<' | '<=' | '>' | '>='

export type Expr =
  | {op: 'symbol'; name: string}
  | {op: 'string'; value: string}
  | {op: 'macro'; text: string}
  | {op: 'not'; arg: Expr}
  | {op: 'and' | 'or'; left: Expr; right: Expr}
  | {op: CompareOp; left: Expr; right: Expr}

export type Token = {kind: 'word' | 'string' | 'macro' | 'op'; text: string}

/** Splits an expression into tokens: words (symbols, numbers), "strings", $(macros) and operators. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]
    if (c === ' ' || c === '\t') {
      i++
    } else if (c === '"' || c === "'") {
      let j = i + 1
      let value = ''
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) j++
        value += text[j]
        j++
      }
      if (j >= text.length) throw new Error(`unterminated string in "${text}"`)
      tokens.push({kind: 'string', text: value})
      i = j + 1
    } else if (c === '$' && text[i + 1] === '(') {
      let depth = 0
      let j = i + 1
      for (; j < text.length; j++) {
        if (text[j] === '(') depth++
        else if (text[j] === ')' && --depth === 0) break
      }
      tokens.push({kind: 'macro', text: text.slice(i, j + 1)})
      i = j + 1
    } else {
      const two = text.slice(i, i + 2)
      if (['&&', '||', '!=', '<=', '>='].includes(two)) {
        tokens.push({kind: 'op', text: two})
        i += 2
      } else if ('!()=<>'.includes(c)) {
        tokens.push({kind: 'op', text: c})
        i++
      } else {
        const match = /^[A-Za-z0-9_\-.+/]+/.exec(text.slice(i))
        if (!match) throw new Error(`unexpected "${c}" in "${text}"`)
        tokens.push({kind: 'word', text: match[0]})
        i += match[0].length
      }
    }
  }
  return tokens
}

/** A small recursive-descent parser: || binds loosest, then &&, then !, then comparisons. */
export function parseExpr(input: string | Token[]): Expr {
  const tokens = typeof input === 'string' ? tokenize(input) : input
  let pos = 0
  const peek = () => tokens[pos]
  const isOp = (text: string) => peek()?.kind === 'op' && peek().text === text
  const fail = (what: string): never => {
    throw new Error(`${what} in "${tokens.map((t) => (t.kind === 'string' ? JSON.stringify(t.text) : t.text)).join(' ')}"`)
  }
  const parseOr = (): Expr => {
    let left = parseAnd()
    while (isOp('||')) {
      pos++
      left = {op: 'or', left, right: parseAnd()}
    }
    return left
  }
  const parseAnd = (): Expr => {
    let left = parseNot()
    while (isOp('&&')) {
      pos++
      left = {op: 'and', left, right: parseNot()}
    }
    return left
  }
  const parseNot = (): Expr => {
    if (isOp('!')) {
      pos++
      return {op: 'not', arg: parseNot()}
    }
    return parseCompare()
  }
  const parseCompare = (): Expr => {
    const left = parsePrimary()
    const token = peek()
    if (token?.kind === 'op' && ['=', '!=', '<', '<=', '>', '>='].includes(token.text)) {
      pos++
      return {op: token.text as CompareOp, left, right: parsePrimary()}
    }
    return left
  }
  const parsePrimary = (): Expr => {
    const token = peek()
    if (!token) return fail('expression ends early')
    pos++
    if (token.kind === 'op' && token.text === '(') {
      const inner = parseOr()
      if (!isOp(')')) fail('missing ")"')
      pos++
      return inner
    }
    if (token.kind === 'word') return {op: 'symbol', name: token.text}
    if (token.kind === 'string') return {op: 'string', value: token.text}
    if (token.kind === 'macro') return {op: 'macro', text: token.text}
    return fail(`unexpected "${token.text}"`)
  }
  const expr = parseOr()
  if (pos < tokens.length) fail(`unexpected "${tokens[pos].text}"`)
  return expr
}

const PRECEDENCE: Record<Expr['op'], number> = {or: 1, and: 2, not: 3, '=': 4, '!=': 4, '<': 4, '<=': 4, '>': 4, '>=': 4, symbol: 5, string: 5, macro: 5}

/** Back to Kconfig syntax, with only the parentheses that are needed. */
export function renderExpr(expr: Expr, parent = 0): string {
  let text: string
  switch (expr.op) {
    case 'symbol':
      return expr.name
    case 'string':
      return JSON.stringify(expr.value)
    case 'macro':
      return expr.text
    case 'not':
      text = `!${renderExpr(expr.arg, PRECEDENCE.not)}`
      break
    case 'and':
    case 'or':
      text = `${renderExpr(expr.left, PRECEDENCE[expr.op])} ${expr.op === 'and' ? '&&' : '||'} ${renderExpr(expr.right, PRECEDENCE[expr.op])}`
      break
    default:
      text = `${renderExpr(expr.left, PRECEDENCE[expr.op] + 1)}${expr.op}${renderExpr(expr.right, PRECEDENCE[expr.op] + 1)}`
  }
  return PRECEDENCE[expr.op] < parent ? `(${text})` : text
}

/** Kconfig's three-valued logic: n = 0, m = 1, y = 2. */
export type Tristate = 0 | 1 | 2

export const tristateName = (value: Tristate) => (['n', 'm', 'y'] as const)[value]

export interface EvalContext {
  /** The .config (symbol -> value); absent symbols are n (or "" for strings). */
  config: ReadonlyMap<string, string>
  /** Symbol types, to tell an absent string from an absent bool. */
  types?: ReadonlyMap<string, string | undefined>
}

function tristateOf(value: string | undefined): Tristate {
  return value === 'y' ? 2 : value === 'm' ? 1 : 0
}

/** The value of a symbol or constant as a string, the way kconfig compares them. */
function stringValue(expr: Expr, context: EvalContext): string {
  if (expr.op === 'string') return expr.value
  if (expr.op === 'macro') return expr.text
  if (expr.op !== 'symbol') return tristateName(evalExpr(expr, context))
  const {name} = expr
  if (name === 'y' || name === 'm' || name === 'n') return name
  const value = context.config.get(name)
  if (value !== undefined) return unquote(value)
  if (asNumber(name) !== undefined) return name // a constant such as 64 or 0x10
  const type = context.types?.get(name)
  return type === 'string' || type === 'int' || type === 'hex' ? '' : 'n'
}

function compare(op: CompareOp, a: string, b: string): boolean {
  const na = asNumber(a)
  const nb = asNumber(b)
  const order = na !== undefined && nb !== undefined ? Math.sign(na - nb) : a === b ? 0 : a < b ? -1 : 1
  switch (op) {
    case '=':
      return order === 0
    case '!=':
      return order !== 0
    case '<':
      return order < 0
    case '<=':
      return order <= 0
    case '>':
      return order > 0
    case '>=':
      return order >= 0
  }
}

/**
 * Evaluates an expression against a .config. The constant m counts as n when modules are off
 * (kconfig reads it as `m && MODULES`). A $(macro) (a toolchain test) cannot be evaluated here and
 * counts as met.
 */
export function evalExpr(expr: Expr, context: EvalContext): Tristate {
  switch (expr.op) {
    case 'symbol':
      if (expr.name === 'y') return 2
      if (expr.name === 'n') return 0
      if (expr.name === 'm') return context.config.get('MODULES') === 'y' ? 1 : 0
      return tristateOf(context.config.get(expr.name))
    case 'string':
      return tristateOf(expr.value)
    case 'macro':
      return 2
    case 'not':
      return (2 - evalExpr(expr.arg, context)) as Tristate
    case 'and':
      return Math.min(evalExpr(expr.left, context), evalExpr(expr.right, context)) as Tristate
    case 'or':
      return Math.max(evalExpr(expr.left, context), evalExpr(expr.right, context)) as Tristate
    default:
      return compare(expr.op, stringValue(expr.left, context), stringValue(expr.right, context)) ? 2 : 0
  }
}

/** The top-level && terms of an expression. */
export function conjuncts(expr: Expr): Expr[] {
  return expr.op === 'and' ? [...conjuncts(expr.left), ...conjuncts(expr.right)] : [expr]
}

/** The symbol names an expression mentions (not the constants y, m, n). */
export function symbolsOf(expr: Expr): string[] {
  switch (expr.op) {
    case 'symbol':
      return ['y', 'm', 'n'].includes(expr.name) || asNumber(expr.name) !== undefined ? [] : [expr.name]
    case 'string':
    case 'macro':
      return []
    case 'not':
      return symbolsOf(expr.arg)
    default:
      return [...new Set([...symbolsOf(expr.left), ...symbolsOf(expr.right)])]
  }
}

// ------------------------------------------------------------------------------------------------
// Kconfig files
// ------------------------------------------------------------------------------------------------

export type SymbolType = 'bool' | 'tristate' | 'string' | 'int' | 'hex'

export interface Dependency {
  expr: Expr
  /** Where the condition comes from: the entry's own `depends on`, or an enclosing if/menu/choice. */
  origin: 'depends on' | 'if' | 'menu' | 'choice'
  file: string
  line: number
}

export interface Definition {
  file: string
  line: number
  type?: SymbolType
  prompt?: {text: string; condition?: Expr}
  /** Inherited (enclosing blocks, outermost first) and then the entry's own `depends on`. */
  dependsOn: Dependency[]
  /** `visible if` of enclosing menus: they hide the prompt but are not dependencies. */
  visibleIf: Expr[]
  defaults: Array<{value: Expr; condition?: Expr}>
  ranges: Array<{low: Expr; high: Expr; condition?: Expr}>
  /** Set for the members of a choice: the choice's file and line. */
  choice?: {file: string; line: number}
}

export interface ReverseDependency {
  /** The symbol that has the `select`/`imply`. */
  symbol: string
  condition?: Expr
  file: string
  line: number
}

export interface KconfigSymbol {
  name: string
  type?: SymbolType
  definitions: Definition[]
  selectedBy: ReverseDependency[]
  impliedBy: ReverseDependency[]
}

export interface KconfigTree {
  symbols: Map<string, KconfigSymbol>
  /** Choice blocks by "file:line", with their member symbols. */
  choices: Map<string, string[]>
  files: string[]
  /** Lines that could not be understood, and sources that could not be read: reported, not fatal. */
  warnings: string[]
}

export interface KconfigOptions {
  /** The top file, relative to the source tree (default "Kconfig"). */
  root?: string
  /** Variables for $(VAR) in source paths and strings; SRCARCH and ARCH default to x86. */
  vars?: Record<string, string>
}

/** Reads a file of the tree by its path relative to the tree's top; undefined when it does not exist. */
export type KconfigReader = (path: string) => string | undefined

interface Block {
  kind: 'if' | 'menu' | 'choice'
  dependsOn: Dependency[]
  visibleIf: Expr[]
  choice?: {file: string; line: number}
}

type Entry = {kind: 'config'; definition: Definition; symbol: KconfigSymbol} | {kind: 'block'; block: Block} | {kind: 'comment'} | {kind: 'none'}

const TYPES = new Set(['bool', 'tristate', 'string', 'int', 'hex', 'def_bool', 'def_tristate'])

/** Removes a # comment that is not inside quotes. */
function stripComment(line: string): string {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quote) {
      if (c === '\\') i++
      else if (c === quote) quote = undefined
    } else if (c === '"' || c === "'") {
      quote = c
    } else if (c === '#') {
      return line.slice(0, i)
    }
  }
  return line
}

function indentation(line: string): number {
  let width = 0
  for (const c of line) {
    if (c === ' ') width++
    else if (c === '\t') width = (Math.floor(width / 8) + 1) * 8
    else break
  }
  return width
}

/** Splits "EXPR if COND" at a top-level `if`. */
function splitIf(tokens: Token[]): {value: Token[]; condition?: Token[]} {
  let depth = 0
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]
    if (token.kind === 'op' && token.text === '(') depth++
    else if (token.kind === 'op' && token.text === ')') depth--
    else if (depth === 0 && token.kind === 'word' && token.text === 'if') return {value: tokens.slice(0, i), condition: tokens.slice(i + 1)}
  }
  return {value: tokens}
}

/**
 * Parses a Kconfig tree starting at its top file, following `source` (paths relative to the
 * tree's top, $(SRCARCH) expanded), `rsource` (relative to the current file) and the optional
 * `osource`/`orsource`. It keeps what explaining a symbol needs: types, prompts, dependencies
 * (with those inherited from enclosing if/menu/choice blocks), defaults, ranges, selects and implies.
 */
export function parseKconfig(read: KconfigReader, options: KconfigOptions = {}): KconfigTree {
  const vars: Record<string, string> = {SRCARCH: 'x86', ARCH: 'x86', SUBARCH: 'x86', ...options.vars}
  const tree: KconfigTree = {symbols: new Map(), choices: new Map(), files: [], warnings: []}
  const stack: Block[] = []

  const expand = (text: string): string => text.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => vars[name] ?? whole)

  const symbolNamed = (name: string): KconfigSymbol => {
    let symbol = tree.symbols.get(name)
    if (!symbol) {
      symbol = {name, definitions: [], selectedBy: [], impliedBy: []}
      tree.symbols.set(name, symbol)
    }
    return symbol
  }

  const inherited = (): Dependency[] => stack.flatMap((block) => block.dependsOn)

  const parseFile = (path: string, depth: number): void => {
    if (depth > 64) {
      tree.warnings.push(`${path}: sources nest too deep`)
      return
    }
    const text = read(path)
    if (text === undefined) {
      tree.warnings.push(`${path}: cannot read`)
      return
    }
    tree.files.push(path)
    const rawLines = text.split('\n')
    let entry: Entry = {kind: 'none'}
    const warn = (line: number, message: string) => tree.warnings.push(`${path}:${line}: ${message}`)
    const expr = (tokens: Token[], line: number): Expr | undefined => {
      try {
        return parseExpr(tokens.map((t) => (t.kind === 'string' ? {...t, text: expand(t.text)} : t)))
      } catch (error) {
        warn(line, (error as Error).message)
        return undefined
      }
    }
    const addDependency = (tokens: Token[], line: number, origin: Dependency['origin']) => {
      const parsed = expr(tokens, line)
      if (!parsed) return
      const dependency: Dependency = {expr: parsed, origin, file: path, line}
      if (entry.kind === 'config') entry.definition.dependsOn.push({...dependency, origin: 'depends on'})
      else if (entry.kind === 'block') entry.block.dependsOn.push({...dependency, origin: entry.block.kind === 'choice' ? 'choice' : 'menu'})
      // a comment's `depends on` only hides the comment
    }

    for (let index = 0; index < rawLines.length; index++) {
      const lineNumber = index + 1
      let raw = rawLines[index]
      while (raw.endsWith('\\') && index + 1 < rawLines.length) raw = raw.slice(0, -1) + ' ' + rawLines[++index]
      const line = stripComment(raw).trim()
      if (line === '' || line.startsWith('$(')) continue // a bare macro call, e.g. $(error-if,...)
      const keyword = /^[^\s"]+/.exec(line)?.[0] ?? ''
      const rest = line.slice(keyword.length).trim()

      // Help text: from its first line (which must be indented) on, every line indented at least as
      // deep as that one; blank lines included.
      if (keyword === 'help' || keyword === '---help---') {
        let helpIndent = -1
        while (index + 1 < rawLines.length) {
          const next = rawLines[index + 1]
          if (next.trim() === '') {
            index++
            continue
          }
          const width = indentation(next)
          if (helpIndent < 0) helpIndent = width
          if (width === 0 || width < helpIndent) break
          index++
        }
        continue
      }

      // Variable assignments (scripts/Kconfig.include): NAME := value, NAME = value, NAME += value.
      const assignment = /^([A-Za-z_][A-Za-z0-9_-]*)\s*(:=|\+=|=)\s*(.*)$/.exec(line)
      if (assignment && !['depends', 'select', 'imply', 'default', 'range', 'visible', 'prompt'].includes(assignment[1])) {
        vars[assignment[1]] = assignment[2] === '+=' ? `${vars[assignment[1]] ?? ''} ${assignment[3]}` : assignment[3]
        continue
      }

      let tokens: Token[]
      try {
        tokens = tokenize(rest)
      } catch (error) {
        warn(lineNumber, (error as Error).message)
        continue
      }

      switch (keyword) {
        case 'config':
        case 'menuconfig': {
          const name = rest
          const symbol = symbolNamed(name)
          // A member of a choice: the innermost choice, with nothing but `if` blocks inside it.
          let inChoice: Block | undefined
          for (let i = stack.length - 1; i >= 0; i--) {
            if (stack[i].kind === 'choice') inChoice = stack[i]
            if (stack[i].kind !== 'if') break
          }
          const definition: Definition = {
            file: path,
            line: lineNumber,
            dependsOn: inherited(),
            visibleIf: stack.flatMap((block) => block.visibleIf),
            defaults: [],
            ranges: [],
            choice: inChoice?.choice,
          }
          if (inChoice?.choice) tree.choices.get(`${inChoice.choice.file}:${inChoice.choice.line}`)!.push(name)
          symbol.definitions.push(definition)
          entry = {kind: 'config', definition, symbol}
          break
        }
        case 'choice': {
          const block: Block = {kind: 'choice', dependsOn: [], visibleIf: [], choice: {file: path, line: lineNumber}}
          tree.choices.set(`${path}:${lineNumber}`, [])
          stack.push(block)
          entry = {kind: 'block', block}
          break
        }
        case 'menu': {
          const block: Block = {kind: 'menu', dependsOn: [], visibleIf: []}
          stack.push(block)
          entry = {kind: 'block', block}
          break
        }
        case 'if': {
          const parsed = expr(tokens, lineNumber)
          stack.push({kind: 'if', dependsOn: parsed ? [{expr: parsed, origin: 'if', file: path, line: lineNumber}] : [], visibleIf: []})
          entry = {kind: 'none'}
          break
        }
        case 'endif':
        case 'endmenu':
        case 'endchoice': {
          const want = keyword.slice(3)
          const block = stack.pop()
          if (block?.kind !== want) warn(lineNumber, `${keyword} without a matching ${want}`)
          entry = {kind: 'none'}
          break
        }
        case 'source':
        case 'rsource':
        case 'osource':
        case 'orsource': {
          const target = expand(tokens[0]?.text ?? '')
          if (target.includes('$(') || target.includes('*')) {
            if (!keyword.startsWith('o')) warn(lineNumber, `cannot follow source "${target}"`)
            break
          }
          const relative = keyword.endsWith('rsource') ? joinPath(dirname(path), target) : target
          if (keyword.startsWith('o') && read(relative) === undefined) break
          parseFile(relative, depth + 1)
          entry = {kind: 'none'}
          break
        }
        case 'comment':
          entry = {kind: 'comment'}
          break
        case 'mainmenu':
          entry = {kind: 'none'}
          break
        case 'depends': {
          if (tokens[0]?.text !== 'on') {
            warn(lineNumber, 'expected "depends on"')
            break
          }
          addDependency(tokens.slice(1), lineNumber, 'depends on')
          break
        }
        case 'visible': {
          if (entry.kind === 'block' && tokens[0]?.text === 'if') {
            const parsed = expr(tokens.slice(1), lineNumber)
            if (parsed) entry.block.visibleIf.push(parsed)
          }
          break
        }
        case 'select':
        case 'imply': {
          if (entry.kind !== 'config') break
          const {value, condition} = splitIf(tokens)
          const target = value[0]?.text
          if (!target) {
            warn(lineNumber, `${keyword} without a symbol`)
            break
          }
          const reverse: ReverseDependency = {symbol: entry.symbol.name, file: path, line: lineNumber, condition: condition ? expr(condition, lineNumber) : undefined}
          const targetSymbol = symbolNamed(target)
          if (keyword === 'select') targetSymbol.selectedBy.push(reverse)
          else targetSymbol.impliedBy.push(reverse)
          break
        }
        case 'default': {
          if (entry.kind !== 'config') break
          const {value, condition} = splitIf(tokens)
          const parsed = expr(value, lineNumber)
          if (parsed) entry.definition.defaults.push({value: parsed, condition: condition ? expr(condition, lineNumber) : undefined})
          break
        }
        case 'range': {
          if (entry.kind !== 'config') break
          const {value, condition} = splitIf(tokens)
          if (value.length >= 2) {
            entry.definition.ranges.push({
              low: expr([value[0]], lineNumber)!,
              high: expr([value[1]], lineNumber)!,
              condition: condition ? expr(condition, lineNumber) : undefined,
            })
          }
          break
        }
        case 'prompt': {
          if (entry.kind !== 'config') break
          const {value, condition} = splitIf(tokens)
          entry.definition.prompt = {text: value[0]?.text ?? '', condition: condition ? expr(condition, lineNumber) : undefined}
          break
        }
        case 'option':
        case 'modules':
        case 'optional':
        case 'transitional':
          break
        default: {
          if (!TYPES.has(keyword)) {
            warn(lineNumber, `unknown keyword "${keyword}"`)
            break
          }
          if (entry.kind !== 'config') break // a choice's type
          const type = keyword.replace('def_', '') as SymbolType
          entry.definition.type = type
          entry.symbol.type ??= type
          const {value, condition} = splitIf(tokens)
          if (keyword.startsWith('def_')) {
            const parsed = expr(value, lineNumber)
            if (parsed) entry.definition.defaults.push({value: parsed, condition: condition ? expr(condition, lineNumber) : undefined})
          } else if (value.length > 0) {
            entry.definition.prompt = {text: value[0].text, condition: condition ? expr(condition, lineNumber) : undefined}
          }
        }
      }
    }
  }

  parseFile(options.root ?? 'Kconfig', 0)
  if (stack.length > 0) tree.warnings.push(`${stack.length} if/menu/choice block(s) not closed`)
  return tree
}

function dirname(path: string): string {
  const slash = path.lastIndexOf('/')
  return slash < 0 ? '' : path.slice(0, slash)
}

function joinPath(dir: string, file: string): string {
  const parts: string[] = []
  for (const part of `${dir}/${file}`.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') parts.pop()
    else parts.push(part)
  }
  return parts.join('/')
}

// ------------------------------------------------------------------------------------------------
// Explain
// ------------------------------------------------------------------------------------------------

export interface TermStatus {
  /** The term in Kconfig syntax. */
  text: string
  origin: Dependency['origin']
  file: string
  line: number
  /** With a .config: the term's value and the values of the symbols it mentions. */
  value?: 'y' | 'm' | 'n'
  met?: boolean
  symbols?: Array<{name: string; value: string}>
}

export interface ReverseStatus {
  symbol: string
  condition?: string
  file: string
  line: number
  /** With a .config: whether this select/imply is in force (the selecting symbol is on and its condition holds). */
  active?: boolean
}

export interface Explanation {
  /** CONFIG_NAME */
  symbol: string
  exists: boolean
  type?: SymbolType
  definitions: Array<{file: string; line: number; prompt?: string; promptCondition?: string; choice?: string}>
  /** Every && term of every definition's dependencies, inherited ones first. */
  dependsOn: TermStatus[]
  selectedBy: ReverseStatus[]
  impliedBy: ReverseStatus[]
  /** With a .config: the symbol's value there ("n" when absent). */
  value?: string
}

export const stripPrefix = (name: string) => name.replace(/^CONFIG_/, '')

function contextFor(tree: KconfigTree, config: ReadonlyMap<string, string>): EvalContext {
  const types = new Map<string, string | undefined>()
  for (const [name, symbol] of tree.symbols) if (symbol.definitions.length > 0) types.set(name, symbol.type)
  return {config, types}
}

function termStatus(expr: Expr, dependency: Dependency, context?: EvalContext): TermStatus {
  const status: TermStatus = {text: renderExpr(expr), origin: dependency.origin, file: dependency.file, line: dependency.line}
  if (context) {
    const value = evalExpr(expr, context)
    status.value = tristateName(value)
    status.met = value > 0
    status.symbols = symbolsOf(expr).map((name) => ({name, value: context.config.get(name) ?? 'n'}))
  }
  return status
}

/** What Kconfig says about one symbol; with a .config, which of its conditions hold there. */
export function explain(tree: KconfigTree, name: string, config?: ReadonlyMap<string, string>): Explanation {
  const bare = stripPrefix(name)
  const symbol = tree.symbols.get(bare)
  const context = config ? contextFor(tree, config) : undefined
  const exists = symbol !== undefined && symbol.definitions.length > 0
  const reverse = (r: ReverseDependency): ReverseStatus => {
    const status: ReverseStatus = {symbol: r.symbol, condition: r.condition ? renderExpr(r.condition) : undefined, file: r.file, line: r.line}
    if (context) status.active = evalExpr({op: 'symbol', name: r.symbol}, context) > 0 && (!r.condition || evalExpr(r.condition, context) > 0)
    return status
  }
  const explanation: Explanation = {
    symbol: `CONFIG_${bare}`,
    exists,
    type: symbol?.type,
    definitions: (symbol?.definitions ?? []).map((d) => ({
      file: d.file,
      line: d.line,
      prompt: d.prompt?.text,
      promptCondition: d.prompt?.condition ? renderExpr(d.prompt.condition) : undefined,
      choice: d.choice ? `${d.choice.file}:${d.choice.line}` : undefined,
    })),
    dependsOn: (symbol?.definitions ?? []).flatMap((d) => d.dependsOn.flatMap((dependency) => conjuncts(dependency.expr).map((term) => termStatus(term, dependency, context)))),
    selectedBy: exists ? symbol.selectedBy.map(reverse) : [],
    impliedBy: exists ? symbol.impliedBy.map(reverse) : [],
  }
  if (config) explanation.value = config.get(bare) ?? 'n'
  return explanation
}

/** "FOO, which is not set", "!BAR, but BAR is y", "(A || B), which is n: A is not set, B is not set". */
function describeTerm(term: Expr, context: EvalContext, tree: KconfigTree, requested?: ReadonlyMap<string, Pick<Assignment, 'file' | 'line' | 'symbol' | 'value'>>): string {
  const valueText = (name: string) => {
    const value = context.config.get(name)
    if (value === undefined || value === 'n') {
      const known = tree.symbols.get(name)?.definitions.length
      return known ? 'not set' : 'not defined for this architecture'
    }
    return value
  }
  const note = (name: string) => {
    const option = requested?.get(name)
    if (!option) return ''
    const final = context.config.get(name) ?? 'n'
    if (!sameValue(final, option.value) && !(option.value === 'n' && final === 'n')) return ` (requested in ${origin(option)}, but dropped itself)`
    return ` (${option.file === '--set' ? `set by ${origin(option)}` : `set to ${option.value} in ${origin(option)}`})`
  }
  const names = symbolsOf(term)
  if (term.op === 'symbol' && names.length === 1) {
    const value = valueText(term.name)
    return `${term.name}, which is ${value}${note(term.name)}`
  }
  if (term.op === 'not' && term.arg.op === 'symbol') return `!${term.arg.name}, but ${term.arg.name} is ${valueText(term.arg.name)}${note(term.arg.name)}`
  const parts = names.map((name) => `${name} is ${valueText(name)}${note(name)}`)
  return `${renderExpr(term, PRECEDENCE.and + 1)}, which is ${tristateName(evalExpr(term, context))}${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`
}

/**
 * One line saying why a requested option did not survive, read from Kconfig:
 * "CONFIG_DEV_DAX was dropped: it depends on TRANSPARENT_HUGEPAGE, which is not set".
 * `requested` (the merged fragment) lets the message point at the fragment or --set that caused it.
 */
export function explainDrop(
  tree: KconfigTree,
  drop: Pick<Drop, 'symbol' | 'requested' | 'actual'>,
  finalConfig: ReadonlyMap<string, string>,
  requested?: ReadonlyMap<string, Pick<Assignment, 'file' | 'line' | 'symbol' | 'value'>>,
): string {
  const name = `CONFIG_${drop.symbol}`
  const symbol = tree.symbols.get(drop.symbol)
  if (!symbol || symbol.definitions.length === 0) return `${name} does not exist in this kernel's Kconfig`
  const context = contextFor(tree, finalConfig)
  const actual = drop.actual === undefined || drop.actual === 'n' ? 'not set' : drop.actual
  const want = drop.requested

  // Asked for n (or a lower tristate) but it stayed on: a select, or a default without a prompt.
  if (want === 'n' || (want === 'm' && drop.actual === 'y')) {
    const forcing = symbol.selectedBy.filter((r) => evalExpr({op: 'symbol', name: r.symbol}, context) > 0 && (!r.condition || evalExpr(r.condition, context) > 0))
    if (forcing.length > 0) {
      return `${name} is still ${actual}: it is selected by ${forcing.map((r) => `${r.symbol}${r.condition ? ` (if ${renderExpr(r.condition)})` : ''}, which is ${context.config.get(r.symbol)}${requested?.has(r.symbol) ? ` (from ${origin(requested.get(r.symbol)!)})` : ''}`).join('; ')}`
    }
    if (!symbol.definitions.some((d) => d.prompt)) return `${name} is still ${actual}: it has no prompt, so its default decides and cannot be overridden`
    return `${name} is still ${actual}, though nothing in Kconfig selects it (a choice or a default may have decided)`
  }

  const label = drop.actual === undefined || drop.actual === 'n' ? `${name} was dropped` : `${name} is ${drop.actual}, not ${want}`
  const need: Tristate = want === 'm' ? 1 : 2
  const isTristateRequest = want === 'y' || want === 'm'

  // Unmet dependencies: per definition, the && terms below what was asked for.
  if (isTristateRequest) {
    const unmetPerDefinition = symbol.definitions.map((definition) =>
      definition.dependsOn.flatMap((dependency) => conjuncts(dependency.expr)).filter((term) => evalExpr(term, context) < need),
    )
    if (unmetPerDefinition.every((terms) => terms.length > 0)) {
      const seen = new Set<string>()
      const terms = unmetPerDefinition.flat().filter((term) => {
        const key = renderExpr(term)
        if (seen.has(key)) return false
        seen.add(key)
        return true
      })
      return `${label}: it depends on ${terms.map((term) => describeTerm(term, context, tree, requested)).join('; and on ')}`
    }
  } else if (drop.actual !== undefined) {
    // A string or number that came out different: a range, usually.
    const ranges = symbol.definitions.flatMap((d) => d.ranges).filter((r) => !r.condition || evalExpr(r.condition, context) > 0)
    if (ranges.length > 0) return `${label}: its range is ${renderExpr(ranges[0].low)}..${renderExpr(ranges[0].high)}`
    return `${label}`
  } else {
    const unmet = symbol.definitions.flatMap((definition) => definition.dependsOn.flatMap((dependency) => conjuncts(dependency.expr))).filter((term) => evalExpr(term, context) === 0)
    if (unmet.length > 0) return `${label}: it depends on ${unmet.map((term) => describeTerm(term, context, tree, requested)).join('; and on ')}`
  }

  // Dependencies hold. A symbol without a (visible) prompt can only be turned on by a select.
  const promptVisible = symbol.definitions.some(
    (d) => d.prompt && (!d.prompt.condition || evalExpr(d.prompt.condition, context) > 0) && d.visibleIf.every((v) => evalExpr(v, context) > 0),
  )
  if (!promptVisible) {
    const selectors = symbol.selectedBy.map(
      (r) => `${r.symbol}${r.condition ? ` if ${renderExpr(r.condition)}` : ''} (${r.symbol} is ${context.config.get(r.symbol) ?? 'not set'}${r.condition ? `, the condition is ${tristateName(evalExpr(r.condition, context))}` : ''})`,
    )
    const how = symbol.definitions.some((d) => d.prompt) ? 'its prompt is hidden here' : 'it has no prompt'
    return selectors.length > 0
      ? `${label}: ${how}, so only a select turns it on, and none is in force: selected by ${selectors.join(', ')}`
      : `${label}: ${how} and nothing selects it`
  }

  // A member of a choice that lost to another member.
  const choice = symbol.definitions.find((d) => d.choice)?.choice
  if (choice) {
    const chosen = (tree.choices.get(`${choice.file}:${choice.line}`) ?? []).filter((member) => member !== drop.symbol && context.config.get(member) === 'y')
    if (chosen.length > 0) return `${label}: it is one of a choice (${choice.file}:${choice.line}) and CONFIG_${chosen[0]} was chosen instead${requested?.has(chosen[0]) ? ` (${origin(requested.get(chosen[0])!)})` : ''}`
  }
  if (want === 'm' && context.config.get('MODULES') !== 'y') return `${label}: =m needs CONFIG_MODULES=y`
  return `${label}, though its dependencies hold in the final .config (a toolchain test or a choice may have decided)`
}

/** Kconfig expressions: tokenize, parse, render back, and evaluate against a .config. */
import {asNumber, unquote} from './values.js'

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

/** Binding strength of each operator; explain.ts uses it to parenthesise a term inside an &&. */
export const PRECEDENCE: Record<Expr['op'], number> = {or: 1, and: 2, not: 3, '=': 4, '!=': 4, '<': 4, '<=': 4, '>': 4, '>=': 4, symbol: 5, string: 5, macro: 5}

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

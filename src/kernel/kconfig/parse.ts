/** The tree of Kconfig files: symbols with their types, prompts, dependencies, defaults, ranges, selects and implies. */
import {parseExpr, tokenize, type Expr, type Token} from './expr.js'

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

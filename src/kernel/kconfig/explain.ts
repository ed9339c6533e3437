/** What Kconfig says about a symbol, and one line saying why a requested option was dropped. */
import {conjuncts, evalExpr, PRECEDENCE, renderExpr, symbolsOf, tristateName, type EvalContext, type Expr, type Tristate} from './expr.js'
import {origin, type Assignment} from './merge.js'
import type {Dependency, KconfigTree, ReverseDependency, SymbolType} from './parse.js'
import {sameValue} from './values.js'
import type {Drop} from './verify.js'

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

/** The check of a final .config against the merged fragment: which requested options were dropped. */
import {parseDotConfig, type Assignment} from './merge.js'
import {normaliseValue, sameValue} from './values.js'

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

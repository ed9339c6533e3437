/**
 * How kconfig compares values: numbers by value (64 = 0x40), strings with or without their quotes.
 * Shared by the fragment merge, the verify step and the expression evaluator.
 */

export function unquote(value: string): string {
  return value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value
}

export function asNumber(value: string): number | undefined {
  if (/^-?\d+$/.test(value)) return Number(value)
  if (/^0[xX][0-9a-fA-F]+$/.test(value)) return Number.parseInt(value.slice(2), 16)
  return undefined
}

export function normaliseValue(value: string): string {
  return value.trim()
}

export function sameValue(a: string, b: string): boolean {
  if (a === b) return true
  const na = asNumber(a)
  const nb = asNumber(b)
  if (na !== undefined && nb !== undefined) return na === nb
  return unquote(a) === unquote(b) && (a.startsWith('"') || b.startsWith('"'))
}

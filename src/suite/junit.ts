/**
 * A JUnit XML writer, in the dialect CI systems read (Jenkins, GitLab, GitHub test reporters):
 * <testsuites> holding one <testsuite> per suite, one <testcase> per test with <failure>,
 * <error> or <skipped>, and <system-out>. Pure: data in, a string out.
 */

export type JUnitStatus = 'pass' | 'fail' | 'error' | 'skip'

export interface JUnitCase {
  name: string
  classname: string
  timeSec: number
  status: JUnitStatus
  /** One line: the failure message attribute, or the skip reason. */
  message?: string
  /** The failure type attribute, like "timeout" or "assertion". */
  type?: string
  /** The body of <failure>/<error>: details over several lines. */
  details?: string
  systemOut?: string
}

export interface JUnitSuite {
  name: string
  timestamp?: string
  hostname?: string
  timeSec: number
  properties?: Record<string, string>
  cases: JUnitCase[]
  systemOut?: string
}

/**
 * Characters XML 1.0 cannot carry at all (most C0 controls, like the ESC of colour codes, lone
 * surrogates, U+FFFE/U+FFFF) are written as a visible "\xNN" / "\uNNNN" instead.
 */
function visible(text: string): string {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        out += text[i] + text[i + 1]
        i++
        continue
      }
    }
    const allowed = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd)
    out += allowed ? text[i] : code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  }
  return out
}

/** Escapes text for an element's content. */
export function escapeText(text: string): string {
  return visible(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** Escapes text for a double-quoted attribute; newlines and tabs survive attribute normalisation. */
export function escapeAttr(text: string): string {
  return escapeText(text).replaceAll('"', '&quot;').replaceAll("'", '&apos;').replaceAll('\n', '&#10;').replaceAll('\r', '&#13;').replaceAll('\t', '&#9;')
}

const seconds = (value: number) => (Number.isFinite(value) && value > 0 ? value.toFixed(3) : '0.000')

function attrs(pairs: Array<[string, string | number | undefined]>): string {
  return pairs
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => ` ${key}="${escapeAttr(String(value))}"`)
    .join('')
}

function counts(cases: JUnitCase[]) {
  return {
    tests: cases.length,
    failures: cases.filter((c) => c.status === 'fail').length,
    errors: cases.filter((c) => c.status === 'error').length,
    skipped: cases.filter((c) => c.status === 'skip').length,
  }
}

function renderCase(c: JUnitCase, indent: string): string[] {
  const open = `${indent}<testcase${attrs([['name', c.name], ['classname', c.classname], ['time', seconds(c.timeSec)]])}`
  const body: string[] = []
  if (c.status === 'fail' || c.status === 'error') {
    const tag = c.status === 'fail' ? 'failure' : 'error'
    const head = `${indent}  <${tag}${attrs([['message', c.message ?? ''], ['type', c.type ?? (c.status === 'fail' ? 'failure' : 'error')]])}`
    body.push(c.details ? `${head}>${escapeText(c.details)}</${tag}>` : `${head}/>`)
  } else if (c.status === 'skip') {
    body.push(`${indent}  <skipped${attrs([['message', c.message]])}/>`)
  }
  if (c.systemOut) body.push(`${indent}  <system-out>${escapeText(c.systemOut)}</system-out>`)
  return body.length === 0 ? [`${open}/>`] : [`${open}>`, ...body, `${indent}</testcase>`]
}

/** The whole document, with the XML declaration and a trailing newline. */
export function renderJUnit(suites: JUnitSuite[], name = 'pmemlab'): string {
  const all = suites.flatMap((s) => s.cases)
  const total = counts(all)
  const time = suites.reduce((sum, s) => sum + s.timeSec, 0)
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attrs([['name', name], ['tests', total.tests], ['failures', total.failures], ['errors', total.errors], ['skipped', total.skipped], ['time', seconds(time)]])}>`,
  ]
  suites.forEach((suite, id) => {
    const c = counts(suite.cases)
    lines.push(
      `  <testsuite${attrs([
        ['name', suite.name],
        ['id', id],
        ['tests', c.tests],
        ['failures', c.failures],
        ['errors', c.errors],
        ['skipped', c.skipped],
        ['time', seconds(suite.timeSec)],
        ['timestamp', suite.timestamp],
        ['hostname', suite.hostname],
      ])}>`,
    )
    const properties = Object.entries(suite.properties ?? {})
    if (properties.length > 0) {
      lines.push('    <properties>')
      for (const [key, value] of properties) lines.push(`      <property${attrs([['name', key], ['value', value]])}/>`)
      lines.push('    </properties>')
    }
    for (const c of suite.cases) lines.push(...renderCase(c, '    '))
    if (suite.systemOut) lines.push(`    <system-out>${escapeText(suite.systemOut)}</system-out>`)
    lines.push('  </testsuite>')
  })
  lines.push('</testsuites>')
  return `${lines.join('\n')}\n`
}

/**
 * JUnit XML in the dialect CI systems read (Jenkins, GitLab, GitHub test reporters): <testsuites>
 * holding one <testsuite> per suite, one <testcase> per test with <failure>, <error> or <skipped>,
 * and <system-out>. junit-report-builder writes and escapes the XML. Pure: data in, a string out.
 *
 * Where the library has no form for what a JUnit file can say, the closest one it has is used:
 * a skip reason (it writes a bare <skipped/>) opens the case's <system-out>; times are numbers
 * rounded to the millisecond ("0.25", not "0.250"); a suite's hostname and own output are suite
 * properties. It writes no total time on <testsuites> and no id on <testsuite>; CI tools sum the
 * cases' times themselves.
 */
import {createRequire} from 'node:module'
import type {Builder, TestCase} from 'junit-report-builder'

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

// Loaded on first use: the library brings lodash and xmlbuilder (tens to hundreds of ms on a busy
// machine), which every `pmemlab test` would otherwise pay at start, with or without --junit.
// require() also returns the CommonJS export as it is (the builder), which the ES default export
// in the package's typings misdescribes under Node16 resolution.
let libraryBuilder: Builder | undefined
const moduleBuilder = () => (libraryBuilder ??= createRequire(import.meta.url)('junit-report-builder') as Builder)

/**
 * Characters XML 1.0 cannot carry at all (most C0 controls, like the ESC of colour codes, lone
 * surrogates, U+FFFE/U+FFFF) are written as a visible "\xNN" / "\uNNNN" instead: the library
 * would silently drop them.
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

/**
 * Text for a CDATA section (<failure>, <error>, <system-out> bodies). xmlbuilder splits only the
 * first "]]>" (String.replace with a string pattern); a second one would end the section early
 * and break the document, so every later one is split here (the unit test guards this).
 */
function cdataText(text: string): string {
  const safe = visible(text)
  const first = safe.indexOf(']]>')
  if (first < 0) return safe
  const rest = first + ']]>'.length
  return safe.slice(0, rest) + safe.slice(rest).replaceAll(']]>', ']]]]><![CDATA[>')
}

/** Seconds as a number rounded to the millisecond; negative or unknown durations are 0. */
const seconds = (value: number) => (Number.isFinite(value) && value > 0 ? Math.round(value * 1000) / 1000 : 0)

function addCase(testCase: TestCase, c: JUnitCase): void {
  testCase.name(visible(c.name)).className(visible(c.classname)).time(seconds(c.timeSec))
  const output: string[] = []
  if (c.status === 'fail') {
    testCase.failure(visible(c.message ?? ''), visible(c.type ?? 'failure'))
    if (c.details) testCase.stacktrace(cdataText(c.details))
  } else if (c.status === 'error') {
    testCase.error(visible(c.message ?? ''), visible(c.type ?? 'error'), c.details ? cdataText(c.details) : undefined)
  } else if (c.status === 'skip') {
    testCase.skipped()
    if (c.message) output.push(`skipped: ${c.message}\n`)
  }
  if (c.systemOut) output.push(c.systemOut)
  if (output.length > 0) testCase.standardOutput(cdataText(output.join('')))
}

/** The whole document, with the XML declaration and a trailing newline. */
export function renderJUnit(suites: JUnitSuite[], name = 'pmemlab'): string {
  // A fresh builder per report: the module's own instance is shared by everything that imports it.
  const report = moduleBuilder().newBuilder().name(visible(name))
  for (const suite of suites) {
    const element = report.testSuite().name(visible(suite.name)).time(seconds(suite.timeSec))
    if (suite.timestamp) element.timestamp(visible(suite.timestamp))
    const properties = {...(suite.hostname ? {hostname: suite.hostname} : {}), ...suite.properties}
    for (const [key, value] of Object.entries(properties)) element.property(visible(key), visible(value))
    for (const c of suite.cases) addCase(element.testCase(), c)
    // The library has no suite-level <system-out>; a text property keeps the output without inventing a test.
    if (suite.systemOut) element.multilineProperty('system-out', visible(suite.systemOut))
  }
  return `${report.build()}\n`
}

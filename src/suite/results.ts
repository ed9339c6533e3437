/**
 * The results of `pmemlab test` and the user-suite manifest. Pure: the runner (testrun.ts) fills
 * a RunReport; this module validates manifests, selects tests, and renders the report as a
 * summary table, one JSON document, JUnit XML and TAP.
 */
import {parse as parseYaml} from 'yaml'
import {z} from 'zod'
import {usageError} from '../core/errors.js'
import {renderJUnit, type JUnitCase, type JUnitSuite} from './junit.js'
import type {Finding} from '../lab/oops.js'
import {renderTable} from '../core/table.js'
import type {TapDocument} from './tap.js'

// ---------------------------------------------------------------------------------------------
// Results

export type TestStatus = 'pass' | 'fail' | 'skip' | 'todo' | 'timeout' | 'error'

/** A TAP test point a user test printed, kept under its test. */
export interface SubResult {
  name: string
  status: 'pass' | 'fail' | 'skip' | 'todo'
  message?: string
}

export interface TestResult {
  /** "suite/group/name": what --filter matches, and what the JSON, JUnit and TAP outputs call it. */
  id: string
  suite: string
  /** Where it ran: "memmap0/ext4", "devdax/nvdimm0", "power-loss", or a user suite's filesystem. */
  group: string
  name: string
  status: TestStatus
  durationMs: number
  /** One line: why it failed, timed out or was skipped. */
  message?: string
  /** Further lines: diagnostics, the kernel's words, the test's last output lines. */
  details?: string[]
  /** The test's output (stdout, then stderr), for user tests. */
  output?: string
  /** The TAP test points a user test printed. */
  subtests?: SubResult[]
}

export interface SuiteResult {
  name: string
  kind: 'builtin' | 'user' | 'upstream'
  /** The host directory of a user suite; where an upstream suite is built in the guest. */
  source?: string
  tests: TestResult[]
}

/** A console finding, with where it was seen. */
export interface ConsoleFinding extends Finding {
  vm: string
  /** The test running when pmemlab saw it ("boot" before the first). */
  during: string
}

export interface RunPhases {
  /** Until the guest agent answered, summed over the VMs booted (two with the power-loss case). */
  bootMs: number
  /** Namespaces, mkfs, mount and unmount. */
  prepareMs: number
  /** The tests themselves. */
  testsMs: number
  /** Building the guest image, when the cache did not have it yet (not part of the others). */
  imageMs?: number
}

export interface RunReport {
  ok: boolean
  exitCode: number
  startedAt: string
  durationMs: number
  phases: RunPhases
  lab: {
    name: string
    kernel: string
    image: string
    accel?: string
    filesystems: string[]
    devices: Array<{kind: string; id: string; size: number; file?: string; persistent: boolean}>
  }
  suites: SuiteResult[]
  findings: ConsoleFinding[]
  /** Set when the lab could not start (exit code 6) or died under the run (7: the guest, 8: QEMU). */
  error?: string
  /** The console excerpt that goes with error (a panic's report, the console's tail). */
  errorDetails?: string[]
  /** Set when --keep left the VM running. */
  kept?: {name: string; file?: string}
}

export interface Counts {
  total: number
  passed: number
  failed: number
  timedOut: number
  errors: number
  skipped: number
  todo: number
}

export function countResults(tests: readonly TestResult[]): Counts {
  const of = (status: TestStatus) => tests.filter((t) => t.status === status).length
  return {total: tests.length, passed: of('pass'), failed: of('fail'), timedOut: of('timeout'), errors: of('error'), skipped: of('skip'), todo: of('todo')}
}

export const allTests = (report: Pick<RunReport, 'suites'>) => report.suites.flatMap((s) => s.tests)

/** Failing: a test that failed, timed out or could not run, or a console finding that fails runs. */
export function runFailed(report: Pick<RunReport, 'suites' | 'findings' | 'error'>, options: {failOnSkip?: boolean} = {}): boolean {
  const counts = countResults(allTests(report))
  const skips = options.failOnSkip ? counts.skipped : 0
  return report.error !== undefined || counts.failed + counts.timedOut + counts.errors + skips > 0 || report.findings.some((f) => f.fails)
}

export const testId = (suite: string, group: string, name: string) => [suite, group, name].filter(Boolean).join('/')

/** The verdict of a TAP test point, with its first diagnostic line as the message. */
export function subResults(doc: TapDocument): SubResult[] {
  return doc.asserts.map((a) => {
    const status = a.directive?.kind === 'todo' ? 'todo' : a.directive?.kind === 'skip' ? 'skip' : a.ok ? 'pass' : 'fail'
    const message = a.directive?.reason || a.diagnostics[0]
    return {name: a.name, status, ...(message ? {message} : {})}
  })
}

// ---------------------------------------------------------------------------------------------
// Selecting tests: --filter GLOB

/** A shell-style glob as a RegExp: * any run of characters (slashes too), ? one, [...] a class. */
export function globToRegExp(glob: string): RegExp {
  let source = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*') source += '.*'
    else if (c === '?') source += '.'
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2)
      if (close < 0) source += '\\['
      else {
        let body = glob.slice(i + 1, close)
        if (body.startsWith('!')) body = `^${body.slice(1)}`
        source += `[${body.replaceAll('\\', '\\\\')}]`
        i = close
      }
    } else source += c.replace(/[.+^${}()|\\/]/g, '\\$&')
  }
  return new RegExp(`^${source}$`, 'i')
}

/**
 * Whether ID is selected: a glob matches it or one of its "a/b" prefixes, and no "!glob" does
 * (with only "!" globs, everything else is selected).
 */
export function selected(id: string, filters: readonly string[]): boolean {
  if (filters.length === 0) return true
  const parts = id.split('/')
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
  const matches = (glob: string) => {
    const re = globToRegExp(glob)
    return prefixes.some((prefix) => re.test(prefix))
  }
  const excludes = filters.filter((glob) => glob.startsWith('!'))
  const includes = filters.filter((glob) => !glob.startsWith('!'))
  if (excludes.some((glob) => matches(glob.slice(1)))) return false
  return includes.length === 0 || includes.some(matches)
}

// ---------------------------------------------------------------------------------------------
// User suites: pmemlab-suite.yaml

export const MANIFEST = 'pmemlab-suite.yaml'
export const FILESYSTEMS = ['ext4', 'xfs'] as const
export type Filesystem = (typeof FILESYSTEMS)[number]
export const DEVICE_KINDS = ['memmap', 'nvdimm', 'virtio-pmem'] as const

const fileName = z
  .string()
  .min(1)
  .refine((path) => !path.startsWith('/') && !path.split('/').includes('..'), 'name a file inside the suite directory, like check.sh')

const needsSchema = z
  .object({
    devices: z.array(z.enum(DEVICE_KINDS)).min(1).optional(),
    fs: z.array(z.enum(FILESYSTEMS)).min(1).optional(),
  })
  .strict()

const timeoutSchema = z.number().positive().max(24 * 3600)

const testEntrySchema = z
  .object({
    run: fileName,
    name: z.string().regex(/^[^/\n]+$/, 'a test name is one line without "/"').optional(),
    args: z.array(z.string()).default([]),
    timeout: timeoutSchema.optional(),
    needs: needsSchema.optional(),
  })
  .strict()

export const manifestSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" and "-"').optional(),
    description: z.string().optional(),
    /** Run once per filesystem round, after the mounts are ready and before the tests. */
    setup: fileName.optional(),
    /** Seconds each test may run (default: --timeout). */
    timeout: timeoutSchema.optional(),
    /** What every test of the suite needs. */
    needs: needsSchema.optional(),
    /** The tests, in order; default: every executable file in the directory, by name. */
    tests: z.array(z.preprocess((entry) => (typeof entry === 'string' ? {run: entry} : entry), testEntrySchema)).min(1).optional(),
  })
  .strict()

export type Manifest = z.infer<typeof manifestSchema>
export type Needs = z.infer<typeof needsSchema>

export interface UserTest {
  name: string
  run: string
  args: string[]
  timeoutSec: number
  needs: Needs
}

export interface UserSuite {
  name: string
  /** Host directory. */
  dir: string
  setup?: string
  timeoutSec: number
  needs: Needs
  tests: UserTest[]
  /** Every file to copy into the guest (relative paths), with its mode. */
  files: Array<{path: string; mode: number}>
}

/** Parses and validates a manifest's text; where names the file in messages. */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown
  try {
    data = parseYaml(text)
  } catch (error) {
    throw usageError(`${where} is not valid YAML`, (error as Error).message.split('\n')[0])
  }
  const parsed = manifestSchema.safeParse(data ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw usageError(`${where} is invalid`, `${issue.path.join('.') || '(top level)'}: ${issue.message}`)
  }
  return parsed.data
}

/**
 * A user suite from its manifest (or none) and the files of its directory. Tests default to
 * the executable files, sorted; a named test must exist. Timeouts: the test's, else the
 * manifest's, else defaultTimeoutSec.
 */
export function planUserSuite(input: {
  dir: string
  dirName: string
  manifest?: Manifest
  files: Array<{path: string; mode: number}>
  defaultTimeoutSec: number
}): UserSuite {
  const {manifest, files} = input
  const where = `${input.dir}/${MANIFEST}`
  const name = manifest?.name ?? input.dirName.replace(/[^A-Za-z0-9._-]/g, '-')
  if (name === 'builtin') throw usageError(`the user suite in ${input.dir} is named "builtin"`, `give it another name in ${MANIFEST}`)
  const byPath = new Map(files.map((f) => [f.path, f]))
  const need = (path: string, what: string) => {
    if (!byPath.has(path)) throw usageError(`${where} is invalid`, `${what} ${path} is not a file in ${input.dir}`)
  }
  if (manifest?.setup) need(manifest.setup, 'setup')
  const executable = (f: {path: string; mode: number}) => (f.mode & 0o111) !== 0 || f.path.endsWith('.sh')
  const entries =
    manifest?.tests ??
    files
      .filter((f) => !f.path.includes('/') && f.path !== MANIFEST && f.path !== manifest?.setup && executable(f))
      .map((f) => ({run: f.path, args: [] as string[]}))
      .sort((a, b) => (a.run < b.run ? -1 : 1))
  if (entries.length === 0) throw usageError(`no tests in ${input.dir}`, `add executable files, or list them under tests: in ${MANIFEST}`)
  const suiteTimeout = manifest?.timeout ?? input.defaultTimeoutSec
  const seen = new Set<string>()
  const tests = entries.map((entry) => {
    need(entry.run, 'test')
    const full = entry as z.infer<typeof testEntrySchema>
    const testName = full.name ?? entry.run
    if (seen.has(testName)) throw usageError(`${where} is invalid`, `two tests are named ${testName}: give one a name:`)
    seen.add(testName)
    return {name: testName, run: entry.run, args: entry.args, timeoutSec: full.timeout ?? suiteTimeout, needs: full.needs ?? {}}
  })
  return {name, dir: input.dir, setup: manifest?.setup, timeoutSec: suiteTimeout, needs: manifest?.needs ?? {}, tests, files}
}

/** Why a test cannot run in this lab (a device kind it needs is missing), or nothing. */
export function missingNeeds(needs: Needs, kinds: readonly string[]): string | undefined {
  const missing = (needs.devices ?? []).filter((kind) => !kinds.includes(kind))
  return missing.length > 0 ? `needs ${missing.map((k) => `a ${k} device`).join(' and ')}; this lab has ${kinds.join(', ') || 'no pmem'}` : undefined
}

/** The filesystem rounds a suite runs in: the run's filesystems that the suite accepts. */
export function roundsFor(needs: Needs, filesystems: readonly Filesystem[]): Filesystem[] {
  return filesystems.filter((fs) => !needs.fs || needs.fs.includes(fs))
}

// ---------------------------------------------------------------------------------------------
// Rendering

const STATUS_WORD: Record<TestStatus, string> = {pass: 'PASS', fail: 'FAIL', skip: 'SKIP', todo: 'TODO', timeout: 'TIMEOUT', error: 'ERROR'}
export const secondsText = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * The summary for stdout: one row per suite and group with counts, then every test that did
 * not pass (with its reason), the console findings with their first lines, and a totals line.
 */
export function renderSummary(report: RunReport): string {
  const rows: string[][] = []
  for (const suite of report.suites) {
    const groups = [...new Set(suite.tests.map((t) => t.group))]
    for (const group of groups) {
      const tests = suite.tests.filter((t) => t.group === group)
      const c = countResults(tests)
      const time = tests.reduce((sum, t) => sum + t.durationMs, 0)
      rows.push([suite.name, group, String(c.passed), String(c.failed + c.errors), String(c.timedOut), String(c.skipped + c.todo), secondsText(time)])
    }
  }
  let out = rows.length > 0 ? renderTable(['SUITE', 'GROUP', 'PASSED', 'FAILED', 'TIMEOUT', 'SKIPPED', 'TIME'], rows) : ''
  const notPassed = allTests(report).filter((t) => t.status === 'fail' || t.status === 'timeout' || t.status === 'error')
  if (notPassed.length > 0) {
    out += '\n'
    for (const t of notPassed) {
      out += `${STATUS_WORD[t.status]}  ${t.id}${t.message ? `: ${t.message}` : ''}\n`
      for (const line of (t.details ?? []).slice(0, 6)) out += `    ${line}\n`
    }
  }
  if (report.findings.length > 0) {
    out += '\n'
    for (const f of report.findings) {
      out += `KERNEL  ${f.kind}${f.fails ? '' : ' (not failing the run)'} in ${f.vm}, during ${f.during}: ${f.title}\n`
      for (const line of f.lines) out += `    ${line}\n`
    }
  }
  const c = countResults(allTests(report))
  const parts = [`${c.passed} passed`, `${c.failed + c.errors} failed`]
  if (c.timedOut) parts.push(`${c.timedOut} timed out`)
  if (c.skipped) parts.push(`${c.skipped} skipped`)
  if (c.todo) parts.push(`${c.todo} todo`)
  const fatal = report.findings.filter((f) => f.fails).length
  if (fatal) parts.push(`${fatal} kernel finding${fatal === 1 ? '' : 's'}`)
  out += `\n${report.ok ? 'PASSED' : 'FAILED'}: ${parts.join(', ')} in ${secondsText(report.durationMs)}\n`
  return out
}

/** The JSON document of --json: the report with the counts added. */
export function reportJson(report: RunReport): Record<string, unknown> {
  return {
    ok: report.ok,
    exitCode: report.exitCode,
    startedAt: report.startedAt,
    durationMs: Math.round(report.durationMs),
    phases: {
      bootMs: Math.round(report.phases.bootMs),
      prepareMs: Math.round(report.phases.prepareMs),
      testsMs: Math.round(report.phases.testsMs),
      ...(report.phases.imageMs ? {imageMs: Math.round(report.phases.imageMs)} : {}),
    },
    summary: countResults(allTests(report)),
    lab: report.lab,
    suites: report.suites.map((s) => ({...s, tests: s.tests.map((t) => ({...t, durationMs: Math.round(t.durationMs)}))})),
    findings: report.findings,
    ...(report.error ? {error: report.error} : {}),
    ...(report.errorDetails?.length ? {errorDetails: report.errorDetails} : {}),
    ...(report.kept ? {kept: report.kept} : {}),
  }
}

/** The name of the check that stands for the console in JUnit and TAP. */
export const CONSOLE_CHECK = 'no Oops, BUG, WARNING, lockdep report or panic on the console'

function findingText(f: ConsoleFinding): string {
  return [`${f.kind} in ${f.vm}, during ${f.during}: ${f.title}`, ...f.lines.map((l) => `  ${l}`)].join('\n')
}

export function toJUnit(report: RunReport): string {
  const suites: JUnitSuite[] = report.suites.map((suite) => ({
    name: suite.name,
    timestamp: report.startedAt.replace(/\.\d+Z$/, ''),
    timeSec: suite.tests.reduce((sum, t) => sum + t.durationMs, 0) / 1000,
    properties: {kernel: report.lab.kernel, image: report.lab.image, filesystems: report.lab.filesystems.join(','), ...(suite.source ? {source: suite.source} : {})},
    cases: suite.tests.map((t): JUnitCase => {
      const status = t.status === 'pass' || t.status === 'todo' ? 'pass' : t.status === 'skip' ? 'skip' : t.status === 'fail' ? 'fail' : 'error'
      const sub = (t.subtests ?? []).map((s) => `${s.status === 'pass' ? 'ok' : s.status} - ${s.name}${s.message ? ` (${s.message})` : ''}`)
      return {
        name: t.name,
        classname: `${suite.name}.${t.group.replaceAll('/', '.')}`,
        timeSec: t.durationMs / 1000,
        status,
        message: t.message ?? (t.status === 'timeout' ? 'timed out' : undefined),
        type: t.status === 'timeout' ? 'timeout' : undefined,
        details: status === 'fail' || status === 'error' ? [t.message ?? '', ...(t.details ?? [])].filter(Boolean).join('\n') : undefined,
        systemOut: [...sub, ...(t.output ? [t.output] : [])].join('\n') || undefined,
      }
    }),
  }))
  const fatal = report.findings.filter((f) => f.fails)
  suites.push({
    name: 'kernel',
    timeSec: 0,
    cases: [
      {
        name: CONSOLE_CHECK,
        classname: 'kernel.console',
        timeSec: 0,
        status: fatal.length > 0 ? 'fail' : 'pass',
        message: fatal.length > 0 ? fatal.map((f) => `${f.kind}: ${f.title}`).join('; ') : undefined,
        type: fatal.length > 0 ? 'kernel' : undefined,
        details: fatal.length > 0 ? fatal.map(findingText).join('\n\n') : undefined,
        systemOut: report.findings.filter((f) => !f.fails).map(findingText).join('\n\n') || undefined,
      },
    ],
  })
  return renderJUnit(suites, 'pmemlab test')
}

/** A YAML block for TAP: each value on one line, JSON-quoted where needed. */
function yamlBlock(fields: Record<string, string | number | string[] | undefined>, indent: string): string[] {
  const lines = [`${indent}---`]
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue
    if (Array.isArray(value)) {
      if (value.length === 0) continue
      lines.push(`${indent}${key}:`)
      for (const item of value) lines.push(`${indent}  - ${JSON.stringify(item)}`)
    } else lines.push(`${indent}${key}: ${typeof value === 'number' ? value : JSON.stringify(value)}`)
  }
  lines.push(`${indent}...`)
  return lines
}

const tapEscape = (text: string) => text.replaceAll('\\', '\\\\').replaceAll('#', '\\#').replace(/\n/g, ' ')

/** TAP version 14: one test point per test (a user test's own TAP as a subtest), then the console check. */
export function toTap(report: RunReport): string {
  const tests = allTests(report)
  const lines = ['TAP version 14', `1..${tests.length + 1}`]
  tests.forEach((t, i) => {
    const n = i + 1
    if (t.subtests && t.subtests.length > 0) {
      lines.push(`# Subtest: ${t.id}`)
      t.subtests.forEach((s, j) => {
        const directive = s.status === 'skip' ? ` # SKIP ${s.message ?? ''}` : s.status === 'todo' ? ` # TODO ${s.message ?? ''}` : ''
        lines.push(`    ${s.status === 'fail' || s.status === 'todo' ? 'not ok' : 'ok'} ${j + 1} - ${tapEscape(s.name)}${directive.trimEnd()}`)
      })
      lines.push(`    1..${t.subtests.length}`)
    }
    // A TODO test is written "not ok ... # TODO": an expected failure, which fails nothing.
    const word = t.status === 'pass' || t.status === 'skip' ? 'ok' : 'not ok'
    const directive = t.status === 'skip' ? ` # SKIP ${tapEscape(t.message ?? '')}` : t.status === 'todo' ? ` # TODO ${tapEscape(t.message ?? '')}` : ''
    lines.push(`${word} ${n} - ${tapEscape(t.id)}${directive.trimEnd()}`)
    if (word === 'not ok' && t.status !== 'todo') {
      lines.push(...yamlBlock({status: t.status, message: t.message, duration_ms: Math.round(t.durationMs), details: t.details}, '  '))
    }
  })
  const fatal = report.findings.filter((f) => f.fails)
  lines.push(`${fatal.length > 0 ? 'not ok' : 'ok'} ${tests.length + 1} - kernel/console/${tapEscape(CONSOLE_CHECK)}`)
  if (fatal.length > 0) {
    lines.push(...yamlBlock({status: 'fail', message: fatal.map((f) => `${f.kind}: ${f.title}`).join('; '), details: fatal.flatMap((f) => [`${f.kind} in ${f.vm}, during ${f.during}:`, ...f.lines])}, '  '))
  }
  if (report.error) lines.push(`# ${report.error}`)
  return `${lines.join('\n')}\n`
}

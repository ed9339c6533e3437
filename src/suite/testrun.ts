/**
 * The core of a `pmemlab test` run: its state (the lab session, the console watch, the results by
 * suite, the phase times), booting and losing the guest, and running guest commands.
 *
 * Every guest step goes through the guest agent under the guest's timeout(1), so a hanging test
 * is killed at its timeout and the run goes on. TAP on a step's stdout is parsed as it streams,
 * so that each test point shows on stderr as it arrives; TAP test points become test results.
 * The suites (builtin.ts, usersuite.ts, powerloss.ts) are functions over a TestRun.
 */
import {randomBytes} from 'node:crypto'
import {appendFile, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Writable} from 'node:stream'
import {StringDecoder} from 'node:string_decoder'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log} from '../core/log.js'
import {processAlive} from '../core/process.js'
import {humanSize} from '../core/size.js'
import type {TopologyFlags} from '../lab/request.js'
import {LabSession, type LabRequest, type UpRequest} from '../lab/vm.js'
import {ConsoleWatcher, type FindingsAre} from './console.js'
import {
  runFailed,
  secondsText,
  selected,
  subResults,
  testId,
  type ConsoleFinding,
  type Filesystem,
  type RunReport,
  type SuiteResult,
  type TestResult,
  type TestStatus,
  type UserSuite,
} from './results.js'
import {failing, looksLikeTap, TapParser, type TapAssert, type TapDocument} from './tap.js'
import {BUILTIN} from './names.js'

export interface TestRunOptions extends LabRequest {
  filesystems: Filesystem[]
  /** "builtin" and/or user-suite directories, in order. */
  suites: string[]
  /** --filter globs over suite/group/step ids. */
  filters: string[]
  /** Default seconds per test step. */
  timeoutSec: number
  /** Leave the VM up after a failure. */
  keep: boolean
  /** Leave raw NVDIMM namespaces raw (reproduces the silent non-DAX fallback). */
  rawNamespaces: boolean
  /** A skipped test fails the run (run_qemu's and PMDK's fail_on_skip). */
  failOnSkip?: boolean
  /** Append each VM's console log here before its directory goes (--console-log; the matrix keeps one per cell). */
  consoleLog?: string
  /** evidence: kernel reports on the console are what the caller looks for (repro), announced as facts, not errors. */
  findingsAre?: FindingsAre
}

export {BUILTIN} from './names.js'
const OUTPUT_LIMIT = 64 * 1024

/** The outcome of one guest command run under timeout(1). */
export interface GuestRun {
  exitCode: number
  stdout: string
  stderr: string
  elapsedMs: number
  timedOut: boolean
  /** The VM died or stopped answering while it ran. */
  lost?: string
  /** Something else went wrong talking to the guest. */
  error?: string
  tap?: TapDocument
}

/** A Writable that keeps what it is given and hands each chunk on as text. */
function collector(onText?: (text: string) => void): {sink: Writable; text: () => string} {
  const chunks: string[] = []
  const decoder = new StringDecoder('utf8') // a character may straddle two chunks
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = typeof chunk === 'string' ? chunk : decoder.write(chunk)
      chunks.push(text)
      onText?.(text)
      callback()
    },
  })
  return {sink, text: () => chunks.join('')}
}

/** The last LINES non-empty lines of TEXT. */
export const tail = (text: string, lines: number) => text.trimEnd().split('\n').slice(-lines).filter(Boolean)
/** TEXT with all but its last 64 KiB cut, for a test's output in the report. */
export const clip = (text: string) => (text.length > OUTPUT_LIMIT ? `[... ${text.length - OUTPUT_LIMIT} bytes cut]\n${text.slice(-OUTPUT_LIMIT)}` : text)

/**
 * One run of `pmemlab test`. Its state is open to the suite modules, which run their steps
 * through guest(), step() and record().
 */
export class TestRun {
  readonly name = `test-${randomBytes(2).toString('hex')}`
  readonly started = Date.now()
  readonly startedAt = new Date().toISOString()
  readonly suites = new Map<string, SuiteResult>()
  readonly findings: ConsoleFinding[] = []
  readonly phases: RunReport['phases'] = {bootMs: 0, prepareMs: 0, testsMs: 0}
  session?: LabSession
  private watcher?: ConsoleWatcher
  current = 'boot'
  /** Why the guest cannot be used any more. */
  lost?: string
  /** The VM's death, named by the lab (panic, QEMU killed...): it decides the run's exit code. */
  death?: PmemlabError
  private lostNoted = false
  ownedDir?: string
  topology: TopologyFlags
  readonly builtin: boolean
  readonly powerLoss: boolean

  constructor(
    readonly options: TestRunOptions,
    readonly userSuites: UserSuite[],
    /** The upstream suites of the run (upstream.ts): named here for the report only. */
    upstreamSuites: ReadonlyArray<{name: string; root: string}> = [],
  ) {
    this.topology = options.topology
    this.builtin = options.suites.includes(BUILTIN)
    this.powerLoss = this.builtin && selected(`${BUILTIN}/power-loss`, options.filters)
    this.suites.set(BUILTIN, {name: BUILTIN, kind: 'builtin', tests: []})
    for (const suite of userSuites) this.suites.set(suite.name, {name: suite.name, kind: 'user', source: suite.dir, tests: []})
    for (const suite of upstreamSuites) this.suites.set(suite.name, {name: suite.name, kind: 'upstream', source: suite.root, tests: []})
    if (!this.builtin) this.suites.delete(BUILTIN)
  }

  // -------------------------------------------------------------------------------------------
  // Lab

  private request(name: string): UpRequest {
    return {
      name,
      kernel: this.options.kernel,
      image: this.options.image,
      topology: this.topology,
      cpus: this.options.cpus,
      accel: this.options.accel,
      // --keep must survive pmemlab's exit: a foreground VM dies with its parent.
      mode: this.options.keep ? 'detached' : 'command',
      append: this.options.append,
      bootTimeoutMs: this.options.bootTimeoutMs,
    }
  }

  async boot(name: string): Promise<void> {
    const started = Date.now()
    this.current = `boot of ${name}`
    const session = await LabSession.start(this.request(name))
    this.phases.bootMs += Date.now() - started
    this.session = session
    this.lost = undefined
    this.watcher = new ConsoleWatcher(session.record.consoleLog, name, () => this.current, this.options.findingsAre)
    this.watcher.start()
    await this.watcher.poll()
    const devices = session.record.devices.map((d) => `${d.id} ${humanSize(d.size)}${d.file && d.persistent ? ' (file-backed)' : ''}`)
    log.info(`lab ${name} up in ${secondsText(Date.now() - started)} (${session.record.accel}): ${devices.join(', ')}`)
  }

  /** Scans the console one last time and keeps its findings; before the VM directory goes. */
  async closeWatcher(): Promise<void> {
    if (!this.watcher) return
    await this.watcher.stop()
    this.findings.push(...this.watcher.findings())
    this.watcher = undefined
    await this.keepConsoleLog()
  }

  /** Appends the VM's console log to options.consoleLog: the log goes with the VM's directory when it stops. */
  private async keepConsoleLog(): Promise<void> {
    const target = this.options.consoleLog
    if (!target || !this.session) return
    const text = await readFile(this.session.record.consoleLog).catch(() => undefined)
    if (text) await appendFile(target, Buffer.concat([Buffer.from(`==== console of ${this.session.record.name} ====\n`), text]))
  }

  async alive(): Promise<boolean> {
    const record = this.session?.record
    return record !== undefined && (await processAlive(record.pid, record.sockets.qmp))
  }

  /** Marks the guest lost, with the reason a user needs (the panic the console shows). */
  async loseGuest(what: string): Promise<string> {
    await this.watcher?.poll()
    // The panic says why the VM died; else the latest report.
    const reports = (this.watcher?.findings() ?? []).filter((f) => f.fails)
    const fatal = reports.find((f) => f.kind === 'panic') ?? reports.at(-1)
    const dead = !(await this.alive())
    const why = dead ? `the VM died ${what}${fatal ? `: ${fatal.title}` : ''}` : `the guest stopped answering ${what}`
    this.lost ??= why
    log.error(why)
    return why
  }

  /** The lab named the VM's death: the run ends with it (exit code, excerpt); later steps do not run. */
  dies(death: PmemlabError): string {
    this.death ??= death
    this.lost ??= death.message
    return this.lost
  }

  async finish(): Promise<RunReport['kept']> {
    await this.closeWatcher()
    const failed = runFailed({suites: [...this.suites.values()], findings: this.findings}, {failOnSkip: this.options.failOnSkip})
    if (!this.options.keep || !failed || !this.session) return undefined
    if (this.lost || !(await this.alive())) {
      log.warn(`--keep: ${this.session.record.name} is gone (${this.lost ?? 'QEMU exited'}), nothing to keep`)
      return undefined
    }
    await this.session.release()
    const name = this.session.record.name
    log.info(`--keep: ${name} is still running: pmemlab console ${name}, pmemlab exec ${name} -- COMMAND; stop it with pmemlab down ${name}`)
    if (this.ownedDir) log.info(`its NVDIMM file ${this.ownedDir} is kept too: delete it after pmemlab down ${name}`)
    return {name, ...(this.ownedDir ? {file: join(this.ownedDir, 'nvdimm0.img')} : {})}
  }

  // -------------------------------------------------------------------------------------------
  // Running guest commands

  /**
   * Runs argv in the guest under timeout(1) (the group is killed after timeoutSec, then KILLed
   * 5 s later), with optional environment and working directory. TAP on stdout is parsed as it
   * arrives and each test point is shown on stderr.
   */
  async guest(argv: string[], options: {timeoutSec: number; env?: Record<string, string>; cwd?: string; live?: boolean}): Promise<GuestRun> {
    const started = Date.now()
    let last = started
    const parser = new TapParser((a) => {
      const now = Date.now()
      if (options.live !== false) progressLine(statusOf(a), a.name, now - last, a.diagnostics[0])
      last = now
    })
    const out = collector((text) => parser.write(text))
    const err = collector()
    const full = [
      '/usr/bin/timeout',
      '-k',
      '5',
      String(options.timeoutSec),
      ...(options.env ? ['/usr/bin/env', ...Object.entries(options.env).map(([k, v]) => `${k}=${v}`)] : []),
      ...(options.cwd ? ['/bin/sh', '-c', 'cd "$1" && shift && exec "$@"', 'pmemlab-test', options.cwd] : []),
      ...argv,
    ]
    const result: GuestRun = {exitCode: -1, stdout: '', stderr: '', elapsedMs: 0, timedOut: false}
    try {
      if (this.lost || !this.session) throw new Error(this.lost ?? 'no VM')
      result.exitCode = await this.session.exec(full, {stdout: out.sink, stderr: err.sink, timeoutMs: (options.timeoutSec + 30) * 1000})
      // timeout(1) exits 124 when it stopped the command, 137 when it had to KILL it.
      result.timedOut = (result.exitCode === 124 || result.exitCode === 137) && Date.now() - started >= options.timeoutSec * 1000 - 500
    } catch (error) {
      if (this.lost) result.lost = this.lost
      else if (isDeath(error)) result.lost = this.dies(error)
      else if (!(await this.alive())) result.lost = await this.loseGuest(`while running ${argv[0]}`)
      else if (error instanceof PmemlabError && /timed out/.test(error.message)) result.timedOut = true
      else if (/timed out|connection closed|ECONNRESET|EPIPE/.test((error as Error).message)) result.lost = await this.loseGuest(`while running ${argv[0]}`)
      else result.error = (error as Error).message
    }
    result.elapsedMs = Date.now() - started
    result.stdout = out.text()
    result.stderr = err.text()
    if (looksLikeTap(result.stdout)) result.tap = parser.end()
    await this.watcher?.poll()
    return result
  }

  private suite(name: string): SuiteResult {
    return this.suites.get(name)!
  }

  record(result: Omit<TestResult, 'id'>, options: {quiet?: boolean} = {}): TestResult {
    // Ids are unique: a name seen before in its group gets a number.
    const taken = new Set(this.suite(result.suite).tests.map((t) => t.id))
    let name = result.name
    for (let n = 2; taken.has(testId(result.suite, result.group, name)); n++) name = `${result.name} (${n})`
    const test: TestResult = {...result, id: testId(result.suite, result.group, name), name}
    this.suite(result.suite).tests.push(test)
    if (!options.quiet) progressLine(test.status, test.name, test.durationMs, test.message)
    return test
  }

  /**
   * A builtin step: runs a guest program and records each TAP test point as a test of GROUP,
   * plus a test for anything beyond them (a timeout, a crash, a non-zero exit with all passed).
   */
  async step(group: string, step: string, argv: string[], phase: 'prepare' | 'tests', prefix = ''): Promise<{ok: boolean; run: GuestRun; tests: TestResult[]}> {
    if (this.lost) {
      // Said once: the steps after a crash do not each repeat it.
      if (!this.lostNoted) this.record({suite: BUILTIN, group, name: 'remaining built-in steps', status: 'error', durationMs: 0, message: `not run: ${this.lost}`})
      this.lostNoted = true
      return {ok: false, run: {exitCode: -1, stdout: '', stderr: '', elapsedMs: 0, timedOut: false, lost: this.lost}, tests: []}
    }
    this.current = testId(BUILTIN, group, step)
    stepLine(`${BUILTIN} ${group}: ${step}`)
    const run = await this.guest(argv, {timeoutSec: this.options.timeoutSec})
    this.phases[phase === 'prepare' ? 'prepareMs' : 'testsMs'] += run.elapsedMs
    const tests = this.tapResults(BUILTIN, group, step, run, prefix)
    return {ok: tests.every((t) => t.status !== 'fail' && t.status !== 'error' && t.status !== 'timeout'), run, tests}
  }

  /** TAP test points as tests (already shown live), and a test for what TAP did not say. */
  tapResults(suite: string, group: string, step: string, run: GuestRun, prefix = ''): TestResult[] {
    const tests: TestResult[] = []
    const asserts = run.tap?.asserts ?? []
    const each = asserts.length > 0 ? run.elapsedMs / asserts.length : run.elapsedMs
    for (const a of asserts) {
      const status = statusOf(a)
      const message = a.directive?.reason || (status === 'fail' ? a.diagnostics[0] : undefined)
      const details = status === 'fail' ? [...a.diagnostics.slice(1), ...tail(run.stderr, 5)] : undefined
      tests.push(this.record({suite, group, name: `${prefix}${a.name}`, status, durationMs: each, ...(message ? {message} : {}), ...(details?.length ? {details} : {})}, {quiet: true}))
    }
    const extra = (status: TestStatus, message: string, details: string[] = []) =>
      tests.push(this.record({suite, group, name: `${prefix}${step}`, status, durationMs: asserts.length > 0 ? 0 : run.elapsedMs, message, ...(details.length ? {details} : {})}))
    const output = [...tail(run.stdout, 5), ...tail(run.stderr, 5)]
    if (run.lost) extra('error', run.lost)
    else if (run.error) extra('error', run.error)
    else if (run.timedOut) extra('timeout', `killed after ${this.options.timeoutSec} s (--timeout)${asserts.length ? ` after test ${asserts.length}: ${asserts.at(-1)!.name}` : ''}`, output)
    else if (run.exitCode === 127 || run.exitCode === 126) extra('error', `${step}: command not found or not executable (exit ${run.exitCode}); is the guest image current?`, output)
    else if (!run.tap) extra('error', `${step} printed no TAP (exit status ${run.exitCode})`, output)
    else if (run.tap.bailOut !== undefined) extra('error', `bailed out: ${run.tap.bailOut}`, output)
    else if (run.tap.problems.length > 0 && !asserts.some(failing)) extra('error', `${run.tap.problems.join('; ')} (exit status ${run.exitCode})`, output)
    else if (run.exitCode !== 0 && !asserts.some(failing)) extra('error', `exited with status ${run.exitCode} although every check passed`, output)
    return tests
  }

  skipSteps(suite: string, group: string, steps: string[], why: string): void {
    for (const step of steps) this.record({suite, group, name: step, status: 'skip', durationMs: 0, message: why})
  }
}

/** The exit status of a test that skips itself (automake's convention, which ndctl's and PMDK's tests keep). */
export const SKIP_STATUS = 77

/**
 * The verdict on a test that is one guest command: its TAP when it printed some (each test
 * point a subtest), else its exit status (0 passes, 77 skips, anything else fails), with a
 * timeout or a lost guest before either.
 */
export function exitVerdict(run: GuestRun, timeoutSec: number): Pick<TestResult, 'status' | 'message' | 'details' | 'output' | 'subtests'> {
  const output = clip([run.stdout, run.stderr].filter(Boolean).join(run.stdout.endsWith('\n') || !run.stdout ? '' : '\n'))
  const subtests = run.tap ? subResults(run.tap) : undefined
  const lastLines = [...tail(run.stdout, 5), ...tail(run.stderr, 5)]
  let status: TestStatus
  let message: string | undefined
  let details: string[] | undefined
  if (run.lost) [status, message] = ['error', `${run.lost}`]
  else if (run.error) [status, message] = ['error', run.error]
  else if (run.timedOut) [status, message, details] = ['timeout', `killed after ${timeoutSec} s (its timeout)`, lastLines]
  else if (run.exitCode === SKIP_STATUS || (run.tap?.plan?.skipAll !== undefined && run.exitCode === 0)) {
    ;[status, message] = ['skip', run.tap?.plan?.skipAll || tail(run.stdout, 1)[0] || `exit status ${SKIP_STATUS}`]
  } else if (run.tap) {
    const bad = run.tap.asserts.filter(failing)
    if (run.exitCode === 0 && run.tap.ok) status = 'pass'
    else {
      status = 'fail'
      message = bad.length > 0
        ? `${bad.length} of ${run.tap.asserts.length} checks failed: ${bad.map((a) => a.name).join('; ')}`
        : run.tap.bailOut !== undefined ? `bailed out: ${run.tap.bailOut}` : run.tap.problems.length ? run.tap.problems.join('; ') : `exited with status ${run.exitCode}`
      details = [...bad.flatMap((a) => a.diagnostics.map((d) => `${a.name}: ${d}`)), ...tail(run.stderr, 5)]
    }
  } else if (run.exitCode === 0) status = 'pass'
  else [status, message, details] = ['fail', run.exitCode === 127 ? `command not found (exit 127)` : `exited with status ${run.exitCode}`, lastLines]
  return {status, ...(message ? {message} : {}), ...(details?.length ? {details} : {}), ...(output ? {output} : {}), ...(subtests ? {subtests} : {})}
}

/** A death the lab explained: the guest died (7) or QEMU did (8). */
export const isDeath = (error: unknown): error is PmemlabError =>
  error instanceof PmemlabError && (error.exitCode === ExitCode.guestDied || error.exitCode === ExitCode.qemuDied)

export function statusOf(a: TapAssert): TestStatus {
  if (a.directive?.kind === 'skip') return 'skip'
  if (a.directive?.kind === 'todo') return 'todo'
  return a.ok ? 'pass' : 'fail'
}

const WORD: Record<TestStatus, string> = {pass: 'ok', fail: 'FAIL', skip: 'skip', todo: 'todo', timeout: 'TIMEOUT', error: 'ERROR'}

/** Live progress on stderr: one line per result. */
export function progressLine(status: TestStatus, name: string, ms: number, note?: string): void {
  const why = note && status !== 'pass' ? `: ${note}` : ''
  process.stderr.write(`    ${WORD[status].padEnd(7)} ${name} (${secondsText(ms)})${why}\n`)
}

export function stepLine(text: string): void {
  log.info(text)
}

/**
 * `pmemlab test`: boots a lab, prepares its persistent memory like a pmem developer would and
 * runs the built-in suite and user suites in it, watching the guest console the whole time.
 *
 * Every guest step goes through the guest agent: pmemlab-suite (guest/pmemlab-suite) prepares
 * namespaces, filesystems and mounts; the guest programs (guest/tests/*.c) check DAX, libpmem,
 * libpmemobj and device DAX, and report TAP, which is parsed as it streams so that progress is
 * live on stderr. Each step runs under the guest's timeout(1), so a hanging test is killed at
 * its timeout and the run goes on. The power-loss case writes a pool, cuts the power (QMP quit)
 * and boots a second VM on the same NVDIMM file.
 */
import {randomBytes} from 'node:crypto'
import {mkdir, readdir, readFile, rm, stat} from 'node:fs/promises'
import {basename, join, relative, resolve} from 'node:path'
import {Writable} from 'node:stream'
import {StringDecoder} from 'node:string_decoder'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {resolveImage} from '../image/resolve.js'
import {DEFAULT_MEMMAP, DEFAULT_NVDIMM, parseDeviceFlag, type TopologyFlags} from '../lab/request.js'
import {log} from '../core/log.js'
import {describeFinding, scanConsole, type Finding} from '../lab/oops.js'
import {stateDir} from '../core/paths.js'
import {processAlive, sleep} from '../core/process.js'
import {humanSize} from '../core/size.js'
import {
  MANIFEST,
  missingNeeds,
  parseManifest,
  planUserSuite,
  roundsFor,
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
import {failing, looksLikeTap, parseTap, TapParser, type TapAssert, type TapDocument} from './tap.js'
import {listRecords} from '../lab/state.js'
import {LabSession, type LabRequest, type UpRequest} from '../lab/vm.js'

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
}

const BUILTIN = 'builtin'
const MOUNT_ROOT = '/mnt/pmemlab'
const GUEST_SUITES = '/opt/pmemlab-suites'
/** Records the power-loss writer commits before the cut. */
const POWER_LOSS_RECORDS = 100
/** The exit status of a user test that skips itself (automake's convention). */
const SKIP_STATUS = 77
const OUTPUT_LIMIT = 64 * 1024

/** A persistent-memory device as the guest sees it (pmemlab-suite devices). */
export interface GuestDevice {
  kind: string
  index: number
  namespace: string
  mode: string
  dev: string
  bytes: number
}

export const deviceName = (d: Pick<GuestDevice, 'kind' | 'index'>) => `${d.kind}${d.index}`

/** Parses `pmemlab-suite devices`: KIND INDEX NAMESPACE MODE DEVICE BYTES per line. */
export function parseDevices(text: string): GuestDevice[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length === 6 && /^\d+$/.test(f[1]))
    .map(([kind, index, namespace, mode, dev, bytes]) => ({kind, index: Number(index), namespace, mode, dev, bytes: Number(bytes)}))
}

/** The outcome of one guest command run under timeout(1). */
interface GuestRun {
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

/** Loads and validates the user suites before anything boots: bad input fails fast (exit 2). */
export async function loadUserSuite(dir: string, defaultTimeoutSec: number): Promise<UserSuite> {
  const abs = resolve(dir)
  const info = await stat(abs).catch(() => undefined)
  if (!info?.isDirectory()) throw usageError(`--suite ${dir}: not a directory`, 'give "builtin" or a directory of test scripts')
  const files: Array<{path: string; mode: number}> = []
  let total = 0
  const walk = async (sub: string): Promise<void> => {
    for (const entry of await readdir(join(abs, sub), {withFileTypes: true})) {
      const path = sub ? `${sub}/${entry.name}` : entry.name
      if (entry.isDirectory()) await walk(path)
      else if (entry.isFile()) {
        const s = await stat(join(abs, path))
        total += s.size
        files.push({path, mode: s.mode & 0o777})
      }
    }
  }
  await walk('')
  if (total > 64 * 1024 * 1024) throw usageError(`--suite ${dir} holds ${humanSize(total)}`, 'keep a suite under 64 MiB: it is copied into the guest through the agent')
  const manifestText = await readFile(join(abs, MANIFEST), 'utf8').catch(() => undefined)
  const manifest = manifestText === undefined ? undefined : parseManifest(manifestText, relative(process.cwd(), join(abs, MANIFEST)) || MANIFEST)
  return planUserSuite({dir: abs, dirName: basename(abs), manifest, files, defaultTimeoutSec})
}

/** The topology, with the first NVDIMM backed by FILE unless the user named its file. */
export function withNvdimmFile(topology: TopologyFlags, file: string): {topology: TopologyFlags; owned: boolean} {
  const none = topology.memmap.length === 0 && topology.nvdimm.length === 0 && topology.virtioPmem.length === 0
  const memmap = none ? [DEFAULT_MEMMAP] : topology.memmap
  const nvdimm = none ? [DEFAULT_NVDIMM] : topology.nvdimm
  if (nvdimm.length === 0) return {topology, owned: false}
  if (parseDeviceFlag(nvdimm[0], '--nvdimm').file !== undefined) return {topology: {...topology, memmap, nvdimm}, owned: false}
  return {topology: {...topology, memmap, nvdimm: [`${nvdimm[0]}:${file}`, ...nvdimm.slice(1)]}, owned: true}
}

/** Watches a console log file: rescans it as it grows and announces new findings at once. */
class ConsoleWatcher {
  private text = ''
  private timer?: NodeJS.Timeout
  private polling?: Promise<void>
  private readonly during = new Map<number, string>()

  constructor(
    private readonly file: string,
    private readonly vm: string,
    private readonly current: () => string,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), 500)
  }

  poll(): Promise<void> {
    this.polling ??= (async () => {
      try {
        const text = await readFile(this.file, 'utf8').catch(() => this.text)
        if (text.length >= this.text.length) this.text = text
        for (const finding of scanConsole(this.text)) {
          if (this.during.has(finding.line)) continue
          this.during.set(finding.line, this.current())
          announce(finding, this.vm, this.current())
        }
      } finally {
        this.polling = undefined
      }
    })()
    return this.polling
  }

  /** A last scan (before the VM directory goes away), and no more polling. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.poll()
  }

  findings(): ConsoleFinding[] {
    return scanConsole(this.text).map((f) => ({...f, vm: this.vm, during: this.during.get(f.line) ?? this.current()}))
  }
}

function announce(finding: Finding, vm: string, during: string): void {
  const say = finding.fails ? log.error : log.warn
  say(`kernel ${describeFinding(finding)} (on ${vm}, during ${during})`)
  for (const line of finding.lines.slice(0, 4)) process.stderr.write(`    | ${line}\n`)
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

const tail = (text: string, lines: number) => text.trimEnd().split('\n').slice(-lines).filter(Boolean)
const clip = (text: string) => (text.length > OUTPUT_LIMIT ? `[... ${text.length - OUTPUT_LIMIT} bytes cut]\n${text.slice(-OUTPUT_LIMIT)}` : text)

export async function runTests(options: TestRunOptions): Promise<RunReport> {
  const userSuites: UserSuite[] = []
  for (const spec of options.suites) {
    if (spec === BUILTIN) continue
    const suite = await loadUserSuite(spec, options.timeoutSec)
    if (userSuites.some((s) => s.name === suite.name)) throw usageError(`two user suites are named ${suite.name}`, `rename one in its ${MANIFEST}`)
    userSuites.push(suite)
  }
  if (options.filesystems.length === 0) throw usageError('no filesystem to test', 'give --fs ext4, xfs or ext4,xfs')
  return new TestRun(options, userSuites).execute()
}

class TestRun {
  private readonly name = `test-${randomBytes(2).toString('hex')}`
  private readonly started = Date.now()
  private readonly startedAt = new Date().toISOString()
  private readonly suites = new Map<string, SuiteResult>()
  private readonly findings: ConsoleFinding[] = []
  private readonly phases: RunReport['phases'] = {bootMs: 0, prepareMs: 0, testsMs: 0}
  private session?: LabSession
  private watcher?: ConsoleWatcher
  private current = 'boot'
  /** Why the guest cannot be used any more. */
  private lost?: string
  private lostNoted = false
  private devices: GuestDevice[] = []
  private ownedDir?: string
  private topology: TopologyFlags
  private readonly builtin: boolean
  private readonly powerLoss: boolean

  constructor(
    private readonly options: TestRunOptions,
    private readonly userSuites: UserSuite[],
  ) {
    this.topology = options.topology
    this.builtin = options.suites.includes(BUILTIN)
    this.powerLoss = this.builtin && selected(`${BUILTIN}/power-loss`, options.filters)
    this.suites.set(BUILTIN, {name: BUILTIN, kind: 'builtin', tests: []})
    for (const suite of userSuites) this.suites.set(suite.name, {name: suite.name, kind: 'user', source: suite.dir, tests: []})
    if (!this.builtin) this.suites.delete(BUILTIN)
  }

  async execute(): Promise<RunReport> {
    let error: PmemlabError | undefined
    let kept: RunReport['kept']
    try {
      if (this.powerLoss) {
        await removeStaleTestFiles()
        // The power-loss case needs an NVDIMM whose contents outlive the VM: a file pmemlab owns.
        this.ownedDir = join(stateDir(), 'test-files', this.name)
        const file = join(this.ownedDir, 'nvdimm0.img')
        const planned = withNvdimmFile(this.options.topology, file)
        this.topology = planned.topology
        if (planned.owned) await mkdir(this.ownedDir, {recursive: true, mode: 0o700})
        else this.ownedDir = undefined
      }
      // Built first (when the cache lacks it), so that the boot time is the boot's alone.
      const imageStarted = Date.now()
      const image = await resolveImage(this.options.image, {build: true})
      if (Date.now() - imageStarted > 1000) this.phases.imageMs = Date.now() - imageStarted
      log.debug(`image ${image.name} ${image.hash.slice(0, 12)}`)
      try {
        await this.boot(this.name)
      } catch (bootError) {
        if (!(bootError instanceof PmemlabError) || bootError.exitCode !== ExitCode.bootFailed) throw bootError
        error = bootError
        // CI reads the JUnit and TAP files: they must fail too.
        const suite = [...this.suites.keys()][0]
        this.record({suite, group: 'lab', name: 'boot', status: 'error', durationMs: 0, message: error.oneLine()})
      }
      if (!error) {
        await this.inventory()
        if (this.builtin) await this.builtinSuite()
        for (const suite of this.userSuites) await this.userSuite(suite)
        if (this.powerLoss) await this.powerLossCase()
      }
      kept = await this.finish()
    } finally {
      if (this.session && !kept) await this.session.stop(this.lost ? 5000 : 20_000).catch(() => undefined)
      if (this.ownedDir && !kept) await rm(this.ownedDir, {recursive: true, force: true})
    }
    const report: RunReport = {
      ok: false,
      exitCode: 0,
      startedAt: this.startedAt,
      durationMs: Date.now() - this.started,
      phases: this.phases,
      lab: {
        name: this.name,
        kernel: this.options.kernel,
        image: this.options.image,
        accel: this.session?.record.accel,
        filesystems: this.options.filesystems,
        devices: (this.session?.record.devices ?? []).map((d) => ({...d, file: d.file && d.persistent && !this.ownedDir ? d.file : undefined})),
      },
      suites: [...this.suites.values()],
      findings: this.findings,
      ...(error ? {error: error.oneLine()} : {}),
      ...(kept ? {kept} : {}),
    }
    report.ok = !runFailed(report)
    report.exitCode = error ? ExitCode.bootFailed : report.ok ? ExitCode.ok : ExitCode.failure
    return report
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

  private async boot(name: string): Promise<void> {
    const started = Date.now()
    this.current = `boot of ${name}`
    const session = await LabSession.start(this.request(name))
    this.phases.bootMs += Date.now() - started
    this.session = session
    this.lost = undefined
    this.watcher = new ConsoleWatcher(session.record.consoleLog, name, () => this.current)
    this.watcher.start()
    await this.watcher.poll()
    const devices = session.record.devices.map((d) => `${d.id} ${humanSize(d.size)}${d.file && d.persistent ? ' (file-backed)' : ''}`)
    log.info(`lab ${name} up in ${secondsText(Date.now() - started)} (${session.record.accel}): ${devices.join(', ')}`)
  }

  /** Scans the console one last time and keeps its findings; before the VM directory goes. */
  private async closeWatcher(): Promise<void> {
    if (!this.watcher) return
    await this.watcher.stop()
    this.findings.push(...this.watcher.findings())
    this.watcher = undefined
  }

  private async alive(): Promise<boolean> {
    const record = this.session?.record
    return record !== undefined && (await processAlive(record.pid, record.sockets.qmp))
  }

  /** Marks the guest lost, with the reason a user needs (the panic the console shows). */
  private async loseGuest(what: string): Promise<string> {
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

  private async finish(): Promise<RunReport['kept']> {
    await this.closeWatcher()
    const failed = runFailed({suites: [...this.suites.values()], findings: this.findings})
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
  private async guest(argv: string[], options: {timeoutSec: number; env?: Record<string, string>; cwd?: string; live?: boolean}): Promise<GuestRun> {
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

  private record(result: Omit<TestResult, 'id'>, options: {quiet?: boolean} = {}): TestResult {
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
  private async step(group: string, step: string, argv: string[], phase: 'prepare' | 'tests', prefix = ''): Promise<{ok: boolean; run: GuestRun; tests: TestResult[]}> {
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
  private tapResults(suite: string, group: string, step: string, run: GuestRun, prefix = ''): TestResult[] {
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

  private skipSteps(suite: string, group: string, steps: string[], why: string): void {
    for (const step of steps) this.record({suite, group, name: step, status: 'skip', durationMs: 0, message: why})
  }

  // -------------------------------------------------------------------------------------------
  // Built-in suite

  /** What the guest sees, checked against what the lab was asked for. */
  private async inventory(): Promise<void> {
    this.current = 'inventory'
    const run = await this.guest(['pmemlab-suite', 'devices'], {timeoutSec: 60, live: false})
    this.devices = parseDevices(run.stdout)
    const wanted = (this.session?.record.devices ?? []).map((d) => ({kind: d.kind, size: d.size}))
    const want = wanted.map((d) => `${d.kind} ${humanSize(d.size)}`).sort()
    const got = this.devices.map((d) => `${d.kind} ${humanSize(d.bytes)}`).sort()
    log.info(`guest devices: ${this.devices.map((d) => `${deviceName(d)} ${d.namespace} (${d.mode}, /dev/${d.dev}, ${humanSize(d.bytes)})`).join(', ') || 'none'}`)
    if (!this.builtin || !selected(testId(BUILTIN, 'lab', 'devices'), this.options.filters)) return
    const ok = run.exitCode === 0 && JSON.stringify(want) === JSON.stringify(got)
    this.record({
      suite: BUILTIN,
      group: 'lab',
      name: 'the guest sees every persistent-memory device of the lab',
      status: ok ? 'pass' : 'fail',
      durationMs: run.elapsedMs,
      ...(ok ? {} : {message: `asked for ${want.join(', ') || 'nothing'}; the guest has ${got.join(', ') || 'nothing'}`, details: tail(run.stderr, 5)}),
    })
  }

  private async builtinSuite(): Promise<void> {
    const sel = (group: string, step: string) => selected(testId(BUILTIN, group, step), this.options.filters)
    // The control: the root disk is ext4 without DAX.
    const control = 'control/rootfs'
    if (sel(control, 'dax-check')) await this.step(control, 'dax-check', ['pmemlab-dax-check', '--expect', 'nodax', '/var/tmp'], 'tests')
    if (sel(control, 'libpmem')) await this.step(control, 'libpmem', ['pmemlab-libpmem', '--expect', 'nopmem', '/var/tmp'], 'tests')

    for (const device of this.devices) {
      for (const fs of this.options.filesystems) await this.filesystemGroup(device, fs, sel)
    }
    for (const device of this.devices.filter((d) => d.kind === 'nvdimm')) {
      const group = `devdax/${deviceName(device)}`
      if (!sel(group, 'devdax')) continue
      const prepared = await this.step(group, 'namespace', ['pmemlab-suite', 'devdax', device.kind, String(device.index)], 'prepare')
      const chardev = /^# device (\/dev\/dax\S+)$/m.exec(prepared.run.stdout)?.[1]
      if (!prepared.ok || !chardev) {
        this.skipSteps(BUILTIN, group, ['devdax'], 'the devdax namespace could not be created')
        continue
      }
      await this.step(group, 'devdax', ['pmemlab-devdax', chardev], 'tests')
    }
  }

  private async filesystemGroup(device: GuestDevice, fs: Filesystem, sel: (group: string, step: string) => boolean): Promise<void> {
    const group = `${deviceName(device)}/${fs}`
    const steps = ['dax-check', 'libpmem', 'pmemobj', 'pmempool'].filter((step) => sel(group, step))
    if (steps.length === 0 && !sel(group, 'prepare')) return
    const dir = `${MOUNT_ROOT}/${deviceName(device)}-${fs}`
    const prepare = ['pmemlab-suite', 'prepare', ...(this.options.rawNamespaces ? ['--keep-raw'] : []), device.kind, String(device.index), fs, dir]
    const prepared = await this.step(group, 'prepare', prepare, 'prepare')
    if (!prepared.ok) {
      this.skipSteps(BUILTIN, group, steps, 'the filesystem could not be prepared (see the prepare failure)')
      return
    }
    // virtio-pmem is DAX without MAP_SYNC: its writes need fsync, so libpmem says is_pmem=0.
    const sync = device.kind !== 'virtio-pmem'
    const daxResults: TestResult[] = []
    if (steps.includes('dax-check')) daxResults.push(...(await this.step(group, 'dax-check', ['pmemlab-dax-check', '--expect', sync ? 'dax' : 'dax-nosync', dir], 'tests')).tests)
    if (steps.includes('libpmem')) daxResults.push(...(await this.step(group, 'libpmem', ['pmemlab-libpmem', '--expect', sync ? 'pmem' : 'nopmem', dir], 'tests')).tests)
    if (daxResults.some((t) => t.status === 'fail')) await this.explainNoDax(dir, daxResults)
    let pool = false
    if (steps.includes('pmemobj')) pool = (await this.step(group, 'pmemobj', ['pmemlab-pmemobj', 'suite', dir], 'tests')).run.tap !== undefined
    if (steps.includes('pmempool')) {
      if (pool || !steps.includes('pmemobj')) {
        if (!pool) await this.guest(['pmemlab-pmemobj', 'suite', dir], {timeoutSec: this.options.timeoutSec, live: false})
        await this.step(group, 'pmempool', ['pmemlab-suite', 'pool-tools', `${dir}/pmemlab-suite.pool`], 'tests')
      } else this.skipSteps(BUILTIN, group, ['pmempool'], 'pmemlab-pmemobj made no pool')
    }
    await this.step(group, 'unmount', ['pmemlab-suite', 'unmount', dir], 'prepare')
  }

  /** Adds the guest's explanation (raw namespace, no FS_DAX, the kernel's words) to DAX failures. */
  private async explainNoDax(dir: string, results: TestResult[]): Promise<void> {
    const run = await this.guest(['pmemlab-suite', 'why-not-dax', dir], {timeoutSec: 60, live: false})
    const why = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .map((l) => l.replace(/^#\s?/, ''))
    if (why.length === 0) return
    const reason = why.find((l) => !l.startsWith('kernel said:')) ?? why[0]
    log.error(`${dir} is not on DAX: ${reason}`)
    for (const line of why.filter((l) => l !== reason)) process.stderr.write(`    ${line}\n`)
    for (const t of results.filter((r) => r.status === 'fail')) {
      t.message = `${t.message ? `${t.message}: ` : ''}${reason}`
      t.details = [...why.filter((l) => l !== reason), ...(t.details ?? [])]
    }
  }

  // -------------------------------------------------------------------------------------------
  // User suites

  private async userSuite(suite: UserSuite): Promise<void> {
    const guestDir = `${GUEST_SUITES}/${suite.name}`
    this.current = `copy of ${suite.name}`
    const rounds = roundsFor(suite.needs, this.options.filesystems)
    const wanted = rounds.flatMap((fs) => suite.tests.filter((t) => (!t.needs.fs || t.needs.fs.includes(fs)) && selected(testId(suite.name, fs, t.name), this.options.filters)).map((t) => ({fs, test: t})))
    if (wanted.length === 0) return
    stepLine(`${suite.name}: copying ${suite.files.length} files from ${suite.dir} to ${guestDir}`)
    const copyError = await this.copySuite(suite, guestDir)
    const kinds = [...new Set(this.devices.map((d) => d.kind))]
    for (const fs of rounds) {
      const tests = wanted.filter((w) => w.fs === fs).map((w) => w.test)
      if (tests.length === 0) continue
      stepLine(`${suite.name} ${fs}: preparing ${this.devices.map(deviceName).join(', ') || 'no devices'}`)
      const mounts: Array<{device: GuestDevice; dir: string}> = []
      let notReady = copyError
      const started = Date.now()
      for (const device of this.devices) {
        if (notReady) break
        const dir = `${MOUNT_ROOT}/${deviceName(device)}-${fs}`
        this.current = `${suite.name}/${fs}: prepare ${deviceName(device)}`
        const prepare = ['pmemlab-suite', 'prepare', ...(this.options.rawNamespaces ? ['--keep-raw'] : []), device.kind, String(device.index), fs, dir]
        const run = await this.guest(prepare, {timeoutSec: this.options.timeoutSec, live: false})
        if (run.exitCode === 0 && !run.lost) mounts.push({device, dir})
        else {
          const bad = run.tap?.asserts.find(failing)
          notReady = run.lost ?? `${deviceName(device)} could not be prepared with ${fs}${bad ? `: ${bad.name}${bad.diagnostics[0] ? ` (${bad.diagnostics[0]})` : ''}` : ''}`
        }
      }
      this.phases.prepareMs += Date.now() - started
      const env: Record<string, string> = {
        PMEMLAB_FS: fs,
        PMEMLAB_MOUNTS: mounts.map((m) => m.dir).join(' '),
        PMEMLAB_PMEM_DIR: mounts[0]?.dir ?? '',
        PMEMLAB_SUITE_DIR: guestDir,
        ...Object.fromEntries(mounts.map((m) => [`PMEMLAB_PMEM_DIR_${deviceName(m.device).toUpperCase().replaceAll('-', '_')}`, m.dir])),
      }
      if (!notReady && suite.setup) {
        this.current = testId(suite.name, fs, 'setup')
        stepLine(`${suite.name} ${fs}: setup ${suite.setup}`)
        const run = await this.guest(this.commandFor(suite, suite.setup, []), {timeoutSec: suite.timeoutSec, env, cwd: guestDir, live: false})
        this.phases.prepareMs += run.elapsedMs
        if (run.lost || run.timedOut || run.exitCode !== 0) {
          notReady = run.lost ?? `setup ${suite.setup} ${run.timedOut ? `timed out after ${suite.timeoutSec} s` : `failed with exit status ${run.exitCode}`}${tail(run.stderr, 1).length ? `: ${tail(run.stderr, 1)[0]}` : ''}`
        }
      }
      for (const test of tests) {
        if (notReady || this.lost) {
          this.record({suite: suite.name, group: fs, name: test.name, status: 'error', durationMs: 0, message: `not run: ${this.lost ?? notReady}`})
          continue
        }
        const missing = missingNeeds({...suite.needs, ...test.needs}, kinds)
        if (missing) {
          this.record({suite: suite.name, group: fs, name: test.name, status: 'skip', durationMs: 0, message: missing})
          continue
        }
        await this.userTest(suite, fs, test, {...env, PMEMLAB_TEST_TIMEOUT: String(test.timeoutSec)}, guestDir)
      }
      if (!this.lost) {
        const started2 = Date.now()
        for (const m of mounts) await this.guest(['pmemlab-suite', 'unmount', m.dir], {timeoutSec: 60, live: false})
        this.phases.prepareMs += Date.now() - started2
      }
    }
  }

  private commandFor(suite: UserSuite, file: string, args: string[]): string[] {
    const mode = suite.files.find((f) => f.path === file)?.mode ?? 0
    return (mode & 0o111) !== 0 ? [`./${file}`, ...args] : ['/bin/sh', file, ...args]
  }

  /** Copies the suite's files into the guest; returns why it failed, if it did. */
  private async copySuite(suite: UserSuite, guestDir: string): Promise<string | undefined> {
    const started = Date.now()
    try {
      const dirs = [...new Set(suite.files.map((f) => join(guestDir, f.path, '..')))]
      const made = await this.session!.agent.run(['/bin/mkdir', '-p', guestDir, ...dirs])
      if (made.exitCode !== 0) return `cannot create ${guestDir} in the guest: ${made.stderr.trim()}`
      for (const file of suite.files) await this.session!.writeFile(join(guestDir, file.path), await readFile(join(suite.dir, file.path)), file.mode)
      return undefined
    } catch (error) {
      return (await this.alive()) ? `copying the suite into the guest failed: ${(error as Error).message}` : await this.loseGuest('while the suite was copied')
    } finally {
      this.phases.prepareMs += Date.now() - started
    }
  }

  private async userTest(suite: UserSuite, fs: Filesystem, test: UserSuite['tests'][number], env: Record<string, string>, cwd: string): Promise<void> {
    this.current = testId(suite.name, fs, test.name)
    stepLine(`${suite.name} ${fs}: ${test.name}`)
    const run = await this.guest(this.commandFor(suite, test.run, test.args), {timeoutSec: test.timeoutSec, env, cwd, live: true})
    this.phases.testsMs += run.elapsedMs
    const output = clip([run.stdout, run.stderr].filter(Boolean).join(run.stdout.endsWith('\n') || !run.stdout ? '' : '\n'))
    const subtests = run.tap ? subResults(run.tap) : undefined
    const lastLines = [...tail(run.stdout, 5), ...tail(run.stderr, 5)]
    let status: TestStatus
    let message: string | undefined
    let details: string[] | undefined
    if (run.lost) [status, message] = ['error', `${run.lost}`]
    else if (run.error) [status, message] = ['error', run.error]
    else if (run.timedOut) [status, message, details] = ['timeout', `killed after ${test.timeoutSec} s (its timeout)`, lastLines]
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
    this.record({
      suite: suite.name,
      group: fs,
      name: test.name,
      status,
      durationMs: run.elapsedMs,
      ...(message ? {message} : {}),
      ...(details?.length ? {details} : {}),
      ...(output ? {output} : {}),
      ...(subtests ? {subtests} : {}),
    })
  }

  // -------------------------------------------------------------------------------------------
  // Power loss

  /**
   * Writes a pool on the file-backed NVDIMM and holds a transaction open, writes (and syncs) a
   * pool on a memmap range, cuts the power, boots a second VM on the same NVDIMM file, and
   * checks that the NVDIMM pool recovered to exactly its committed data while the memmap range
   * came back empty.
   */
  private async powerLossCase(): Promise<void> {
    const fs = this.options.filesystems[0]
    const nvdimm = this.devices.find((d) => d.kind === 'nvdimm' && d.index === 0)
    const memmap = this.devices.find((d) => d.kind === 'memmap' && d.index === 0)
    const nvGroup = 'power-loss/nvdimm0'
    const mmGroup = 'power-loss/memmap0'
    const record = this.session?.record
    const nvFile = record?.devices.find((d) => d.kind === 'nvdimm')?.file
    const pool = (dir: string) => `${dir}/power-loss.pool`
    const nvDir = `${MOUNT_ROOT}/power-loss-nvdimm0`
    const mmDir = `${MOUNT_ROOT}/power-loss-memmap0`
    if (this.lost) {
      this.record({suite: BUILTIN, group: 'power-loss', name: 'power-loss', status: 'error', durationMs: 0, message: `not run: ${this.lost}`})
      return
    }
    if (!nvdimm) this.skipSteps(BUILTIN, nvGroup, ['pool survives the power cut'], 'needs an NVDIMM (--nvdimm SIZE)')
    if (!memmap) this.skipSteps(BUILTIN, mmGroup, ['memmap loses data, as real DRAM would'], 'needs a memmap range (--memmap SIZE)')
    if (!nvdimm && !memmap) return

    let memmapWritten = false
    if (memmap) {
      const prepared = await this.step(mmGroup, 'prepare', ['pmemlab-suite', 'prepare', memmap.kind, '0', fs, mmDir], 'prepare')
      if (prepared.ok) {
        const written = await this.step(mmGroup, 'write', ['/bin/sh', '-c', 'pmemlab-pmemobj write "$1" "$2" && sync', 'sh', pool(mmDir), String(POWER_LOSS_RECORDS)], 'tests')
        memmapWritten = written.ok
      }
    }
    let holding = false
    if (nvdimm) {
      const prepared = await this.step(nvGroup, 'prepare', ['pmemlab-suite', 'prepare', nvdimm.kind, '0', fs, nvDir], 'prepare')
      if (prepared.ok) holding = await this.holdTransaction(nvGroup, pool(nvDir))
    }
    if (this.lost) return

    // The cut: QMP quit, no guest flush, no unmount.
    this.current = 'power cut'
    stepLine(`${BUILTIN} power-loss: cutting the power of ${record!.name} (QMP quit, no flush, no unmount)`)
    await this.closeWatcher()
    await this.session!.powerCut()
    this.session = undefined
    try {
      await this.boot(`${this.name}-2`)
    } catch (error) {
      const message = `the VM did not boot again on ${nvFile ?? 'the NVDIMM file'}: ${(error as Error).message}`
      if (nvdimm) this.record({suite: BUILTIN, group: nvGroup, name: 'pool survives the power cut', status: 'error', durationMs: 0, message})
      if (memmap) this.record({suite: BUILTIN, group: mmGroup, name: 'memmap loses data, as real DRAM would', status: 'error', durationMs: 0, message})
      this.lost = message
      return
    }

    if (nvdimm) {
      if (!holding) this.skipSteps(BUILTIN, nvGroup, ['pool survives the power cut'], 'the pool was not written before the cut')
      else {
        const after = 'after the power cut: '
        const mounted = await this.step(nvGroup, 'mount', ['pmemlab-suite', 'mount', nvdimm.kind, '0', fs, nvDir], 'prepare', after)
        if (mounted.ok) {
          await this.step(nvGroup, 'verify', ['pmemlab-pmemobj', 'verify', pool(nvDir), String(POWER_LOSS_RECORDS)], 'tests', after)
          await this.step(nvGroup, 'pmempool', ['pmemlab-suite', 'pool-tools', pool(nvDir)], 'tests', after)
          await this.step(nvGroup, 'unmount', ['pmemlab-suite', 'unmount', nvDir], 'prepare', after)
        } else this.skipSteps(BUILTIN, nvGroup, [`${after}verify`], `the ${fs} filesystem on the NVDIMM did not mount after the cut`)
      }
    }
    if (memmap) await this.memmapAfterCut(mmGroup, memmap, fs, mmDir, pool(mmDir), memmapWritten)
  }

  /** Starts the writer with --hold and waits until it sits inside its open transaction. */
  private async holdTransaction(group: string, pool: string): Promise<boolean> {
    this.current = testId(BUILTIN, group, 'write')
    stepLine(`${BUILTIN} ${group}: write, then hold a transaction open`)
    const started = Date.now()
    const out = '/run/pmemlab-power-loss.out'
    const agent = this.session!.agent
    let text = ''
    let exited = false
    try {
      const pid = await agent.spawn(['/bin/sh', '-c', `exec "$@" >${out} 2>&1`, 'sh', 'pmemlab-pmemobj', 'write', pool, String(POWER_LOSS_RECORDS), '--hold'])
      const deadline = started + this.options.timeoutSec * 1000
      while (!text.includes('# holding') && Date.now() < deadline) {
        exited = (await agent.status(pid)).exited
        text = (await agent.run(['/bin/cat', out], 10_000)).stdout
        if (exited) break
        await sleep(200)
      }
    } catch {
      await this.loseGuest('while the pool was written')
    }
    const run: GuestRun = {exitCode: exited ? 1 : 0, stdout: text, stderr: '', elapsedMs: Date.now() - started, timedOut: false, ...(this.lost ? {lost: this.lost} : {})}
    const holding = text.includes('# holding')
    if (!holding && !exited && !this.lost) run.timedOut = true
    run.tap = parseTap(text)
    // The stream ends inside the transaction: its plan says 3, all of which have been printed.
    for (const a of run.tap.asserts) progressLine(statusOf(a), a.name, run.elapsedMs / Math.max(1, run.tap.asserts.length), a.diagnostics[0])
    this.phases.testsMs += run.elapsedMs
    const tests = this.tapResults(BUILTIN, group, 'write', run)
    return holding && tests.every((t) => t.status === 'pass')
  }

  private async memmapAfterCut(group: string, memmap: GuestDevice, fs: Filesystem, dir: string, pool: string, written: boolean): Promise<void> {
    const name = 'memmap loses data, as real DRAM would'
    this.current = testId(BUILTIN, group, name)
    if (!written) {
      this.skipSteps(BUILTIN, group, [name], 'the pool was not written before the cut')
      return
    }
    const mount = await this.guest(['pmemlab-suite', 'mount', memmap.kind, '0', fs, dir], {timeoutSec: this.options.timeoutSec, live: false})
    if (mount.lost) {
      this.record({suite: BUILTIN, group, name, status: 'error', durationMs: mount.elapsedMs, message: mount.lost})
      return
    }
    let status: TestStatus = 'pass'
    let message = `after the power cut the memmap range holds no ${fs} filesystem`
    if (mount.exitCode === 0) {
      const exists = await this.guest(['/usr/bin/test', '-e', pool], {timeoutSec: 30, live: false})
      if (exists.exitCode === 0) [status, message] = ['fail', `${pool} survived the power cut on a memmap range, which is plain RAM: was the range really volatile?`]
      else message = `the ${fs} filesystem mounted, but the pool is gone`
      await this.guest(['pmemlab-suite', 'unmount', dir], {timeoutSec: 60, live: false})
    }
    this.phases.testsMs += mount.elapsedMs
    this.record({suite: BUILTIN, group, name, status, durationMs: mount.elapsedMs, message})
  }
}

/**
 * Deletes NVDIMM files of earlier runs that were interrupted (SIGINT ends pmemlab at once; SIGKILL
 * leaves everything): a directory under test-files no running VM uses, older than an hour.
 */
async function removeStaleTestFiles(): Promise<void> {
  const root = join(stateDir(), 'test-files')
  const names = await readdir(root).catch(() => [] as string[])
  if (names.length === 0) return
  const inUse = (await listRecords()).filter((r) => r.running).flatMap((r) => r.record.devices.map((d) => d.file ?? ''))
  for (const name of names) {
    const dir = join(root, name)
    const age = Date.now() - ((await stat(dir).catch(() => undefined))?.mtimeMs ?? Date.now())
    if (age < 3600_000 || inUse.some((file) => file.startsWith(`${dir}/`))) continue
    log.debug(`removing ${dir}, left by an interrupted pmemlab test`)
    await rm(dir, {recursive: true, force: true})
  }
}

function statusOf(a: TapAssert): TestStatus {
  if (a.directive?.kind === 'skip') return 'skip'
  if (a.directive?.kind === 'todo') return 'todo'
  return a.ok ? 'pass' : 'fail'
}

const WORD: Record<TestStatus, string> = {pass: 'ok', fail: 'FAIL', skip: 'skip', todo: 'todo', timeout: 'TIMEOUT', error: 'ERROR'}

/** Live progress on stderr: one line per result. */
function progressLine(status: TestStatus, name: string, ms: number, note?: string): void {
  const why = note && status !== 'pass' ? `: ${note}` : ''
  process.stderr.write(`    ${WORD[status].padEnd(7)} ${name} (${secondsText(ms)})${why}\n`)
}

function stepLine(text: string): void {
  log.info(text)
}



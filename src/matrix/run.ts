/**
 * src/matrix/ owns `pmemlab matrix`: the matrix file (schema.ts, kernels.ts), its cells
 * (cells.ts), their states (state.ts), records and merge (results.ts), reports (report.ts), the
 * CI listing (list.ts), and this module, which runs a plan on this machine.
 *
 * A run: the guest image is resolved (built) once; then each kernel goes its own way, all at
 * once. A kernel pmemlab builds is built first (builds queue one behind the other: each uses
 * every core); a failed build makes its cells `skip`. Then its cells run, each as a `pmemlab
 * test` process (attempt.ts, children.ts), retried while the flaky rule allows; with share_boots,
 * the cells that differ only in filesystem run in one (share.ts). The kernel's first boot is its
 * sanity gate: a kernel that cannot boot fails its other cells at once. Only when a version rule
 * waits for a version that only a boot can tell does a separate gate (gate.ts) boot it first.
 * Gates and cells share --jobs slots (slots.ts), gates first. Each
 * cell's record is written the moment it ends (outputs.ts), so an interrupted run keeps every
 * finished cell; the merge then marks the others. Progress is a live table on stderr (live.ts).
 */
import {copyFile, mkdir, readFile, rm, stat} from 'node:fs/promises'
import {availableParallelism, tmpdir} from 'node:os'
import {basename, join} from 'node:path'
import {writeFileAtomic} from '../core/cache.js'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {resolveImage} from '../image/resolve.js'
import {buildKernel, type BuildResult} from '../kernel/build.js'
import {probeHostCapacity} from '../lab/hostfit.js'
import {loadUserSuite} from '../suite/usersuite.js'
import {attemptFact, attemptFiles, cellCommand, parseTestReport, testArgs, type TestReport} from './attempt.js'
import {deviceKinds, excludedByVersion, exclusionReason, expandCells, findCell, kernelGroups, versionUndecided, type Cell, type DeviceKind} from './cells.js'
import {Children} from './children.js'
import {childError, gateArgs, gateFact, gateTopology} from './gate.js'
import {cellMemoryBytes, defaultJobs} from './jobs.js'
import {bootSpec, buildRequest, optionsReport} from './kernel.js'
import {kernelLabel, type MatrixKernel} from './kernels.js'
import {CELL_TONE, LiveTable, type LiveRow} from './live.js'
import {cellDir, kernelDir, matrixExitCode, mergeRecords, writeCell, writeMatrix} from './outputs.js'
import {cellRecord, cellTests, ranAttempt, tally, type CellRecord, type CellTest, type MatrixDocument} from './results.js'
import {planPath, type MatrixPlan} from './schema.js'
import {bootGroups, consoleRelease, partDocument, splitReport} from './share.js'
import {Slots} from './slots.js'
import {attemptVerdict, decideCell, wantsRetry, type AttemptFact, type BuildFact, type CellDecision, type GateFact} from './state.js'
import {isNamedSuite} from '../suite/names.js'

export interface MatrixRunOptions {
  plan: MatrixPlan
  /** Where cells/, kernels/, matrix.json... go. */
  output: string
  /** Cells at once; default: the file's jobs, else defaultJobs(). */
  jobs?: number
  /** Extra attempts of a cell that did not pass; default: the file's retries. */
  retries?: number
  /** Run this cell only (a CI job of a fanned-out matrix): no merged outputs. */
  cell?: string
  image?: string
}

export interface MatrixRunResult {
  /** The records of the cells that finished, in plan order. */
  records: CellRecord[]
  /** The merged document of a whole run (none for --cell, or when no cell finished). */
  document?: MatrixDocument
  files: string[]
  interrupted: boolean
  exitCode: number
}

/** Seconds a cell may take when the file does not say: generous, since tests have their own timeouts. */
export const DEFAULT_CELL_TIMEOUT_SEC = 3600
/** Seconds a gate may take: a boot (whose own timeout is 180 s) and three quick commands. */
const GATE_TIMEOUT_SEC = 600
const PRIORITY = {gate: 0, cell: 1}
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** What the run knows about one kernel: its build, gate and version, and its files to copy into each cell. */
interface KernelState {
  kernel: MatrixKernel
  build?: {fact: BuildFact; record: NonNullable<CellRecord['kernel']['build']>; result?: BuildResult}
  gate?: GateFact
  version?: string
  spec?: string
  /** Files in OUTPUT/kernels/NAME/ by artifact role. */
  files: Record<string, string>
}

/** Runs the plan (or one cell of it) here; bad input fails before anything starts. */
export async function runMatrix(options: MatrixRunOptions): Promise<MatrixRunResult> {
  const {plan} = options
  const expansion = expandCells(plan)
  const cells = options.cell === undefined ? expansion.cells : [findCell(expansion, options.cell, plan.file)]
  for (const suite of plan.suites) {
    if (isNamedSuite(suite.source)) continue
    // Checked as pmemlab test will, but named by where the file lists it.
    await loadUserSuite(planPath(plan, suite.source), 120).catch((error: unknown) => {
      if (!(error instanceof PmemlabError)) throw error
      throw new PmemlabError(`${suite.where}: suite ${suite.source}: ${error.message.replace(/^--suite \S+: /, '')}`, error.exitCode, error.hint)
    })
  }
  for (const kernel of new Set(cells.map((c) => c.kernel))) {
    if (kernel.kind === 'path' && !(await stat(planPath(plan, kernel.spec!)).catch(() => undefined))) {
      throw usageError(`${kernel.where}: kernel ${kernel.spec} does not exist (${planPath(plan, kernel.spec!)})`, 'paths are relative to the matrix file')
    }
  }
  let jobs = options.jobs ?? (plan.jobs === 'auto' ? undefined : plan.jobs)
  if (jobs === undefined) {
    const host = {cores: availableParallelism(), availableMemory: (await probeHostCapacity(tmpdir())).availableMemory}
    const chosen = defaultJobs(host, cells.map((c) => cellMemoryBytes(c.topology)))
    if (cells.length > 1) log.info(`jobs: ${chosen.why}`)
    jobs = chosen.jobs
  }
  return new MatrixRun(options, expansion.cells, cells, jobs).execute()
}

class MatrixRun {
  private readonly plan: MatrixPlan
  private readonly output: string
  private readonly image: string
  private readonly retries: number
  private readonly timeoutSec: number
  private readonly children = new Children()
  private readonly table = new LiveTable()
  private readonly slots: Slots
  private readonly abort = new AbortController()
  private readonly records = new Map<string, CellRecord>()
  private buildQueue: Promise<unknown> = Promise.resolve()
  private interrupted?: NodeJS.Signals

  constructor(
    private readonly options: MatrixRunOptions,
    private readonly planned: Cell[],
    private readonly cells: Cell[],
    jobs: number,
  ) {
    this.plan = options.plan
    this.output = options.output
    this.image = options.image ?? 'debian-12'
    this.retries = options.retries ?? options.plan.retries
    this.timeoutSec = options.plan.timeoutSec ?? DEFAULT_CELL_TIMEOUT_SEC
    this.slots = new Slots(jobs)
  }

  async execute(): Promise<MatrixRunResult> {
    const onSignal = (signal: NodeJS.Signals) => this.interrupt(signal)
    for (const signal of SIGNALS) process.on(signal, onSignal)
    try {
      await mkdir(this.output, {recursive: true})
      for (const cell of this.cells) await rm(cellDir(this.output, cell.id), {recursive: true, force: true})
      const groups = kernelGroups(this.cells)
      log.info(`matrix ${this.plan.name ?? this.plan.file}: ${this.cells.length} of ${this.planned.length} cells, ${groups.length} kernel${groups.length === 1 ? '' : 's'}, ${this.slots.size} at once`)
      // Once, before any cell: cells in parallel would each find it missing and build it.
      await resolveImage(this.image, {build: true, signal: this.abort.signal}).catch((error: unknown) => {
        if (!this.interrupted) throw error
      })
      if (!this.interrupted) {
        this.table.start()
        for (const group of groups) this.row({id: kernelRow(group.kernel), kind: 'kernel', status: 'waiting', tone: 'idle', note: kernelLabel(group.kernel)})
        for (const cell of this.cells) this.row({id: cell.id, kind: 'cell', status: 'waiting', tone: 'idle'})
        await Promise.all(groups.map((group) => this.kernel(group.kernel, group.cells, group.deviceKinds)))
      }
    } finally {
      this.table.stop()
      for (const signal of SIGNALS) process.off(signal, onSignal)
    }
    const records = this.cells.flatMap((cell) => this.records.get(cell.id) ?? [])
    const document = this.options.cell === undefined && records.length > 0 ? mergeRecords(this.output, records) : undefined
    const files = document ? await writeMatrix(this.output, document) : []
    const summary = document?.summary ?? tally(records.map((r) => r.state))
    const exitCode = this.interrupted ? ExitCode.interrupted : records.length === 0 ? ExitCode.qemuDied : matrixExitCode(summary)
    return {records, document, files, interrupted: this.interrupted !== undefined, exitCode}
  }

  private interrupt(signal: NodeJS.Signals): void {
    if (this.interrupted) {
      log.warn(`${signal} again: killing every pmemlab process of the matrix and its VMs`)
      this.children.killAll()
      process.exit(ExitCode.interrupted)
    }
    this.interrupted = signal
    log.warn(`${signal}: stopping the matrix (${this.children.count} VM${this.children.count === 1 ? '' : 's'} stopping; finished cells are kept)`)
    this.slots.cancel()
    this.children.stopAll()
    this.abort.abort(new PmemlabError(`interrupted by ${signal}`, ExitCode.interrupted))
  }

  private row(row: LiveRow): void {
    this.table.set(row)
  }

  /** One kernel's way: build, gate, cells. Whatever breaks in pmemlab itself is its cells' error, not the run's end. */
  private async kernel(kernel: MatrixKernel, cells: Cell[], kinds: DeviceKind[]): Promise<void> {
    const state: KernelState = {kernel, version: kernel.version, files: {}}
    try {
      await mkdir(kernelDir(this.output, kernel.name), {recursive: true})
      if (kernel.kind === 'build') {
        const queued = this.buildQueue.then(() => (this.interrupted ? undefined : this.build(state)))
        this.buildQueue = queued.catch(() => undefined)
        await queued
        if (this.interrupted || !state.build) return
        if (!state.build.fact.ok) {
          for (const cell of cells) await this.finish(cell, state, this.decide(state, cell, []))
          return
        }
      }
      let remaining = await this.excludeByVersion(cells, state)
      if (remaining.length === 0) return
      state.spec = bootSpec(kernel, this.plan, state.build?.result?.key)
      const share = this.plan.shareBoots === true
      let groups: Cell[][]
      if (remaining.some((cell) => versionUndecided(cell, state.version))) {
        // Only a boot can tell which cells a version rule leaves out: the gate boots it first.
        await this.slots.run(PRIORITY.gate, () => this.gate(state, remaining, kinds))
        if (this.interrupted || !state.gate) return
        remaining = await this.excludeByVersion(remaining, state)
        groups = bootGroups(remaining, share)
      } else {
        // The first boot is the gate: a kernel that cannot boot fails the other cells at once.
        const [first, ...rest] = bootGroups(remaining, share)
        this.row({id: kernelRow(kernel), kind: 'kernel', status: 'first boot', tone: 'active', note: `cell ${first.map((c) => c.id).join(', ')}`})
        const facts = await this.slots.run(PRIORITY.gate, () => this.boot(first, state))
        if (this.interrupted || !facts) return
        state.gate = this.firstBootGate(facts, first, state)
        groups = rest
      }
      const gate = state.gate
      const passed = (cell: Cell) => gate?.outcome === 'booted' && !(gate.missing ?? []).some((kind) => deviceKinds(cell.topology).includes(kind))
      await Promise.all(
        groups.map((group) => {
          const [going, stopped] = [group.filter(passed), group.filter((cell) => !passed(cell))]
          return Promise.all([
            ...stopped.map((cell) => this.finish(cell, state, this.decide(state, cell, []))),
            going.length > 0 ? this.slots.run(PRIORITY.cell, () => this.boot(going, state)) : undefined,
          ])
        }),
      )
    } catch (error) {
      if (this.interrupted) return
      const reason = `pmemlab broke while running it: ${error instanceof PmemlabError ? error.oneLine() : (error as Error).message}`
      log.error(`kernel ${kernel.name}: ${reason}`)
      for (const cell of cells.filter((c) => !this.records.has(c.id))) {
        await this.finish(cell, state, {state: 'error', reason, decidedBy: {phase: 'suite'}}).catch(() => undefined)
      }
    }
  }

  private decide(state: KernelState, cell: Cell, attempts: AttemptFact[]): CellDecision {
    return decideCell({build: state.build?.fact, gate: state.gate, deviceKinds: deviceKinds(cell.topology), attempts})
  }

  /** Cells a version rule excludes once the kernel's version is known are recorded as skip; the rest are returned. */
  private async excludeByVersion(cells: Cell[], state: KernelState): Promise<Cell[]> {
    const remaining: Cell[] = []
    for (const cell of cells) {
      const rule = excludedByVersion(cell, state.version)
      if (rule) await this.finish(cell, state, decideCell({excluded: exclusionReason(rule, state.version), deviceKinds: [], attempts: []}))
      else remaining.push(cell)
    }
    return remaining
  }

  private async build(state: KernelState): Promise<void> {
    const {kernel} = state
    const dir = kernelDir(this.output, kernel.name)
    const started = Date.now()
    this.row({id: kernelRow(kernel), kind: 'kernel', status: 'building', tone: 'active', note: kernelLabel(kernel), since: started})
    try {
      const result = await buildKernel(buildRequest(kernel.build!, this.plan))
      const durationMs = Date.now() - started
      state.build = {fact: {ok: true}, record: {ok: true, durationMs, cacheHit: result.cacheHit}, result}
      state.version = result.build.kernelVersion
      const dotConfig = await readFile(join(result.dir, result.build.files.config), 'utf8')
      await writeKernelFile(dir, 'options.txt', optionsReport(result.build, dotConfig, kernelLabel(kernel)))
      await writeKernelFile(dir, 'config', dotConfig)
      state.files = {'kernel-options': 'options.txt', 'kernel-config': 'config'}
      const note = `linux ${result.build.kernelVersion}, ${result.key.slice(0, 12)}`
      this.row({id: kernelRow(kernel), kind: 'kernel', status: result.cacheHit ? 'built (cached)' : 'built', tone: 'good', note, since: started, until: Date.now()})
    } catch (error) {
      if (this.interrupted) return
      const reason = error instanceof PmemlabError ? error.oneLine() : (error as Error).message
      const badInput = error instanceof PmemlabError && (error.exitCode === ExitCode.usage || error.exitCode === ExitCode.notFound)
      state.build = {fact: {ok: false, reason, ...(badInput ? {badInput} : {})}, record: {ok: false, reason, durationMs: Date.now() - started}}
      const makeLog = /the make output is in (\S+)$/.exec(reason)?.[1]
      if (makeLog && (await copyFile(makeLog, join(dir, 'build.log')).then(() => true, () => false))) state.files['build-log'] = 'build.log'
      this.row({id: kernelRow(kernel), kind: 'kernel', status: 'build failed', tone: 'bad', note: reason, since: started, until: Date.now()})
    }
  }

  private async gate(state: KernelState, cells: Cell[], kinds: DeviceKind[]): Promise<void> {
    const {kernel} = state
    const dir = kernelDir(this.output, kernel.name)
    const started = Date.now()
    this.row({id: kernelRow(kernel), kind: 'kernel', status: 'gate', tone: 'active', note: `booting with ${kinds.join(', ')}`, since: started})
    const topologies = [...new Map(cells.map((c) => [c.topology.name, c.topology])).values()]
    const files = {stdout: join(dir, 'gate.out'), stderr: join(dir, 'gate.log')}
    const child = await this.children.run(gateArgs(state.spec!, this.image, gateTopology(topologies, kinds)), files, {timeoutMs: GATE_TIMEOUT_SEC * 1000})
    if (child.interrupted) return
    const [stdout, stderr] = await Promise.all([readFile(files.stdout, 'utf8').catch(() => ''), readFile(files.stderr, 'utf8').catch(() => '')])
    const seen = child.timedOut
      ? {fact: {outcome: 'failed', reason: `the gate did not end within ${GATE_TIMEOUT_SEC} s`} as GateFact, keptLog: undefined, release: undefined}
      : gateFact({...child, stdout, stderr}, kinds)
    state.gate = seen.fact
    state.version = state.build?.result?.build.kernelVersion ?? seen.release ?? state.version
    state.files = {...state.files, 'gate-log': 'gate.log', 'gate-output': 'gate.out'}
    if (seen.keptLog && (await copyFile(seen.keptLog, join(dir, 'gate-console.log')).then(() => true, () => false))) state.files['gate-console'] = 'gate-console.log'
    const fact = seen.fact
    const [status, tone, note] =
      fact.outcome === 'booted'
        ? [fact.missing ? 'devices missing' : 'booted', fact.missing ? 'bad' : 'good', `${seen.release ?? '?'}${fact.missing ? `: no ${fact.missing.join(', ')}` : ''}`]
        : [fact.outcome === 'failed' ? 'gate failed' : 'gate error', 'bad', fact.reason]
    this.row({id: kernelRow(kernel), kind: 'kernel', status, tone: tone as LiveRow['tone'], note, since: started, until: Date.now()})
  }

  /**
   * The attempts of a boot group (one cell, or the cells of a shared boot), then each cell's
   * record; nothing for a cell whose attempt the interrupt cut short. A retry boots again with
   * the cells that want one only.
   */
  private async boot(group: Cell[], state: KernelState): Promise<Map<string, AttemptFact[]> | undefined> {
    const startedAt = new Date().toISOString()
    const started = Date.now()
    const facts = new Map(group.map((cell) => [cell.id, [] as AttemptFact[]]))
    const reports = new Map(group.map((cell) => [cell.id, [] as Array<TestReport | undefined>]))
    // By attempt: the boot it shared with other cells, if it did.
    const shared: Array<{cells: string[]; command: string[]} | undefined> = []
    let going = group
    for (let n = 1; going.length > 0 && !this.interrupted; n++) {
      for (const cell of going) this.row({id: cell.id, kind: 'cell', status: 'running', tone: 'active', note: n > 1 ? `attempt ${n} of ${this.retries + 1}` : going.length > 1 ? `one boot for ${going.map((c) => c.filesystem).join(', ')}` : undefined, since: started})
      const seen = await this.attempt(going, state, n)
      if (!seen) return undefined
      for (const cell of going) {
        facts.get(cell.id)!.push(seen.get(cell.id)!.fact)
        reports.get(cell.id)!.push(seen.get(cell.id)!.report)
      }
      shared.push(going.length > 1 ? {cells: going.map((c) => c.id), command: cellCommand(this.plan, going, state.spec!, this.image)} : undefined)
      going = going.filter((cell) => wantsRetry(facts.get(cell.id)!, this.retries))
    }
    if (this.interrupted) return undefined
    for (const cell of group) {
      const attempts = facts.get(cell.id)!
      const decision = this.decide(state, cell, attempts)
      const deciding = decision.decidedBy.attempt ?? attempts.length
      const report = reports.get(cell.id)![deciding - 1]
      const command = cellCommand(this.plan, [cell], state.spec!, this.image)
      // A cell's attempts are the group's first ones: a retry boots only the cells that want it.
      await this.finish(cell, state, decision, attempts, {startedAt, tests: report ? cellTests(report) : [], attempt: deciding, command, boots: shared.slice(0, attempts.length)})
    }
    return facts
  }

  /**
   * Attempt N of CELLS: one `pmemlab test` run. A cell on its own writes into its attempt
   * directory; a shared boot writes into the first cell's `attempt-N/boot/`, and each cell gets
   * its part of the report (share.ts) with the boot's console and log. Undefined when interrupted.
   */
  private async attempt(cells: Cell[], state: KernelState, n: number): Promise<Map<string, {fact: AttemptFact; report?: TestReport}> | undefined> {
    const files = attemptFiles(n)
    const at = (cell: Cell, file: string) => join(cellDir(this.output, cell.id), file)
    for (const cell of cells) await mkdir(at(cell, files.dir), {recursive: true})
    const runDir = join(at(cells[0], files.dir), ...(cells.length > 1 ? ['boot'] : []))
    const run = (file: keyof typeof files) => join(runDir, basename(files[file]))
    await mkdir(runDir, {recursive: true})
    const args = testArgs(cellCommand(this.plan, cells, state.spec!, this.image), {junit: run('junit'), console: run('console')})
    const timeoutSec = this.timeoutSec * cells.length
    const child = await this.children.run(args, {stdout: run('results'), stderr: run('log')}, {timeoutMs: timeoutSec * 1000})
    const [stdout, stderr] = await Promise.all([readFile(run('results'), 'utf8').catch(() => ''), readFile(run('log'), 'utf8').catch(() => '')])
    const report = parseTestReport(stdout)
    const fact = attemptFact(child, report, stderr, timeoutSec)
    if (!fact) return undefined
    // A VM that died at boot took its directory along; the lab kept its console log elsewhere.
    const kept = childError(stderr).keptLog
    if (kept && !(await nonEmpty(run('console')))) await copyFile(kept, run('console')).catch(() => undefined)
    // The booted kernel's own release (as the gate's uname -r) beats the coarser version of its spec.
    state.version = state.build?.result?.build.kernelVersion ?? consoleRelease(await readFile(run('console'), 'utf8').catch(() => '')) ?? state.version
    const seen = new Map<string, {fact: AttemptFact; report?: TestReport}>()
    if (cells.length === 1) return seen.set(cells[0].id, {fact, report})
    const parts = report && fact.outcome === 'ran' ? splitReport(report, cells.map((c) => c.filesystem)) : undefined
    const whole = parts ? (JSON.parse(stdout) as object) : undefined
    const ids = cells.map((c) => c.id)
    for (const cell of cells) {
      const part = parts?.get(cell.filesystem)
      if (part) await writeFileAtomic(at(cell, files.results), `${JSON.stringify(partDocument(whole!, part, cell.filesystem, ids), null, 2)}\n`)
      // A boot that ended without tests to split (it died, or never started) is every cell's as it is.
      for (const file of [...(part ? [] : ['results' as const]), 'console', 'log', 'junit'] as const) await copyFile(run(file), at(cell, files[file])).catch(() => undefined)
      seen.set(cell.id, part ? {fact: ranAttempt(part), report: part} : {fact, report})
    }
    return seen
  }

  /** The gate a kernel's first boot stands for: failed when the kernel could not boot there (on the last attempt), else booted. */
  private firstBootGate(facts: Map<string, AttemptFact[]>, first: Cell[], state: KernelState): GateFact {
    const atBoot = [...facts.values()].map((attempts) => attempts.at(-1)).find((fact) => fact?.outcome === 'died' && fact.atBoot)
    const [status, tone, gate]: [string, LiveRow['tone'], GateFact] =
      atBoot?.outcome === 'died'
        ? ['boot failed', 'bad', {outcome: 'failed', reason: `at the boot of cell ${first[0].id}: ${atBoot.reason}`, ...(atBoot.excerpt ? {excerpt: atBoot.excerpt} : {})}]
        : ['booted', 'good', {outcome: 'booted'}]
    this.row({id: kernelRow(state.kernel), kind: 'kernel', status, tone, note: gate.outcome === 'failed' ? gate.reason : `${state.version ?? '?'} (first boot: ${first.map((c) => c.id).join(', ')})`})
    return gate
  }

  /** Writes the cell's directory and record, and shows its state. */
  private async finish(cell: Cell, state: KernelState, decision: CellDecision, attempts: AttemptFact[] = [], ran?: {startedAt: string; tests: CellTest[]; attempt: number; command: string[]; boots: Array<{cells: string[]; command: string[]} | undefined>}): Promise<void> {
    if (this.records.has(cell.id)) return
    const dir = cellDir(this.output, cell.id)
    await mkdir(join(dir, 'kernel'), {recursive: true})
    const artifacts: Record<string, string> = {}
    for (const [role, file] of Object.entries(state.files)) {
      if (await copyFile(join(kernelDir(this.output, state.kernel.name), file), join(dir, 'kernel', file)).then(() => true, () => false)) artifacts[role] = `kernel/${file}`
    }
    if (ran) {
      const files = attemptFiles(ran.attempt)
      for (const role of ['results', 'junit', 'console', 'log'] as const) if (await nonEmpty(join(dir, files[role]))) artifacts[role] = files[role]
    }
    const record = cellRecord({
      plan: this.plan,
      planned: this.planned,
      cell,
      decision,
      kernelVersion: state.version,
      build: state.build?.record,
      attempts: attempts.map((a, i) => {
        const {verdict, reason} = attemptVerdict(a)
        const boot = ran?.boots[i]
        return {verdict, reason, durationMs: a.durationMs, ...(ran ? {command: ran.command} : {}), ...(boot ? {boot} : {})}
      }),
      startedAt: ran?.startedAt,
      tests: ran?.tests,
      artifacts,
    })
    await writeCell(dir, record)
    this.records.set(cell.id, record)
    const since = ran ? Date.parse(ran.startedAt) : Date.now()
    this.row({id: cell.id, kind: 'cell', status: decision.state, tone: CELL_TONE[decision.state], note: decision.reason, since, until: since + record.durationMs})
  }
}

const kernelRow = (kernel: MatrixKernel) => `kernel ${kernel.name}`

const nonEmpty = (path: string) => stat(path).then((s) => s.size > 0, () => false)

async function writeKernelFile(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, {recursive: true})
  await writeFileAtomic(join(dir, name), text)
}

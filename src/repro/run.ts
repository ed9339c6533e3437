/**
 * src/repro/ owns `pmemlab repro`: the reproducer file (schema.ts, with expect.ts and prepare.ts),
 * the judging of runs (verdict.ts), what a run does in the guest (guest.ts), the facts of a run
 * (facts.ts), the lab the runs share (setup.ts), the documents the series leaves (document.ts),
 * and this module, which runs the series on this machine.
 *
 * Once: the kernel is resolved or built, the image resolved (built when missing), and the lab's
 * plan checked (topology, host fit, QEMU), all before any VM boots. Then each run boots a fresh VM
 * with the file's lab through the suite's TestRun (suite/testrun.ts: the lab session, the console
 * watch, guest commands under timeout(1), a death named by the lab), prepares the devices with
 * the suite's own commands (prepare.ts preparationCommands), runs the script, gathers the run's
 * facts, stops the VM and is judged (verdict.ts), until verdict.ts's nextRun says to stop. Each
 * run's record, and the series' document so far, are written the moment the run ends. With
 * --with-vmlinux and a kernel that has one, each run's kernel traces are decoded with it first (trace.ts).
 * When the series ends (a verdict, or no run), bundle.ts packs the output directory into
 * OUTPUT/bundle.tar.gz; the reproducer's own files were copied under OUTPUT/input/ when it began.
 *
 * Ctrl-C: a VM running stops (LabSession's own handler), a kernel build stops (its own), an image
 * build is aborted; repro.json then says "interrupted", with the runs that finished (exit 130).
 */
import {randomBytes} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {copyFile, cp, link, mkdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {writeFileAtomic} from '../core/cache.js'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {sleep} from '../core/process.js'
import {resolveImage} from '../image/resolve.js'
import {loadImage, type ImageSpec} from '../image/spec.js'
import {symbolTools, type TraceDecoder} from '../kernel/symbolize.js'
import {VmDeathError} from '../lab/deaths.js'
import {topologyRequest} from '../lab/request.js'
import {planTopology} from '../lab/topology.js'
import {planVm, type LabRequest} from '../lab/vm.js'
import {TestRun} from '../suite/testrun.js'
import {KERNEL_DIR, REPRO_JSON, REPRO_JUNIT, REPRODUCER_COPY, reproDocument, reproJUnit, runFiles, runRecord, type ReproDocument, type RunLab, type RunRecord, type SeriesKernel} from './document.js'
import {bootFailed, labBroke, preparationProblem, scriptFacts, type GuestDeath} from './facts.js'
import {END_MARKER_WAIT_MS, endMarkerArgv, endMarkerShown, PREPARE_TIMEOUT_SEC, runMarkers, SCRIPT_PATH, scriptArgv, scriptConsole, scriptEnv, type Markers} from './guest.js'
import {BUILD_LOG_TAIL, BUILD_LOG_TAIL_LINES, BUNDLE_OUTPUTS, logTail} from './bundle-files.js'
import {copyInputs, qemuVersion, writeBundle, type BundleInputs} from './bundle.js'
import {preparationCommands} from './prepare.js'
import {decodeRun, traceDecoder, VMLINUX} from './trace.js'
import {parseRepro, type ReproPlan} from './schema.js'
import {imageChoice, kernelChoice, labRequestOf, prepareKernel} from './setup.js'
import {judgeRun, nextRun, runLimit, type Outcome, type RunFacts, type RunPolicy} from './verdict.js'

export interface ReproOptions {
  plan: ReproPlan
  /** --runs. */
  runs?: number
  untilReproduced: boolean
  /** --kernel: overrides the file's. */
  kernel?: string
  /** Where runs/, repro.json and junit.xml go. */
  output: string
  /** --with-vmlinux: the built kernel's vmlinux goes into kernel/ and so into the bundle. */
  withVmlinux?: boolean
  /** Told of each run as it ends (the command's progress line). */
  onRun?: (record: RunRecord, limit: number) => void
  /** Whether to run again after these outcomes, instead of verdict.ts nextRun (a bisect step stops once its verdict cannot change); never past --runs. */
  again?: (outcomes: readonly Outcome[]) => boolean
}

/** The series' document, and the bundle written from its output directory. */
export interface ReproResult {
  document: ReproDocument
  bundle: string
}

/** Reads and checks FILE (named in errors as given); a file that cannot be read is bad input (exit 2). */
export async function readReproFile(file: string): Promise<ReproPlan> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw usageError(`cannot read reproducer file ${file}: ${error.code === 'ENOENT' ? 'no such file' : (error.code ?? error.message)}`, 'give the path of a reproducer file, like examples/repro/warning-sysrq.yaml')
  })
  return parseRepro(text, file)
}

/** Runs the series; bad input fails before anything is built or booted. */
export async function runRepro(options: ReproOptions): Promise<ReproResult> {
  return new Series(options).execute()
}

/** Errors that are the user's to fix (or an interrupt): they end the command with their own code instead of giving no verdict. */
export const NOT_A_VERDICT = new Set<number>([ExitCode.usage, ExitCode.missingDependency, ExitCode.notFound, ExitCode.conflict, ExitCode.interrupted])
/** How a lab fails to start, as LabSession.start says it: a broken lab for that run, not the end of the series. */
export const BOOT_FAILURES = new Set<number>([ExitCode.bootFailed, ExitCode.guestDied, ExitCode.qemuDied])
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

class Series {
  private readonly plan: ReproPlan
  private readonly policy: RunPolicy
  private readonly started = Date.now()
  private readonly startedAt = new Date().toISOString()
  private readonly token = randomBytes(3).toString('hex')
  private readonly records: RunRecord[] = []
  private readonly abort = new AbortController()
  private kernel?: SeriesKernel
  /** With --with-vmlinux and a kernel that has one: decodes each run's traces. */
  private decoder?: TraceDecoder
  private inputs?: BundleInputs
  private image?: {name: string; hash: string}
  private request?: LabRequest
  private interrupted?: NodeJS.Signals
  private imageBuilding = false
  /** A VM being stopped by the series itself: an interrupt waits for it before exiting. */
  private stopping?: Promise<unknown>
  private readonly listenersBefore = new Map<NodeJS.Signals, number>()
  private readonly onSignal = (signal: NodeJS.Signals) => this.interrupt(signal)

  constructor(private readonly options: ReproOptions) {
    this.plan = options.plan
    this.policy = {runs: runLimit(options.runs, options.plan.run.runs, options.untilReproduced), untilReproduced: options.untilReproduced}
  }

  private at = (file: string) => join(this.options.output, file)

  async execute(): Promise<ReproResult> {
    for (const signal of SIGNALS) {
      this.listenersBefore.set(signal, process.listenerCount(signal))
      process.on(signal, this.onSignal)
    }
    try {
      void qemuVersion() // for the bundle: asked now, while the series has other work
      const image = imageChoice(this.plan)
      // A topology the lab would refuse is refused before a kernel build that may take an hour.
      planTopology(topologyRequest(labRequestOf(this.plan.lab, '', image).topology))
      // So is an image recipe that is missing or wrong (read and hashed here, not built; nothing written).
      await loadImage(image, {remember: false})
      await this.clearOutput()
      const setupError = await this.setup(image)
      while (setupError === undefined && this.again()) {
        const record = await this.run(this.records.length + 1)
        this.records.push(record)
        await this.write(this.document({running: true}))
        this.options.onRun?.(record, this.policy.runs)
      }
      const document = this.document({setupError})
      await this.write(document)
      const {runs, untilReproduced, kernel} = this.options
      const bundle = await writeBundle({output: this.options.output, document, inputs: this.inputs!, flags: {runs, untilReproduced, kernel}})
      return {document, bundle}
    } finally {
      for (const signal of SIGNALS) process.off(signal, this.onSignal)
    }
  }

  private again(): boolean {
    const outcomes = this.records.map((r) => r.outcome)
    if (this.options.again) return outcomes.length < this.policy.runs && this.options.again(outcomes)
    return nextRun(outcomes, this.policy).again
  }

  private document(state: {setupError?: string; running?: boolean; interrupted?: boolean} = {}): ReproDocument {
    return reproDocument({
      file: this.plan.file,
      policy: this.policy,
      runs: this.records,
      startedAt: this.startedAt,
      durationMs: Date.now() - this.started,
      kernel: this.kernel,
      image: this.image,
      ...state,
    })
  }

  private async write(document: ReproDocument): Promise<void> {
    await writeFileAtomic(this.at(REPRO_JUNIT), reproJUnit(document))
    await writeFileAtomic(this.at(REPRO_JSON), `${JSON.stringify(document, null, 2)}\n`)
  }

  /** The output directory without a previous series' files (others are left alone), and the reproducer in it. */
  private async clearOutput(): Promise<void> {
    await mkdir(this.options.output, {recursive: true})
    for (const name of ['runs', KERNEL_DIR, REPRO_JSON, REPRO_JUNIT, REPRODUCER_COPY, ...BUNDLE_OUTPUTS]) await rm(this.at(name), {recursive: true, force: true})
    await copyFile(this.plan.file, this.at(REPRODUCER_COPY))
    this.inputs = await copyInputs(this.plan, this.options.output)
  }

  /**
   * The kernel, the image and the checked plan of the lab. Returns the one line of a failure that
   * leaves no verdict (a kernel that does not build, an image that cannot be made); bad input,
   * a missing program and an interrupt are thrown.
   */
  private async setup(image: ImageSpec): Promise<string | undefined> {
    try {
      const {kernel, entryDir} = await prepareKernel(kernelChoice(this.plan, this.options.kernel))
      this.kernel = kernel
      if (entryDir) await this.keepKernelFiles(entryDir)
      if (this.options.withVmlinux) {
        if (!(await exists(this.at(VMLINUX)))) {
          log.warn('--with-vmlinux: this kernel has no vmlinux (only a kernel pmemlab built with debug info has one: debug: true, or CONFIG_DEBUG_INFO); the bundle goes without, and traces are not decoded')
        } else {
          // Missing nm or addr2line is exit 3 now, before any boot, not a surprise after the first run.
          await symbolTools()
          this.decoder = await traceDecoder(this.options.output)
        }
      }
      this.check()
      this.imageBuilding = true
      const info = await resolveImage(image, {build: true, signal: this.abort.signal})
      this.imageBuilding = false
      this.image = {name: info.name, hash: info.hash}
      this.request = labRequestOf(this.plan.lab, kernel.spec, image)
      // Everything but the boot: backing files, QEMU, the accelerator, room on the host.
      await planVm({...this.request, mode: 'command'}, {dryRun: true})
      return undefined
    } catch (error) {
      if (this.interrupted) throw error instanceof PmemlabError && error.exitCode === ExitCode.interrupted ? error : new PmemlabError('', ExitCode.interrupted)
      if (!(error instanceof PmemlabError) || NOT_A_VERDICT.has(error.exitCode)) throw error
      return error.oneLine()
    } finally {
      this.imageBuilding = false
    }
  }

  /** A kernel built here: its build.json, .config and patches, for whoever reads the results. */
  private async keepKernelFiles(entryDir: string): Promise<void> {
    const dir = this.at(KERNEL_DIR)
    await mkdir(dir, {recursive: true})
    await copyFile(join(entryDir, 'build.json'), join(dir, 'build.json'))
    await copyFile(join(entryDir, '.config'), join(dir, 'config'))
    if (await exists(join(entryDir, 'patches'))) await cp(join(entryDir, 'patches'), join(dir, 'patches'), {recursive: true})
    const buildLog = await readFile(join(entryDir, 'build.log'), 'utf8').catch(() => undefined)
    if (buildLog !== undefined) await writeFile(join(dir, BUILD_LOG_TAIL), logTail(buildLog, BUILD_LOG_TAIL_LINES))
    if (this.options.withVmlinux && (await exists(join(entryDir, 'vmlinux')))) {
      // A link costs nothing where the cache and the output share a file system; a copy elsewhere.
      await link(join(entryDir, 'vmlinux'), join(dir, 'vmlinux')).catch(() => copyFile(join(entryDir, 'vmlinux'), join(dir, 'vmlinux')))
    }
  }

  /** One run: boot, prepare, script, stop; then its record, written into runs/N/. */
  private async run(n: number): Promise<RunRecord> {
    const files = runFiles(n)
    await mkdir(this.at(files.dir), {recursive: true})
    await writeFile(this.at(files.console), '')
    const started = Date.now()
    const startedAt = new Date().toISOString()
    const testRun = new TestRun(
      {...this.request!, filesystems: [], suites: [], filters: [], timeoutSec: this.plan.expect.timeoutSec, keep: false, rawNamespaces: false, consoleLog: this.at(files.console), findingsAre: 'evidence'},
      [],
    )
    let facts: RunFacts
    let lab: RunLab | undefined
    try {
      facts = await this.attempt(testRun, n)
    } finally {
      const record = testRun.session?.record
      if (record) lab = {vm: record.name, accel: record.accel, qemuArgv: record.argv, kernelCmdline: record.kernelCmdline}
      // The console log goes into the run's directory before the VM's directory goes.
      this.stopping = (async () => {
        await testRun.finish().catch(() => undefined)
        await testRun.session?.stop(testRun.lost ? 5000 : 20_000).catch(() => undefined)
      })()
      await this.stopping
      this.stopping = undefined
    }
    this.check()
    const verdict = judgeRun(this.plan.expect, facts)
    const trace = await this.decode(n, facts.console, verdict.excerpt)
    const kept: Record<string, string> = {record: files.record}
    for (const role of ['console', 'stdout', 'stderr', 'decodedTrace'] as const) if (await exists(this.at(files[role]))) kept[role] = files[role]
    const record = runRecord({run: n, facts, verdict, startedAt, durationMs: Date.now() - started, lab, files: kept, trace})
    await writeFileAtomic(this.at(files.record), `${JSON.stringify(record, null, 2)}\n`)
    return record
  }

  /**
   * Run N's traces decoded, its failing reports written to decoded-trace.txt. A decoding that
   * fails (addr2line dies or takes too long) leaves the run as it is, with a warning: the verdict
   * stands without it.
   */
  private async decode(n: number, consoleText: string, excerpt: string[]): ReturnType<typeof decodeRun> {
    if (!this.decoder) return undefined
    try {
      const trace = await decodeRun(this.decoder, n, consoleText, excerpt)
      if (trace?.file !== undefined) await writeFile(this.at(runFiles(n).decodedTrace), trace.file)
      return trace
    } catch (error) {
      log.warn(`run ${n}: traces not decoded: ${error instanceof PmemlabError ? error.oneLine() : (error as Error).message}`)
      return undefined
    }
  }

  /** The facts of run N, from the boot to the end of its script. */
  private async attempt(testRun: TestRun, n: number): Promise<RunFacts> {
    try {
      await testRun.boot(`repro-${this.token}-${n}`)
    } catch (error) {
      if (!(error instanceof PmemlabError) || !BOOT_FAILURES.has(error.exitCode) || this.interrupted) throw error
      // The VM's directory went with the failed boot; the lab kept its console log elsewhere.
      const kept = /console log kept in (\S+)$/.exec(error.hint ?? '')?.[1]
      if (kept) await copyFile(kept, this.at(runFiles(n).console)).catch(() => undefined)
      return bootFailed(error.oneLine())
    }
    this.check()
    const devdax = new Map<string, string>()
    for (const {device, argv} of preparationCommands(this.plan.prepare)) {
      testRun.current = `preparation of ${device}`
      const step = await testRun.guest(argv, {timeoutSec: PREPARE_TIMEOUT_SEC, live: false})
      this.check()
      const problem = preparationProblem(device, step, deathOf(testRun))
      if (problem !== undefined) return labBroke(problem)
      devdax.set(device, step.stdout)
    }
    const session = testRun.session!
    try {
      await session.writeFile(SCRIPT_PATH, Buffer.from(this.plan.run.script), 0o755)
    } catch (error) {
      this.check()
      return labBroke(`the script could not be copied into the guest: ${error instanceof PmemlabError ? error.oneLine() : (error as Error).message}`)
    }
    const markers = runMarkers(n, this.token)
    const consoleLog = session.record.consoleLog
    const from = (await stat(consoleLog).catch(() => undefined))?.size ?? 0
    testRun.current = 'the script'
    const files = runFiles(n)
    const step = await testRun.guest(scriptArgv(markers), {timeoutSec: this.plan.expect.timeoutSec, env: scriptEnv(n, this.plan.prepare, devdax), live: false})
    this.check()
    await writeFile(this.at(files.stdout), step.stdout)
    await writeFile(this.at(files.stderr), step.stderr)
    if (!step.lost) await this.endMarker(testRun, markers, consoleLog, from)
    const log = await readFile(consoleLog).catch(() => Buffer.alloc(0))
    // A death just after the script's end (the end marker's command saw it) is still the run's.
    return scriptFacts(step, deathOf(testRun), scriptConsole(log, markers, from))
  }

  /** Writes the end marker and waits, a little, for the console to show it: what the script made the kernel print is then all there. */
  private async endMarker(testRun: TestRun, markers: Markers, consoleLog: string, from: number): Promise<void> {
    testRun.current = 'the end of the script'
    const step = await testRun.guest(endMarkerArgv(markers), {timeoutSec: 10, live: false})
    if (step.lost || step.exitCode !== 0) return
    const deadline = Date.now() + END_MARKER_WAIT_MS
    while (!endMarkerShown(await readFile(consoleLog).catch(() => Buffer.alloc(0)), markers, from) && Date.now() < deadline) await sleep(20)
  }

  /** After an interrupt, nothing more is started: the handlers that stop the VM or build end the process. */
  private check(): void {
    if (this.interrupted) throw new PmemlabError('', ExitCode.interrupted)
  }

  /**
   * Ctrl-C (or SIGTERM, SIGHUP). repro.json says so at once. A lab session or kernel build that is
   * running has its own handler, which stops it and ends the process (130); an image build is
   * aborted and its error ends the series; otherwise the process ends here, once a VM the series
   * is stopping has stopped.
   */
  private interrupt(signal: NodeJS.Signals): void {
    const again = this.interrupted !== undefined
    if (!again) {
      this.interrupted = signal
      this.abort.abort(new PmemlabError(`interrupted by ${signal}`, ExitCode.interrupted))
      try {
        writeFileSync(this.at(REPRO_JSON), `${JSON.stringify(this.document({interrupted: true}), null, 2)}\n`)
      } catch {
        // the output directory may not exist yet
      }
      if (this.imageBuilding) return
    }
    if (process.listenerCount(signal) > (this.listenersBefore.get(signal) ?? 0) + 1) return
    // A second signal does not wait for a VM being stopped: QEMU dies with pmemlab (its parent-death signal).
    if (again) process.exit(ExitCode.interrupted)
    log.warn(`${signal}: stopping the reproducer (${this.records.length} run${this.records.length === 1 ? '' : 's'} finished)`)
    void Promise.resolve(this.stopping).finally(() => process.exit(ExitCode.interrupted))
  }
}

/** How the guest ended, when the lab named its death. */
const deathOf = (testRun: TestRun): GuestDeath | undefined => (testRun.death instanceof VmDeathError ? testRun.death.end : undefined)

const exists = (path: string) => stat(path).then(() => true, () => false)

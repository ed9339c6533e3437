import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {closeSync, openSync} from 'node:fs'
import {mkdir, open, stat} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {decideAccel, probeHostVirt, type AccelDecision, type AccelRequest} from './accel.js'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {execStreaming, type ExecOptions} from './guest.js'
import {resolveImage} from '../image/resolve.js'
import type {ImageInfo} from '../image/store.js'
import {isRecipePath, loadImage, type ImageSpec} from '../image/spec.js'
import {resolveKernel, type BootKernel} from '../kernel/boot.js'
import {checkVmName, topologyRequest, type TopologyFlags} from './request.js'
import {log, shellQuote} from '../core/log.js'
import {GuestAgent, Qmp} from './monitor.js'
import {processAlive, signalProcess, sleep, waitForExit} from '../core/process.js'
import {plainBoot, quickFirmware} from './firmware.js'
import {buildQemuCommand, type QemuCommand} from './qemu.js'
import {humanSize} from '../core/size.js'
import {deathOf, endOf, keepDeadVm, markStopping, reapStale, settledExit, VmDeathError, type ExitWatch, type QemuExit} from './deaths.js'
import {claimVmDir, refuseTakenName, removeVmDir, vmDir, writeRecord, type VmDevice, type VmRecord} from './state.js'
import {checkHostFit, probeHostCapacity} from './hostfit.js'
import {planTopology, type Layout} from './topology.js'
import {qemuBinaryName, requireProgram, which} from '../core/which.js'

export type UpMode = 'detached' | 'interactive' | 'command'

/** What a lab is made of: the flags every lab-booting command shares (see flags.ts). */
export interface LabRequest {
  kernel: string
  image: ImageSpec
  topology: TopologyFlags
  cpus: number
  accel: AccelRequest
  append: string[]
  bootTimeoutMs: number
  /** Boot even when the plan exceeds the host's free memory or disk. */
  force?: boolean
}

export interface UpRequest extends LabRequest {
  name?: string
  mode: UpMode
  command?: string[]
}

/** Everything needed to start one VM, computed before anything is created on disk. */
export interface VmPlan {
  name: string
  dir: string
  accel: AccelDecision
  layout: Layout
  kernel: BootKernel
  image: ImageInfo
  qemu: QemuCommand
  devices: VmDevice[]
}

const DISPOSABLE = 'disposable'

/**
 * Validates the request and computes the exact QEMU command. Bad input fails here, before any
 * file, directory or process exists. With dryRun the guest image is not built.
 */
export async function planVm(request: UpRequest, options: {dryRun?: boolean} = {}): Promise<VmPlan> {
  const name = checkVmName(request.name ?? `lab-${randomBytes(2).toString('hex')}`)
  if (!options.dryRun) await refuseTakenName(name)
  if (!Number.isInteger(request.cpus) || request.cpus < 1) throw usageError(`invalid --cpus ${request.cpus}`, 'give a whole number of at least 1')
  const layout = planTopology(topologyRequest(request.topology))
  await checkUserFiles(layout)
  const binary = await requireProgram(qemuBinaryName(), 'qemu-system-x86')
  const accel = decideAccel(request.accel, await probeHostVirt())
  const dir = vmDir(name)
  if (!request.force) {
    // Before anything is built: a guest that cannot fit is refused while refusing is cheap.
    const disposableBytes = [...layout.nvdimms, ...layout.virtioPmem].filter((d) => d.file === undefined).reduce((sum, d) => sum + d.size, 0)
    const refusal = checkHostFit(layout, disposableBytes, await probeHostCapacity(await existingParent(dir)))
    if (refusal) throw refusal
  }
  // A user's recipe is input too: read and hashed (writing nothing) before the kernel's initramfs is made.
  if (typeof request.image !== 'string' || isRecipePath(request.image)) await loadImage(request.image, {remember: false})
  // Bad input is refused above, before anything is built for the kernel or the image.
  const kernel = await resolveKernel(request.kernel)
  const image = await resolveImage(request.image, {build: !options.dryRun, planned: options.dryRun})
  const disposable = (id: string) => join(dir, DISPOSABLE, `${id}.img`)
  const nvdimmFiles = layout.nvdimms.map((d) => d.file ?? disposable(d.id))
  const virtioPmemFiles = layout.virtioPmem.map((d) => d.file ?? disposable(d.id))
  const qemu = buildQemuCommand({
    binary,
    name,
    accel: accel.accel,
    cpus: request.cpus,
    layout,
    kernel: kernel.kernel,
    initrd: kernel.initrd,
    firmware: await quickFirmware(binary),
    quickBoot: !plainBoot(),
    kernelArgs: [
      ...kernel.kernelArgs,
      `pmemlab.name=${name}`,
      `pmemlab.console=${request.mode === 'interactive' ? 'poweroff' : 'respawn'}`,
      ...(request.append ?? []).flatMap((a) => a.split(/\s+/).filter(Boolean)),
    ],
    rootDisk: image.path,
    nvdimmFiles,
    virtioPmemFiles,
    runDir: dir,
    consoleLog: join(dir, 'console.log'),
    console: request.mode === 'interactive' ? 'stdio' : 'socket',
  })
  const devices: VmDevice[] = [
    ...layout.memmap.map((m, i) => ({kind: 'memmap' as const, id: `memmap${i}`, size: m.size, start: m.start, persistent: false})),
    ...layout.nvdimms.map((d, i) => ({kind: 'nvdimm' as const, id: d.id, size: d.size, file: nvdimmFiles[i], persistent: d.file !== undefined, ...(d.labelBytes > 0 ? {labelBytes: d.labelBytes} : {})})),
    ...layout.virtioPmem.map((d, i) => ({kind: 'virtio-pmem' as const, id: d.id, size: d.size, file: virtioPmemFiles[i], persistent: d.file !== undefined})),
  ]
  return {name, dir, accel, layout, kernel, image, qemu, devices}
}

/**
 * A user's backing file: its directory must exist (pmemlab creates no directories it would not
 * remove), and an existing file must have the size asked for, because QEMU would refuse a smaller
 * one and silently use only part of a larger one.
 */
async function checkUserFiles(layout: Layout): Promise<void> {
  const files = [...layout.nvdimms, ...layout.virtioPmem].filter((d) => d.file !== undefined)
  const seen = new Set<string>()
  for (const device of files) {
    const file = resolve(device.file!)
    if (seen.has(file)) throw usageError(`backing file ${file} is given twice`, 'give each NVDIMM and virtio-pmem device its own file')
    seen.add(file)
    const dirStat = await stat(dirname(file)).catch(() => undefined)
    if (!dirStat?.isDirectory()) throw usageError(`the directory of backing file ${file} does not exist`, `create it first: mkdir -p ${dirname(file)}`)
    const fileStat = await stat(file).catch(() => undefined)
    if (fileStat && !fileStat.isFile()) throw usageError(`backing file ${file} is not a regular file`, 'name a regular file (it is created when missing)')
    if (fileStat && fileStat.size !== device.size) {
      const pmem = 'pmemBytes' in device ? (device.pmemBytes as number) : device.size
      const label = device.size - pmem
      throw usageError(
        `backing file ${file} holds ${humanSize(fileStat.size)} but ${humanSize(device.size)} was asked for${label ? ` (${humanSize(pmem)} of pmem and ${humanSize(label)} for the label area)` : ''}`,
        label ? `name a new file, or one made with the same SIZE,labels` : `ask for the file's size (${fileStat.size} bytes), or name a new file`,
      )
    }
    device.file = file
  }
  for (const record of await reapStale()) {
    const clash = record.devices.find((d) => d.persistent && d.file && seen.has(d.file))
    if (clash) {
      throw new PmemlabError(`backing file ${clash.file} is in use by VM "${record.name}"`, ExitCode.conflict, `stop it first: pmemlab down ${record.name}`)
    }
  }
}

/** The one command that makes what the QEMU argv needs: its directory, where QEMU creates the rest. */
export const prepareArgv = (plan: VmPlan) => ['mkdir', '-p', '-m', '0700', join(plan.dir, DISPOSABLE)]

/** A script a user can paste into a shell: the mkdir the argv needs, then the exact QEMU command. */
export function dryRunText(plan: VmPlan): string {
  // A PVH copy is of the bzImage as it is now: a pasted command would boot it after a rebuild too.
  const pvh = plan.kernel.pvhOf ? `# -kernel is the PVH vmlinux pmemlab took out of ${plan.kernel.pvhOf} as it is now: run --dry-run again after rebuilding it\n` : ''
  return `${shellQuote(prepareArgv(plan))}\n${shellQuote([plan.qemu.binary, ...plan.qemu.argv])}\n# kernel command line: ${plan.qemu.kernelCmdline}\n${pvh}`
}

/** The nearest directory of path that exists (the state directory may not be made yet). */
async function existingParent(path: string): Promise<string> {
  for (let dir = path; ; dir = dirname(dir)) {
    if ((await stat(dir).catch(() => undefined))?.isDirectory() || dir === dirname(dir)) return dir
  }
}

/** A started VM: its record, and for foreground modes the QEMU child. */
export interface StartedVm {
  record: VmRecord
  child?: ChildProcess
}

/** Creates the VM's directory and backing files and starts QEMU. */
async function startVm(plan: VmPlan, mode: UpMode): Promise<StartedVm> {
  await claimVmDir(plan.name)
  try {
    await mkdir(join(plan.dir, DISPOSABLE), {mode: 0o700})
    for (const device of plan.devices) if (device.file) await createSparse(device.file, device.size)
    const qemuLog = openSync(join(plan.dir, 'qemu.log'), 'w', 0o600)
    let child: ChildProcess
    try {
      // Foreground QEMU must not outlive pmemlab even if pmemlab is killed with SIGKILL:
      // setpriv asks the kernel to kill it when its parent dies (QEMU 7.2 has no such option).
      const setpriv = mode === 'detached' ? undefined : await which('setpriv')
      const [file, args] = setpriv
        ? [setpriv, ['--pdeathsig', 'KILL', '--', plan.qemu.binary, ...plan.qemu.argv]]
        : [plan.qemu.binary, plan.qemu.argv]
      log.debug(`$ ${shellQuote([file, ...args])}`)
      child = spawn(file, args, {
        detached: mode === 'detached',
        stdio: [mode === 'interactive' ? 'inherit' : 'ignore', mode === 'interactive' ? 'inherit' : 'ignore', qemuLog],
      })
    } finally {
      closeSync(qemuLog)
    }
    await new Promise<void>((resolveSpawn, rejectSpawn) => {
      child.once('spawn', resolveSpawn)
      child.once('error', rejectSpawn)
    })
    const record: VmRecord = {
      name: plan.name,
      pid: child.pid!,
      mode: mode === 'detached' ? 'detached' : 'foreground',
      owner: mode === 'detached' ? undefined : process.pid,
      createdAt: new Date().toISOString(),
      accel: plan.accel.accel,
      machine: plan.layout.machine,
      kernel: {spec: plan.kernel.spec, path: plan.kernel.kernel, version: plan.kernel.version},
      image: {name: plan.image.name, hash: plan.image.hash},
      dir: plan.dir,
      sockets: plan.qemu.sockets,
      consoleLog: join(plan.dir, 'console.log'),
      devices: plan.devices,
      argv: [plan.qemu.binary, ...plan.qemu.argv],
      kernelCmdline: plan.qemu.kernelCmdline,
    }
    await writeRecord(record)
    if (mode === 'detached') child.unref()
    return {record, child: mode === 'detached' ? undefined : child}
  } catch (error) {
    await removeVmDir(plan.dir)
    throw error
  }
}

/** A sparse file of the given size; an existing file (a user's, already size-checked) is left alone. */
async function createSparse(file: string, size: number): Promise<void> {
  const handle = await open(file, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') return undefined
    throw error
  })
  if (!handle) return
  try {
    await handle.truncate(size)
  } finally {
    await handle.close()
  }
}

/** Watches a foreground QEMU child for its exit; a detached QEMU (no child) is not watched. */
export function watchExit(child: ChildProcess | undefined): ExitWatch | undefined {
  if (!child) return undefined
  let exit: QemuExit | undefined
  child.once('exit', (code, signal) => (exit = {code, signal}))
  return () => exit
}

/**
 * Waits until the guest agent answers. Fails fast when QEMU exits and after the boot timeout, so a
 * hung guest never hangs pmemlab; either way the failure names what happened (a panic, QEMU's own
 * error, a silent hang) with the console excerpt, and the logs are kept.
 */
export async function waitForAgent(record: VmRecord, timeoutMs: number, exitOf?: ExitWatch): Promise<GuestAgent> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!(await processAlive(record.pid))) throw await bootFailure(record, {phase: 'boot', exit: await settledExit(exitOf)})
    if (Date.now() > deadline) throw await bootFailure(record, {phase: 'boot', hungAfterMs: timeoutMs})
    try {
      // One connection for the whole boot: the agent answers the moment it starts (see
      // GuestAgent.connect). It ends early when QEMU exits (the socket closes) and then the
      // loop says why; before QEMU has made the socket, connecting fails at once.
      return await GuestAgent.connect(record.sockets.qga, Math.max(200, deadline - Date.now()), {resyncMs: AGENT_RESYNC_MS})
    } catch {
      await sleep(AGENT_RETRY_MS)
    }
  }
}

/** How often a booting guest is asked again whether its agent is up, and how soon a failed connection is retried. */
export const AGENT_RESYNC_MS = 1000
export const AGENT_RETRY_MS = 50

/** A boot that failed, with the lab's account of it (a caller that judges boots reads whether the kernel is to blame). */
async function bootFailure(record: VmRecord, facts: Parameters<typeof keepDeadVm>[1]): Promise<PmemlabError> {
  const death = await keepDeadVm(record, facts)
  return new VmDeathError(`VM "${record.name}" failed to boot: ${death.reason}`, endOf(death), `console log kept in ${death.consoleLog}`)
}

/**
 * Stops a VM. One with a backing file the user named powers off through the agent first (the
 * guest syncs and unmounts, so the file holds what the guest wrote), then QMP quit, then
 * SIGKILL, each after a timeout. One where nothing outlives it (the root disk is a snapshot, every
 * pmem file disposable) is told to quit at once: a power-off would cost a second of guest
 * shutdown to flush writes that are thrown away. The VM's directory, with every disposable
 * file, goes last.
 */
export async function stopVm(record: VmRecord, timeoutMs = 20_000): Promise<StopHow> {
  const alive = () => processAlive(record.pid, record.sockets.qmp)
  await markStopping(record)
  let how: StopHow = 'gone'
  if (await alive()) {
    how = 'graceful'
    // A zero grace period (interrupts, failed boots) goes straight to QMP quit.
    const powerOff = timeoutMs > 0 && record.devices.some((d) => d.persistent)
    const agent = powerOff ? await GuestAgent.connect(record.sockets.qga, 3000).catch(() => undefined) : undefined
    if (agent) {
      // guest-shutdown has no reply on success: the guest is gone before it could send one.
      await agent.execute('guest-shutdown', {mode: 'powerdown'}, 2000).catch(() => undefined)
      agent.close()
    }
    if (!agent || !(await waitForExit(record.pid, timeoutMs, record.sockets.qmp))) {
      how = powerOff ? 'forced' : 'quit'
      const qmp = await Qmp.connect(record.sockets.qmp, 3000).catch(() => undefined)
      await qmp?.execute('quit', undefined, 3000).catch(() => undefined)
      qmp?.close()
      // No QMP to tell (a QEMU stopped in its first moments has not opened it yet): kill it at
      // once rather than wait 5 s for an exit nothing asked for.
      if (!qmp || !(await waitForExit(record.pid, 5000, record.sockets.qmp))) {
        how = 'killed'
        signalProcess(record.pid, 'SIGKILL')
        await waitForExit(record.pid, 5000, record.sockets.qmp)
      }
    }
  }
  await removeVmDir(record.dir)
  return how
}

/** How stopVm ended a VM: powered off, quit (nothing outlived it, or no power-off was asked for), forced after the power-off timed out, killed, or already gone. */
export type StopHow = 'graceful' | 'quit' | 'forced' | 'killed' | 'gone'

export interface UpResult {
  record: VmRecord
  exitCode: number
}

/**
 * A VM owned by this pmemlab process, for `up` and the commands built on it (test, matrix):
 * booted until the guest agent answers, torn down on SIGINT/SIGTERM/SIGHUP and on stop().
 */
export class LabSession {
  private done = false
  private interrupted = false
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.interrupted = true
    log.warn(`${signal}: stopping ${this.record.name}`)
    void this.stop(0).finally(() => process.exit(ExitCode.interrupted))
  }

  private constructor(
    readonly record: VmRecord,
    readonly agent: GuestAgent,
    private readonly exitOf: ExitWatch | undefined,
  ) {}

  /** Boots; detached VMs are started outside pmemlab's process group so they can outlive it. */
  static async start(request: UpRequest): Promise<LabSession> {
    const plan = await planVm(request)
    announce(plan, request)
    // Handled from before QEMU starts: a signal while its record is being written (vm.json is
    // there, startVm has not returned) would otherwise kill pmemlab with the VM's directory left.
    let started: StartedVm | undefined
    let pending: NodeJS.Signals | undefined
    const teardown = (signal: NodeJS.Signals) => {
      if (!started) {
        pending = signal
        return
      }
      log.warn(`${signal}: stopping ${started.record.name}`)
      void stopVm(started.record, 0).finally(() => process.exit(ExitCode.interrupted))
    }
    for (const signal of SIGNALS) process.on(signal, teardown)
    try {
      started = await startVm(plan, request.mode)
    } catch (error) {
      for (const signal of SIGNALS) process.off(signal, teardown)
      if (pending) process.exit(ExitCode.interrupted)
      throw error
    }
    const {record, child} = started
    const exitOf = watchExit(child)
    if (pending) {
      teardown(pending)
      return new Promise<never>(() => {}) // the teardown ends the process (130)
    }
    try {
      const session = new LabSession(record, await waitForAgent(record, request.bootTimeoutMs, exitOf), exitOf)
      log.debug(`the guest agent of ${record.name} answers`)
      for (const signal of SIGNALS) process.on(signal, session.onSignal)
      return session
    } catch (error) {
      await stopVm(record, 0)
      throw error
    } finally {
      for (const signal of SIGNALS) process.off(signal, teardown)
    }
  }

  /**
   * Runs a command in the guest with live output; resolves to its exit status. When the VM dies
   * under it, the error says how (see deathOf).
   */
  async exec(argv: string[], options: Partial<ExecOptions> = {}): Promise<number> {
    try {
      return await execStreaming(this.agent, argv, {stdout: process.stdout, stderr: process.stderr, ...options})
    } catch (error) {
      throw await this.explain(error)
    }
  }

  /**
   * The error to report for a failed exchange with the guest: an interrupt is not an error of its
   * own (the signal handler says what happened), a dead or hung VM is named, anything else stays.
   */
  async explain(error: unknown): Promise<unknown> {
    if (this.interrupted) return new PmemlabError('', ExitCode.interrupted)
    if (this.done || error instanceof PmemlabError) return error
    return (await deathOf(this.record, this.exitOf, error)) ?? error
  }

  /** Copies a file into the guest through the agent. */
  async writeFile(guestPath: string, content: Buffer, mode = 0o644): Promise<void> {
    const handle = await this.agent.execute<number>('guest-file-open', {path: guestPath, mode: 'w'})
    try {
      for (let offset = 0; offset < content.length || offset === 0; offset += FILE_CHUNK) {
        const chunk = content.subarray(offset, offset + FILE_CHUNK)
        await this.agent.execute('guest-file-write', {handle, 'buf-b64': chunk.toString('base64')})
        if (content.length === 0) break
      }
    } finally {
      await this.agent.execute('guest-file-close', {handle})
    }
    await this.agent.run(['/bin/chmod', mode.toString(8), guestPath])
  }

  /** Pulls the plug: QMP quit, with no guest flush or unmount (the power-loss case). */
  async powerCut(): Promise<void> {
    const qmp = await Qmp.connect(this.record.sockets.qmp, 3000)
    await qmp.execute('quit', undefined, 3000).catch(() => undefined)
    qmp.close()
    await waitForExit(this.record.pid, 10_000, this.record.sockets.qmp)
    await this.stop(0)
  }

  /**
   * Leaves the VM running (for --keep): it is then managed with pmemlab console/exec/down.
   * Only a VM started in 'detached' mode can outlive pmemlab: the others die with it by design.
   */
  async release(): Promise<void> {
    if (this.record.mode !== 'detached') throw new PmemlabError(`internal error: VM "${this.record.name}" was not started detached and cannot be kept`, ExitCode.failure)
    this.finish()
    await writeRecord({...this.record, mode: 'detached'})
  }

  /** Powers off (gracefully when gracePeriodMs > 0) and deletes the VM's directory. */
  async stop(gracePeriodMs = 20_000): Promise<void> {
    if (!this.finish()) return
    await stopVm(this.record, gracePeriodMs)
  }

  private finish(): boolean {
    if (this.done) return false
    this.done = true
    this.agent.close()
    for (const signal of SIGNALS) process.off(signal, this.onSignal)
    return true
  }
}

/** Says once which accelerator runs the VM, and why TCG when the user left the choice to pmemlab. */
function announce(plan: VmPlan, request: UpRequest): void {
  const why = plan.accel.accel === 'tcg' && request.accel === 'auto' ? `: ${plan.accel.reason}` : ''
  log.info(`starting ${plan.name} (${plan.accel.accel}${why})`)
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
const FILE_CHUNK = 48 * 1024

/**
 * `pmemlab up`. detached: returns once the agent answers. command: runs the command in the guest,
 * then powers off. interactive: the console is the user's terminal until the guest powers off.
 * In every mode an interrupt or error tears down QEMU and the VM directory.
 */
export async function up(request: UpRequest): Promise<UpResult> {
  if (request.mode === 'interactive') return upInteractive(request)
  const session = await LabSession.start(request)
  if (request.mode === 'detached') {
    await session.release()
    return {record: session.record, exitCode: 0}
  }
  try {
    return {record: session.record, exitCode: await session.exec(request.command!)}
  } finally {
    await session.stop()
  }
}

async function upInteractive(request: UpRequest): Promise<UpResult> {
  const plan = await planVm(request)
  announce(plan, request)
  const {record, child} = await startVm(plan, 'interactive')
  const onSignal = (signal: NodeJS.Signals) => {
    log.warn(`${signal}: stopping ${record.name}`)
    signalProcess(record.pid, 'SIGKILL')
    void stopVm(record, 0).finally(() => process.exit(ExitCode.interrupted))
  }
  for (const signal of SIGNALS) process.on(signal, onSignal)
  try {
    log.info(`console of ${record.name}: type "exit" or press Ctrl-A X to power off; log in ${record.consoleLog}`)
    const code = await new Promise<number>((resolveExit) => child!.once('exit', (c) => resolveExit(c ?? 1)))
    return {record, exitCode: code === 0 ? 0 : ExitCode.failure}
  } finally {
    for (const signal of SIGNALS) process.off(signal, onSignal)
    await stopVm(record, 0)
  }
}

/**
 * The make stage of a kernel build, always out of tree (O=): make runs in its own process group
 * so that Ctrl-C stops all of it (and nothing is cached), its output goes into the build log,
 * progress (objects compiled) to stderr; CC is ccache gcc when ccache is installed.
 */
import {createWriteStream, readFileSync, rmSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {join} from 'node:path'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {isVerbose, log, Progress, shellQuote} from '../core/log.js'
import {requireProgram, which} from '../core/which.js'
import type {KernelBase} from './key.js'
import {listKernels} from './store.js'

/** 4.2 s, 42 s, 3 min 5 s: for the log lines. */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000)
  return seconds < 60 ? `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`
}

// ------------------------------------------------------------------------------------------------
// Interrupts: Ctrl-C stops make (its whole process group) and every temp file goes
// ------------------------------------------------------------------------------------------------

export class Interrupt {
  readonly controller = new AbortController()
  /** Files holding the pids of running makes (each leads its own process group). */
  readonly pidFiles = new Set<string>()
  signal?: NodeJS.Signals
  private readonly handler = (signal: NodeJS.Signals) => this.fire(signal)

  get aborted() {
    return this.controller.signal
  }

  install(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, this.handler)
  }

  uninstall(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, this.handler)
  }

  private fire(signal: NodeJS.Signals): void {
    if (this.signal) {
      // A second Ctrl-C: stop now.
      this.killAll('SIGKILL')
      process.exit(ExitCode.interrupted)
    }
    this.signal = signal
    log.warn(`${signal}: stopping the kernel build`)
    this.killAll('SIGTERM')
    setTimeout(() => this.killAll('SIGKILL'), 5000).unref()
    this.controller.abort(new PmemlabError(`interrupted by ${signal}: nothing was cached`, ExitCode.interrupted))
  }

  killAll(signal: NodeJS.Signals): void {
    for (const file of this.pidFiles) {
      try {
        const pid = Number(readFileSync(file, 'utf8').trim())
        if (pid > 0) killGroup(pid, signal)
      } catch {
        // not started yet, or gone
      }
    }
  }

  /** Throws the interrupt error if a signal came in. */
  check(): void {
    if (this.signal) throw this.controller.signal.reason as PmemlabError
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // gone
  }
}

// ------------------------------------------------------------------------------------------------
// make
// ------------------------------------------------------------------------------------------------

export interface Toolchain {
  compiler: string
  ccache: boolean
  /** CC=... HOSTCC=... for make. */
  makeVars: string[]
}

export async function toolchain(): Promise<Toolchain> {
  const gcc = await requireProgram('gcc', 'build-essential')
  await requireProgram('make', 'build-essential')
  const compiler = String((await run(gcc, ['--version'], {stdin: 'ignore'})).stdout).split('\n')[0].trim()
  const ccache = (await which('ccache')) !== undefined && process.env.PMEMLAB_CCACHE !== '0'
  return {compiler, ccache, makeVars: ccache ? ['CC=ccache gcc', 'HOSTCC=ccache gcc'] : []}
}

const OBJECT_LINE = /^\s+(CC|LD|AS)\s/

/**
 * Runs make in its own process group (so that Ctrl-C can stop all of it: a small sh records
 * make's pid, which is also its group id, then execs make), all output into the log.
 * onLine sees every line (progress counting).
 */
export async function runMake(what: string, args: string[], logFile: string, pidFile: string, interrupt: Interrupt, onLine?: (line: string) => void): Promise<void> {
  interrupt.check()
  const logStream = createWriteStream(logFile, {flags: 'a'})
  logStream.write(`$ ${shellQuote(['make', ...args])}\n`)
  log.debug(`$ ${shellQuote(['make', ...args])}`)
  const tail: string[] = []
  const onOutput = function* (line: unknown) {
    const text = String(line)
    logStream.write(`${text}\n`)
    tail.push(text)
    if (tail.length > 40) tail.shift()
    if (isVerbose()) process.stderr.write(`  ${text}\n`)
    onLine?.(text)
  }
  interrupt.pidFiles.add(pidFile)
  let result
  try {
    result = await run('sh', ['-c', 'echo $$ >"$0" && exec "$@"', pidFile, 'make', ...args], {
      stdin: 'ignore',
      stdout: onOutput,
      stderr: onOutput,
      buffer: false,
      reject: false,
      detached: true,
      env: {LC_ALL: 'C'},
      cancelSignal: interrupt.aborted,
    })
  } finally {
    interrupt.pidFiles.delete(pidFile)
    rmSync(pidFile, {force: true})
    await new Promise<void>((done) => logStream.end(done))
  }
  interrupt.check()
  if (result.exitCode !== 0) {
    const errors = tail.filter((line) => /error|Error \d|\*\*\*/.test(line)).slice(-8)
    for (const line of errors.length > 0 ? errors : tail.slice(-8)) process.stderr.write(`  ${line}\n`)
    throw new PmemlabError(`make ${what} failed (${result.exitCode === undefined ? result.signal ?? 'killed' : `exit code ${result.exitCode}`})`, ExitCode.failure)
  }
}

/**
 * The object count of the largest earlier build like this one, for the progress estimate: the
 * largest, since an incremental build in a reused O= directory (a bisect step) records only the
 * few objects it compiled, and a full build after it would otherwise show "11/12 objects".
 */
async function estimateObjects(base: KernelBase, debug: boolean): Promise<number> {
  const counts = (await listKernels()).filter((entry) => entry.build.base === base && entry.build.debug === debug).map((entry) => entry.build.objects)
  const largest = Math.max(0, ...counts)
  if (largest > 0) return largest
  const estimate = base === 'tinyconfig' ? 1500 : 3200
  return debug ? Math.round(estimate * 1.15) : estimate
}

/** Where one build's makes run: the shared arguments, the log, the pid file, the interrupt. */
export interface MakeContext {
  /** -C <source> O=<out dir> and the toolchain's CC/HOSTCC. */
  makeBase: string[]
  /** Every make appends its output here. */
  logFile: string
  pidFile: string
  interrupt: Interrupt
}

export interface CompileRequest {
  /** The configured .config: modules are built when it has an =m. */
  finalConfig: string
  base: KernelBase
  debug: boolean
  jobs?: number
  ccache: boolean
  /** The entry being assembled: modules_install writes into its modules/. */
  entryDir: string
}

export interface Compiled {
  modules: boolean
  jobs: number
  objects: number
  buildMs: number
}

/** Builds bzImage (and the modules, installed into the entry, when the .config has any), counting objects for the progress line. */
export async function compileKernel(request: CompileRequest, make: MakeContext): Promise<Compiled> {
  const {makeBase, logFile, pidFile, interrupt} = make
  const modules = /^CONFIG_[A-Za-z0-9_]+=m$/m.test(request.finalConfig)
  const jobs = request.jobs ?? availableParallelism()
  const estimate = await estimateObjects(request.base, request.debug)
  const progress = new Progress('building')
  let objects = 0
  const buildStarted = Date.now()
  log.info(`building bzImage${modules ? ' and modules' : ''} with ${jobs} job${jobs === 1 ? '' : 's'}${request.ccache ? ' and ccache' : ''} (make output, until it moves into the entry: ${logFile})`)
  try {
    await runMake(modules ? 'bzImage modules' : 'bzImage', [...makeBase, `-j${jobs}`, 'bzImage', ...(modules ? ['modules'] : [])], logFile, pidFile, interrupt, (line) => {
      if (!OBJECT_LINE.test(line)) return
      objects++
      const shown = Math.min(objects, estimate)
      const fraction = Math.min(0.99, objects / estimate)
      progress.update(objects > estimate ? `${objects} objects (more than the ${estimate} expected)` : `${shown}/${estimate} objects (${Math.floor(fraction * 100)}%)`, fraction)
    })
  } finally {
    progress.done()
  }
  if (modules) await runMake('modules_install', [...makeBase, `INSTALL_MOD_PATH=${join(request.entryDir, 'modules')}`, 'INSTALL_MOD_STRIP=1', 'modules_install'], logFile, pidFile, interrupt)
  return {modules, jobs, objects, buildMs: Date.now() - buildStarted}
}

/**
 * Ctrl-C (SIGINT, SIGTERM, SIGHUP) during a bisect. What is under way stops by its own handler:
 * a kernel build kills its make (kernel/make.ts Interrupt), a VM is stopped (lab LabSession, the
 * repro runner), and each of them ends the process with 130. Between them (git, writing the
 * state, a VM being stopped by the bisect itself, an image build) this handler does: it waits for
 * a VM being stopped, aborts an image build, and otherwise ends the process at once. The state
 * file is consistent at any instant (it is written whole, by rename, before git is told), so
 * `pmemlab bisect --resume` goes on from there.
 */
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log} from '../core/log.js'

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

export class BisectInterrupt {
  signal?: NodeJS.Signals
  private readonly controller = new AbortController()
  private readonly before = new Map<NodeJS.Signals, number>()
  /** Work the process must not end under (a VM stopping): an interrupt waits for it. */
  private shielded?: Promise<unknown>
  /** Work that stops by the abort signal and ends the bisect with its error (an image build). */
  private abortable = 0
  private readonly handler = (signal: NodeJS.Signals) => this.fire(signal)

  /** STOPPING: what is said on the first signal ("stopping the bisect; ..."). */
  constructor(private readonly stopping: string) {}

  get aborted(): AbortSignal {
    return this.controller.signal
  }

  install(): void {
    for (const signal of SIGNALS) {
      this.before.set(signal, process.listenerCount(signal))
      process.on(signal, this.handler)
    }
  }

  uninstall(): void {
    for (const signal of SIGNALS) process.off(signal, this.handler)
  }

  /** Runs FN; an interrupt meanwhile lets it finish before the process ends. */
  async shield<T>(fn: () => Promise<T>): Promise<T> {
    const work = fn()
    this.shielded = work.catch(() => undefined)
    try {
      return await work
    } finally {
      this.shielded = undefined
    }
  }

  /** Runs FN with the abort signal; an interrupt aborts it, and its error ends the bisect. */
  async withAbort<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.abortable++
    try {
      return await fn(this.aborted)
    } finally {
      this.abortable--
    }
  }

  /** Throws once an interrupt came in: nothing new is started after one. */
  check(): void {
    if (this.signal) throw new PmemlabError('', ExitCode.interrupted)
  }

  private fire(signal: NodeJS.Signals): void {
    if (this.signal) process.exit(ExitCode.interrupted) // a second Ctrl-C: now
    this.signal = signal
    this.controller.abort(new PmemlabError(`interrupted by ${signal}`, ExitCode.interrupted))
    log.warn(`${signal}: ${this.stopping}`)
    // A build or a VM under way has its own handler, which ends the process once it has stopped.
    if (process.listenerCount(signal) > (this.before.get(signal) ?? 0) + 1 || this.abortable > 0) return
    void Promise.resolve(this.shielded).finally(() => process.exit(ExitCode.interrupted))
  }
}

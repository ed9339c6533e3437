/**
 * The pmemlab processes a matrix starts: `pmemlab up -- CMD` for a kernel's sanity gate and
 * `pmemlab test` for each attempt at a cell. Each is a process of its own, so that cells in
 * parallel each have their own stderr (kept in the cell's directory), their own signal handling
 * (a pmemlab that gets SIGTERM stops its VM and removes its files) and a timeout that can stop them.
 *
 * Children lead their own process group: a Ctrl-C in the terminal reaches the matrix only, which
 * sends each child one SIGTERM (two signals would make a child exit before its VM is stopped).
 * They are started through setpriv with a parent-death signal, so that a matrix killed outright
 * still has its children stop their VMs.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {closeSync, openSync} from 'node:fs'
import {join} from 'node:path'
import {log, shellQuote} from '../core/log.js'
import {packageRoot} from '../core/paths.js'
import {which} from '../core/which.js'

export interface ChildResult {
  /** The exit status; null when a signal ended it. */
  code: number | null
  signal: NodeJS.Signals | null
  /** Stopped because it ran past its time. */
  timedOut: boolean
  /** Stopped because the matrix was interrupted. */
  interrupted: boolean
  durationMs: number
}

/** How long a child has, after SIGTERM, to stop its VM before it and its group are killed. */
const GRACE_MS = 30_000

export class Children {
  private readonly running = new Set<ChildProcess>()
  private stopping = false
  private setpriv?: string | null

  /** Runs `pmemlab ARGS` with stdout and stderr going to files; resolves when it has exited. */
  async run(args: string[], files: {stdout: string; stderr: string}, options: {timeoutMs?: number} = {}): Promise<ChildResult> {
    if (this.stopping) return {code: null, signal: null, timedOut: false, interrupted: true, durationMs: 0}
    this.setpriv ??= (await which('setpriv')) ?? null
    const argv = [process.execPath, join(packageRoot, 'bin', 'run.js'), ...args]
    const [file, rest] = this.setpriv ? [this.setpriv, ['--pdeathsig', 'TERM', '--', ...argv]] : [argv[0], argv.slice(1)]
    log.debug(`$ ${shellQuote([file, ...rest])}`)
    const out = openSync(files.stdout, 'w')
    const err = openSync(files.stderr, 'w')
    const started = Date.now()
    let child: ChildProcess
    try {
      child = spawn(file, rest, {detached: true, stdio: ['ignore', out, err], env: {...process.env, NO_COLOR: '1'}})
    } finally {
      closeSync(out)
      closeSync(err)
    }
    this.running.add(child)
    let timedOut = false
    let killer: NodeJS.Timeout | undefined
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOut = true
          killer = this.terminate(child)
        }, options.timeoutMs)
      : undefined
    try {
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
        child.once('error', reject)
        child.once('exit', (c, s) => resolve([c, s]))
      })
      return {code, signal, timedOut, interrupted: this.stopping && !timedOut, durationMs: Date.now() - started}
    } finally {
      clearTimeout(timer)
      clearTimeout(killer)
      this.running.delete(child)
    }
  }

  /** SIGTERM, then after the grace period SIGKILL to the child's whole group. */
  private terminate(child: ChildProcess): NodeJS.Timeout {
    signal(child, 'SIGTERM')
    const killer = setTimeout(() => signal(child, 'SIGKILL', true), GRACE_MS)
    killer.unref()
    return killer
  }

  /** Interrupted: starts nothing more, and asks every running child to stop. */
  stopAll(): void {
    this.stopping = true
    for (const child of this.running) this.terminate(child)
  }

  /** A second interrupt: kills every child's group at once. */
  killAll(): void {
    this.stopping = true
    for (const child of this.running) signal(child, 'SIGKILL', true)
  }

  get count(): number {
    return this.running.size
  }
}

function signal(child: ChildProcess, name: NodeJS.Signals, group = false): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(group ? -child.pid : child.pid, name)
  } catch {
    // gone meanwhile
  }
}

import {randomInt} from 'node:crypto'
import {connect, type Socket} from 'node:net'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {sleep} from '../core/process.js'

/**
 * The two JSON protocols pmemlab speaks over UNIX sockets: QMP (QEMU's monitor) and the guest
 * agent (qemu-ga). Both are one JSON object a line; there is no maintained client on npm.
 */
class JsonLineSocket {
  private buffer = ''
  private waiters: Array<(message: Record<string, unknown>) => void> = []
  private queue: Array<Record<string, unknown>> = []
  private closedError?: Error

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => this.onData(chunk))
    const onClose = (error?: Error) => {
      this.closedError ??= error ?? new Error('connection closed')
      for (const waiter of this.waiters.splice(0)) waiter({})
    }
    socket.on('error', onClose)
    socket.on('close', () => onClose())
  }

  static open(path: string, timeoutMs: number): Promise<JsonLineSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(path)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`timed out connecting to ${path}`))
      }, timeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        resolve(new JsonLineSocket(socket))
      })
      socket.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
    })
  }

  private onData(chunk: string): void {
    // qemu-ga prefixes the reply to guest-sync-delimited with 0xFF so a client can resynchronise.
    this.buffer += chunk.replaceAll('\uFFFD', '').replaceAll('\u00FF', '')
    let newline: number
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim()
      this.buffer = this.buffer.slice(newline + 1)
      if (!line) continue
      let message: Record<string, unknown>
      try {
        message = JSON.parse(line) as Record<string, unknown>
      } catch {
        continue // a partial line left over from an earlier client
      }
      const waiter = this.waiters.shift()
      if (waiter) waiter(message)
      else this.queue.push(message)
    }
  }

  send(message: unknown): void {
    this.socket.write(`${JSON.stringify(message)}\n`)
  }

  /** The next message, or an error on timeout or when the peer goes away. */
  next(timeoutMs: number): Promise<Record<string, unknown>> {
    const queued = this.queue.shift()
    if (queued) return Promise.resolve(queued)
    if (this.closedError) return Promise.reject(this.closedError)
    return new Promise((resolve, reject) => {
      const waiter = (message: Record<string, unknown>) => {
        clearTimeout(timer)
        if (this.closedError && Object.keys(message).length === 0) reject(this.closedError)
        else resolve(message)
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        reject(new ReplyTimeout(timeoutMs))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  close(): void {
    this.socket.destroy()
  }
}

/** A command's error reply, with QEMU's own description. */
export class ProtocolError extends Error {}

/** No reply within the time allowed: the peer (a guest kernel, QEMU) may be hung. */
export class ReplyTimeout extends Error {
  constructor(readonly waitedMs: number) {
    super(`timed out waiting for a reply (${waitedMs / 1000} s)`)
  }
}

async function awaitReturn(socket: JsonLineSocket, timeoutMs: number): Promise<unknown> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const message = await socket.next(Math.max(1, deadline - Date.now()))
    if ('return' in message) return message.return
    if ('error' in message) {
      const error = message.error as {desc?: string; class?: string}
      throw new ProtocolError(error.desc ?? error.class ?? 'unknown error')
    }
    // asynchronous QMP events ({"event": ...}) are not replies
  }
}

export class Qmp {
  private constructor(private readonly socket: JsonLineSocket) {}

  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const socket = await JsonLineSocket.open(path, timeoutMs)
    const greeting = await socket.next(timeoutMs)
    if (!('QMP' in greeting)) throw new ProtocolError(`${path} is not a QMP socket`)
    const qmp = new Qmp(socket)
    await qmp.execute('qmp_capabilities', undefined, timeoutMs)
    return qmp
  }

  async execute(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
    this.socket.send(args ? {execute: command, arguments: args} : {execute: command})
    return awaitReturn(this.socket, timeoutMs)
  }

  close(): void {
    this.socket.close()
  }
}

export interface GuestExecStatus {
  exited: boolean
  exitcode?: number
  signal?: number
  'out-data'?: string
  'err-data'?: string
}

export class GuestAgent {
  private constructor(private readonly socket: JsonLineSocket) {}

  /**
   * Connects and synchronises. qemu-ga keeps no per-client state, and a reply meant for an earlier
   * client may still be in the pipe: guest-sync-delimited with a fresh id skips past it.
   */
  static async connect(path: string, timeoutMs = 5000, options: {resyncMs?: number} = {}): Promise<GuestAgent> {
    const socket = await JsonLineSocket.open(path, timeoutMs)
    const agent = new GuestAgent(socket)
    let id = 0
    const sync = () => {
      id = randomInt(1, 2 ** 31)
      socket.send({execute: 'guest-sync-delimited', arguments: {id}})
    }
    sync()
    // While a guest boots, the request waits in the port until qemu-ga opens it, and is answered
    // then. With resyncMs it is sent again until some sync is answered, in case one was lost
    // (qemu-ga restarting); only the reply to the newest ends the wait, so no older reply is left
    // behind to be taken for a later command's.
    let answered = false
    const resend = options.resyncMs ? setInterval(() => answered || sync(), options.resyncMs) : undefined
    const deadline = Date.now() + timeoutMs
    try {
      for (;;) {
        const message = await socket.next(Math.max(1, deadline - Date.now()))
        if (typeof message.return === 'number') answered = true
        if (message.return === id) return agent
      }
    } catch (error) {
      socket.close()
      throw error
    } finally {
      clearInterval(resend)
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    this.socket.send(args ? {execute: command, arguments: args} : {execute: command})
    return awaitReturn(this.socket, timeoutMs) as Promise<T>
  }

  /** Starts a process in the guest; argv[0] must be a path or a name on the agent's PATH. */
  async spawn(argv: string[], options: {captureOutput?: boolean} = {}): Promise<number> {
    const reply = await this.execute<{pid: number}>('guest-exec', {
      path: argv[0],
      arg: argv.slice(1),
      'capture-output': options.captureOutput ?? false,
    })
    return reply.pid
  }

  status(pid: number): Promise<GuestExecStatus> {
    return this.execute<GuestExecStatus>('guest-exec-status', {pid})
  }

  /** Runs a command to completion and returns its buffered output (for short helper commands). */
  async run(argv: string[], timeoutMs = 60_000): Promise<{exitCode: number; stdout: string; stderr: string}> {
    const pid = await this.spawn(argv, {captureOutput: true})
    const deadline = Date.now() + timeoutMs
    // Short helper commands end within milliseconds: ask often at first, then back off.
    for (let pollMs = 4; ; pollMs = Math.min(50, pollMs * 2)) {
      const status = await this.status(pid)
      if (status.exited) {
        return {
          exitCode: exitCodeOf(status),
          stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString(),
          stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString(),
        }
      }
      if (Date.now() > deadline) throw new PmemlabError(`guest command ${argv[0]} did not finish in ${timeoutMs / 1000} s`, ExitCode.failure)
      await sleep(pollMs)
    }
  }

  close(): void {
    this.socket.close()
  }
}

/** A guest process killed by a signal exits like a shell reports it: 128 + signal. */
export function exitCodeOf(status: GuestExecStatus): number {
  if (status.exitcode !== undefined) return status.exitcode
  if (status.signal !== undefined) return 128 + status.signal
  return 255
}


import {randomBytes} from 'node:crypto'
import {ExitCode, PmemlabError} from './errors.js'
import {exitCodeOf, GuestAgent, ProtocolError, sleep} from './monitor.js'

/**
 * Running commands in the guest through qemu-ga. guest-exec only hands over a command's output
 * once it has exited, so for live output the command writes into files on the guest's /run and
 * pmemlab tails them with guest-file-read while it runs.
 */
export interface ExecOptions {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  timeoutMs?: number
}

const READ_CHUNK = 65_536

export async function execStreaming(agent: GuestAgent, argv: string[], options: ExecOptions): Promise<number> {
  const base = `/run/pmemlab-exec-${randomBytes(6).toString('hex')}`
  const pid = await agent.spawn([
    '/bin/sh',
    '-c',
    'out=$1; shift; exec "$@" </dev/null >"$out.out" 2>"$out.err"',
    'pmemlab-exec',
    base,
    ...argv,
  ])
  const streams = [
    {path: `${base}.out`, sink: options.stdout, handle: undefined as number | undefined},
    {path: `${base}.err`, sink: options.stderr, handle: undefined as number | undefined},
  ]
  const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY
  try {
    for (;;) {
      const status = await agent.status(pid)
      let moved = false
      for (const stream of streams) {
        stream.handle ??= await openIfPresent(agent, stream.path)
        if (stream.handle !== undefined) moved = (await drain(agent, stream.handle, stream.sink)) || moved
      }
      if (status.exited) {
        // Files are complete once the process has exited: one more pass empties them.
        for (const stream of streams) {
          stream.handle ??= await openIfPresent(agent, stream.path)
          if (stream.handle !== undefined) while (await drain(agent, stream.handle, stream.sink));
        }
        return exitCodeOf(status)
      }
      if (Date.now() > deadline) {
        await agent.spawn(['/bin/kill', '-KILL', String(pid)]).catch(() => undefined)
        throw new PmemlabError(`the guest command timed out after ${options.timeoutMs! / 1000} s and was killed`, ExitCode.failure)
      }
      if (!moved) await sleep(25)
    }
  } finally {
    for (const stream of streams) {
      if (stream.handle !== undefined) await agent.execute('guest-file-close', {handle: stream.handle}).catch(() => undefined)
    }
    await agent.spawn(['/bin/rm', '-f', `${base}.out`, `${base}.err`]).catch(() => undefined)
  }
}

async function openIfPresent(agent: GuestAgent, path: string): Promise<number | undefined> {
  try {
    return await agent.execute<number>('guest-file-open', {path, mode: 'r'})
  } catch (error) {
    if (error instanceof ProtocolError) return undefined // not created yet
    throw error
  }
}

/** Copies what is new in the file to sink; true when anything was read. */
async function drain(agent: GuestAgent, handle: number, sink: NodeJS.WritableStream): Promise<boolean> {
  const reply = await agent.execute<{count: number; 'buf-b64': string}>('guest-file-read', {handle, count: READ_CHUNK})
  if (reply.count === 0) return false
  sink.write(Buffer.from(reply['buf-b64'], 'base64'))
  return true
}

import {randomBytes} from 'node:crypto'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log, shellQuote} from '../core/log.js'
import {processAlive, sleep} from '../core/process.js'
import {exitCodeOf, GuestAgent, ProtocolError} from './monitor.js'
import {deathOf, runningRecord} from './deaths.js'

/**
 * Running commands in the guest through qemu-ga. guest-exec only hands over a command's output
 * once it has exited, so for live output pmemlab opens two files on the guest's /run through the
 * agent, starts the command with its stdout and stderr appended to them, and tails them with
 * guest-file-read while it runs.
 */
export interface ExecOptions {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  timeoutMs?: number
}

/** The image's helper (guest/pmemlab-exec.c): redirects, unlinks both files, execs the command. */
export const EXEC_HELPER = '/usr/local/bin/pmemlab-exec'
const READ_CHUNK = 65_536
// Polls are frequent for the first 100 ms, so a short command returns within a few ms of its
// end, then back off to LAST_POLL_MS while nothing happens; output brings them back.
const FAST_POLL_MS = 4
const FAST_POLL_FOR_MS = 100
const LAST_POLL_MS = 64

interface OutputFile {
  path: string
  handle: number
  sink: NodeJS.WritableStream
}

export async function execStreaming(agent: GuestAgent, argv: string[], options: ExecOptions): Promise<number> {
  const base = `/run/pmemlab-exec-${randomBytes(6).toString('hex')}`
  const files: OutputFile[] = []
  try {
    // Opened ("w+": created, readable) before the command starts, so no output is missed.
    for (const [suffix, sink] of [['out', options.stdout], ['err', options.stderr]] as const) {
      const path = `${base}.${suffix}`
      files.push({path, sink, handle: await agent.execute<number>('guest-file-open', {path, mode: 'w+'})})
    }
    const pid = await startCommand(agent, files, argv)
    log.debug(`guest pid ${pid}: ${shellQuote(argv)}`)
    const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY
    let pollMs = FAST_POLL_MS
    let fastUntil = Date.now() + FAST_POLL_FOR_MS
    for (;;) {
      // One round trip: the status request and both reads go out together.
      const [status, ...moved] = await Promise.all([agent.status(pid), ...files.map((file) => drain(agent, file))])
      if (status.exited) {
        // The files are complete once the process has exited: read what is left.
        for (const file of files) while (await drain(agent, file));
        log.debug(`guest pid ${pid} exited: ${exitCodeOf(status)}`)
        return exitCodeOf(status)
      }
      if (Date.now() > deadline) {
        await agent.spawn(['/bin/kill', '-KILL', String(pid)]).catch(() => undefined)
        throw new PmemlabError(`the guest command timed out after ${options.timeoutMs! / 1000} s and was killed`, ExitCode.timeout)
      }
      if (moved.some(Boolean)) fastUntil = Date.now() + FAST_POLL_FOR_MS
      pollMs = Date.now() < fastUntil ? FAST_POLL_MS : Math.min(LAST_POLL_MS, pollMs * 2)
      await sleep(pollMs)
    }
  } finally {
    await Promise.all(files.map((file) => agent.execute('guest-file-close', {handle: file.handle}).catch(() => undefined)))
  }
}

/**
 * Starts argv with its output going to the open files: through the image's helper, or through a
 * shell in an image built before the helper existed (a VM still running from an older pmemlab).
 */
async function startCommand(agent: GuestAgent, files: OutputFile[], argv: string[]): Promise<number> {
  const [out, err] = files.map((file) => file.path)
  try {
    return await agent.spawn([EXEC_HELPER, out, err, ...argv])
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error
  }
  return agent.spawn(['/bin/sh', '-c', 'out=$1 err=$2; shift 2; exec </dev/null >>"$out" 2>>"$err"; rm -f "$out" "$err"; exec "$@"', 'pmemlab-exec', out, err, ...argv])
}

/** Copies what is new in the file to its sink; true when anything was read. */
async function drain(agent: GuestAgent, file: OutputFile): Promise<boolean> {
  const reply = await agent.execute<{count: number; 'buf-b64': string}>('guest-file-read', {handle: file.handle, count: READ_CHUNK})
  if (reply.count === 0) return false
  file.sink.write(Buffer.from(reply['buf-b64'], 'base64'))
  return true
}

/** `pmemlab exec`: runs argv in a running VM with live output; resolves to its exit status. */
export async function execInVm(name: string, argv: string[], timeoutMs?: number): Promise<number> {
  const record = await runningRecord(name)
  log.debug(`connecting to the guest agent of ${name}`)
  const agent = await GuestAgent.connect(record.sockets.qga, 5000).catch(async () => {
    // QEMU serves one agent client at a time: a foreground up -- CMD, test or matrix keeps it.
    if (record.mode === 'foreground' && record.owner !== undefined && (await processAlive(record.owner))) {
      throw new PmemlabError(`the guest agent of VM "${name}" is taken by the pmemlab process that runs it in the foreground (pid ${record.owner})`, ExitCode.conflict, 'a VM to exec into from elsewhere is started with pmemlab up --detach (or up without a command)')
    }
    throw new PmemlabError(`the guest agent of VM "${name}" does not answer`, ExitCode.failure, `look at its console: pmemlab console ${name}`)
  })
  try {
    return await execStreaming(agent, argv, {stdout: process.stdout, stderr: process.stderr, timeoutMs})
  } catch (error) {
    if (error instanceof PmemlabError) throw error
    throw (await deathOf(record, undefined, error)) ?? error
  } finally {
    agent.close()
  }
}

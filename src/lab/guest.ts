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
  const {open: files, pid} = await openAndStart(agent, [`${base}.out`, `${base}.err`], [options.stdout, options.stderr], argv)
  try {
    log.debug(`guest pid ${pid}: ${shellQuote(argv)}`)
    const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY
    let pollMs = FAST_POLL_MS
    let fastUntil = Date.now() + FAST_POLL_FOR_MS
    for (;;) {
      // One round trip: the status request and both reads go out together, in this order.
      const [status, ...read] = await Promise.all([agent.status(pid), ...files.map((file) => drain(agent, file))])
      if (status.exited) {
        // qemu-ga answers in order, so these reads came after the exit: a short one reached the
        // end of a complete file. Only a full one leaves more to read.
        for (const [i, file] of files.entries()) if (read[i] === READ_CHUNK) while ((await drain(agent, file)) > 0);
        log.debug(`guest pid ${pid} exited: ${exitCodeOf(status)}`)
        return exitCodeOf(status)
      }
      if (Date.now() > deadline) {
        await agent.spawn(['/bin/kill', '-KILL', String(pid)]).catch(() => undefined)
        throw new PmemlabError(`the guest command timed out after ${options.timeoutMs! / 1000} s and was killed`, ExitCode.timeout)
      }
      if (read.some((count) => count > 0)) fastUntil = Date.now() + FAST_POLL_FOR_MS
      pollMs = Date.now() < fastUntil ? FAST_POLL_MS : Math.min(LAST_POLL_MS, pollMs * 2)
      await sleep(pollMs)
    }
  } finally {
    await closeFiles(agent, files)
  }
}

const closeFiles = (agent: GuestAgent, files: OutputFile[]) =>
  Promise.all(files.map((file) => agent.execute('guest-file-close', {handle: file.handle}).catch(() => undefined)))

/**
 * Opens the output files ("w+": created, readable) and starts argv writing to them, all in one
 * round trip: qemu-ga handles requests in order, so the files exist before the command starts
 * and no output is missed. If any step fails, nothing is left open or running.
 */
async function openAndStart(agent: GuestAgent, paths: string[], sinks: NodeJS.WritableStream[], argv: string[]): Promise<{open: OutputFile[]; pid: number}> {
  const opening = paths.map((path) => agent.execute<number>('guest-file-open', {path, mode: 'w+'}))
  const starting = startCommand(agent, paths, argv)
  const [started, ...opened] = await Promise.allSettled([starting, ...opening])
  const open = opened.flatMap((result, i) => (result.status === 'fulfilled' ? [{path: paths[i], sink: sinks[i], handle: result.value}] : []))
  if (started.status === 'fulfilled' && open.length === paths.length) return {open, pid: started.value}
  if (started.status === 'fulfilled') await agent.spawn(['/bin/kill', '-KILL', String(started.value)]).catch(() => undefined)
  await closeFiles(agent, open)
  throw [started, ...opened].find((result): result is PromiseRejectedResult => result.status === 'rejected')!.reason
}

/**
 * Starts argv with its output going to the files: through the image's helper, or through a
 * shell in an image built before the helper existed (a VM still running from an older pmemlab).
 */
async function startCommand(agent: GuestAgent, [out, err]: string[], argv: string[]): Promise<number> {
  try {
    return await agent.spawn([EXEC_HELPER, out, err, ...argv])
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error
  }
  return agent.spawn(['/bin/sh', '-c', 'out=$1 err=$2; shift 2; exec </dev/null >>"$out" 2>>"$err"; rm -f "$out" "$err"; exec "$@"', 'pmemlab-exec', out, err, ...argv])
}

/** Copies what is new in the file to its sink; returns how many bytes were read. */
async function drain(agent: GuestAgent, file: OutputFile): Promise<number> {
  const reply = await agent.execute<{count: number; 'buf-b64': string}>('guest-file-read', {handle: file.handle, count: READ_CHUNK})
  if (reply.count > 0) file.sink.write(Buffer.from(reply['buf-b64'], 'base64'))
  return reply.count
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

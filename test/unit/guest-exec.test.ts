import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {createServer, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PassThrough} from 'node:stream'
import {test} from 'node:test'
import {EXEC_HELPER, execStreaming} from '../../src/lab/guest.js'
import {GuestAgent, ProtocolError} from '../../src/lab/monitor.js'

interface FakeGuest {
  /** Every request, in the order it arrived. */
  log: {execute: string; arguments?: any}[]
  /** How many guest-file-open replies were still unsent when the first guest-exec arrived. */
  opensUnansweredAtExec?: number
}

/**
 * A qemu-ga that answers in order, like the real one: the helper's command writes OUTPUT to the
 * .out file and exits STATUS after POLLS status requests; FAIL_OPEN names a path it refuses.
 */
async function withGuest(options: {output: string; status: number; polls: number; failOpen?: string}, body: (agent: GuestAgent, guest: FakeGuest) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'pmemlab-guest-exec-'))
  const path = join(dir, 'qga.sock')
  const guest: FakeGuest = {log: []}
  const files = new Map<number, {path: string; data: Buffer; at: number}>()
  let nextHandle = 100
  let polls = 0
  let unansweredOpens = 0
  const server = createServer((socket: Socket) => {
    let buffer = ''
    // Replies leave in order; those to opens after a delay, so that a client waiting for them
    // before it sends the exec is told apart from one that sends all three at once.
    let replies = Promise.resolve()
    const send = (line: string, delayMs = 0) => {
      replies = replies.then(() => new Promise((resolve) => setTimeout(resolve, delayMs))).then(() => void socket.write(line))
    }
    socket.on('data', (chunk) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffer.slice(0, nl))
        buffer = buffer.slice(nl + 1)
        const reply = (value: unknown) => send(`${JSON.stringify({return: value})}\n`)
        const args = message.arguments
        if (message.execute !== 'guest-sync-delimited') guest.log.push(message)
        switch (message.execute) {
          case 'guest-sync-delimited':
            reply(args.id)
            break
          case 'guest-file-open':
            unansweredOpens++
            if (args.path === options.failOpen) send('{"error": {"class": "GenericError", "desc": "failed to open file"}}\n', 20)
            else {
              files.set(nextHandle, {path: args.path, data: Buffer.alloc(0), at: 0})
              send(`${JSON.stringify({return: nextHandle++})}\n`, 20)
            }
            replies = replies.then(() => void unansweredOpens--)
            break
          case 'guest-exec':
            guest.opensUnansweredAtExec ??= unansweredOpens
            if (args.path === EXEC_HELPER) for (const file of files.values()) if (file.path === args.arg[0]) file.data = Buffer.from(options.output)
            reply({pid: args.path === EXEC_HELPER ? 77 : 78})
            break
          case 'guest-exec-status':
            reply(++polls >= options.polls ? {exited: true, exitcode: options.status} : {exited: false})
            break
          case 'guest-file-read': {
            const file = files.get(args.handle)!
            const part = file.data.subarray(file.at, file.at + args.count)
            file.at += part.length
            reply({count: part.length, 'buf-b64': part.toString('base64'), eof: part.length === 0})
            break
          }
          case 'guest-file-close':
            files.delete(args.handle)
            reply({})
            break
          default:
            send(`{"error": {"class": "CommandNotFound", "desc": "${message.execute}"}}\n`)
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const agent = await GuestAgent.connect(path, 2000)
  try {
    await body(agent, guest)
  } finally {
    agent.close()
    server.close()
    await rm(dir, {recursive: true, force: true})
  }
}

const collect = (stream: PassThrough) => {
  const chunks: Buffer[] = []
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  return () => Buffer.concat(chunks).toString()
}

test('exec: the files are opened and the command started in one round trip, all output arrives, and the files are closed', async () => {
  // More than one read's worth, so the drain after the exit has to go on past a full read.
  const output = 'x'.repeat(150_000) + 'end\n'
  await withGuest({output, status: 3, polls: 2}, async (agent, guest) => {
    const stdout = new PassThrough()
    const stderr = new PassThrough()
    const out = collect(stdout)
    const code = await execStreaming(agent, ['/bin/echo', 'hi'], {stdout, stderr})
    assert.equal(code, 3)
    assert.equal(out(), output)
    assert.equal(guest.opensUnansweredAtExec, 2, 'the exec was sent before the opens were answered')
    assert.deepEqual(guest.log.slice(0, 3).map((m) => m.execute), ['guest-file-open', 'guest-file-open', 'guest-exec'])
    const exec = guest.log[2].arguments
    assert.deepEqual([exec.path, ...exec.arg.slice(2)], [EXEC_HELPER, '/bin/echo', 'hi'])
    const closed = guest.log.filter((m) => m.execute === 'guest-file-close').map((m) => m.arguments.handle)
    assert.deepEqual(closed.sort(), [100, 101])
  })
})

test('exec: a short command ends with no read after the one that came with its exit', async () => {
  await withGuest({output: 'hello\n', status: 0, polls: 1}, async (agent, guest) => {
    const stdout = new PassThrough()
    const out = collect(stdout)
    assert.equal(await execStreaming(agent, ['true'], {stdout, stderr: new PassThrough()}), 0)
    assert.equal(out(), 'hello\n')
    // status + 2 reads in one round, then only the closes.
    assert.deepEqual(
      guest.log.slice(3).map((m) => m.execute),
      ['guest-exec-status', 'guest-file-read', 'guest-file-read', 'guest-file-close', 'guest-file-close'],
    )
  })
})

test('exec: when an output file cannot be opened, the started command is killed and the open file closed', async () => {
  await withGuest({output: '', status: 0, polls: 1, failOpen: 'ERR'}, async (agent, guest) => {
    // The .err path is random: refuse whichever path ends in .err.
    const realOpen = agent.execute.bind(agent)
    agent.execute = ((command: string, args?: Record<string, unknown>, timeoutMs?: number) =>
      realOpen(command, command === 'guest-file-open' && String(args?.path).endsWith('.err') ? {...args, path: 'ERR'} : args, timeoutMs)) as typeof agent.execute
    await assert.rejects(execStreaming(agent, ['sleep', '600'], {stdout: new PassThrough(), stderr: new PassThrough()}), ProtocolError)
    const kill = guest.log.find((m) => m.execute === 'guest-exec' && m.arguments.path === '/bin/kill')
    assert.deepEqual(kill?.arguments.arg, ['-KILL', '77'])
    assert.deepEqual(guest.log.filter((m) => m.execute === 'guest-file-close').map((m) => m.arguments.handle), [100])
    assert.ok(!guest.log.some((m) => m.execute === 'guest-exec-status'), 'nothing is polled')
  })
})

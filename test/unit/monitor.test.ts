import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import {exitCodeOf, GuestAgent, ProtocolError, Qmp} from '../../src/lab/monitor.js'

/** A peer speaking the wire format of QMP or qemu-ga, driven by a reply function. */
async function withServer(reply: (message: any, socket: Socket) => void, greeting: string | undefined, body: (path: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'pmemlab-monitor-'))
  const path = join(dir, 's.sock')
  const server: Server = createServer((socket) => {
    if (greeting) socket.write(greeting)
    let buffer = ''
    socket.on('data', (chunk) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        reply(JSON.parse(line), socket)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  try {
    await body(path)
  } finally {
    server.close()
    await rm(dir, {recursive: true, force: true})
  }
}

test('QMP: greeting, capabilities, events skipped, errors raised', async () => {
  await withServer(
    (message, socket) => {
      if (message.execute === 'qmp_capabilities') socket.write('{"return": {}}\r\n')
      else if (message.execute === 'query-status') socket.write('{"event": "RESUME", "data": {}}\r\n{"return": {"status": "running"}}\r\n')
      else socket.write(`{"error": {"class": "CommandNotFound", "desc": "The command ${message.execute} has not been found"}}\r\n`)
    },
    '{"QMP": {"version": {}, "capabilities": []}}\r\n',
    async (path) => {
      const qmp = await Qmp.connect(path)
      assert.deepEqual(await qmp.execute('query-status'), {status: 'running'})
      await assert.rejects(qmp.execute('nope'), (error: unknown) => error instanceof ProtocolError && /nope/.test(error.message))
      qmp.close()
    },
  )
})

test('guest agent: a stale reply and the 0xFF sentinel are skipped by guest-sync-delimited', async () => {
  await withServer(
    (message, socket) => {
      if (message.execute === 'guest-sync-delimited') {
        // a reply left over from an earlier client, then the sentinel, then ours
        socket.write(`{"return": 7}\n`)
        socket.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${message.arguments.id}}\n`)]))
      } else if (message.execute === 'guest-exec') {
        socket.write('{"return": {"pid": 42}}\n')
      } else if (message.execute === 'guest-exec-status') {
        socket.write(`{"return": {"exited": true, "exitcode": 3, "out-data": "${Buffer.from('hello\n').toString('base64')}"}}\n`)
      }
    },
    undefined,
    async (path) => {
      const agent = await GuestAgent.connect(path)
      const result = await agent.run(['/bin/echo', 'hello'])
      assert.deepEqual(result, {exitCode: 3, stdout: 'hello\n', stderr: ''})
      agent.close()
    },
  )
})

test('guest agent connect during a boot: held requests are answered when the agent starts, a lost one is sent again, and no early reply is left for the next command', async () => {
  // Like a virtio-serial port before qemu-ga opens it: requests wait, and the first one is lost.
  const held: any[] = []
  let started = false
  let syncs = 0
  const answer = (message: any, socket: Socket) => {
    if (message.execute === 'guest-sync-delimited') socket.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${message.arguments.id}}\n`)]))
    else if (message.execute === 'guest-exec') socket.write('{"return": {"pid": 42}}\n')
    else if (message.execute === 'guest-exec-status') socket.write('{"return": {"exited": true, "exitcode": 0}}\n')
  }
  await withServer(
    (message, socket) => {
      if (message.execute === 'guest-sync-delimited' && ++syncs === 1) return // lost
      if (started) answer(message, socket)
      else {
        held.push(message)
        if (!started && held.length === 2) {
          setTimeout(() => {
            started = true
            for (const m of held.splice(0)) answer(m, socket)
          }, 20)
        }
      }
    },
    undefined,
    async (path) => {
      const agent = await GuestAgent.connect(path, 5000, {resyncMs: 60})
      assert.ok(syncs >= 3, `the lost request was followed by others (${syncs} sent)`)
      assert.deepEqual(await agent.run(['/bin/true']), {exitCode: 0, stdout: '', stderr: ''})
      agent.close()
    },
  )
})

test('guest agent connect times out when the guest never answers', async () => {
  await withServer(() => undefined, undefined, async (path) => {
    await assert.rejects(GuestAgent.connect(path, 300), /timed out/)
  })
})

test('exit status of a signalled guest process is 128 + signal', () => {
  assert.equal(exitCodeOf({exited: true, signal: 9}), 137)
  assert.equal(exitCodeOf({exited: true, exitcode: 0}), 0)
})

import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {after, before, describe, test} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'
import {execa} from 'execa'
import {GuestAgent, Qmp} from '../../src/lab/monitor.js'
import {makeLab, type Lab} from './cli.js'

const CRASH = ['sh', '-c', 'echo c > /proc/sysrq-trigger']
const PANIC = 'Kernel panic - not syncing: sysrq triggered crash'

/**
 * When the guest or QEMU misbehaves: the end is named in one line with the documented exit code,
 * the console excerpt follows, the logs are kept where the line says, and no QEMU is left.
 */
describe('when things go wrong', {timeout: 1_200_000}, () => {
  let lab: Lab
  before(async () => {
    lab = await makeLab()
    const built = await lab.pmemlab(['image', 'build'])
    assert.equal(built.exitCode, 0, built.stderr)
  })
  after(async () => {
    await lab.pmemlab(['down', '--all', '--timeout', '5'])
    await lab.dispose()
  })

  /** The error line's kept console log, checked to hold what the line says. */
  async function keptLog(stderr: string, holds: string): Promise<string> {
    const line = stderr.split('\n').find((l) => l.startsWith('pmemlab: error: '))
    assert.ok(line, stderr)
    const path = /console log kept in (\S+)$/.exec(line)?.[1]
    assert.ok(path, line)
    assert.ok(path.startsWith(lab.stateDir), path)
    assert.ok((await readFile(path, 'utf8')).includes(holds), `${path} lacks "${holds}"`)
    return line
  }

  test('a panic under up -- CMD is named, with its excerpt and the console log kept', async () => {
    const result = await lab.pmemlab(['up', '--name', 'panic1', '--', ...CRASH])
    assert.equal(result.exitCode, 7, result.stderr)
    const line = await keptLog(result.stderr, PANIC)
    assert.match(line, new RegExp(`^pmemlab: error: VM "panic1" died: the guest kernel panicked: ${PANIC}: console log kept in `))
    const excerpt = result.stderr.split('\n').filter((l) => l.startsWith('  | '))
    assert.ok(excerpt[0].includes(PANIC), excerpt.join('\n'))
    assert.ok(excerpt.some((l) => l.includes('sysrq_handle_crash')), 'the call trace is shown')
    assert.doesNotMatch(result.stderr, /connection closed/)
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
  })

  test('a panic under exec on a detached VM is named by exec, then listed once by ls', async () => {
    const upResult = await lab.pmemlab(['up', '--detach', '--name', 'panic2'])
    assert.equal(upResult.exitCode, 0, upResult.stderr)
    const result = await lab.pmemlab(['exec', 'panic2', '--', ...CRASH])
    assert.equal(result.exitCode, 7, result.stderr)
    const line = await keptLog(result.stderr, PANIC)
    assert.match(line, /VM "panic2" died: the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash/)
    assert.deepEqual(await lab.qemuProcesses('panic2'), [])
    const listed = await lab.pmemlab(['ls'])
    assert.equal(listed.exitCode, 0, listed.stderr)
    assert.match(listed.stdout, /panic2 .*the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash/)
    assert.doesNotMatch((await lab.pmemlab(['ls'])).stdout, /panic2/, 'a death is listed once')
    const again = await lab.pmemlab(['exec', 'panic2', '--', 'true'])
    assert.equal(again.exitCode, 7)
    assert.match(again.stderr, /^pmemlab: error: VM "panic2" died at \S+: the guest kernel panicked/)
  })

  test('a detached QEMU killed with SIGKILL is reported dead by ls and by exec, not as unknown', async () => {
    const upResult = await lab.pmemlab(['up', '--detach', '--json', '--name', 'killed9'])
    assert.equal(upResult.exitCode, 0, upResult.stderr)
    const {pid} = JSON.parse(upResult.stdout) as {pid: number}
    process.kill(pid, 'SIGKILL')
    await waitGone(lab, 'killed9')
    const listed = await lab.pmemlab(['ls', '--json'])
    const entry = (JSON.parse(listed.stdout) as Array<{name: string; state: string; reason: string; exitCode: number; consoleLog: string}>).find((vm) => vm.name === 'killed9')
    assert.ok(entry, listed.stdout)
    assert.equal(entry.state, 'died')
    assert.equal(entry.exitCode, 8)
    assert.match(entry.reason, /^QEMU exited without a word from QEMU or the guest \(killed, or crashed\)/)
    assert.ok(existsSync(entry.consoleLog), entry.consoleLog)
    const exec = await lab.pmemlab(['exec', 'killed9', '--', 'true'])
    assert.equal(exec.exitCode, 8, exec.stderr)
    assert.match(exec.stderr, /^pmemlab: error: VM "killed9" died at .*: QEMU exited without a word/)
    assert.doesNotMatch(exec.stderr, /no VM named/)
  })

  test('a detached QEMU stopped with SIGTERM is named with the signal, straight from exec', async () => {
    const upResult = await lab.pmemlab(['up', '--detach', '--json', '--name', 'killed15'])
    assert.equal(upResult.exitCode, 0, upResult.stderr)
    process.kill((JSON.parse(upResult.stdout) as {pid: number}).pid, 'SIGTERM')
    await waitGone(lab, 'killed15')
    const exec = await lab.pmemlab(['exec', 'killed15', '--', 'true'])
    assert.equal(exec.exitCode, 8, exec.stderr)
    assert.match(exec.stderr, /^pmemlab: error: VM "killed15" died: QEMU was killed by signal 15 from pid \d+/)
  })

  test('a guest whose agent never answers is a boot timeout that shows the console tail', async () => {
    // The guest's init is replaced by a cat that waits on the console forever: no agent starts.
    const result = await lab.pmemlab(['up', '--name', 'silent', '--boot-timeout', '20', '--append', 'pmemlab.init=/bin/cat', '--', 'true'])
    assert.equal(result.exitCode, 6, result.stderr)
    const line = await keptLog(result.stderr, 'Linux version')
    assert.match(line, /^pmemlab: error: VM "silent" failed to boot: the guest agent did not answer within 20 s of boot: console log kept in /)
    assert.ok(result.stderr.split('\n').filter((l) => l.startsWith('  | ')).length > 0, 'the console tail is shown')
    assert.deepEqual(await lab.qemuProcesses(), [])
  })

  test('exec --timeout kills the guest command and exits 124, apart from a command exiting 1', async () => {
    const upResult = await lab.pmemlab(['up', '--detach', '--name', 'slow'])
    assert.equal(upResult.exitCode, 0, upResult.stderr)
    const timedOut = await lab.pmemlab(['exec', 'slow', '--timeout', '2', '--', 'sleep', '60'])
    assert.equal(timedOut.exitCode, 124, timedOut.stderr)
    assert.match(timedOut.stderr.trim(), /^pmemlab: error: the guest command timed out after 2 s and was killed$/)
    assert.equal((await lab.pmemlab(['exec', 'slow', '--', 'false'])).exitCode, 1)
    assert.equal((await lab.pmemlab(['down', 'slow'])).exitCode, 0)
  })

  test('SIGINT to a foreground up -- CMD exits 130 with no stray error and no QEMU left', async () => {
    const child = lab.start(['up', '--verbose', '--name', 'interrupted', '--', 'sleep', '600'])
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    await waitFor(() => stderr.includes('starting interrupted') && existsSync(`${lab.stateDir}/vms/interrupted/vm.json`), 120_000)
    await waitFor(() => /guest pid \d+: sleep 600/.test(stderr), 120_000)
    // The foreground up holds the guest agent (QEMU serves one client): exec from elsewhere is refused with the reason.
    const refused = await lab.pmemlab(['exec', 'interrupted', '--', 'true'])
    assert.equal(refused.exitCode, 5, refused.stderr)
    assert.match(refused.stderr, /^pmemlab: error: the guest agent of VM "interrupted" is taken by the pmemlab process that runs it in the foreground \(pid \d+\): .*up --detach/)
    child.kill('SIGINT')
    const result = await child
    assert.equal(result.exitCode, 130, stderr)
    assert.match(stderr, /SIGINT: stopping interrupted/)
    assert.doesNotMatch(stderr, /error/)
    assert.deepEqual(await lab.qemuProcesses(), [])
  })

  test('the --dry-run output, pasted into bash, boots the same guest to its agent', async () => {
    const plan = JSON.parse((await lab.pmemlab(['up', '--dry-run', '--json', '--detach', '--name', 'pasted'])).stdout) as {sockets: {qga: string; qmp: string}}
    const script = await lab.pmemlab(['up', '--dry-run', '--detach', '--name', 'pasted'])
    assert.equal(script.exitCode, 0, script.stderr)
    assert.match(script.stdout, /^mkdir -p -m 0700 \S+\n\S*qemu-system-x86_64 /)
    const shell = execa('bash', ['-e'], {input: script.stdout, reject: false})
    try {
      const agent = await connectAgent(plan.sockets.qga, 180_000)
      const answer = await agent.run(['/bin/cat', '/proc/cmdline'])
      agent.close()
      assert.match(answer.stdout, /pmemlab\.name=pasted/)
      const qmp = await Qmp.connect(plan.sockets.qmp)
      await qmp.execute('quit').catch(() => undefined)
      qmp.close()
    } finally {
      shell.kill('SIGKILL')
    }
    const ended = await shell
    assert.notEqual(ended.exitCode, null)
    assert.deepEqual(await lab.qemuProcesses(), [])
  })

  test('a guest that needs more memory than the host has is refused before anything starts', async () => {
    const result = await lab.pmemlab(['up', '--dry-run', '--mem', '10T'])
    assert.equal(result.exitCode, 2, result.stderr)
    assert.match(result.stderr.trim(), /^pmemlab: error: guest RAM \S+ TiB \(memmap ranges 256 MiB included\) does not fit in the host's available memory \(.*--force/)
    const forced = await lab.pmemlab(['up', '--dry-run', '--mem', '10T', '--force'])
    assert.equal(forced.exitCode, 0, forced.stderr)
  })
})

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await sleep(200)
  }
}

const waitGone = (lab: Lab, vm: string) => waitFor(async () => (await lab.qemuProcesses(vm)).length === 0, 20_000)

async function connectAgent(socket: string, timeoutMs: number): Promise<GuestAgent> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await GuestAgent.connect(socket, 2000)
    } catch (error) {
      if (Date.now() > deadline) throw error
      await sleep(500)
    }
  }
}

/**
 * Boot benchmark: pmemlab's time from `up --detach` to a working `exec`, against the raw QEMU
 * command that `up --dry-run` prints, booted to the same point (the guest agent runs a command).
 * Runs alternate in one process so machine noise hits both alike; the ratio is the figure.
 *
 *   npm run bench -- [--runs N] [--kernel distro]
 */
import {spawn} from 'node:child_process'
import {mkdir, mkdtemp, open, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {GuestAgent, Qmp, sleep} from '../src/monitor.js'
import {renderTable} from '../src/table.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '3'}, kernel: {type: 'string', default: 'distro'}}})
const runs = Number(values.runs)
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const stateDir = await mkdtemp(join(tmpdir(), 'pmemlab-bench-'))
const env = {...process.env, PMEMLAB_STATE_DIR: stateDir}
const topology = ['--kernel', values.kernel!, '--memmap', '256M', '--nvdimm', '512M']

async function pmemlab(args: string[]): Promise<string> {
  const result = await execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore'})
  return result.stdout
}

async function timePmemlab(name: string): Promise<number> {
  const start = performance.now()
  await pmemlab(['up', '--detach', '--name', name, ...topology])
  await pmemlab(['exec', name, '--', 'true'])
  const elapsed = performance.now() - start
  await pmemlab(['down', name])
  return elapsed
}

async function timeRaw(name: string): Promise<number> {
  const plan = JSON.parse(await pmemlab(['up', '--dry-run', '--json', '--name', name, ...topology])) as {
    argv: string[]
    devices: Array<{file?: string; size: number}>
  }
  // What the raw command needs on disk: its directory and sparse backing files (not timed).
  const dir = join(stateDir, 'vms', name)
  await mkdir(join(dir, 'disposable'), {recursive: true, mode: 0o700})
  for (const device of plan.devices) {
    if (!device.file) continue
    const handle = await open(device.file, 'w')
    await handle.truncate(device.size)
    await handle.close()
  }
  const [binary, ...argv] = plan.argv
  const start = performance.now()
  const qemu = spawn(binary, argv, {stdio: 'ignore'})
  let agent: GuestAgent | undefined
  while (!agent) agent = await GuestAgent.connect(join(dir, 'qga.sock'), 2000).catch(async () => void (await sleep(200)))
  const result = await agent.run(['true'])
  const elapsed = performance.now() - start
  if (result.exitCode !== 0) throw new Error('raw boot: guest command failed')
  agent.close()
  const qmp = await Qmp.connect(join(dir, 'qmp.sock'))
  await qmp.execute('quit').catch(() => undefined)
  await new Promise((resolve) => qemu.once('exit', resolve))
  await rm(dir, {recursive: true, force: true})
  return elapsed
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
try {
  await pmemlab(['image', 'build']) // warm the cache so neither side pays for it
  const raw: number[] = []
  const ours: number[] = []
  for (let i = 0; i < runs; i++) {
    raw.push(await timeRaw(`raw${i}`))
    ours.push(await timePmemlab(`bench${i}`))
    process.stderr.write(`run ${i + 1}/${runs}: raw ${(raw[i] / 1000).toFixed(2)} s, pmemlab ${(ours[i] / 1000).toFixed(2)} s\n`)
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`
  process.stdout.write(
    renderTable(
      ['what', 'runs', 'median', 'min', 'max'],
      [
        ['raw qemu (dry-run argv) to agent exec', String(runs), s(median(raw)), s(Math.min(...raw)), s(Math.max(...raw))],
        ['pmemlab up --detach + exec', String(runs), s(median(ours)), s(Math.min(...ours)), s(Math.max(...ours))],
      ],
    ),
  )
  process.stdout.write(`ratio pmemlab/raw (medians): ${(median(ours) / median(raw)).toFixed(3)}x (target: within 1.15x)\n`)
} finally {
  await rm(stateDir, {recursive: true, force: true})
}

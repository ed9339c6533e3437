/**
 * Boot benchmark: pmemlab's time from `up --detach` to a working `exec`, against the raw QEMU
 * command that `up --dry-run` prints, booted to the same point (the guest agent runs a command).
 * Runs alternate in one process, and which side goes first alternates too, so machine noise
 * hits both alike; the ratio of the medians is the figure.
 *
 *   npm run bench -- [--runs N] [--kernel distro]    (9 runs by default)
 */
import {spawn} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {sleep} from '../src/core/process.js'
import {GuestAgent, Qmp} from '../src/lab/monitor.js'
import {renderTable} from '../src/core/table.js'
import {makeRawVmFiles, type DryRun} from './raw-lab.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '9'}, kernel: {type: 'string', default: 'distro'}}})
const runs = Number(values.runs)
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const stateDir = await mkdtemp(join(tmpdir(), 'pmemlab-bench-'))
const env = {...process.env, PMEMLAB_STATE_DIR: stateDir}
const topology = ['--kernel', values.kernel!, '--memmap', '256M', '--nvdimm', '512M']

async function pmemlab(args: string[]): Promise<string> {
  const result = await execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore'})
  return result.stdout
}

/** up --detach, then exec: the total and the exec alone (two CLI start-ups are in the total). */
async function timePmemlab(name: string): Promise<{total: number; exec: number}> {
  const start = performance.now()
  await pmemlab(['up', '--detach', '--name', name, ...topology])
  const booted = performance.now()
  await pmemlab(['exec', name, '--', 'true'])
  const end = performance.now()
  await pmemlab(['down', name])
  return {total: end - start, exec: end - booted}
}

async function timeRaw(name: string): Promise<number> {
  const plan = JSON.parse(await pmemlab(['up', '--dry-run', '--json', '--name', name, ...topology])) as DryRun
  const dir = await makeRawVmFiles(stateDir, name, plan) // not timed
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

/** The q-quantile (0.5: the median) of xs, by nearest rank. */
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]
const median = (xs: number[]) => quantile(xs, 0.5)
try {
  await pmemlab(['image', 'build']) // warm the cache so neither side pays for it
  const raw: number[] = []
  const ours: number[] = []
  const execs: number[] = []
  for (let i = 0; i < runs; i++) {
    // Which side goes first alternates, so a drift in the machine's speed hits both alike.
    const timeOurs = async () => {
      const {total, exec} = await timePmemlab(`bench${i}`)
      ours.push(total)
      execs.push(exec)
    }
    if (i % 2 === 0) {
      raw.push(await timeRaw(`raw${i}`))
      await timeOurs()
    } else {
      await timeOurs()
      raw.push(await timeRaw(`raw${i}`))
    }
    process.stderr.write(`run ${i + 1}/${runs}: raw ${(raw[i] / 1000).toFixed(2)} s, pmemlab ${(ours[i] / 1000).toFixed(2)} s (exec ${(execs[i] / 1000).toFixed(2)} s)\n`)
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`
  const row = (what: string, xs: number[]) => [what, String(xs.length), s(median(xs)), s(Math.min(...xs)), s(Math.max(...xs))]
  process.stdout.write(
    renderTable(
      ['what', 'runs', 'median', 'min', 'max'],
      [row('raw qemu (dry-run argv) to agent exec', raw), row('pmemlab up --detach + exec', ours), row('  of which pmemlab exec -- true', execs)],
    ),
  )
  // Boot times under TCG on a shared machine vary by a second between runs: the ratio of each
  // adjacent pair, with its spread, shows how much of the figure is noise.
  const pairs = ours.map((t, i) => t / raw[i])
  process.stdout.write(
    `ratio pmemlab/raw (medians): ${(median(ours) / median(raw)).toFixed(3)}x (target: within 1.15x)\n` +
      `ratio of each run's pair: median ${median(pairs).toFixed(3)}x, quartiles ${quantile(pairs, 0.25).toFixed(3)}x to ${quantile(pairs, 0.75).toFixed(3)}x\n` +
      `load average now: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`,
  )
} finally {
  await rm(stateDir, {recursive: true, force: true})
}

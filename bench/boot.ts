/**
 * Boot benchmark (issue 14). For each kernel (the distro's, and a built one), in one run:
 *   - the floor: the same kernel file on the same QEMU with QEMU's defaults (SeaBIOS, the
 *     bzImage), no devices, and an initramfs whose /init powers off at once (floor.ts): QEMU's
 *     start to its exit;
 *   - the floor with pmemlab's firmware and entry (qboot, the PVH vmlinux): how far those alone go;
 *   - the raw argv before: what `up --dry-run` prints with PMEMLAB_PLAIN_BOOT=1 (and for a built
 *     kernel PMEMLAB_NO_PVH=1), booted until the guest agent runs `true`;
 *   - the raw argv now: what `up --dry-run` prints, booted the same way;
 *   - pmemlab: `up --detach` then `exec -- true`, two CLI starts included, and within it the
 *     time until `up --detach` returned: the lab is ready, its agent answers;
 *   - two bare starts of node (`node -e ''`): the part of pmemlab's two commands that is node's own.
 * Each round runs every variant once, in an order that rotates, so machine noise hits all alike;
 * the figures are medians and the ratios are ratios of medians.
 *
 *   npm run bench -- [--runs N] [--kernels distro,latest]    (7 runs by default)
 */
import {spawn} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {renderTable} from '../src/core/table.js'
import {Qmp} from '../src/lab/monitor.js'
import {floorArgv, makeFloorInitramfs, timeFloor} from './floor.js'
import {makeRawVmFiles, waitForRawAgent, type DryRun} from './raw-lab.js'
import {median} from './stats.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '7'}, kernels: {type: 'string', default: 'distro,latest'}}})
const runs = Number(values.runs)
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const work = await mkdtemp(join(tmpdir(), 'pmemlab-bench-'))
const stateDir = join(work, 'state')
const baseEnv = {...process.env, PMEMLAB_STATE_DIR: stateDir}
const topology = ['--memmap', '256M', '--nvdimm', '512M']

async function pmemlab(args: string[], env: NodeJS.ProcessEnv = baseEnv): Promise<string> {
  return (await execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore'})).stdout
}

// With --detach: the very argv `up --detach` runs (console on a socket, not on stdio).
const dryRun = async (kernel: string, name: string, env: NodeJS.ProcessEnv = baseEnv) =>
  JSON.parse(await pmemlab(['up', '--dry-run', '--detach', '--json', '--name', name, '--kernel', kernel, ...topology], env)) as DryRun
const flag = (argv: string[], name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)

/** The raw argv of DRY (made for the VM NAME), from QEMU's start until the guest agent has run `true`. */
async function timeRaw(dry: DryRun, name: string): Promise<number> {
  const dir = await makeRawVmFiles(stateDir, name, dry) // not timed
  const [binary, ...argv] = dry.argv
  const start = performance.now()
  const qemu = spawn(binary, argv, {stdio: 'ignore'})
  const agent = await waitForRawAgent(join(dir, 'qga.sock'))
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

/** up --detach, then exec -- true (two CLI starts are in the time); READY gets the time until up returned (the lab is ready: its agent answers). */
async function timePmemlab(kernel: string, name: string, ready: number[]): Promise<number> {
  const start = performance.now()
  await pmemlab(['up', '--detach', '--name', name, '--kernel', kernel, ...topology])
  ready.push(performance.now() - start)
  await pmemlab(['exec', name, '--', 'true'])
  const elapsed = performance.now() - start
  await pmemlab(['down', name])
  return elapsed
}

/** Two starts of node itself, doing nothing: what any two-command CLI in node pays on this machine. */
async function timeTwoNodeStarts(): Promise<number> {
  const start = performance.now()
  for (let i = 0; i < 2; i++) await execa(process.execPath, ['-e', ''])
  return performance.now() - start
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`

try {
  await pmemlab(['image', 'build']) // warm the cache so no side pays for it
  const initrd = await makeFloorInitramfs(work)
  for (const kernel of values.kernels!.split(',')) {
    const built = kernel !== 'distro' && !kernel.startsWith('debian:')
    const plainEnv = {...baseEnv, PMEMLAB_PLAIN_BOOT: '1', ...(built ? {PMEMLAB_NO_PVH: '1'} : {})}
    const now = await dryRun(kernel, 'now')
    const before = await dryRun(kernel, 'before', plainEnv)
    const bzImage = flag((await dryRun(kernel, 'file', {...baseEnv, PMEMLAB_NO_PVH: '1'})).argv, '-kernel')!
    const consoleLog = join(work, 'floor.log')
    const floorPlain = floorArgv(before.argv, {kernel: bzImage}, initrd, consoleLog)
    const floorQuick = floorArgv(now.argv, {kernel: flag(now.argv, '-kernel')!, bios: flag(now.argv, '-bios')}, initrd, consoleLog)
    const readyMs: number[] = []
    const variants: Array<{what: string; time: (i: number) => Promise<number>; ms: number[]}> = [
      {what: 'floor: the kernel alone, QEMU defaults', time: () => timeFloor(floorPlain, consoleLog), ms: []},
      {what: `floor with ${flag(now.argv, '-bios') ? 'qboot' : 'SeaBIOS'}, ${flag(now.argv, '-kernel') === bzImage ? 'bzImage' : 'PVH vmlinux'}`, time: () => timeFloor(floorQuick, consoleLog), ms: []},
      {what: 'raw argv before (to agent exec)', time: () => timeRaw(before, 'before'), ms: []},
      {what: 'raw argv now (to agent exec)', time: () => timeRaw(now, 'now'), ms: []},
      {what: 'pmemlab up --detach + exec', time: (i) => timePmemlab(kernel, `lab${i}`, readyMs), ms: []},
      {what: "two bare node starts (node -e '')", time: timeTwoNodeStarts, ms: []},
    ]
    process.stderr.write(`kernel ${kernel}: ${bzImage}\n  now:    ${now.argv.join(' ')}\n  before: ${before.argv.join(' ')}\n`)
    for (let i = 0; i < runs; i++) {
      // The order rotates each round, so a drift in the machine's speed hits every variant alike.
      for (let j = 0; j < variants.length; j++) {
        const variant = variants[(i + j) % variants.length]
        variant.ms.push(await variant.time(i))
      }
      process.stderr.write(`${kernel} round ${i + 1}/${runs}: ${variants.map((v) => s(v.ms[i])).join(', ')}\n`)
    }
    const floor = median(variants[0].ms)
    const [, , rawBefore, rawNow, ours, nodeStarts] = variants.map((v) => median(v.ms))
    const ready = median(readyMs)
    // The lab is ready when up --detach returns (its agent answers): timed inside pmemlab's rounds.
    const rows = [...variants, {what: '  of which up --detach (lab ready)', ms: readyMs}]
    process.stdout.write(`\nkernel ${kernel} (${runs} runs each, TCG: ${now.argv.includes('tcg')})\n`)
    process.stdout.write(
      renderTable(
        ['what', 'median', 'min', 'max', 'x floor'],
        rows.map((v) => [v.what, s(median(v.ms)), s(Math.min(...v.ms)), s(Math.max(...v.ms)), `${(median(v.ms) / floor).toFixed(2)}x`]),
      ),
    )
    process.stdout.write(
      `lab ready (up --detach) / floor: ${(ready / floor).toFixed(3)}x (target for a built kernel: within 1.3x); up --detach + exec / floor: ${(ours / floor).toFixed(3)}x; raw argv now / floor: ${(rawNow / floor).toFixed(3)}x\n` +
        `pmemlab / its raw argv now: ${(ours / rawNow).toFixed(3)}x (target: within 1.10x); raw argv now / before: ${(rawNow / rawBefore).toFixed(3)}x\n` +
        `pmemlab without its two node starts / raw argv now: ${((ours - nodeStarts) / rawNow).toFixed(3)}x (what pmemlab itself adds)\n`,
    )
  }
  process.stdout.write(`load average now: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`)
} finally {
  await rm(work, {recursive: true, force: true})
}

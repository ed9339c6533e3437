/**
 * Bisect benchmark (issue 12): on the tree of test/e2e/bisect-tree.ts (eleven commits on Debian's
 * 6.1 source, ext4 refusing -o dax from c4 on),
 *   1. a whole bisect, `pmemlab bisect --good c0 --bad c7 --repro FILE`: its wall time and the
 *      time of each step, from its report;
 *   2. one step against the commands it wraps: `pmemlab bisect step` at c4, its O= directory left
 *      at c3 by a build of c3, against by hand: `make bzImage` at c4 in an O= directory of the
 *      same tree left at c3 (the same .config and make variables), the raw QEMU command that
 *      `up --dry-run --detach` prints for the reproducer's lab with that bzImage, booted to the guest
 *      agent, the reproducer's preparation and script through the agent, and quit.
 * Untimed between rounds: the checkouts, the builds of c3, and the removal of the kernel
 * entries of c3 and c4 (so pmemlab builds them rather than taking them from its cache). Which
 * side goes first alternates; the ratio of the medians is the figure (target: within 1.1x). The
 * parts are medians (they need not add up): pmemlab's from the entry's build.json and the
 * step's runs, by hand's from the clock.
 *
 *   npm run bench:bisect -- [--rounds N]    (3 rounds by default)
 */
import {spawn} from 'node:child_process'
import {copyFile, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {availableParallelism, tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import type {BisectReport} from '../src/bisect/report.js'
import type {StepRecord} from '../src/bisect/state.js'
import {kernelsDir} from '../src/core/paths.js'
import {renderTable} from '../src/core/table.js'
import {REPRODUCIBLE_MAKE_VARS} from '../src/kernel/build.js'
import {Qmp} from '../src/lab/monitor.js'
import {preparationCommands} from '../src/repro/prepare.js'
import {parseRepro} from '../src/repro/schema.js'
import {makeBisectTree} from '../test/e2e/bisect-tree.js'
import {makeRawVmFiles, waitForRawAgent, upFlags, type DryRun} from './raw-lab.js'
import {median} from './stats.js'

const {values} = parseArgs({options: {rounds: {type: 'string', default: '3'}}})
const rounds = Number(values.rounds)
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const work = await mkdtemp(join(tmpdir(), 'pmemlab-bench-bisect-'))
const stateDir = join(work, 'state')
const env = {...process.env, PMEMLAB_STATE_DIR: stateDir, NO_COLOR: '1'}
const jobs = availableParallelism()

async function pmemlab(args: string[], allowed: number[] = [0]): Promise<{exitCode: number; stdout: string}> {
  const result = await execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore', reject: false})
  if (!allowed.includes(result.exitCode ?? -1)) throw new Error(`pmemlab ${args.join(' ')}: exit ${result.exitCode}\n${result.stderr.split('\n').slice(-15).join('\n')}`)
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout}
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`

try {
  await mkdir(stateDir)
  process.stderr.write('making the tree from Debian\'s 6.1 source\n')
  const {tree, commits: c, reproducer} = await makeBisectTree(work)
  const git = (...args: string[]) => execa('git', args, {cwd: tree})
  const plan = parseRepro(await readFile(reproducer, 'utf8'), reproducer)
  await pmemlab(['image', 'build']) // neither side pays for the image

  // 1. The whole bisect.
  process.stderr.write('a whole bisect: --good c0 --bad c7\n')
  const bisectStart = performance.now()
  await pmemlab(['bisect', '--tree', tree, '--repro', reproducer, '--good', c[0], '--bad', c[7], '--output', join(work, 'bisect')])
  const bisectMs = performance.now() - bisectStart
  const report = JSON.parse(await readFile(join(work, 'bisect', 'bisect.json'), 'utf8')) as BisectReport
  if (report.culprit?.commit !== c[4]) throw new Error(`the bisect named ${report.culprit?.commit ?? 'no culprit'}, not c4`)
  const name = (commit: string) => `c${c.indexOf(commit)}`
  process.stdout.write(`whole bisect of ${c.length} commits (--good c0 --bad c7): ${s(bisectMs)}, ${report.steps.length} steps; culprit c4 (${report.culprit.subject})\n`)
  process.stdout.write(renderTable(['step', 'commit', 'build', 'verdict', 'runs', 'time'], report.steps.map((r) => [r.role, name(r.commit), r.build, r.verdict, r.runs, s(r.durationMs)])))

  // 2. One step, against the commands it wraps.
  const step = async (type: 'build' | 'test') => {
    const {stdout, exitCode} = await pmemlab(['bisect', 'step', '--tree', tree, '--output', join(work, 'steps'), '--json', ...(type === 'build' ? ['--type', 'build'] : ['--repro', reproducer])], [0, 1])
    return {record: JSON.parse(stdout) as StepRecord, exitCode}
  }
  const forget = async (...records: StepRecord[]) => {
    for (const record of records) if (record.build.key) await rm(join(kernelsDir(), record.build.key), {recursive: true, force: true})
  }
  // The by-hand side builds with the very .config pmemlab made for c4.
  const rawOut = join(tree, '.raw-bench')
  await mkdir(rawOut, {recursive: true})
  await writeFile(join(rawOut, '.gitignore'), '*\n')
  await git('checkout', '-q', c[4])
  const atC4 = (await step('build')).record
  await copyFile(join(kernelsDir(), atC4.build.key!, '.config'), join(rawOut, '.config'))
  await git('checkout', '-q', c[3])
  await forget(atC4, (await step('build')).record)
  const make = (target: string) => execa('make', ['-C', tree, `O=${rawOut}`, 'CC=ccache gcc', 'HOSTCC=ccache gcc', ...REPRODUCIBLE_MAKE_VARS, `-j${jobs}`, target], {stdout: 'ignore', stderr: 'ignore'})
  await make('olddefconfig')

  /** Where a side's time went: configure (pmemlab only), make, the boot and test. */
  interface Parts {
    configure: number
    make: number
    test: number
  }
  const parts: {ours: Parts[]; byHand: Parts[]} = {ours: [], byHand: []}

  async function timePmemlab(): Promise<number> {
    await git('checkout', '-q', c[3])
    const before = (await step('build')).record
    await git('checkout', '-q', c[4])
    const start = performance.now()
    const {record, exitCode} = await step('test')
    const ms = performance.now() - start
    if (exitCode !== 1 || record.build.state !== 'built') throw new Error(`bisect step at c4: exit ${exitCode}, build ${record.build.state}: ${record.reason}`)
    const {timings} = JSON.parse(await readFile(join(kernelsDir(), record.build.key!, 'build.json'), 'utf8')) as {timings: {configureMs: number; buildMs: number}}
    parts.ours.push({configure: timings.configureMs, make: timings.buildMs, test: record.runs.reduce((sum, run) => sum + run.durationMs, 0)})
    await forget(before, record)
    return ms
  }

  async function timeByHand(round: number): Promise<number> {
    await git('checkout', '-q', c[3])
    await make('bzImage')
    await git('checkout', '-q', c[4])
    const vm = `raw${round}`
    const bzImage = join(rawOut, 'arch', 'x86', 'boot', 'bzImage')
    // The QEMU command, as a user would copy it once from up --dry-run (not timed): with --detach,
    // the argv of a lab that runs in the background, as the step's (console on a socket).
    const dry = JSON.parse((await pmemlab(['up', '--dry-run', '--detach', '--json', '--name', vm, '--kernel', bzImage, ...upFlags(plan)])).stdout) as DryRun
    const start = performance.now()
    await make('bzImage')
    const made = performance.now()
    const dir = await makeRawVmFiles(stateDir, vm, dry)
    // Where pmemlab boots the PVH vmlinux of the bzImage (a copy of c3's, at the dry run), by
    // hand one boots the vmlinux make has just written: the same kernel, taken out by make.
    const [binary, ...argv] = dry.argv.map((arg, i) => (dry.argv[i - 1] === '-kernel' && arg !== bzImage ? join(rawOut, 'vmlinux') : arg))
    const qemu = spawn(binary, argv, {stdio: 'ignore'})
    const agent = await waitForRawAgent(join(dir, 'qga.sock'))
    for (const {argv: prepare} of preparationCommands(plan.prepare)) {
      const prepared = await agent.run(prepare, 120_000)
      if (prepared.exitCode !== 0) throw new Error(`by hand: ${prepare.join(' ')} failed: ${prepared.stderr}`)
    }
    const result = await agent.run(['bash', '-c', `cd /root && ${plan.run.script}`], plan.expect.timeoutSec * 1000)
    agent.close()
    const qmp = await Qmp.connect(join(dir, 'qmp.sock'))
    await qmp.execute('quit').catch(() => undefined)
    await new Promise((resolve) => qemu.once('exit', resolve))
    const ms = performance.now() - start
    parts.byHand.push({configure: 0, make: made - start, test: performance.now() - made})
    if (result.exitCode !== 1) throw new Error(`by hand at c4: the script exited ${result.exitCode}, not 1 (reproduced)`)
    await rm(dir, {recursive: true, force: true})
    return ms
  }

  const ours: number[] = []
  const byHand: number[] = []
  for (let i = 0; i < rounds; i++) {
    const sides = [async () => void ours.push(await timePmemlab()), async () => void byHand.push(await timeByHand(i))]
    for (const side of i % 2 === 0 ? sides : sides.reverse()) await side()
    process.stderr.write(`round ${i + 1}/${rounds}: pmemlab bisect step ${s(ours[i])}, by hand ${s(byHand[i])}\n`)
  }
  await git('checkout', '-q', 'main')

  const row = (what: string, xs: number[], p: Parts[]) => {
    const part = (pick: (x: Parts) => number) => s(median(p.map(pick)))
    return [what, String(xs.length), s(median(xs)), s(Math.min(...xs)), s(Math.max(...xs)), part((x) => x.configure), part((x) => x.make), part((x) => x.test)]
  }
  process.stdout.write(
    renderTable(
      ['one step at c4, O= left at c3', 'rounds', 'median', 'min', 'max', 'configure', 'make', 'boot + test'],
      [row('pmemlab bisect step --repro FILE', ours, parts.ours), row('make bzImage + raw QEMU + the test', byHand, parts.byHand)],
    ),
  )
  const pairs = ours.map((t, i) => t / byHand[i])
  process.stdout.write(
    `ratio step / by hand (medians): ${(median(ours) / median(byHand)).toFixed(3)}x (target: within 1.1x)\n` +
      `ratio of each round's pair: median ${median(pairs).toFixed(3)}x, from ${Math.min(...pairs).toFixed(3)}x to ${Math.max(...pairs).toFixed(3)}x\n` +
      `load average now: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`,
  )
} finally {
  await rm(work, {recursive: true, force: true})
}

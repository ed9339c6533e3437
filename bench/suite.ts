/**
 * Suite benchmark (issues 4 and 13), in one run:
 *   - the built-in suite as it was before issue 13's groups (--filter leaving them out), and the
 *     whole built-in suite: what the new groups add to its wall time (issue 13: at most 50 %);
 *   - the whole run's split into booting (both VMs of the power-loss case), preparing the
 *     persistent memory (namespaces, mkfs, mount, unmount) and the tests themselves;
 *   - each upstream suite (--suite ndctl) in the lab chosen for it, with its pass, skip and fail
 *     counts.
 * The two built-in runs alternate (--rounds N pairs, the first one's order flipped each round) so
 * that machine noise hits both; figures are medians.
 *
 *   npm run build && node dist/bench/suite.js [--kernel distro] [--fs ext4,xfs] [--rounds 1] [--upstream ndctl|none]
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {renderTable} from '../src/core/table.js'
import {median} from './stats.js'

const {values} = parseArgs({
  options: {kernel: {type: 'string', default: 'distro'}, fs: {type: 'string', default: 'ext4,xfs'}, rounds: {type: 'string', default: '1'}, upstream: {type: 'string', default: 'ndctl'}},
})
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const stateDir = await mkdtemp(join(tmpdir(), 'pmemlab-bench-'))
const env = {...process.env, PMEMLAB_STATE_DIR: stateDir}

/** The steps issue 13 added to the built-in suite: left out, the suite is the one before it. */
const NEW_IN_13 = ['!*/pmd']

interface Report {
  ok: boolean
  durationMs: number
  phases: {bootMs: number; prepareMs: number; testsMs: number; imageMs?: number}
  summary: {total: number; passed: number; failed: number; timedOut: number; errors: number; skipped: number}
  lab: {accel?: string}
}

interface Timed {
  wallMs: number
  report: Report
  exitCode: number
}

async function timedTest(args: string[]): Promise<Timed> {
  process.stderr.write(`\nrunning pmemlab ${args.join(' ')}\n`)
  const started = performance.now()
  const run = await execa(process.execPath, [runJs, 'test', ...args, '--json'], {env, stdin: 'ignore', stderr: 'inherit', reject: false})
  const wallMs = performance.now() - started
  return {wallMs, report: JSON.parse(run.stdout) as Report, exitCode: run.exitCode ?? -1}
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`
const counts = (r: Report) => `${r.summary.passed} passed, ${r.summary.failed + r.summary.errors + r.summary.timedOut} failed, ${r.summary.skipped} skipped`

try {
  // Warm the image cache so that the runs measure the suites, not the image build.
  await execa(process.execPath, [runJs, 'image', 'build'], {env, stdin: 'ignore', stderr: 'inherit'})
  const lab = ['--kernel', values.kernel!, '--fs', values.fs!]
  const before: Timed[] = []
  const whole: Timed[] = []
  for (let round = 0; round < Number(values.rounds); round++) {
    const pair = [async () => before.push(await timedTest([...lab, ...NEW_IN_13.flatMap((f) => ['--filter', f])])), async () => whole.push(await timedTest(lab))]
    if (round % 2 === 1) pair.reverse()
    for (const run of pair) await run()
  }
  const upstream = values.upstream === 'none' ? [] : values.upstream!.split(',')
  const upstreamRuns = []
  for (const suite of upstream) upstreamRuns.push({suite, ...(await timedTest(['--suite', suite, '--kernel', values.kernel!]))})

  const beforeMs = median(before.map((t) => t.wallMs))
  const wholeMs = median(whole.map((t) => t.wallMs))
  const last = whole.at(-1)!
  const rows = [
    [`built-in suite without issue 13's groups (--filter ${NEW_IN_13.join(' ')})`, s(beforeMs), '1.00', counts(before.at(-1)!.report)],
    ['built-in suite, every group', s(wholeMs), (wholeMs / beforeMs).toFixed(2), counts(last.report)],
    ...upstreamRuns.map((u) => [`--suite ${u.suite} (the lab chosen for it)`, s(u.wallMs), '', counts(u.report)]),
  ]
  const {bootMs, prepareMs, testsMs, imageMs = 0} = last.report.phases
  const share = (ms: number) => `${((100 * ms) / last.wallMs).toFixed(0)} %`
  const phases = [
    ['boot (until the guest agent answers, both VMs)', s(bootMs), share(bootMs)],
    ['preparation (namespaces, mkfs, mount, unmount)', s(prepareMs), share(prepareMs)],
    ['tests', s(testsMs), share(testsMs)],
    ['other (start, inventory, power cut, teardown)', s(last.wallMs - bootMs - prepareMs - testsMs - imageMs), share(last.wallMs - bootMs - prepareMs - testsMs - imageMs)],
    ['total (wall)', s(last.wallMs), '100 %'],
  ]
  process.stdout.write(
    `pmemlab test --kernel ${values.kernel} --fs ${values.fs} (${last.report.lab.accel ?? '?'}), ${values.rounds} round(s), medians\n\n` +
      renderTable(['RUN', 'WALL', 'RATIO', 'RESULTS'], rows) +
      `\nthe new groups add ${(100 * (wholeMs / beforeMs - 1)).toFixed(0)} % to the built-in suite's wall time (at most 50 % wanted)\n\n` +
      `the whole built-in run, by phase\n` +
      renderTable(['PHASE', 'TIME', 'SHARE'], phases),
  )
  if ([...before, ...whole].some((t) => t.exitCode !== 0)) process.exitCode = 1
} finally {
  await rm(stateDir, {recursive: true, force: true})
}

/**
 * Reproducer benchmark: `pmemlab repro FILE --runs 1` against the same steps driven by hand with
 * the lab commands: `up --detach` with the file's lab, `exec` of each device's preparation (the
 * same pmemlab-suite commands repro uses), `exec` of the script under bash, `down`. Both sides
 * boot the same kernel and image; the sides alternate, and which goes first alternates too, so
 * machine noise hits both alike. The ratio of the medians is the figure (target: within 1.1x).
 *
 *   node dist/bench/repro.js [--runs N] [--file examples/repro/warning-sysrq.yaml] [--kernel distro]
 */
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {renderTable} from '../src/core/table.js'
import {preparationCommands} from '../src/repro/prepare.js'
import {parseRepro, type ReproPlan} from '../src/repro/schema.js'
import {upFlags} from './raw-lab.js'
import {median, quantile} from './stats.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const {values} = parseArgs({
  options: {
    runs: {type: 'string', default: '5'},
    file: {type: 'string', default: join(root, 'examples', 'repro', 'warning-sysrq.yaml')},
    kernel: {type: 'string', default: 'distro'},
  },
})
const runs = Number(values.runs)
const file = resolve(values.file!)
const runJs = join(root, 'bin', 'run.js')
const stateDir = await mkdtemp(join(tmpdir(), 'pmemlab-bench-'))
const env = {...process.env, PMEMLAB_STATE_DIR: stateDir}

async function pmemlab(args: string[], allowed: number[] = [0]): Promise<{exitCode: number; stdout: string}> {
  const result = await execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore', reject: false})
  if (!allowed.includes(result.exitCode ?? -1)) throw new Error(`pmemlab ${args.join(' ')}: exit ${result.exitCode}\n${result.stderr.split('\n').slice(-10).join('\n')}`)
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout}
}

/** repro's verdict exit codes: 0 not reproduced, 1 reproduced. */
const VERDICTS = [0, 1]

async function timeRepro(output: string): Promise<{ms: number; exitCode: number}> {
  const start = performance.now()
  const {exitCode} = await pmemlab(['repro', file, '--runs', '1', '--kernel', values.kernel!, '--output', output], VERDICTS)
  return {ms: performance.now() - start, exitCode}
}

async function timeByHand(plan: ReproPlan, name: string): Promise<{ms: number; exitCode: number}> {
  const start = performance.now()
  await pmemlab(['up', '--detach', '--name', name, '--kernel', values.kernel!, ...upFlags(plan)])
  let exitCode = -1
  try {
    for (const {argv} of preparationCommands(plan.prepare)) await pmemlab(['exec', name, '--', ...argv])
    exitCode = (await pmemlab(['exec', name, '--timeout', String(plan.expect.timeoutSec), '--', 'bash', '-c', `cd /root && ${plan.run.script}`], [0, 1, 2])).exitCode
  } finally {
    await pmemlab(['down', name])
  }
  // down is one of the steps: repro stops its VM the same way (graceful power-off).
  return {ms: performance.now() - start, exitCode}
}

try {
  const plan = parseRepro(await readFile(file, 'utf8'), file)
  if (plan.image) throw new Error(`${file} names an image: this benchmark drives the default image only`)
  // Warm the image and kernel so neither side pays for them.
  await timeRepro(join(stateDir, 'warm'))
  const repro: number[] = []
  const byHand: number[] = []
  for (let i = 0; i < runs; i++) {
    let verdict = -1
    let scriptExit = -1
    const sides = [
      async () => ({ms: repro[i], exitCode: verdict} = await timeRepro(join(stateDir, `out${i}`))),
      async () => ({ms: byHand[i], exitCode: scriptExit} = await timeByHand(plan, `hand${i}`)),
    ]
    for (const side of i % 2 === 0 ? sides : sides.reverse()) await side()
    process.stderr.write(`run ${i + 1}/${runs}: repro ${(repro[i] / 1000).toFixed(2)} s (exit ${verdict}), up/exec/down ${(byHand[i] / 1000).toFixed(2)} s (script exit ${scriptExit})\n`)
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`
  const row = (what: string, xs: number[]) => [what, String(xs.length), s(median(xs)), s(Math.min(...xs)), s(Math.max(...xs))]
  process.stdout.write(`reproducer: ${file} (kernel ${values.kernel}; up flags: ${upFlags(plan).join(' ')})\n`)
  process.stdout.write(
    renderTable(
      ['what', 'runs', 'median', 'min', 'max'],
      [row('pmemlab repro FILE --runs 1', repro), row(`up --detach, exec x${preparationCommands(plan.prepare).length + 1}, down`, byHand)],
    ),
  )
  const pairs = repro.map((t, i) => t / byHand[i])
  process.stdout.write(
    `ratio repro / by hand (medians): ${(median(repro) / median(byHand)).toFixed(3)}x (target: within 1.1x)\n` +
      `ratio of each run's pair: median ${median(pairs).toFixed(3)}x, quartiles ${quantile(pairs, 0.25).toFixed(3)}x to ${quantile(pairs, 0.75).toFixed(3)}x\n` +
      `load average now: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`,
  )
} finally {
  await rm(stateDir, {recursive: true, force: true})
}

/**
 * Kernel build benchmark: `pmemlab kernel build` against the same make run by hand on the same
 * configuration (tinyconfig + merge_config.sh with the checked-in fragments + olddefconfig +
 * make -jN bzImage), on the same extracted source, with the same -j, ccache disabled for both
 * (CCACHE_DISABLE=1). Also the cold first build (download-free, extraction included) and the
 * cache hit. Target: pmemlab's overhead under 5 % of make.
 *
 *   npm run build && node dist/bench/kbuild.js [--source FILE] [--jobs N] [--runs N]
 *
 * About 4 minutes per build on 2 cores: the default (1 run) takes ~12 minutes. Not run in CI.
 */
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {availableParallelism, tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {renderTable} from '../src/core/table.js'

const {values} = parseArgs({
  options: {
    source: {type: 'string', default: '/usr/src/linux-source-6.1.tar.xz'},
    jobs: {type: 'string', default: String(availableParallelism())},
    runs: {type: 'string', default: '1'},
  },
})
const source = values.source!
const jobs = values.jobs!
const runs = Number(values.runs)
const root = fileURLToPath(new URL('../../', import.meta.url))
const runJs = join(root, 'bin', 'run.js')
const cache = await mkdtemp(join(tmpdir(), 'pmemlab-bench-kernel-'))
const env = {...process.env, PMEMLAB_CACHE_DIR: cache, CCACHE_DISABLE: '1', NO_COLOR: '1'}

if (!existsSync(source)) {
  process.stderr.write(`${source} does not exist: apt-get install linux-source-6.1, or pass --source FILE\n`)
  process.exit(1)
}

type Build = {key: string; dir: string; cacheHit: boolean; source: {sha256: string}}
/** Wall time, and CPU time (user + system) of the command and everything it waited for. */
type Timing = {ms: number; cpuMs: number}

/**
 * Runs a command under GNU time, which reports the CPU time of the whole process tree: on a
 * shared, busy machine that is the steadier figure (wall time includes waiting for the CPU).
 */
async function timed(file: string, args: string[], options: {cwd?: string; stdout?: 'pipe' | 'ignore'} = {}): Promise<Timing & {stdout: string}> {
  const report = join(cache, `time-${process.pid}.txt`)
  const start = performance.now()
  const result = await execa('/usr/bin/time', ['-o', report, '-f', '%U %S', file, ...args], {env, cwd: options.cwd, stdin: 'ignore', stdout: options.stdout ?? 'pipe', stderr: 'inherit'})
  const ms = performance.now() - start
  const [user, system] = (await readFile(report, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number)
  return {ms, cpuMs: (user + system) * 1000, stdout: String(result.stdout ?? '')}
}

const pmemlab = (args: string[]) => timed(process.execPath, [runJs, ...args])

const buildArgs = ['kernel', 'build', '--source', source, '--jobs', jobs, '--json']

async function byHand(srcDir: string): Promise<Timing & {config: string}> {
  const out = await mkdtemp(join(tmpdir(), 'pmemlab-bench-out-'))
  const make = (args: string[]) => timed('make', ['-C', srcDir, `O=${out}`, ...args], {stdout: 'ignore'})
  const steps = [
    await make(['tinyconfig']),
    await timed(join(srcDir, 'scripts', 'kconfig', 'merge_config.sh'), ['-m', '-O', out, join(out, '.config'), join(root, 'kernel-configs', 'qemu-base.config'), join(root, 'kernel-configs', 'pmem.config')], {
      cwd: srcDir,
      stdout: 'ignore',
    }),
    await make(['olddefconfig']),
    await make([`-j${jobs}`, 'bzImage']),
  ]
  const config = await readFile(join(out, '.config'), 'utf8')
  await rm(out, {recursive: true, force: true})
  return {ms: steps.reduce((sum, s) => sum + s.ms, 0), cpuMs: steps.reduce((sum, s) => sum + s.cpuMs, 0), config}
}

/** .config lines that carry settings (the header comment holds the build date). */
const settings = (config: string) =>
  config
    .split('\n')
    .filter((line) => line.startsWith('CONFIG_') || / is not set$/.test(line))
    .sort()
    .join('\n')

const fmt = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`)

try {
  process.stderr.write(`cold build (extraction included) in ${cache}\n`)
  const cold = await pmemlab(buildArgs)
  const coldBuild = JSON.parse(cold.stdout) as Build
  const srcDir = join(cache, 'build', `src-${coldBuild.source.sha256.slice(0, 24)}`)

  const hand: Timing[] = []
  const tool: Timing[] = []
  let sameConfig = true
  for (let run = 0; run < runs; run++) {
    process.stderr.write(`run ${run + 1}/${runs}: make by hand\n`)
    const manual = await byHand(srcDir)
    hand.push(manual)
    await pmemlab(['kernel', 'rm', coldBuild.key])
    process.stderr.write(`run ${run + 1}/${runs}: pmemlab kernel build\n`)
    const measured = await pmemlab(buildArgs)
    const built = JSON.parse(measured.stdout) as Build
    if (built.cacheHit) throw new Error('expected a miss after kernel rm')
    tool.push(measured)
    sameConfig &&= settings(manual.config) === settings(await readFile(join(built.dir, '.config'), 'utf8'))
  }
  const hits: Timing[] = []
  for (let i = 0; i < 5; i++) {
    const hit = await pmemlab(buildArgs)
    if (!(JSON.parse(hit.stdout) as Build).cacheHit) throw new Error('expected a cache hit')
    hits.push(hit)
  }

  const median = (list: Timing[], field: keyof Timing) => list.map((t) => t[field]).sort((a, b) => a - b)[Math.floor(list.length / 2)]
  const hand0 = {ms: median(hand, 'ms'), cpuMs: median(hand, 'cpuMs')}
  const ratio = (t: Timing, field: keyof Timing) => {
    const r = t[field] / hand0[field]
    return `${r.toFixed(r < 0.1 ? 4 : 3)}${r > 0.5 ? ` (${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %)` : ''}`
  }
  const toolMedian = {ms: median(tool, 'ms'), cpuMs: median(tool, 'cpuMs')}
  const hitMedian = {ms: median(hits, 'ms'), cpuMs: median(hits, 'cpuMs')}
  const row = (what: string, t: Timing) => [what, fmt(t.ms), ratio(t, 'ms'), fmt(t.cpuMs), ratio(t, 'cpuMs')]
  process.stdout.write(
    renderTable(
      ['WHAT', 'WALL', 'VS MAKE', 'CPU', 'VS MAKE'],
      [
        row('make by hand: tinyconfig + merge_config.sh + olddefconfig + bzImage', hand0),
        row('pmemlab kernel build, source already extracted', toolMedian),
        row('pmemlab kernel build, cold (extraction included)', cold),
        row('pmemlab kernel build, cache hit (median of 5, node start included)', hitMedian),
      ],
    ),
  )
  const wallOverhead = (toolMedian.ms / hand0.ms - 1) * 100
  const cpuOverhead = (toolMedian.cpuMs / hand0.cpuMs - 1) * 100
  process.stdout.write(
    `\n-j${jobs}, ccache disabled (CCACHE_DISABLE=1), ${runs} run(s), medians; same .config: ${sameConfig ? 'yes' : 'NO'}\n` +
      `overhead: ${wallOverhead.toFixed(1)} % wall, ${cpuOverhead.toFixed(1)} % CPU; target < 5 %: ${wallOverhead < 5 ? 'met' : 'NOT met'} (wall), ${cpuOverhead < 5 ? 'met' : 'NOT met'} (CPU)\n` +
      `load average now: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')} (wall times on a busy machine mostly measure the neighbours)\n`,
  )
} finally {
  await rm(cache, {recursive: true, force: true})
}

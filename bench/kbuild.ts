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
import {renderTable} from '../src/table.js'

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

async function pmemlab(args: string[]): Promise<{ms: number; stdout: string}> {
  const start = performance.now()
  const result = await execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore', stderr: 'inherit'})
  return {ms: performance.now() - start, stdout: result.stdout}
}

const buildArgs = ['kernel', 'build', '--source', source, '--jobs', jobs, '--json']

async function byHand(srcDir: string): Promise<{ms: number; config: string}> {
  const out = await mkdtemp(join(tmpdir(), 'pmemlab-bench-out-'))
  const make = (args: string[]) => execa('make', ['-C', srcDir, `O=${out}`, ...args], {env, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore'})
  const start = performance.now()
  await make(['tinyconfig'])
  await execa(join(srcDir, 'scripts', 'kconfig', 'merge_config.sh'), ['-m', '-O', out, join(out, '.config'), join(root, 'kernel-configs', 'qemu-base.config'), join(root, 'kernel-configs', 'pmem.config')], {
    env,
    cwd: srcDir,
    stdout: 'ignore',
  })
  await make(['olddefconfig'])
  await make([`-j${jobs}`, 'bzImage'])
  const ms = performance.now() - start
  const config = await readFile(join(out, '.config'), 'utf8')
  await rm(out, {recursive: true, force: true})
  return {ms, config}
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

  const hand: number[] = []
  const tool: number[] = []
  let sameConfig = true
  for (let run = 0; run < runs; run++) {
    process.stderr.write(`run ${run + 1}/${runs}: make by hand\n`)
    const manual = await byHand(srcDir)
    hand.push(manual.ms)
    await pmemlab(['kernel', 'rm', coldBuild.key])
    process.stderr.write(`run ${run + 1}/${runs}: pmemlab kernel build\n`)
    const timed = await pmemlab(buildArgs)
    const built = JSON.parse(timed.stdout) as Build
    if (built.cacheHit) throw new Error('expected a miss after kernel rm')
    tool.push(timed.ms)
    sameConfig &&= settings(manual.config) === settings(await readFile(join(built.dir, '.config'), 'utf8'))
  }
  const hits: number[] = []
  for (let i = 0; i < 5; i++) hits.push((await pmemlab(buildArgs)).ms)

  const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]
  const handMs = median(hand)
  const toolMs = median(tool)
  const overhead = ((toolMs - handMs) / handMs) * 100
  process.stdout.write(
    renderTable(
      ['WHAT', 'TIME', 'VS MAKE'],
      [
        ['make by hand: tinyconfig + merge_config.sh + olddefconfig + bzImage', fmt(handMs), '1.00'],
        ['pmemlab kernel build, source already extracted', fmt(toolMs), `${(toolMs / handMs).toFixed(3)} (${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)} %)`],
        ['pmemlab kernel build, cold (extraction included)', fmt(cold.ms), (cold.ms / handMs).toFixed(3)],
        ['pmemlab kernel build, cache hit (median of 5, process start included)', fmt(median(hits)), (median(hits) / handMs).toFixed(4)],
      ],
    ),
  )
  process.stdout.write(`\n-j${jobs}, ccache disabled (CCACHE_DISABLE=1), ${runs} run(s), medians; same .config: ${sameConfig ? 'yes' : 'NO'}; target: overhead < 5 %: ${overhead < 5 ? 'met' : 'NOT met'}\n`)
} finally {
  await rm(cache, {recursive: true, force: true})
}

/**
 * Suite benchmark: the wall time of one `pmemlab test` run of the built-in suite, and how it
 * splits into booting (both VMs of the power-loss case), preparing the persistent memory
 * (namespaces, mkfs, mount, unmount) and the tests themselves. Whatever is left is pmemlab's own
 * start, the guest inventory, the power cut and the teardown.
 *
 *   npm run build && node dist/bench/suite.js [--kernel distro] [--fs ext4,xfs]
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {renderTable} from '../src/core/table.js'

const {values} = parseArgs({options: {kernel: {type: 'string', default: 'distro'}, fs: {type: 'string', default: 'ext4,xfs'}}})
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const stateDir = await mkdtemp(join(tmpdir(), 'pmemlab-bench-'))
const env = {...process.env, PMEMLAB_STATE_DIR: stateDir}

interface Report {
  ok: boolean
  durationMs: number
  phases: {bootMs: number; prepareMs: number; testsMs: number; imageMs?: number}
  summary: {total: number; passed: number; failed: number; timedOut: number; errors: number; skipped: number}
  lab: {accel?: string}
}

try {
  // Warm the image cache so that the run measures the suite, not the image build.
  await execa(process.execPath, [runJs, 'image', 'build'], {env, stdin: 'ignore', stderr: 'inherit'})
  process.stderr.write(`running pmemlab test --kernel ${values.kernel} --fs ${values.fs} (progress below)\n`)
  const started = performance.now()
  const run = await execa(process.execPath, [runJs, 'test', '--kernel', values.kernel!, '--fs', values.fs!, '--json'], {env, stdin: 'ignore', stderr: 'inherit', reject: false})
  const wall = performance.now() - started
  const report = JSON.parse(run.stdout) as Report
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  const share = (ms: number) => `${((100 * ms) / wall).toFixed(0)} %`
  const {bootMs, prepareMs, testsMs, imageMs = 0} = report.phases
  const other = wall - bootMs - prepareMs - testsMs - imageMs
  const rows = [
    ...(imageMs > 0 ? [['image build', s(imageMs), share(imageMs)]] : []),
    ['boot (until the guest agent answers, both VMs)', s(bootMs), share(bootMs)],
    ['preparation (namespaces, mkfs, mount, unmount)', s(prepareMs), share(prepareMs)],
    ['tests', s(testsMs), share(testsMs)],
    ['other (start, inventory, power cut, teardown)', s(other), share(other)],
    ['total (wall)', s(wall), '100 %'],
  ]
  const c = report.summary
  process.stdout.write(
    `pmemlab test --kernel ${values.kernel} --fs ${values.fs} (${report.lab.accel ?? '?'}): ${c.passed} passed, ${c.failed + c.errors + c.timedOut} failed, ${c.skipped} skipped; exit ${run.exitCode}\n\n` +
      renderTable(['PHASE', 'TIME', 'SHARE'], rows),
  )
  if (run.exitCode !== 0) process.exitCode = 1
} finally {
  await rm(stateDir, {recursive: true, force: true})
}

/**
 * Matrix benchmark: one `pmemlab matrix FILE` run against the same cells run one after another
 * with `pmemlab test`, as someone without the matrix would run them, in one go on this machine.
 * The sequential runs replay the exact command each cell's attempt recorded in its cell.json, so
 * both sides run the same kernels, image, topology, filesystem and suite. The matrix schedules
 * them: cells side by side up to --jobs, each kernel's first boot as its gate, and, when the file
 * says share_boots (examples/matrix-prebuilt.yaml does), a kernel's filesystems in one boot, where
 * the power-loss case then runs once, on the first filesystem (README: pmemlab matrix).
 *
 * A first, untimed matrix run warms the kernels, their initramfs and the image, so that neither
 * side pays a download, a build or an initramfs the other one does not.
 *
 *   npm run build && node dist/bench/matrix.js [--file examples/matrix-prebuilt.yaml] [--jobs N] [--skip-warm-up]
 */
import {mkdir, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {renderTable} from '../src/core/table.js'

const {values} = parseArgs({
  options: {file: {type: 'string', default: 'examples/matrix-prebuilt.yaml'}, jobs: {type: 'string'}, 'skip-warm-up': {type: 'boolean', default: false}},
})
const runJs = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const work = await mkdtemp(join(tmpdir(), 'pmemlab-bench-matrix-'))
const env = {...process.env, PMEMLAB_STATE_DIR: join(work, 'state')}

interface CellJson {
  id: string
  state: string
  durationMs: number
  attempts: Array<{command?: string[]; durationMs: number; boot?: {cells: string[]}}>
}

const pmemlab = (args: string[], options: {reject?: boolean} = {}) => execa(process.execPath, [runJs, ...args], {env, stdin: 'ignore', stderr: 'inherit', reject: options.reject ?? true})
// Without --jobs the matrix picks its own (the file's jobs, else what the host fits).
const jobs = values.jobs ? ['--jobs', values.jobs] : []
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** A recorded attempt's command with the outputs the matrix gave it (JSON, JUnit, console log), into DIR. */
async function replayed(command: string[], dir: string): Promise<string[]> {
  await mkdir(dir, {recursive: true})
  return [...command, '--json', '--junit', join(dir, 'junit.xml'), '--console-log', join(dir, 'console.log')]
}

try {
  // A first matrix run warms everything both sides use: kernels (downloaded, unpacked or built),
  // their initramfs, the image. Its cells' recorded commands are then the ones to replay.
  if (!values['skip-warm-up']) {
    process.stderr.write(`warming up: a first run of pmemlab matrix ${values.file} (not timed)\n`)
    await pmemlab(['matrix', values.file!, ...jobs, '--output', join(work, 'warm')], {reject: false})
  }

  process.stderr.write(`running pmemlab matrix ${values.file} ${jobs.join(' ')} (progress below)\n`)
  const output = join(work, 'matrix')
  const matrixStarted = performance.now()
  const matrix = await pmemlab(['matrix', values.file!, ...jobs, '--output', output, '--json'], {reject: false})
  const matrixWall = performance.now() - matrixStarted
  const cells = (JSON.parse(matrix.stdout) as {cells: CellJson[]}).cells
  const runnable = cells.filter((c) => c.attempts[0]?.command)

  process.stderr.write(`running the same ${runnable.length} cells one after another with pmemlab test\n`)
  const sequential: Array<{id: string; ms: number; exitCode: number}> = []
  const sequentialStarted = performance.now()
  for (const [i, cell] of runnable.entries()) {
    const started = performance.now()
    const run = await pmemlab(await replayed(cell.attempts[0].command!, join(work, `sequential-${i}`)), {reject: false})
    sequential.push({id: cell.id, ms: performance.now() - started, exitCode: run.exitCode ?? -1})
  }
  const sequentialWall = performance.now() - sequentialStarted

  const rows = runnable.map((cell, i) => [cell.id, cell.state, seconds(cell.attempts[0].durationMs), cell.attempts[0].boot ? `with ${cell.attempts[0].boot.cells.filter((id) => id !== cell.id).join(', ')}` : 'its own', seconds(sequential[i].ms), String(sequential[i].exitCode)])
  const boots = new Set(runnable.map((cell) => (cell.attempts[0].boot?.cells ?? [cell.id]).join(' '))).size
  const ratio = matrixWall / sequentialWall
  process.stdout.write(
    `${values.file}: ${cells.length} cells (matrix exit ${matrix.exitCode})\n\n` +
      renderTable(['CELL', 'MATRIX STATE', 'IN MATRIX', 'BOOT', 'ALONE (pmemlab test)', 'EXIT'], rows) +
      '\n' +
      renderTable(
        ['RUN', 'WALL'],
        [
          [`pmemlab matrix ${jobs.join(' ') || '(jobs: auto)'}: ${boots} boots for ${runnable.length} cells`, seconds(matrixWall)],
          [`pmemlab test, cell after cell: ${runnable.length} boots`, seconds(sequentialWall)],
          ['ratio matrix / sequential (target <= 0.65)', ratio.toFixed(3)],
        ],
      ),
  )
  if (matrix.exitCode !== 0 || sequential.some((s) => s.exitCode !== 0)) process.exitCode = 1
} finally {
  await rm(work, {recursive: true, force: true})
}

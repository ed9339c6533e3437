import assert from 'node:assert/strict'
import {chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import {makeLab, type Lab, type MatrixCellJson} from './cli.js'

/**
 * Issue 10's matrix on real guests: a small matrix file (the distro kernel, one NVDIMM, ext4 and
 * xfs, a two-check user suite, and the built-in suite left out by a version rule that only the
 * gate's boot can decide: those cells are skips) run here in one go, then as CI runs it (the --list --json cells,
 * one --cell run each into its own directory, matrix report over those), and both must give the
 * same cells in matrix.json. Then an interrupted run, and a bad file.
 */

interface MatrixJson {
  format: string
  matrix: {hash: string; name?: string}
  ok: boolean
  summary: Record<string, number>
  cells: MatrixCellJson[]
}

const SUITE = `#!/bin/sh
# Two checks on the prepared DAX mount: a file written there reads back.
echo "1..2"
f="$PMEMLAB_PMEM_DIR/pmemlab-matrix-e2e"
if echo hello > "$f"; then echo "ok 1 - write on $PMEMLAB_FS"; else echo "not ok 1 - write on $PMEMLAB_FS"; fi
if [ "$(cat "$f")" = hello ]; then echo "ok 2 - read back"; else echo "not ok 2 - read back"; fi
`

const MATRIX = `version: 1
name: e2e matrix
kernels: [distro]
topologies:
  nv: {nvdimm: [256M], mem: 512M}
filesystems: [ext4, xfs]
suites: [./tiny, builtin]
exclude:
  - {suite: builtin, min_version: '3.0'}
timeout: 600
`

const tail = (text: string) => text.trimEnd().split('\n').slice(-30).join('\n')
const cellsOf = (doc: MatrixJson) => doc.cells.map((c) => ({id: c.id, state: c.state, tests: c.tests.map((t) => `${t.id} ${t.status}`)}))

describe('pmemlab matrix', {timeout: 1_200_000}, () => {
  let lab: Lab
  let dir: string
  let file: string
  let local: MatrixJson

  before(async () => {
    lab = await makeLab()
    dir = await mkdtemp(join(tmpdir(), 'pmemlab-matrix-'))
    await mkdir(join(dir, 'tiny'))
    await writeFile(join(dir, 'tiny', 'check.sh'), SUITE)
    await chmod(join(dir, 'tiny', 'check.sh'), 0o755)
    file = join(dir, 'matrix.yaml')
    await writeFile(file, MATRIX)
  })
  after(async () => {
    await lab.dispose()
    await rm(dir, {recursive: true, force: true})
  })

  test('a local run: the gate, both cells in parallel, a directory per cell, matrix.json, JUnit and the summary', async () => {
    const output = join(dir, 'local')
    const summaryFile = join(dir, 'step-summary.md')
    const run = await lab.pmemlab(['matrix', file, '--output', output, '--json'], {env: {GITHUB_STEP_SUMMARY: summaryFile}})
    assert.equal(run.exitCode, 0, tail(run.stderr))
    local = JSON.parse(run.stdout) as MatrixJson
    assert.equal(local.format, 'pmemlab-matrix')
    assert.equal(local.ok, true)
    assert.deepEqual(
      local.cells.map((c) => [c.id, c.state]),
      [
        ['distro-nv-ext4-tiny', 'pass'],
        ['distro-nv-ext4-builtin', 'skip'],
        ['distro-nv-xfs-tiny', 'pass'],
        ['distro-nv-xfs-builtin', 'skip'],
      ],
    )
    for (const skipped of local.cells.filter((c) => c.state === 'skip')) {
      assert.match(skipped.reason, new RegExp(`^excluded by the rule at ${file.replaceAll('/', '\\/')}:9:5: kernel \\d+\\.\\d+\\S* is from 3\\.0$`))
      assert.deepEqual(skipped.tests, [])
      assert.ok(!('console' in skipped.artifacts) && 'gate-output' in skipped.artifacts, JSON.stringify(skipped.artifacts))
    }
    assert.deepEqual(JSON.parse(await readFile(join(output, 'matrix.json'), 'utf8')), local)
    for (const cell of local.cells.filter((c) => c.state === 'pass')) {
      const fs = cell.id.includes('ext4') ? 'ext4' : 'xfs'
      assert.deepEqual(cell.tests.map((t) => `${t.id} ${t.status}`), [`tiny/${fs}/check.sh pass`, 'kernel/console/no Oops, BUG, WARNING, lockdep report or panic on the console pass'])
      assert.match(cell.kernel.version ?? '', /^\d+\.\d+/)
      const cellDir = join(output, 'cells', cell.id)
      const record = JSON.parse(await readFile(join(cellDir, 'cell.json'), 'utf8')) as {state: string; attempts: Array<{command?: string[]}>}
      assert.equal(record.state, 'pass')
      // The command the attempt ran, to rerun the cell by hand.
      const command = record.attempts[0].command ?? []
      assert.deepEqual([command[0], command[command.indexOf('--fs') + 1], command[command.indexOf('--suite') + 1]], ['test', fs, join(dir, 'tiny')])
      assert.match(await readFile(join(cellDir, cell.artifacts.console), 'utf8'), /Linux version/)
      assert.equal(JSON.parse(await readFile(join(cellDir, cell.artifacts.results), 'utf8')).ok, true)
      assert.match(await readFile(join(cellDir, cell.artifacts.junit), 'utf8'), /<testsuites /)
      assert.match(await readFile(join(cellDir, 'junit.xml'), 'utf8'), new RegExp(`<testsuite name="${cell.id}"`))
      assert.match(await readFile(join(cellDir, cell.artifacts['gate-output']), 'utf8'), /@@devices\nnvdimm 0 /)
    }
    assert.match(await readFile(join(output, 'junit.xml'), 'utf8'), /<testsuite name="distro-nv-ext4-tiny"[\s\S]*<testsuite name="distro-nv-xfs-tiny"/)
    const summary = await readFile(join(output, 'summary.md'), 'utf8')
    assert.match(summary, /^### pmemlab matrix: e2e matrix\n\n\*\*PASSED\*\*: 2 pass, 0 flaky, 0 fail, 0 error, 2 skip of 4 cells/)
    assert.equal(await readFile(summaryFile, 'utf8'), summary)
    // Not a terminal (and NO_COLOR): one plain line per change, the gate before the cells.
    assert.ok(!run.stderr.includes('\u001B['), 'no escape codes')
    const gate = run.stderr.indexOf('pmemlab: matrix: kernel distro booted')
    assert.ok(gate > 0 && gate < run.stderr.indexOf('pmemlab: matrix: cell distro-nv-ext4-tiny running'), tail(run.stderr))
    assert.match(run.stderr, /pmemlab: matrix: cell distro-nv-xfs-tiny pass [\d.]+ s: 1 passed\n/)
    assert.match(run.stderr, /pmemlab: jobs: 2 at once \(the least of \d+ cores?, .* per cell = \d+, 4 cells\)/)
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
  })

  test('as CI runs it: --list --json, --cell for each cell into its own directory, matrix report gives the same cells', async () => {
    assert.ok(local, 'the local run ran')
    const listed = await lab.pmemlab(['matrix', file, '--list', '--json'])
    assert.equal(listed.exitCode, 0, listed.stderr)
    const {include} = JSON.parse(listed.stdout) as {include: Array<{cell: string; kernel: string; filesystem: string; cache_key: string}>}
    assert.deepEqual(include.map((e) => e.cell), local.cells.map((c) => c.id))
    assert.equal(new Set(include.map((e) => e.cache_key)).size, 1, 'one kernel, one cache key')
    const dirs: string[] = []
    for (const [i, entry] of include.entries()) {
      const output = join(dir, `job-${i}`)
      const run = await lab.pmemlab(['matrix', file, '--cell', entry.cell, '--output', output, '--json'])
      assert.equal(run.exitCode, 0, tail(run.stderr))
      assert.equal((JSON.parse(run.stdout) as MatrixCellJson).id, entry.cell)
      // A CI job writes its cell's directory only: no merged results of a matrix it saw one cell of.
      await assert.rejects(stat(join(output, 'matrix.json')))
      dirs.push(join(output, 'cells', entry.cell))
    }
    const merged = join(dir, 'merged')
    const report = await lab.pmemlab(['matrix', 'report', ...dirs, '--output', merged, '--json'])
    assert.equal(report.exitCode, 0, report.stderr)
    const doc = JSON.parse(report.stdout) as MatrixJson
    assert.deepEqual(cellsOf(doc), cellsOf(local))
    assert.deepEqual(doc.summary, local.summary)
    assert.deepEqual(doc.matrix, local.matrix)
    assert.deepEqual(JSON.parse(await readFile(join(merged, 'matrix.json'), 'utf8')), doc)
    // One job's artifact alone: the other cell has no result, an error (exit 8).
    const partial = await lab.pmemlab(['matrix', 'report', join(dir, 'job-0'), '--output', join(dir, 'partial'), '--json'])
    assert.equal(partial.exitCode, 8, partial.stderr)
    assert.deepEqual(
      (JSON.parse(partial.stdout) as MatrixJson).cells.map((c) => [c.id, c.state]),
      include.map((e, i) => [e.cell, i === 0 ? 'pass' : 'error']),
    )
    // The same cell twice is refused.
    const twice = await lab.pmemlab(['matrix', 'report', dirs[0], join(dir, 'local'), '--output', join(dir, 'twice')])
    assert.equal(twice.exitCode, 2)
    assert.match(twice.stderr, /^pmemlab: error: cell "distro-nv-ext4-tiny" is given twice: /m)
  })

  test('Ctrl-C stops every VM and pmemlab process the matrix started and keeps the cells that finished', async () => {
    const output = join(dir, 'interrupted')
    const child = lab.start(['matrix', file, '--output', output, '--jobs', '1'])
    let stderr = ''
    const firstDone = new Promise<void>((resolve) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        if (/cell distro-nv-ext4-tiny pass/.test(stderr) && /cell distro-nv-xfs-tiny running/.test(stderr)) resolve()
      })
    })
    await Promise.race([firstDone, child])
    // Interrupt once the second cell's QEMU runs, a second into its boot: a fixed wait would race
    // the cell's end (it takes about 7 s here, and less as boots get faster).
    const deadline = Date.now() + 60_000
    while (child.exitCode === null && (await lab.qemuProcesses()).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
    await new Promise((resolve) => setTimeout(resolve, 1000))
    child.kill('SIGINT')
    const result = await child
    assert.equal(result.exitCode, 130, tail(String(result.stderr)))
    assert.match(String(result.stderr), /pmemlab: warning: SIGINT: stopping the matrix/)
    const doc = JSON.parse(await readFile(join(output, 'matrix.json'), 'utf8')) as MatrixJson
    assert.deepEqual(doc.cells.map((c) => c.state), ['pass', 'skip', 'error', 'skip'])
    assert.match(doc.cells[2].reason, /^no result: the cell did not finish/)
    await assert.rejects(stat(join(output, 'cells', 'distro-nv-xfs-tiny', 'cell.json')))
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
    const left = await execa('pgrep', ['-af', output], {reject: false})
    assert.deepEqual(left.stdout.split('\n').filter((line) => line && !line.includes('pgrep')), [])
  })

  test('a malformed matrix file is one line naming its line, exit 2, before anything boots', async () => {
    const bad = join(dir, 'bad.yaml')
    await writeFile(bad, MATRIX.replace('filesystems: [ext4, xfs]', 'filesystems: [ext4, xfs]\nfilesytems: [ext4]'))
    for (const args of [[bad], [bad, '--list', '--json'], [bad, '--cell', 'distro-nv-ext4-tiny']]) {
      const run = await lab.pmemlab(['matrix', ...args])
      assert.equal(run.exitCode, 2, run.stderr)
      assert.equal(run.stdout, '')
      const lines = run.stderr.trimEnd().split('\n')
      assert.equal(lines.length, 1, run.stderr)
      assert.match(lines[0], new RegExp(`^pmemlab: error: ${bad.replaceAll('/', '\\/')}:7:1: .*filesytems`))
    }
    const unknownCell = await lab.pmemlab(['matrix', file, '--cell', 'distro-nv-ext4-tyni'])
    assert.equal(unknownCell.exitCode, 2)
    assert.match(unknownCell.stderr, /has no cell "distro-nv-ext4-tyni": did you mean distro-nv-ext4-tiny\?/)
    assert.deepEqual(await lab.vmDirs(), [])
  })
})

import assert from 'node:assert/strict'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {expandCells, type Cell} from '../../src/matrix/cells.js'
import {cellJUnit, durationText, matrixJUnit, renderMarkdown} from '../../src/matrix/report.js'
import {
  cellRecord,
  cellTests,
  mergeCells,
  NO_RESULT,
  parseCellRecord,
  ranAttempt,
  type CellRecord,
} from '../../src/matrix/results.js'
import {kernelCacheKey, listDocument} from '../../src/matrix/list.js'
import {parseMatrix} from '../../src/matrix/schema.js'
import {decideCell, type AttemptFact, type CellFacts} from '../../src/matrix/state.js'
import type {ConsoleFinding, Counts, TestResult} from '../../src/suite/results.js'

const TEXT = [
  'version: 1',
  'name: pmem kernels',
  'kernels: [debian:6.1, {name: "6.12", build: {version: 6.12, from: debian}}]',
  'topologies:',
  '  memmap: {memmap: [256M]}',
  '  nvdimm: {nvdimm: [512M]}',
  'filesystems: [ext4]',
  'retries: 1',
].join('\n')
const plan = parseMatrix(TEXT, 'matrix.yaml')
const {cells} = expandCells(plan)

function usageLine(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof PmemlabError && error.exitCode === 2, String(error))
    return error.oneLine()
  }
  assert.fail('no error')
}

const counts = (passed: number, failed = 0): Counts => ({total: passed + failed, passed, failed, timedOut: 0, errors: 0, skipped: 0, todo: 0})
const tests = (failing: boolean) =>
  cellTests({
    suites: [
      {
        name: 'builtin',
        kind: 'builtin',
        tests: [
          {id: 'builtin/nvdimm0/ext4/mount', suite: 'builtin', group: 'nvdimm0/ext4', name: 'mount', status: 'pass', durationMs: 812.4},
          {id: 'builtin/nvdimm0/ext4/map-sync', suite: 'builtin', group: 'nvdimm0/ext4', name: 'map-sync', status: failing ? 'fail' : 'pass', durationMs: 95, ...(failing ? {message: 'MAP_SYNC refused', details: ['errno 95']} : {})},
        ] satisfies TestResult[],
      },
    ],
    findings: [] as ConsoleFinding[],
  })

/** The record the runner would write for CELL after ATTEMPTS (and a build fact for the built kernel). */
function recordOf(cell: Cell, attempts: AttemptFact[], extra: Partial<CellFacts> = {}): CellRecord {
  const facts: CellFacts = {deviceKinds: ['nvdimm'], gate: {outcome: 'booted'}, attempts, ...extra}
  const decision = decideCell(facts)
  const ran = attempts.length > 0 && decision.decidedBy.phase === 'suite'
  return cellRecord({
    plan,
    planned: cells,
    cell,
    decision,
    kernelVersion: cell.kernel.name === '6.12' ? '6.12.57' : '6.1.0-41-amd64',
    ...(cell.kernel.build ? {build: extra.build?.ok === false ? {ok: false, reason: extra.build.reason} : {ok: true, durationMs: 1_500_000, cacheHit: false}} : {}),
    attempts: attempts.map((a) => ({verdict: a.outcome === 'error' ? 'error' : a.outcome === 'ran' && a.counts.failed === 0 ? 'pass' : 'fail', reason: 'r', durationMs: a.durationMs})),
    startedAt: '2026-12-03T10:00:00.000Z',
    tests: ran ? tests(decision.state === 'fail') : [],
    artifacts: ran ? {console: 'console.log', results: 'results.json'} : {},
  })
}

const pass: AttemptFact = {outcome: 'ran', counts: counts(2), fatalFindings: 0, durationMs: 61_000}
const fail: AttemptFact = {outcome: 'ran', counts: counts(1, 1), fatalFindings: 0, failures: ['builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused'], durationMs: 59_000}

/** One record per cell: pass, flaky, fail (after a retry), skip (failed build). */
const records = (): CellRecord[] => [
  recordOf(cells[0], [pass]),
  recordOf(cells[1], [fail, pass]),
  recordOf(cells[2], [fail, fail]),
  recordOf(cells[3], [], {build: {ok: false, reason: 'make failed: see build.log'}}),
]

/** Through JSON and back, as the records travel between jobs. */
const travelled = (record: CellRecord, source: string) => ({source, record: parseCellRecord(JSON.stringify(record, null, 2), source)})

test('the plan this file tests has four cells', () => {
  assert.deepEqual(
    cells.map((c) => c.id),
    ['debian-6.1-memmap-ext4-builtin', 'debian-6.1-nvdimm-ext4-builtin', '6.12-memmap-ext4-builtin', '6.12-nvdimm-ext4-builtin'],
  )
})

test('a cell record carries its matrix, axes, state, attempts and tests, and survives JSON', () => {
  const record = records()[1]
  assert.equal(record.format, 'pmemlab-matrix-cell')
  assert.equal(record.version, 1)
  assert.equal(record.matrix.hash, plan.hash)
  assert.deepEqual(record.matrix.cells.map((c) => c.id), cells.map((c) => c.id))
  assert.deepEqual([record.id, record.kernel.name, record.kernel.label, record.topology, record.filesystem, record.suite], [cells[1].id, 'debian-6.1', 'debian:6.1', 'nvdimm', 'ext4', 'builtin'])
  assert.equal(record.state, 'flaky')
  assert.deepEqual(record.decidedBy, {phase: 'suite', attempt: 2})
  assert.equal(record.durationMs, 120_000, 'the time of both attempts')
  assert.deepEqual(record.tests.map((t) => [t.id, t.status]), [
    ['builtin/nvdimm0/ext4/mount', 'pass'],
    ['builtin/nvdimm0/ext4/map-sync', 'pass'],
    ['kernel/console/no Oops, BUG, WARNING, lockdep report or panic on the console', 'pass'],
  ])
  assert.equal(record.tests[0].durationMs, 812, 'whole milliseconds')
  assert.deepEqual(parseCellRecord(JSON.stringify(record), 'a/cell.json'), record)
})

test('the console check becomes a failing test when the console had a fatal finding', () => {
  const finding: ConsoleFinding = {kind: 'warning', title: 'WARNING: CPU: 0 PID: 1 at fs/dax.c:100', line: 12, lines: ['WARNING: CPU: 0 PID: 1 at fs/dax.c:100', 'Call Trace:'], fails: true, vm: 'm', during: 'builtin/nvdimm0/ext4/mount'}
  const [check] = cellTests({suites: [], findings: [finding, {...finding, fails: false, kind: 'lockdep'}]})
  assert.equal(check.status, 'fail')
  assert.equal(check.message, 'warning during builtin/nvdimm0/ext4/mount: WARNING: CPU: 0 PID: 1 at fs/dax.c:100')
  assert.deepEqual(check.details, finding.lines)
})

test('a `pmemlab test` run as an attempt: counts, fatal findings and the failures, first first', () => {
  const finding: ConsoleFinding = {kind: 'oops', title: 'Oops: 0000 [#1] SMP', line: 80, lines: ['Oops: 0000 [#1] SMP'], fails: true, vm: 'm', during: 'builtin/memmap0/xfs/mmap'}
  const report = {
    durationMs: 42_000,
    findings: [finding, {...finding, kind: 'hung-task' as const, fails: false}],
    suites: [
      {
        name: 'builtin',
        kind: 'builtin' as const,
        tests: [
          {id: 'builtin/a/x', suite: 'builtin', group: 'a', name: 'x', status: 'pass', durationMs: 1},
          {id: 'builtin/a/y', suite: 'builtin', group: 'a', name: 'y', status: 'timeout', durationMs: 1},
          {id: 'builtin/a/z', suite: 'builtin', group: 'a', name: 'z', status: 'fail', message: 'read back 0x00', durationMs: 1},
          {id: 'builtin/a/w', suite: 'builtin', group: 'a', name: 'w', status: 'skip', message: 'needs an nvdimm', durationMs: 1},
        ] satisfies TestResult[],
      },
    ],
  }
  assert.deepEqual(ranAttempt(report), {
    outcome: 'ran',
    counts: {total: 4, passed: 1, failed: 1, timedOut: 1, errors: 0, skipped: 1, todo: 0},
    fatalFindings: 1,
    failures: ['builtin/a/y: timeout', 'builtin/a/z: read back 0x00', 'oops during builtin/memmap0/xfs/mmap: Oops: 0000 [#1] SMP'],
    skipReason: 'needs an nvdimm',
    durationMs: 42_000,
  })
  assert.equal(decideCell({deviceKinds: [], gate: {outcome: 'booted'}, attempts: [ranAttempt(report)]}).reason, '2 of 4 tests failed and 1 kernel finding: builtin/a/y: timeout (and 2 more)')
})

test('reading a record back: one line for each kind of bad file', () => {
  assert.match(usageLine(() => parseCellRecord('{"format":', 'x/cell.json')), /^x\/cell\.json is not JSON: /)
  assert.equal(usageLine(() => parseCellRecord('{"format": "junit"}', 'x/cell.json')), 'x/cell.json is not a pmemlab matrix cell result: pass the directories a matrix run wrote')
  assert.equal(
    usageLine(() => parseCellRecord('{"format": "pmemlab-matrix-cell", "version": 2}', 'x/cell.json')),
    'x/cell.json is a cell result of format 2; this pmemlab reads 1: merge with the pmemlab that ran the cells',
  )
  const damaged = {...records()[0], state: 'great'}
  assert.match(usageLine(() => parseCellRecord(JSON.stringify(damaged), 'x/cell.json')), /^x\/cell\.json is a damaged cell result: state: .*: run the cell again$/)
  const extra = {...records()[0], surprise: 1}
  assert.match(usageLine(() => parseCellRecord(JSON.stringify(extra), 'x/cell.json')), /^x\/cell\.json is a damaged cell result: .*surprise/)
})

test('merging gives one document in plan order, whatever the order of the records', () => {
  const inputs = records().map((r, i) => travelled(r, `job-${i}/cell.json`))
  const reference = JSON.stringify(mergeCells(inputs))
  const orders = [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]
  for (const order of orders) assert.equal(JSON.stringify(mergeCells(order.map((i) => inputs[i]))), reference)
  const doc = mergeCells(inputs)
  assert.equal(doc.format, 'pmemlab-matrix')
  assert.deepEqual(doc.matrix, {hash: plan.hash, name: 'pmem kernels'})
  assert.deepEqual(doc.cells.map((c) => [c.id, c.state]), [
    ['debian-6.1-memmap-ext4-builtin', 'pass'],
    ['debian-6.1-nvdimm-ext4-builtin', 'flaky'],
    ['6.12-memmap-ext4-builtin', 'fail'],
    ['6.12-nvdimm-ext4-builtin', 'skip'],
  ])
  assert.deepEqual(doc.summary, {cells: 4, pass: 1, fail: 1, skip: 1, error: 0, flaky: 1})
  assert.equal(doc.ok, false)
  assert.ok(doc.cells.every((c) => !('matrix' in c)))
  assert.deepEqual(doc.kernels, [
    {name: 'debian-6.1', label: 'debian:6.1', versions: ['6.1.0-41-amd64']},
    {name: '6.12', label: 'build 6.12 from debian', versions: ['6.12.57'], build: {ok: false, reason: 'make failed: see build.log'}},
  ])
})

test('cells from one process or from separate jobs merge to the same document', () => {
  // Locally the records never leave memory; in CI each is written by its job and read back.
  const local = mergeCells(records().map((record) => ({source: `out/cells/${record.id}/cell.json`, record})))
  const jobs = mergeCells(records().map((r, i) => travelled(r, `artifacts/cell-${i}/cells/${r.id}/cell.json`)))
  assert.deepEqual(jobs, local)
})

test('a planned cell with no record is an error that says so; its kernel keeps its label', () => {
  const doc = mergeCells(records().slice(0, 3).map((r, i) => travelled(r, `j${i}`)))
  const missing = doc.cells[3]
  assert.deepEqual([missing.id, missing.state, missing.reason, missing.kernel.name, missing.topology], ['6.12-nvdimm-ext4-builtin', 'error', NO_RESULT, '6.12', 'nvdimm'])
  assert.deepEqual(doc.summary, {cells: 4, pass: 1, fail: 1, skip: 0, error: 1, flaky: 1})
  assert.equal(doc.kernels[1].label, 'build 6.12 from debian')
  const onlyOne = mergeCells([travelled(records()[3], 'j3')])
  assert.equal(onlyOne.kernels[0].label, 'debian-6.1', 'a kernel no cell reported on is known by its name')
})

test('merging refuses duplicates, conflicts, other matrices and unplanned cells, in one line', () => {
  const [a, b] = records()
  assert.equal(usageLine(() => mergeCells([])), "no cell results to merge: pass the directories that hold the cells' cell.json files")
  assert.equal(
    usageLine(() => mergeCells([travelled(a, 'x/cell.json'), travelled(b, 'y/cell.json'), travelled(a, 'z/cell.json')])),
    `cell "${a.id}" is given twice: x/cell.json and z/cell.json: pass each cell result once`,
  )
  const conflict = {...a, state: 'fail' as const}
  assert.equal(
    usageLine(() => mergeCells([travelled(conflict, 'y/cell.json'), travelled(a, 'x/cell.json')])),
    `cell "${a.id}" is given twice: x/cell.json and y/cell.json, with different results: pass each cell result once`,
  )
  const other = parseMatrix(TEXT.replace('retries: 1', 'retries: 2'), 'matrix.yaml')
  const foreign = {...b, matrix: {...b.matrix, hash: other.hash}}
  const line = usageLine(() => mergeCells([travelled(foreign, 'new/cell.json'), travelled(a, 'old/cell.json')]))
  assert.match(line, /^(new|old)\/cell\.json is a cell of another matrix file \([0-9a-f]{12}, not [0-9a-f]{12} as (new|old)\/cell\.json\): merge the results of one matrix file only$/)
  assert.equal(line, usageLine(() => mergeCells([travelled(a, 'old/cell.json'), travelled(foreign, 'new/cell.json')])), 'the same line in either order')
  const stray = {...a, id: 'debian-6.1-pm-xfs-builtin'}
  assert.equal(usageLine(() => mergeCells([travelled(stray, 's/cell.json')])), 's/cell.json is cell "debian-6.1-pm-xfs-builtin", which its matrix does not plan: run the cell again')
  const replanned = {...b, matrix: {...b.matrix, cells: b.matrix.cells.slice(1)}}
  assert.match(usageLine(() => mergeCells([travelled(a, 'a/cell.json'), travelled(replanned, 'b/cell.json')])), /^b\/cell\.json plans other cells than a\/cell\.json for the same matrix file/)
})

test('the kernels of a merge show every version their cells resolved to', () => {
  const [a, b] = records()
  const newer = {...b, kernel: {...b.kernel, version: '6.1.0-42-amd64'}}
  const doc = mergeCells([travelled(a, 'a'), travelled(newer, 'b')])
  assert.deepEqual(doc.kernels[0].versions, ['6.1.0-41-amd64', '6.1.0-42-amd64'])
  assert.match(renderMarkdown(doc), /\| debian-6\.1 \| debian:6\.1 \| 6\.1\.0-41-amd64, 6\.1\.0-42-amd64 \(differs between cells\) \|/)
})

test('the Markdown summary: verdict and counts, then cell, state, time and reason per cell, then kernels', () => {
  const doc = mergeCells(records().map((r, i) => travelled(r, `j${i}`)))
  const markdown = renderMarkdown(doc)
  const lines = markdown.split('\n')
  assert.equal(lines[0], '### pmem kernels'.replace('### ', '### pmemlab matrix: '))
  assert.equal(lines[2], `**FAILED**: 1 pass, 1 flaky, 1 fail, 0 error, 1 skip of 4 cells (matrix \`${plan.hash.slice(0, 12)}\`)`)
  const table = lines.filter((l) => l.startsWith('| `'))
  assert.deepEqual(table, [
    '| `debian-6.1-memmap-ext4-builtin` | pass | 1m 01s | 2 passed |',
    '| `debian-6.1-nvdimm-ext4-builtin` | flaky | 2m 00s (2 attempts) | passed on attempt 2 after failing on attempt 1: 1 of 2 tests failed: builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused |',
    '| `6.12-memmap-ext4-builtin` | **fail** | 1m 58s (2 attempts) | attempt 2 of 2: 1 of 2 tests failed: builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused |',
    '| `6.12-nvdimm-ext4-builtin` | skip | 0.0 s | the kernel did not build: make failed: see build.log |',
  ])
  assert.ok(lines.includes('| debian-6.1 | debian:6.1 | 6.1.0-41-amd64 | none |'))
  assert.ok(lines.includes('| 6.12 | build 6.12 from debian | 6.12.57 | **failed**: make failed: see build.log |'))
  assert.ok(markdown.endsWith('|\n'))
})

test('the Markdown summary keeps reasons to one table cell and shows console excerpts folded', () => {
  const [a] = records()
  const broken: CellRecord = {...a, state: 'fail', reason: 'a | b\nc <d>', details: ['Kernel panic - not syncing: ```x```', 'second line'], decidedBy: {phase: 'gate'}}
  const markdown = renderMarkdown(mergeCells([{source: 's', record: broken}]))
  assert.ok(markdown.includes('| **fail** | 1m 01s | a \\| b c &lt;d> |'), markdown)
  assert.ok(markdown.includes(`<details><summary>${a.id}: console</summary>\n\n\`\`\`\nKernel panic - not syncing: '''x'''\nsecond line\n\`\`\`\n</details>`), markdown)
  assert.match(renderMarkdown(mergeCells([{source: 's', record: {...a, reason: 'x'.repeat(500)}}])), /\| x{239}… \|/)
  assert.match(renderMarkdown(mergeCells([{source: 's', record: a}])), /^\*\*FAILED\*\*: 1 pass, 0 flaky, 0 fail, 3 error, 0 skip of 4 cells/m, 'cells with no result fail the verdict')
})

test('durations read as a person would write them', () => {
  assert.deepEqual([0, 420, 12_340, 61_000, 3_599_999, 3_720_000].map(durationText), ['0.0 s', '0.4 s', '12.3 s', '1m 01s', '59m 59s', '1h 02m'])
})

/** The <testsuite> elements of a JUnit document, with the names and verdicts of their cases. */
function junitSuites(xml: string): Array<{name: string; cases: string[]; properties: Record<string, string>}> {
  assert.ok(xml.startsWith('<?xml'))
  return [...xml.matchAll(/<testsuite(?:\s+[a-z]+="[^"]*")*?\s+name="([^"]+)"[^>]*>([\s\S]*?)<\/testsuite>/g)].map(([, name, body]) => ({
    name,
    cases: [...body.matchAll(/<testcase(?:\s+[a-z]+="[^"]*")*?\s+name="([^"]+)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)].map(([, caseName, , inner]) => {
      const verdict = /<failure/.test(inner ?? '') ? 'failure' : /<error/.test(inner ?? '') ? 'error' : /<skipped/.test(inner ?? '') ? 'skipped' : 'pass'
      return `${caseName}: ${verdict}`
    }),
    properties: Object.fromEntries([...body.matchAll(/<property name="([^"]+)" value="([^"]*)"/g)].map(([, k, v]) => [k, v])),
  }))
}

test('merged JUnit: one suite per cell, with a "cell" case wherever the tests alone do not tell the state', () => {
  const doc = mergeCells(records().slice(0, 3).map((r, i) => travelled(r, `j${i}`)))
  const suites = junitSuites(matrixJUnit(doc))
  const console = 'no Oops, BUG, WARNING, lockdep report or panic on the console'
  assert.deepEqual(
    suites.map((s) => [s.name, s.cases]),
    [
      ['debian-6.1-memmap-ext4-builtin', ['mount: pass', 'map-sync: pass', `${console}: pass`]],
      ['debian-6.1-nvdimm-ext4-builtin', ['cell: pass', 'mount: pass', 'map-sync: pass', `${console}: pass`]],
      ['6.12-memmap-ext4-builtin', ['mount: pass', 'map-sync: failure', `${console}: pass`]],
      ['6.12-nvdimm-ext4-builtin', ['cell: error']],
    ],
  )
  assert.deepEqual(suites[0].properties, {kernel: 'debian:6.1', 'kernel.version': '6.1.0-41-amd64', topology: 'memmap', filesystem: 'ext4', suite: 'builtin', state: 'pass', reason: '2 passed'})
  assert.match(matrixJUnit(doc), /<testsuites name="pmemlab matrix pmem kernels"/)
  assert.match(matrixJUnit(doc), /flaky: passed on attempt 2/)
})

test('per-cell JUnit: a skipped build is a skipped case, a boot panic a failure with the excerpt', () => {
  const [skip] = junitSuites(cellJUnit(records()[3]))
  assert.deepEqual(skip.cases, ['cell: skipped'])
  const panic = recordOf(cells[0], [], {gate: {outcome: 'failed', reason: 'the guest kernel panicked during boot', excerpt: ['Kernel panic - not syncing: VFS']}})
  const xml = cellJUnit(panic)
  assert.deepEqual(junitSuites(xml)[0].cases, ['cell: failure'])
  assert.match(xml, /<failure message="the kernel failed its sanity gate: the guest kernel panicked during boot" type="gate"/)
  assert.match(xml, /Kernel panic - not syncing: VFS/)
})

test('--list --json: one include entry per cell for strategy.matrix, with a cache key per kernel', () => {
  const list = listDocument(cells)
  assert.deepEqual(Object.keys(list), ['include'])
  assert.deepEqual(list.include[0], {
    cell: 'debian-6.1-memmap-ext4-builtin',
    kernel: 'debian-6.1',
    kernel_label: 'debian:6.1',
    topology: 'memmap',
    filesystem: 'ext4',
    suite: 'builtin',
    cache_key: list.include[0].cache_key,
  })
  assert.match(list.include[0].cache_key, /^pmemlab-kernel-debian-6\.1-[0-9a-f]{16}$/)
  const keys = list.include.map((e) => e.cache_key)
  assert.equal(keys[0], keys[1], 'one kernel, one key')
  assert.notEqual(keys[1], keys[2])
  assert.deepEqual(JSON.parse(JSON.stringify(list)), list, 'plain JSON for fromJSON')
  const salted = listDocument(cells, (k) => (k.kind === 'build' ? 'fragments-digest' : ''))
  assert.equal(salted.include[0].cache_key, keys[0])
  assert.notEqual(salted.include[2].cache_key, keys[2], 'the salt reaches the key')
  const changed = parseMatrix(TEXT.replace('from: debian', 'from: kernel.org'), 'matrix.yaml')
  assert.notEqual(kernelCacheKey(changed.kernels[1]), kernelCacheKey(plan.kernels[1]), 'another recipe, another key')
  assert.equal(kernelCacheKey(parseMatrix(`${TEXT}\n# comment`, 'elsewhere/m.yaml').kernels[1]), kernelCacheKey(plan.kernels[1]))
})

test('--list refuses more cells than one GitHub Actions matrix runs', () => {
  const many = Array.from({length: 257}, () => cells[0])
  assert.equal(
    usageLine(() => listDocument(many)),
    'the matrix has 257 cells; GitHub Actions runs at most 256 jobs from one matrix: exclude some cells, or split the file',
  )
})

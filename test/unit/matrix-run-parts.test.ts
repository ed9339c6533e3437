import assert from 'node:assert/strict'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {attemptFact, cellCommand, parseTestReport, testArgs} from '../../src/matrix/attempt.js'
import {expandCells} from '../../src/matrix/cells.js'
import {childError, gateArgs, gateFact, gateTopology, GATE_SCRIPT, parseGateOutput} from '../../src/matrix/gate.js'
import {bootSpec, buildRequest, optionsReport} from '../../src/matrix/kernel.js'
import {readCellRecords, writeCell} from '../../src/matrix/outputs.js'
import {cellRecord, mergeCells} from '../../src/matrix/results.js'
import {parseMatrix} from '../../src/matrix/schema.js'
import type {BuildJson} from '../../src/kernel/store.js'

const plan = parseMatrix(
  [
    'version: 1',
    'kernels:',
    '  - debian:6.12',
    '  - ./kernels/bzImage',
    '  - {name: old, build: {version: 5.10, from: debian, configs: [extra.config], set: [CONFIG_KASAN=y]}}',
    '  - {name: up, build: {version: 6.1}}',
    '  - {name: mine, build: {tree: ../linux, ref: v6.9, base: defconfig, debug: true}}',
    'topologies:',
    '  both: {memmap: [256M], nvdimm: [512M], mem: 2G}',
    '  virtio: {virtio-pmem: [1G]}',
    'filesystems: [xfs]',
    'suites: [builtin, ./mine]',
  ].join('\n'),
  '/srv/ci/matrix.yaml',
)
const {cells} = expandCells(plan)
const kernel = (name: string) => plan.kernels.find((k) => k.name === name)!

const STDERR_PANIC = [
  'pmemlab: starting lab-1a2b (tcg: no KVM)',
  'pmemlab: error: VM "lab-1a2b" failed to boot: the guest kernel panicked during boot: Kernel panic - not syncing: VFS: Unable to mount root fs: console log kept in /state/failed/lab-1a2b-2026/console.log',
  '  | Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)',
  '  | CPU: 0 PID: 1 Comm: swapper/0',
  '',
].join('\n')

describe('the sanity gate', () => {
  test('one device of each kind the cells use, sized as the plan first asks, with the largest RAM', () => {
    const topologies = plan.topologies
    assert.deepEqual(gateTopology(topologies, ['memmap', 'nvdimm', 'virtio-pmem']), {mem: '2G', memmap: ['256M'], nvdimm: ['512M'], virtioPmem: ['1G']})
    assert.deepEqual(gateTopology(topologies, ['virtio-pmem']), {mem: '2G', memmap: [], nvdimm: [], virtioPmem: ['1G']})
    assert.deepEqual(gateArgs('debian:6.12', 'debian-12', gateTopology([topologies[1]], ['virtio-pmem'])), [
      'up', '--kernel', 'debian:6.12', '--image', 'debian-12', '--mem', '1G', '--virtio-pmem', '1G', '--', '/bin/sh', '-c', GATE_SCRIPT,
    ])
  })

  const booted = [
    '6.12.38+deb13-amd64',
    '@@devices',
    'memmap 0 namespace1.0 fsdax pmem1 268435456',
    'nvdimm 0 namespace0.0 raw pmem0 536870912',
    '@@dmesg',
    '[    0.000000] Linux version 6.12.38',
  ].join('\n')

  test("the guest's release and device kinds; a kind the cells need that did not appear is named", () => {
    assert.deepEqual(parseGateOutput(booted), {release: '6.12.38+deb13-amd64', kinds: ['memmap', 'nvdimm'], dmesg: '[    0.000000] Linux version 6.12.38'})
    assert.deepEqual(gateFact({code: 0, stdout: booted, stderr: ''}, ['memmap', 'nvdimm']), {fact: {outcome: 'booted'}, release: '6.12.38+deb13-amd64'})
    assert.deepEqual(gateFact({code: 0, stdout: booted, stderr: ''}, ['nvdimm', 'virtio-pmem']).fact, {outcome: 'booted', missing: ['virtio-pmem']})
  })

  test('a panic or hang at boot is the kernel failing, with the excerpt; QEMU not starting is the lab', () => {
    assert.deepEqual(childError(STDERR_PANIC).keptLog, '/state/failed/lab-1a2b-2026/console.log')
    const panic = gateFact({code: 7, stdout: '', stderr: STDERR_PANIC}, ['nvdimm'])
    assert.equal(panic.fact.outcome, 'failed')
    assert.match((panic.fact as {reason: string}).reason, /^VM "lab-1a2b" failed to boot: the guest kernel panicked during boot/)
    assert.deepEqual((panic.fact as {excerpt: string[]}).excerpt, ['Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)', 'CPU: 0 PID: 1 Comm: swapper/0'])
    assert.equal(panic.keptLog, '/state/failed/lab-1a2b-2026/console.log')
    const hang = gateFact({code: 6, stdout: '', stderr: 'pmemlab: error: VM "x" failed to boot: the guest agent did not answer within 180 s of boot: console log kept in /k/console.log\n'}, [])
    assert.equal(hang.fact.outcome, 'failed')
    const qemu = gateFact({code: 6, stdout: '', stderr: 'pmemlab: error: VM "x" failed to boot: QEMU exited with status 1 during boot: qemu-system-x86_64: cannot set up guest memory\n'}, [])
    assert.deepEqual(qemu.fact, {outcome: 'error', reason: 'VM "x" failed to boot: QEMU exited with status 1 during boot: qemu-system-x86_64: cannot set up guest memory'})
    assert.equal(gateFact({code: 8, stdout: '', stderr: 'pmemlab: error: VM "x" died: QEMU was killed by signal 9\n'}, []).fact.outcome, 'error')
    assert.equal(gateFact({code: 2, stdout: '', stderr: 'pmemlab: error: guest RAM 10.0 TiB does not fit: or pass --force\n'}, []).fact.outcome, 'error')
    assert.match((gateFact({code: 127, stdout: '6.1.0\n', stderr: 'sh: pmemlab-suite: not found\n'}, []).fact as {reason: string}).reason, /pmemlab up ended with status 127/)
  })
})

describe('an attempt at a cell', () => {
  const cell = cells.find((c) => c.id === 'debian-6.12-both-xfs-mine')!

  test('is pmemlab test with the cell\'s kernel, topology, filesystem and suite (relative to the matrix file)', () => {
    const command = cellCommand(plan, [cell], 'debian:6.12', 'debian-12')
    // The record keeps this much: a rerun by hand prints its own report and writes none of the cell's files.
    assert.deepEqual(command, ['test', '--kernel', 'debian:6.12', '--image', 'debian-12', '--mem', '2G', '--memmap', '256M', '--nvdimm', '512M', '--fs', 'xfs', '--suite', '/srv/ci/mine'])
    assert.deepEqual(testArgs(command, {junit: '/o/j.xml', console: '/o/c.log'}), [...command, '--json', '--junit', '/o/j.xml', '--console-log', '/o/c.log'])
  })

  const report = (exitCode: number, extra: object = {}) =>
    JSON.stringify({
      ok: exitCode === 0,
      exitCode,
      durationMs: 4000,
      suites: [{name: 'builtin', kind: 'builtin', tests: [{id: 'builtin/nvdimm0/xfs/mount', suite: 'builtin', group: 'nvdimm0/xfs', name: 'mount', status: exitCode === 0 ? 'pass' : 'fail', durationMs: 10, message: 'no DAX'}]}],
      findings: [],
      ...extra,
    })
  const ended = (code: number | null, more: Partial<{timedOut: boolean; interrupted: boolean}> = {}) => ({code, timedOut: false, interrupted: false, durationMs: 5000, ...more})

  test("says what the child's end means: tests ran (0, 1), the guest died (7), a boot the kernel failed (6), the lab (6, 8, others)", () => {
    const passed = attemptFact(ended(0), parseTestReport(report(0)), '', 60)
    assert.equal(passed?.outcome, 'ran')
    const failed = attemptFact(ended(1), parseTestReport(report(1)), '', 60)
    assert.deepEqual(failed && failed.outcome === 'ran' ? failed.failures : undefined, ['builtin/nvdimm0/xfs/mount: no DAX'])
    const died = attemptFact(ended(7), parseTestReport(report(7, {error: 'VM "t" died: the guest kernel panicked: BUG', errorDetails: ['BUG: unable to handle page fault']})), '', 60)
    assert.deepEqual(died, {outcome: 'died', reason: 'VM "t" died: the guest kernel panicked: BUG', excerpt: ['BUG: unable to handle page fault'], durationMs: 5000})
    assert.equal(attemptFact(ended(6), parseTestReport(report(6, {error: 'VM "t" failed to boot: the guest agent did not answer within 180 s of boot'})), '', 60)?.outcome, 'died')
    assert.equal(attemptFact(ended(6), parseTestReport(report(6, {error: 'VM "t" failed to boot: QEMU exited with status 1 during boot: x'})), '', 60)?.outcome, 'error')
    assert.deepEqual(attemptFact(ended(8), parseTestReport(report(8, {error: 'VM "t" died: QEMU was killed by signal 9'})), '', 60), {outcome: 'error', reason: 'VM "t" died: QEMU was killed by signal 9', durationMs: 5000})
  })

  test('exit 1 without a report is pmemlab failing, not the kernel; a timeout fails; an interrupt says nothing', () => {
    assert.equal(parseTestReport(''), undefined)
    assert.equal(parseTestReport('{"suites": []}'), undefined)
    assert.deepEqual(attemptFact(ended(1), undefined, 'pmemlab: building the image\npmemlab: error: mmdebstrap failed: E: cannot find newuidmap\n', 60), {outcome: 'error', reason: 'mmdebstrap failed: E: cannot find newuidmap', durationMs: 5000})
    assert.deepEqual(attemptFact(ended(null, {timedOut: true}), undefined, '', 60), {outcome: 'timeout', afterSec: 60, durationMs: 5000})
    assert.equal(attemptFact(ended(130, {interrupted: true}), undefined, '', 60), undefined)
    assert.deepEqual(attemptFact(ended(null), undefined, '', 60), {outcome: 'error', reason: 'pmemlab test ended by a signal without a report', durationMs: 5000})
  })
})

describe('kernels', () => {
  test('the build request of each recipe, paths relative to the matrix file', () => {
    assert.deepEqual(buildRequest(kernel('old').build!, plan), {
      source: {kind: 'debian', version: '5.10'},
      configs: ['/srv/ci/extra.config'],
      sets: ['CONFIG_KASAN=y'],
      debug: false,
      base: 'tinyconfig',
    })
    assert.deepEqual(buildRequest(kernel('up').build!, plan).source, {kind: 'version', version: '6.1'})
    assert.deepEqual(buildRequest(kernel('mine').build!, plan), {source: {kind: 'tree', dir: '/srv/linux', ref: 'v6.9'}, configs: [], sets: [], debug: true, base: 'defconfig'})
  })

  test('what a cell boots: the built key, a path from the matrix file, or the spec as written', () => {
    assert.equal(bootSpec(kernel('old'), plan, 'ab'.repeat(32)), 'ab'.repeat(32))
    assert.equal(bootSpec(kernel('bzImage'), plan), '/srv/ci/kernels/bzImage')
    assert.equal(bootSpec(kernel('debian-6.12'), plan), 'debian:6.12')
  })

  test('the options report: each requested option against the final .config, and those not in this version', () => {
    const build = {
      key: 'f'.repeat(64),
      kernelVersion: '6.12.38',
      base: 'tinyconfig',
      sets: [],
      fragments: [{name: 'pmem.config', path: '/p/pmem.config', sha256: 'a'.repeat(64), user: false}],
      requested: {CONFIG_LIBNVDIMM: 'y', CONFIG_DEV_DAX: 'y', CONFIG_FS_DAX: 'y'},
      notInThisVersion: [{option: 'CONFIG_ND_BLK', value: 'y', when: 'linux < 5.19', from: 'kernel-configs/pmem.config:12'}],
    } as unknown as BuildJson
    const text = optionsReport(build, 'CONFIG_LIBNVDIMM=y\n# CONFIG_DEV_DAX is not set\nCONFIG_FS_DAX=y\n', 'build 6.12 from debian')
    assert.deepEqual(text.split('\n'), [
      `kernel build 6.12 from debian: linux 6.12.38, key ${'f'.repeat(64)}`,
      'base tinyconfig; fragments: pmem.config aaaaaaaaaaaa',
      '3 options requested, 2 as asked in the final .config',
      '',
      'DIFF  CONFIG_DEV_DAX=y (the .config has n)',
      'ok    CONFIG_FS_DAX=y',
      'ok    CONFIG_LIBNVDIMM=y',
      '',
      'not in this version  CONFIG_ND_BLK=y (kernel-configs/pmem.config:12 asks for it in linux < 5.19)',
      '',
    ])
  })
})

test('matrix report finds cell records at any depth of an artifact download, and refuses what holds none', async () => {
  const root = await mkdtemp(join(tmpdir(), 'pmemlab-matrix-report-'))
  try {
    const small = parseMatrix('version: 1\nkernels: [distro]\ntopologies: {pm: {nvdimm: [256M]}}\n', 'm.yaml')
    const planned = expandCells(small).cells
    const decision = {state: 'pass' as const, reason: '3 passed', decidedBy: {phase: 'suite' as const, attempt: 1}}
    for (const [i, cell] of planned.entries()) {
      const record = cellRecord({plan: small, planned, cell, decision, attempts: [{verdict: 'pass', reason: '3 passed', durationMs: 1000 * (i + 1)}]})
      await writeCell(join(root, 'artifacts', `cell-${cell.id}`, i === 0 ? '' : 'nested/deeper'), record)
    }
    await mkdir(join(root, 'empty'))
    const found = await readCellRecords([join(root, 'artifacts')])
    assert.deepEqual(found.map((f) => f.record.id).sort(), planned.map((c) => c.id).sort())
    assert.deepEqual(mergeCells(found).cells.map((c) => c.state), ['pass', 'pass'])
    await assert.rejects(readCellRecords([join(root, 'empty')]), (error: PmemlabError) => error.exitCode === 2 && /holds no cell\.json/.test(error.message))
    await assert.rejects(readCellRecords([join(root, 'nowhere')]), (error: PmemlabError) => error.exitCode === 2 && /is not a directory/.test(error.message))
    await writeFile(join(root, 'empty', 'cell.json'), '{"format": "something else"}')
    await assert.rejects(readCellRecords([join(root, 'empty')]), (error: PmemlabError) => error.exitCode === 2 && /is not a pmemlab matrix cell result/.test(error.message))
  } finally {
    await rm(root, {recursive: true, force: true})
  }
})

import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'
import {packageRoot} from '../../src/core/paths.js'
import {expandCells, kernelGroups} from '../../src/matrix/cells.js'
import {classifySpec} from '../../src/kernel/spec.js'
import {parseMatrix} from '../../src/matrix/schema.js'
import {bootGroups} from '../../src/matrix/share.js'

/** The checked-in example matrices, read as `pmemlab matrix` reads them. */
const example = async (name: string) => parseMatrix(await readFile(join(packageRoot, 'examples', name), 'utf8'), `examples/${name}`)

test('examples/matrix.yaml: 5.10, 6.1, 6.12 and 7.x built from Debian, memmap + NVDIMM, ext4 and xfs, the built-in suite', async () => {
  const plan = await example('matrix.yaml')
  assert.deepEqual(
    plan.kernels.map((k) => [k.kind, k.build?.from, k.version]),
    [
      ['build', 'debian', '5.10'],
      ['build', 'debian', '6.1'],
      ['build', 'debian', '6.12'],
      ['build', 'debian', '7.2'],
    ],
  )
  assert.deepEqual(
    plan.topologies.map((t) => ({memmap: t.memmap.length, nvdimm: t.nvdimm.length, virtio: t.virtioPmem.length})),
    [{memmap: 1, nvdimm: 1, virtio: 0}],
  )
  assert.deepEqual(plan.filesystems, ['ext4', 'xfs'])
  assert.deepEqual(plan.suites.map((s) => s.source), ['builtin'])
  const {cells, excluded} = expandCells(plan)
  assert.equal(cells.length, 8)
  assert.deepEqual(excluded, [])
  assert.deepEqual(
    kernelGroups(cells).map((g) => [g.kernel.name, g.deviceKinds]),
    ['5.10', '6.1', '6.12', '7.2'].map((name) => [name, ['memmap', 'nvdimm']]),
  )
})

test('examples/matrix-prebuilt.yaml: Debian prebuilt 5.10, 6.12 and 7 and the distro kernel, nothing to build', async () => {
  const plan = await example('matrix-prebuilt.yaml')
  assert.deepEqual(
    plan.kernels.map((k) => [k.name, k.kind, k.spec]),
    [
      ['debian-5.10', 'debian', 'debian:5.10'],
      ['debian-6.12', 'debian', 'debian:6.12'],
      ['debian-7', 'debian', 'debian:7'],
      ['distro', 'distro', 'distro'],
    ],
  )
  assert.ok(plan.kernels.every((k) => k.build === undefined))
  const {cells} = expandCells(plan)
  assert.equal(cells.length, 8)
  assert.ok(cells.every((c) => c.topology.memmap.length === 1 && c.topology.nvdimm.length === 1 && c.suite.source === 'builtin'))
  assert.ok(plan.retries >= 1, 'CI retries a cell once: flaky, not failed')
  assert.equal(plan.shareBoots, true, 'ext4 and xfs share a boot per kernel')
  assert.deepEqual(bootGroups(cells, true).map((group) => group.map((c) => c.filesystem)), Array(4).fill(['ext4', 'xfs']))
})

test('Debian prebuilt specs: a series, a suite, an ABI or a package version; the version is their leading X.Y[.Z]', () => {
  assert.deepEqual(classifySpec('debian:7'), {kind: 'debian'})
  assert.deepEqual(classifySpec('debian:7/sid'), {kind: 'debian'})
  assert.deepEqual(classifySpec('debian:6.12/trixie'), {kind: 'debian', version: '6.12'})
  assert.deepEqual(classifySpec('debian:6.12.38+deb13-amd64'), {kind: 'debian', version: '6.12.38'})
  assert.deepEqual(classifySpec('debian:6.1.158-1'), {kind: 'debian', version: '6.1.158'})
  assert.equal(classifySpec('debian:trixie'), undefined)
  assert.equal(classifySpec('debian:'), undefined)
  const plan = parseMatrix('version: 1\nkernels: [debian:7/sid]\ntopologies: {pm: {memmap: [256M]}}\n', 'm.yaml')
  assert.equal(plan.kernels[0].name, 'debian-7-sid')
})

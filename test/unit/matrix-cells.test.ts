import assert from 'node:assert/strict'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {
  cellId,
  deviceKinds,
  excludedByVersion,
  exclusionReason,
  expandCells,
  findCell,
  kernelGroups,
  versionInRange,
  versionParts,
} from '../../src/matrix/cells.js'
import {parseMatrix} from '../../src/matrix/schema.js'

const file = (...lines: string[]) => `${lines.join('\n')}\n`
const plan = (...lines: string[]) => parseMatrix(file(...lines), 'm.yaml')

function usageLine(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof PmemlabError && error.exitCode === 2, String(error))
    return error.oneLine()
  }
  assert.fail('no error')
}

const FOUR_AXES = [
  'version: 1',
  'kernels: [debian:6.12, {name: old, build: {version: 5.10, from: debian}}]',
  'topologies:',
  '  memmap: {memmap: [256M]}',
  '  nvdimm: {nvdimm: [512M]}',
  'filesystems: [ext4, xfs]',
  'suites: [builtin, ./mine]',
]

test('cells are the product of the axes, kernels outermost, each axis in file order, with readable IDs', () => {
  const {cells, excluded} = expandCells(plan(...FOUR_AXES))
  assert.deepEqual(excluded, [])
  assert.deepEqual(
    cells.map((c) => c.id),
    [
      'debian-6.12-memmap-ext4-builtin',
      'debian-6.12-memmap-ext4-mine',
      'debian-6.12-memmap-xfs-builtin',
      'debian-6.12-memmap-xfs-mine',
      'debian-6.12-nvdimm-ext4-builtin',
      'debian-6.12-nvdimm-ext4-mine',
      'debian-6.12-nvdimm-xfs-builtin',
      'debian-6.12-nvdimm-xfs-mine',
      'old-memmap-ext4-builtin',
      'old-memmap-ext4-mine',
      'old-memmap-xfs-builtin',
      'old-memmap-xfs-mine',
      'old-nvdimm-ext4-builtin',
      'old-nvdimm-ext4-mine',
      'old-nvdimm-xfs-builtin',
      'old-nvdimm-xfs-mine',
    ],
  )
  for (const c of cells) {
    assert.match(c.id, /^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'safe as a file and artifact name')
    assert.equal(c.id, cellId(c.kernel, c.topology, c.filesystem, c.suite))
    assert.deepEqual(c.pending, [])
  }
  assert.deepEqual(expandCells(plan(...FOUR_AXES)), {cells, excluded}, 'the same plan expands the same way')
})

test('exclude rules: values on one axis are alternatives, axes combine, kernels by name or spec', () => {
  const p = plan(
    ...FOUR_AXES,
    'exclude:',
    '  - {kernel: debian:6.12, topology: nvdimm}',
    '  - {kernel: old, filesystem: [xfs], suite: mine}',
  )
  const {cells, excluded} = expandCells(p)
  assert.deepEqual(
    excluded.map((e) => [e.id, e.rule.where]),
    [
      ['debian-6.12-nvdimm-ext4-builtin', 'm.yaml:9:5'],
      ['debian-6.12-nvdimm-ext4-mine', 'm.yaml:9:5'],
      ['debian-6.12-nvdimm-xfs-builtin', 'm.yaml:9:5'],
      ['debian-6.12-nvdimm-xfs-mine', 'm.yaml:9:5'],
      ['old-memmap-xfs-mine', 'm.yaml:10:5'],
      ['old-nvdimm-xfs-mine', 'm.yaml:10:5'],
    ],
  )
  assert.equal(cells.length, 10)
  assert.ok(!cells.some((c) => excluded.some((e) => e.id === c.id)))
})

test('version rules decide at once for kernels whose spec carries a version', () => {
  const p = plan(
    'version: 1',
    'kernels: [debian:5.10, 6.1, {build: {version: 6.12}}, {name: seven, build: {version: 7.2, from: debian}}]',
    'topologies:',
    '  pm: {memmap: [256M]}',
    '  virtio: {virtio-pmem: [256M]}',
    'filesystems: [ext4]',
    'exclude:',
    '  - {topology: virtio, max_version: 5.2}',
    '  - {min_version: 6.2, max_version: 6.12}',
    '  - {kernel: seven, min_version: 7.0}',
  )
  const {cells, excluded} = expandCells(p)
  assert.deepEqual(
    cells.map((c) => c.id),
    ['debian-5.10-pm-ext4-builtin', 'debian-5.10-virtio-ext4-builtin', '6.1-pm-ext4-builtin', '6.1-virtio-ext4-builtin'],
  )
  assert.deepEqual(
    excluded.map((e) => [e.id, e.rule.where]),
    [
      ['6.12-pm-ext4-builtin', 'm.yaml:9:5'],
      ['6.12-virtio-ext4-builtin', 'm.yaml:9:5'],
      ['seven-pm-ext4-builtin', 'm.yaml:10:5'],
      ['seven-virtio-ext4-builtin', 'm.yaml:10:5'],
    ],
  )
  assert.ok(cells.every((c) => c.pending.length === 0), 'every version was known from the plan')
})

test('a kernel whose version is unknown until resolved keeps its cells, with the rules to re-apply', () => {
  const p = plan(
    'version: 1',
    'kernels: [distro, ./bzImage, debian:6.12]',
    'topologies:',
    '  pm: {memmap: [256M]}',
    '  virtio: {virtio-pmem: [256M]}',
    'filesystems: [ext4]',
    'exclude:',
    '  - {topology: virtio, max_version: 5.2}',
    '  - {kernel: debian:6.12, max_version: 6.12.5}',
  )
  const {cells, excluded} = expandCells(p)
  assert.deepEqual(excluded, [])
  const byId = new Map(cells.map((c) => [c.id, c]))
  assert.deepEqual(byId.get('distro-virtio-ext4-builtin')!.pending.map((r) => r.where), ['m.yaml:8:5'])
  assert.deepEqual(byId.get('distro-pm-ext4-builtin')!.pending, [], 'a rule that misses on an axis never waits for a version')
  assert.deepEqual(
    byId.get('debian-6.12-pm-ext4-builtin')!.pending.map((r) => r.where),
    ['m.yaml:9:5'],
    '"6.12" is some 6.12.N: too coarse for a bound of 6.12.5',
  )
  const virtio = byId.get('distro-virtio-ext4-builtin')!
  const rule = excludedByVersion(virtio, '5.2.21')
  assert.equal(rule?.where, 'm.yaml:8:5')
  assert.equal(exclusionReason(rule!, '5.2.21'), 'excluded by the rule at m.yaml:8:5: kernel 5.2.21 is up to 5.2')
  assert.equal(excludedByVersion(virtio, '6.1.0-27-amd64'), undefined)
  assert.equal(excludedByVersion(virtio, undefined), undefined, 'a kernel that never says its version is not excluded: pmemlab errs toward running')
  assert.equal(excludedByVersion(virtio, 'unknown'), undefined)
  const debian = byId.get('debian-6.12-pm-ext4-builtin')!
  assert.equal(excludedByVersion(debian, '6.12.4')?.where, 'm.yaml:9:5')
  assert.equal(excludedByVersion(debian, '6.12.38+deb13-amd64'), undefined)
})

test('version ranges: inclusive, at the precision each bound is written', () => {
  const cases: Array<[string | undefined, string | undefined, string | undefined, boolean | undefined]> = [
    ['6.1.192', undefined, '6.1', true], // max 6.1 holds every 6.1.N
    ['6.2.0', undefined, '6.1', false],
    ['6.12.0', '6.12', undefined, true], // min 6.12 holds 6.12.0
    ['6.11.9', '6.12', undefined, false],
    ['5.10.223', '5.4', '6.1', true],
    ['5.3', '5.3', '5.3', true],
    ['6.10', '6.9', undefined, true], // numbers, not text: 6.10 > 6.9
    ['6.9', '6.10', undefined, false],
    ['6.12', undefined, '6.12.5', undefined], // some 6.12.N: cannot tell
    ['6.12', '6.12.5', undefined, undefined],
    ['6.11', '6.12.5', undefined, false], // coarse, but already below
    ['6.13', undefined, '6.12.5', false],
    ['7.2', undefined, '6.12.5', false],
    [undefined, '5.4', undefined, undefined],
    ['rc-kernel', '5.4', undefined, undefined],
    [undefined, undefined, undefined, true], // no bounds: every version
    ['6.12.38+deb13-amd64', '6.12.38', '6.12.38', true],
    ['7.0.0-rc3', '7.0', undefined, true],
  ]
  for (const [version, min, max, expected] of cases) {
    assert.equal(versionInRange(version, min, max), expected, `${version} in [${min}, ${max}]`)
  }
  assert.deepEqual(versionParts('6.12.38+deb13-amd64'), [6, 12, 38])
  assert.deepEqual(versionParts('5.10'), [5, 10])
  assert.equal(versionParts('v6.1'), undefined)
})

test('cells whose IDs would collide are refused, naming both', () => {
  const line = usageLine(() =>
    expandCells(plan('version: 1', 'kernels: [{spec: distro, name: a-b}, {spec: latest, name: a}]', 'topologies:', '  c: {memmap: [256M]}', '  b-c: {memmap: [256M]}', 'filesystems: [ext4]')),
  )
  assert.match(line, /^m\.yaml:2:38: two cells get the ID "a-b-c-ext4-builtin" \(kernel a-b, topology c, ext4, suite builtin; kernel a, topology b-c, ext4, suite builtin\): rename a kernel, topology or suite/)
})

test('a plan whose rules leave no cell is refused', () => {
  const line = usageLine(() => expandCells(plan('version: 1', 'kernels: [debian:6.1]', 'topologies:', '  pm: {memmap: [256M]}', 'exclude:', '  - {max_version: 7.0}')))
  assert.equal(line, 'm.yaml: the exclude rules leave no cell to run: loosen them (the first is at m.yaml:6:5)')
})

test('--cell ID finds its cell, or says why not', () => {
  const expansion = expandCells(plan(...FOUR_AXES, 'exclude:', '  - {kernel: old, topology: nvdimm}'))
  assert.equal(findCell(expansion, 'old-memmap-xfs-mine', 'm.yaml').id, 'old-memmap-xfs-mine')
  assert.equal(usageLine(() => findCell(expansion, 'old-nvdimm-xfs-mine', 'm.yaml')), 'cell "old-nvdimm-xfs-mine" of m.yaml is excluded by the rule at m.yaml:9:5: run another cell, or change the rule')
  assert.equal(usageLine(() => findCell(expansion, 'old-memap-xfs-mine', 'm.yaml')), 'm.yaml has no cell "old-memap-xfs-mine": did you mean old-memmap-xfs-mine?')
  assert.equal(usageLine(() => findCell(expansion, 'nothing-like-it', 'm.yaml')), 'm.yaml has no cell "nothing-like-it": list them with pmemlab matrix m.yaml --list')
})

test('cells by kernel: each kernel once, with every device kind its sanity gate must show', () => {
  const p = plan(
    'version: 1',
    'kernels: [debian:5.10, debian:6.12]',
    'topologies:',
    '  virtio: {virtio-pmem: [256M]}',
    '  both: {nvdimm: [512M], memmap: [256M]}',
    'filesystems: [ext4, xfs]',
    'exclude:',
    '  - {kernel: debian:5.10, topology: both}',
  )
  const groups = kernelGroups(expandCells(p).cells)
  assert.deepEqual(
    groups.map((g) => [g.kernel.name, g.cells.map((c) => c.id), g.deviceKinds]),
    [
      ['debian-5.10', ['debian-5.10-virtio-ext4-builtin', 'debian-5.10-virtio-xfs-builtin'], ['virtio-pmem']],
      [
        'debian-6.12',
        ['debian-6.12-virtio-ext4-builtin', 'debian-6.12-virtio-xfs-builtin', 'debian-6.12-both-ext4-builtin', 'debian-6.12-both-xfs-builtin'],
        ['memmap', 'nvdimm', 'virtio-pmem'],
      ],
    ],
  )
  assert.deepEqual(deviceKinds({memmap: [], nvdimm: ['1G'], virtioPmem: ['1G']}), ['nvdimm', 'virtio-pmem'])
})

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {cellCommand, type TestReport} from '../../src/matrix/attempt.js'
import {expandCells, versionUndecided} from '../../src/matrix/cells.js'
import {parseMatrix} from '../../src/matrix/schema.js'
import {bootGroups, consoleRelease, ownersOf, partDocument, splitReport} from '../../src/matrix/share.js'
import {ranAttempt} from '../../src/matrix/results.js'
import {attemptVerdict} from '../../src/matrix/state.js'
import {usageLine} from './usage.js'

const FILE = [
  'version: 1',
  'kernels: [debian:6.12, distro]',
  'topologies:',
  '  pm: {memmap: [256M], nvdimm: [512M]}',
  '  nv: {nvdimm: [512M]}',
  'filesystems: [ext4, xfs]',
  'suites: [builtin, ./mine]',
  'exclude:',
  '  - {kernel: distro, suite: mine, min_version: "6.2"}',
].join('\n')

describe('share_boots in the matrix file', () => {
  test('is off unless the file asks, and asking changes the plan hash (the cells run differently)', () => {
    const off = parseMatrix(FILE, '/m/matrix.yaml')
    const on = parseMatrix(`${FILE}\nshare_boots: true`, '/m/matrix.yaml')
    assert.equal(off.shareBoots, undefined)
    assert.equal(on.shareBoots, true)
    assert.notEqual(on.hash, off.hash)
    // Saying false is saying nothing: the hash stays that of the file without the key.
    assert.equal(parseMatrix(`${FILE}\nshare_boots: false`, '/m/matrix.yaml').hash, off.hash)
  })

  test('takes a boolean only, named by its line', () => {
    const text = `${FILE}\nshare_boots: yes please`
    assert.match(usageLine(() => parseMatrix(text, '/m/matrix.yaml'), text), /^\/m\/matrix\.yaml:10:14: /)
  })
})

describe('boot groups', () => {
  const {cells} = expandCells(parseMatrix(FILE, '/m/matrix.yaml'))

  test('shared: the cells of one kernel, topology and suite, their filesystems in the file order, groups in plan order', () => {
    const groups = bootGroups(cells, true).map((group) => group.map((c) => c.id))
    assert.deepEqual(groups.slice(0, 4), [
      ['debian-6.12-pm-ext4-builtin', 'debian-6.12-pm-xfs-builtin'],
      ['debian-6.12-pm-ext4-mine', 'debian-6.12-pm-xfs-mine'],
      ['debian-6.12-nv-ext4-builtin', 'debian-6.12-nv-xfs-builtin'],
      ['debian-6.12-nv-ext4-mine', 'debian-6.12-nv-xfs-mine'],
    ])
    assert.equal(groups.length, 8)
    assert.deepEqual(groups.flat().sort(), cells.map((c) => c.id).sort())
  })

  test('not shared: one cell per boot', () => {
    assert.deepEqual(bootGroups(cells, false), cells.map((c) => [c]))
  })

  test("a shared boot is one pmemlab test with every cell's filesystem", () => {
    const [ext4, xfs] = bootGroups(cells, true)[0]
    const command = cellCommand({baseDir: '/m'}, [ext4, xfs], 'debian:6.12', 'debian-12')
    assert.deepEqual(command, ['test', '--kernel', 'debian:6.12', '--image', 'debian-12', '--mem', '1G', '--memmap', '256M', '--nvdimm', '512M', '--fs', 'ext4,xfs', '--suite', 'builtin'])
    assert.deepEqual(cellCommand({baseDir: '/m'}, [xfs], 'debian:6.12', 'debian-12'), command.map((a) => (a === 'ext4,xfs' ? 'xfs' : a)))
  })

  test('a version rule only a boot can decide keeps the separate gate; a known version does not', () => {
    const mine = cells.find((c) => c.id === 'distro-pm-ext4-mine')!
    assert.equal(versionUndecided(mine, undefined), true)
    assert.equal(versionUndecided(mine, '6.1.0-41-amd64'), false)
    assert.equal(versionUndecided(mine, '6'), true)
    assert.equal(versionUndecided(cells.find((c) => c.id === 'distro-pm-ext4-builtin')!, undefined), false)
  })
})

describe('splitting a shared boot into cells', () => {
  const FS = ['ext4', 'xfs'] as const

  test('a path naming a filesystem is its; the power-loss case is the first one; the rest is every one', () => {
    assert.deepEqual(ownersOf('memmap0/xfs', FS), ['xfs'])
    assert.deepEqual(ownersOf('builtin/nvdimm0/ext4/mmap with MAP_SYNC', FS), ['ext4'])
    assert.deepEqual(ownersOf('builtin/xfs: prepare nvdimm0', FS), ['xfs'])
    assert.deepEqual(ownersOf('xfs', FS), ['xfs'])
    assert.deepEqual(ownersOf('power-loss/nvdimm0', FS), ['ext4'])
    assert.deepEqual(ownersOf('power cut', FS), ['ext4'])
    assert.deepEqual(ownersOf('power-loss/nvdimm0', ['xfs', 'ext4']), ['xfs'])
    assert.deepEqual(ownersOf('devdax/nvdimm0', FS), ['ext4', 'xfs'])
    assert.deepEqual(ownersOf('boot of test-1a2b', FS), ['ext4', 'xfs'])
    // A word that only contains a filesystem's name is not it.
    assert.deepEqual(ownersOf('control/rootfs/mkfs.xfs exists', FS), ['ext4', 'xfs'])
  })

  const test_ = (group: string, name: string, status = 'pass') => ({id: `builtin/${group}/${name}`, suite: 'builtin', group, name, status, durationMs: 5})
  const report: TestReport = {
    exitCode: 1,
    durationMs: 40_000,
    suites: [
      {
        name: 'builtin',
        kind: 'builtin',
        tests: [
          test_('lab', 'devices'),
          test_('memmap0/ext4', 'mount'),
          test_('memmap0/xfs', 'mount', 'fail'),
          test_('devdax/nvdimm0', 'map'),
          test_('power-loss/nvdimm0', 'recovers'),
        ],
      },
    ],
    findings: [
      {kind: 'warning', title: 'WARNING at fs/xfs/xfs_iomap.c', fails: true, lines: ['WARNING'], vm: 't', during: 'builtin/memmap0/xfs/mount'},
      {kind: 'warning', title: 'WARNING at mm/memremap.c', fails: true, lines: ['WARNING'], vm: 't', during: 'builtin/devdax/nvdimm0/namespace in devdax mode'},
    ],
  } as unknown as TestReport

  test('each cell gets its own tests and findings and the shared ones; its own verdict follows', () => {
    const parts = splitReport(report, FS)
    const ids = (fs: 'ext4' | 'xfs') => parts.get(fs)!.suites[0].tests.map((t) => t.group)
    assert.deepEqual(ids('ext4'), ['lab', 'memmap0/ext4', 'devdax/nvdimm0', 'power-loss/nvdimm0'])
    assert.deepEqual(ids('xfs'), ['lab', 'memmap0/xfs', 'devdax/nvdimm0'])
    assert.deepEqual(parts.get('ext4')!.findings.map((f) => f.title), ['WARNING at mm/memremap.c'])
    assert.deepEqual(parts.get('xfs')!.findings.map((f) => f.title), ['WARNING at fs/xfs/xfs_iomap.c', 'WARNING at mm/memremap.c'])
    assert.equal(attemptVerdict(ranAttempt(parts.get('xfs')!)).verdict, 'fail')
    // ext4's own tests passed, but the WARNING during the shared device-DAX test is its too.
    assert.match(attemptVerdict(ranAttempt(parts.get('ext4')!)).reason, /^1 kernel finding: warning during builtin\/devdax/)
    const clean = splitReport({...report, findings: []}, FS)
    assert.deepEqual(attemptVerdict(ranAttempt(clean.get('ext4')!)), {verdict: 'pass', reason: '4 passed'})
  })

  test("a cell's results.json is the boot's report with its own part, ok, exit code and counts", () => {
    const whole = {...report, ok: false, lab: {name: 't', filesystems: ['ext4', 'xfs']}, summary: {total: 5}}
    const clean = splitReport({...report, findings: []}, FS)
    const doc = partDocument(whole, clean.get('ext4')!, 'ext4', ['a-ext4', 'a-xfs']) as Record<string, unknown>
    assert.equal(doc.ok, true)
    assert.equal(doc.exitCode, 0)
    assert.deepEqual(doc.summary, {total: 4, passed: 4, failed: 0, timedOut: 0, errors: 0, skipped: 0, todo: 0})
    assert.deepEqual(doc.sharedBoot, {filesystem: 'ext4', cells: ['a-ext4', 'a-xfs']})
    assert.deepEqual(doc.lab, whole.lab)
    const failed = partDocument(whole, clean.get('xfs')!, 'xfs', ['a-ext4', 'a-xfs']) as Record<string, unknown>
    assert.deepEqual([failed.ok, failed.exitCode], [false, 1])
  })

  test("the kernel release is read from the console's banner", () => {
    assert.equal(consoleRelease('[    0.000000] Linux version 6.12.57+deb13-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-14)\n'), '6.12.57+deb13-amd64')
    assert.equal(consoleRelease('SeaBIOS (version 1.16.2-debian-1.16.2-1)\n'), undefined)
  })
})

import assert from 'node:assert/strict'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {fragmentsForSource, fragmentsForVersion, loadFragments} from '../../src/kernel/configure.js'
import {explainDrop} from '../../src/kernel/kconfig/explain.js'
import {mergeFragments, parseDotConfig, parseFragment, renderFragment} from '../../src/kernel/kconfig/merge.js'
import {parseKconfig} from '../../src/kernel/kconfig/parse.js'
import {verifyConfig} from '../../src/kernel/kconfig/verify.js'
import {inRange, parseKernelVersion, parseVersionRange, VersionRangeError} from '../../src/kernel/kconfig/versions.js'
import {computeKey} from '../../src/kernel/key.js'

const version = (text: string) => {
  const parsed = parseKernelVersion(text)
  assert.ok(parsed, `${text} is a kernel version`)
  return parsed
}
const within = (range: string, kernel: string) => inRange(parseVersionRange(range), version(kernel))

/** A usage error (exit 2) whose one line matches. */
const usage = (pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof PmemlabError, String(error))
  assert.equal(error.exitCode, ExitCode.usage)
  assert.match(error.oneLine(), pattern)
  assert.doesNotMatch(error.oneLine(), /\n/)
  return true
}

describe('kernel versions and ranges', () => {
  test('a built kernel version: sublevel optional, EXTRAVERSION ignored (an rc is its release)', () => {
    assert.deepEqual(parseKernelVersion('6.1.192'), {major: 6, minor: 1, sublevel: 192})
    assert.deepEqual(parseKernelVersion('6.1'), {major: 6, minor: 1, sublevel: 0})
    assert.deepEqual(parseKernelVersion('6.13-rc3'), {major: 6, minor: 13, sublevel: 0})
    for (const bad of ['', '6', 'banana', 'v6.1', '6.1.1000']) assert.equal(parseKernelVersion(bad), undefined, bad)
  })

  test('ranges read one or more comparisons, normalised', () => {
    assert.equal(parseVersionRange('linux < 5.19').text, '< 5.19')
    assert.equal(parseVersionRange('  linux>=5.3,<5.19 ').text, '>= 5.3, < 5.19')
    assert.equal(parseVersionRange('linux >= 7').text, '>= 7')
    assert.equal(parseVersionRange('linux <= 5.18.19').bounds[0].parts, 3)
  })

  test('boundaries: < 5.19 takes 5.18.19 and leaves out 5.19.0 and its rcs; >= 5.3 leaves out 5.2.N', () => {
    assert.equal(within('linux < 5.19', '5.18.19'), true)
    assert.equal(within('linux < 5.19', '5.10.265'), true)
    assert.equal(within('linux < 5.19', '5.19'), false)
    assert.equal(within('linux < 5.19', '5.19.0'), false)
    assert.equal(within('linux < 5.19', '5.19-rc1'), false)
    assert.equal(within('linux < 5.19', '6.1.192'), false)
    assert.equal(within('linux >= 5.3', '5.2'), false)
    assert.equal(within('linux >= 5.3', '5.2.21'), false)
    assert.equal(within('linux >= 5.3', '5.3'), true)
    assert.equal(within('linux >= 5.3', '5.3.0'), true)
    assert.equal(within('linux >= 5.3', '7.2.8'), true)
  })

  test('a shorter version names its whole series: <= 5.18 takes every 5.18.N, > 5.18 none of them', () => {
    assert.equal(within('linux <= 5.18', '5.18.19'), true)
    assert.equal(within('linux <= 5.18', '5.19'), false)
    assert.equal(within('linux > 5.18', '5.18.19'), false)
    assert.equal(within('linux > 5.18', '5.19'), true)
    assert.equal(within('linux <= 5.18.3', '5.18.3'), true)
    assert.equal(within('linux <= 5.18.3', '5.18.4'), false)
    assert.equal(within('linux > 6', '6.19.2'), false)
    assert.equal(within('linux > 6', '7.0'), true)
    assert.equal(within('linux >= 5.3, < 5.19', '5.2.21'), false)
    assert.equal(within('linux >= 5.3, < 5.19', '5.10'), true)
    assert.equal(within('linux >= 5.3, < 5.19', '5.19'), false)
  })

  test('malformed ranges say what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /names no version range/],
      ['linux', /names no version/],
      ['linux <', /"<" names no version/],
      ['linux >=', /">=" names no version/],
      ['linux >= banana', /"banana" is not a kernel version/],
      ['>= 5.3', /does not start with "linux"/],
      ['linux 5.10', /"5.10" is not a comparison/],
      ['linux = 5.10', /"= 5.10" is not a comparison/],
      ['linux < 5.19,', /"" is not a comparison/],
      ['linux < 5.1000', /"5.1000" is not a kernel version/],
      ['linux >= 6, < 5', /matches no kernel version/],
      ['linux > 5.18, < 5.19', /matches no kernel version/],
    ]
    for (const [text, message] of cases) {
      assert.throws(() => parseVersionRange(text), (error: unknown) => error instanceof VersionRangeError && message.test(error.message), text)
    }
  })
})

describe('fragments with # pmemlab-when:', () => {
  const FRAGMENT = [
    '# pmemlab: a header comment, not a directive',
    'CONFIG_LIBNVDIMM=y',
    '# pmemlab-when: linux < 5.19',
    'CONFIG_ND_BLK=y',
    '# pmemlab-when: linux >= 5.3',
    'CONFIG_VIRTIO_PMEM=y',
    'CONFIG_DAX=y',
    '',
  ].join('\n')

  test('a range scopes the one option below it', () => {
    const parsed = parseFragment(FRAGMENT, 'pmem.config')
    assert.deepEqual(
      parsed.map((a) => [a.symbol, a.line, a.range?.text]),
      [
        ['LIBNVDIMM', 2, undefined],
        ['ND_BLK', 4, '< 5.19'],
        ['VIRTIO_PMEM', 6, '>= 5.3'],
        ['DAX', 7, undefined],
      ],
    )
    const notSet = parseFragment('# pmemlab-when: linux >= 6.2\n# CONFIG_SLUB_TINY is not set\n', 'debug.config')
    assert.deepEqual(notSet.map((a) => [a.symbol, a.value, a.range?.text]), [['SLUB_TINY', 'n', '>= 6.2']])
  })

  test('a malformed range, or one that scopes nothing, is a usage error naming file:line', () => {
    assert.throws(() => parseFragment('CONFIG_A=y\n# pmemlab-when: linux >= banana\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:2: # pmemlab-when: "banana" is not a kernel version/))
    assert.throws(() => parseFragment('# pmemlab-when: linux <\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:1: # pmemlab-when: "<" names no version/))
    assert.throws(() => parseFragment('# pmemlab-when:\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:1: .*names no version range/))
    assert.throws(() => parseFragment('# pmemlab-when: linux < 5.19\n\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:1: .*scopes nothing/))
    assert.throws(() => parseFragment('# pmemlab-when: linux < 5.19\n# why\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:1: .*scopes nothing/))
    assert.throws(() => parseFragment('# pmemlab-when: linux < 5.19\n# pmemlab-when: linux >= 5.3\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:1: .*scopes nothing/))
    assert.throws(() => parseFragment('CONFIG_A=y\n# pmemlab-when: linux < 5.19\n', 'my.config'), usage(/^my\.config:2: .*scopes nothing/))
    assert.throws(() => parseFragment('# pmemlab-when linux < 5.19\nCONFIG_B=y\n', 'my.config'), usage(/^my\.config:1: .*is not a version range: write "# pmemlab-when: linux < 5\.19"/))
    // Other comments that mention pmemlab are comments ("# pmemlab-init is a shell script.").
    assert.equal(parseFragment('# pmemlab-init is a shell script.\n# pmemlab: header\nCONFIG_B=y\n', 'my.config').length, 1)
    // A trailing comment is not a kconfig fragment line: said, with where the range goes instead.
    assert.throws(() => parseFragment('CONFIG_ND_BLK=y  # pmemlab-when: linux < 5.19\n', 'my.config'), usage(/^my\.config:1: .*is not a Kconfig assignment: put "# pmemlab-when: linux \.\.\." on a line of its own/))
  })

  test('the merge leaves out what is not in this version, at the boundaries', () => {
    const merged = (kernel: string) => mergeFragments([{name: 'pmem.config', text: FRAGMENT}], kernel)
    const symbols = (kernel: string) => [...merged(kernel).options.keys()]
    assert.deepEqual(symbols('5.18.19'), ['LIBNVDIMM', 'ND_BLK', 'VIRTIO_PMEM', 'DAX'])
    assert.deepEqual(symbols('5.19'), ['LIBNVDIMM', 'VIRTIO_PMEM', 'DAX'])
    assert.deepEqual(symbols('5.3'), ['LIBNVDIMM', 'ND_BLK', 'VIRTIO_PMEM', 'DAX'])
    assert.deepEqual(symbols('5.2.21'), ['LIBNVDIMM', 'ND_BLK', 'DAX'])
    assert.deepEqual(
      merged('6.1.192').notInVersion.map((o) => [o.symbol, o.value, `${o.file}:${o.line}`, o.range.text]),
      [['ND_BLK', 'y', 'pmem.config:4', '< 5.19']],
    )
    assert.deepEqual(merged('5.2').notInVersion.map((o) => o.symbol), ['VIRTIO_PMEM'])
    assert.deepEqual(merged('5.10.265').notInVersion, [])
  })

  test('the key sees the options that apply, never a range: adding a scoped option keeps the 6.1 key, changes the 5.10 one', () => {
    const without = FRAGMENT.replace('# pmemlab-when: linux < 5.19\nCONFIG_ND_BLK=y\n', '')
    const key = (text: string, kernel: string) =>
      computeKey({source: {tarball: 'a'.repeat(64)}, base: 'tinyconfig', fragment: renderFragment(mergeFragments([{name: 'pmem.config', text}], kernel).options), compiler: 'gcc', arch: 'x86_64'})
    assert.equal(key(FRAGMENT, '6.1.192'), key(without, '6.1.192'))
    assert.notEqual(key(FRAGMENT, '5.10.265'), key(without, '5.10.265'))
    assert.doesNotMatch(renderFragment(mergeFragments([{name: 'pmem.config', text: FRAGMENT}], '5.10').options), /pmemlab-when/)
  })

  test('lines for other versions do not conflict; an option another line requests is not "not in this version"', () => {
    const text = '# pmemlab-when: linux < 5.19\nCONFIG_FOO=y\n# pmemlab-when: linux >= 5.19\n# CONFIG_FOO is not set\n'
    assert.equal(mergeFragments([{name: 'a.config', text}], '5.18').options.get('FOO')?.value, 'y')
    const later = mergeFragments([{name: 'a.config', text}], '5.19')
    assert.equal(later.options.get('FOO')?.value, 'n')
    assert.deepEqual(later.notInVersion, [])
    // Two checked-in lines that disagree for the version being built are still a conflict.
    assert.throws(() => mergeFragments([{name: 'a.config', text: 'CONFIG_FOO=y\n# pmemlab-when: linux >= 6\nCONFIG_FOO=m\n'}], '6.1'), /conflicting fragments: a\.config:1 .* a\.config:3 .*\(for linux 6\.1\)/)
    assert.equal(mergeFragments([{name: 'a.config', text: 'CONFIG_FOO=y\n# pmemlab-when: linux >= 6\nCONFIG_FOO=m\n'}], '5.10').options.get('FOO')?.value, 'y')
  })

  test('a scoped option needs a readable kernel version', () => {
    assert.throws(() => mergeFragments([{name: 'pmem.config', text: FRAGMENT}]), /pmem\.config:4 is scoped to linux < 5\.19, but no kernel version was given/)
    assert.throws(() => mergeFragments([{name: 'pmem.config', text: FRAGMENT}], 'banana'), /cannot be read/)
    assert.equal(mergeFragments([{name: 'a.config', text: 'CONFIG_A=y\n'}], 'banana').options.size, 1)
  })

  test('a real drop of an option in range still fails verification, naming the missing dependency', () => {
    const tree = parseKconfig(
      (path) =>
        ({
          Kconfig: 'menuconfig LIBNVDIMM\n\ttristate "NVDIMM"\n\tdepends on BLK_DEV\n\nif LIBNVDIMM\nconfig ND_BLK\n\ttristate "BLK: Block data window"\nendif\n\nconfig BLK_DEV\n\tbool "Block devices"\n\nconfig DAX\n\ttristate "DAX"\n',
        })[path],
    )
    const requested = mergeFragments([{name: 'pmem.config', text: FRAGMENT}], '5.10.265').options
    const finalConfig = '# CONFIG_BLK_DEV is not set\nCONFIG_DAX=y\n'
    const drops = verifyConfig(requested, finalConfig)
    assert.deepEqual(drops.map((d) => d.symbol), ['LIBNVDIMM', 'ND_BLK', 'VIRTIO_PMEM'])
    const final = parseDotConfig(finalConfig)
    const ndBlk = drops.find((d) => d.symbol === 'ND_BLK')!
    assert.match(explainDrop(tree, ndBlk, final, requested), /^CONFIG_ND_BLK was dropped: it depends on LIBNVDIMM, which is not set/)
    // The same final .config for 6.1: ND_BLK is not requested there, so it is no drop.
    assert.deepEqual(verifyConfig(mergeFragments([{name: 'pmem.config', text: FRAGMENT}], '6.1.192').options, finalConfig).map((d) => d.symbol), ['LIBNVDIMM', 'VIRTIO_PMEM'])
  })
})

describe('the checked-in fragments across versions', () => {
  let scratch: string
  const savedCache = process.env.PMEMLAB_CACHE_DIR
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'pmemlab-kversions-'))
    process.env.PMEMLAB_CACHE_DIR = join(scratch, 'cache')
  })
  after(async () => {
    if (savedCache === undefined) delete process.env.PMEMLAB_CACHE_DIR
    else process.env.PMEMLAB_CACHE_DIR = savedCache
    await rm(scratch, {recursive: true, force: true})
  })

  test('ND_BLK is built before 5.19 and "not in this version" after; VIRTIO_PMEM from 5.3', async () => {
    const loaded = await loadFragments({debug: true})
    const at = (kernel: string) => fragmentsForVersion(loaded, kernel)
    assert.equal(at('5.10.265').merged.options.get('ND_BLK')?.value, 'y')
    assert.equal(at('5.10.265').merged.options.get('VIRTIO_PMEM')?.value, 'y')
    assert.deepEqual(at('5.10.265').notInThisVersion.map((o) => o.option), ['CONFIG_DEBUG_INFO_DWARF5'])
    const v61 = at('6.1.192')
    assert.equal(v61.merged.options.has('ND_BLK'), false)
    assert.doesNotMatch(v61.text, /ND_BLK/)
    const ndBlk = v61.notInThisVersion.find((o) => o.option === 'CONFIG_ND_BLK')
    assert.deepEqual({...ndBlk, from: ndBlk?.from.replace(/:\d+$/, '')}, {option: 'CONFIG_ND_BLK', value: 'y', when: 'linux < 5.19', from: 'kernel-configs/pmem.config'})
    assert.equal(at('5.2.21').merged.options.has('VIRTIO_PMEM'), false)
    assert.ok(at('5.2.21').notInThisVersion.some((o) => o.option === 'CONFIG_VIRTIO_PMEM' && o.when === 'linux >= 5.3'))
  })

  test('--config ndctl is the checked-in fragment ndctl\'s tests need, after pmem.config; other words are paths', async () => {
    const loaded = await loadFragments({configs: ['ndctl']})
    assert.deepEqual(loaded.records.map((r) => [r.name, r.user]), [
      ['kernel-configs/qemu-base.config', false],
      ['kernel-configs/pmem.config', false],
      ['kernel-configs/ndctl.config', false],
    ])
    const merged = fragmentsForVersion(loaded, '6.1.192').merged.options
    for (const option of ['FTRACE', 'EVENT_TRACING', 'BLK_DEV_DM', 'MEMORY_FAILURE', 'FS_DAX']) assert.equal(merged.get(option)?.value, 'y', option)
    // pmem is applied anyway, and a word naming no checked-in fragment is read as a file.
    await assert.rejects(loadFragments({configs: ['pmem']}), usage(/cannot read the fragment pmem/))
    await assert.rejects(loadFragments({configs: ['no-such-fragment']}), usage(/cannot read the fragment no-such-fragment/))
  })

  test('a malformed range in a --config fragment is refused when the fragments are loaded, naming file and line', async () => {
    const file = join(scratch, 'mine.config')
    await writeFile(file, 'CONFIG_A=y\n# pmemlab-when: linux >= banana\nCONFIG_B=y\n')
    await assert.rejects(loadFragments({configs: [file]}), usage(/mine\.config:2: # pmemlab-when: "banana" is not a kernel version/))
  })

  test('the version comes from a tree in place, or from a built entry of the same source, without extracting', async () => {
    const loaded = await loadFragments({})
    const tree = join(scratch, 'tree')
    await mkdir(tree, {recursive: true})
    await writeFile(join(tree, 'Makefile'), 'VERSION = 5\nPATCHLEVEL = 18\nSUBLEVEL = 19\nEXTRAVERSION =\n')
    const inPlace = await fragmentsForSource(loaded, {record: {kind: 'tree', dir: tree, commit: 'c'.repeat(40), dirty: null}, keySource: {commit: 'c'.repeat(40), dirty: null}, srcDir: tree, fetchMs: 0})
    assert.equal(inPlace.kernelVersion, '5.18.19')
    assert.equal(inPlace.merged.options.get('ND_BLK')?.value, 'y')

    // An entry built from this tarball knows its version; the tarball itself does not exist, so
    // any attempt to extract it would fail.
    const sha = 'e'.repeat(64)
    const key = 'd'.repeat(64)
    const dir = join(process.env.PMEMLAB_CACHE_DIR!, 'kernels', key)
    await mkdir(dir, {recursive: true})
    await writeFile(join(dir, 'bzImage'), 'kernel')
    const build = {
      key,
      version: '6.1.192',
      kernelVersion: '6.1.192',
      source: {kind: 'source', file: '/nowhere/linux.tar.xz', sha256: sha},
      base: 'tinyconfig',
      debug: false,
      fragments: [],
      sets: [],
      requested: {},
      compiler: 'gcc',
      ccache: false,
      arch: 'x86_64',
      jobs: 2,
      modules: false,
      objects: 1,
      timings: {fetchMs: 0, extractMs: 0, configureMs: 0, buildMs: 0, totalMs: 0},
      createdAt: '2026-12-03T00:00:00.000Z',
      files: {kernel: 'bzImage', config: '.config', log: 'build.log'},
    }
    await writeFile(join(dir, 'build.json'), JSON.stringify(build))
    const fromEntry = await fragmentsForSource(loaded, {record: {kind: 'source', file: '/nowhere/linux.tar.xz', sha256: sha}, keySource: {tarball: sha}, tarball: '/nowhere/linux.tar.xz', fetchMs: 0})
    assert.equal(fromEntry.kernelVersion, '6.1.192')
    assert.equal(fromEntry.extractMs, 0)
    assert.deepEqual(fromEntry.notInThisVersion.map((o) => o.option), ['CONFIG_ND_BLK'])
  })
})

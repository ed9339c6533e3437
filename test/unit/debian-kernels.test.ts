import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdir, mkdtemp, readdir, rm, truncate, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {stampFiles} from '../../src/core/artifact.js'
import {PmemlabError} from '../../src/core/errors.js'
import {
  compareDebianVersions,
  describeVersions,
  kernelCandidates,
  kernelStanzas,
  matchesDebianSpec,
  mergeCandidates,
  parseDebianSpec,
  selectCandidates,
  upstreamOf,
  type KernelCandidate,
} from '../../src/kernel/debian-index.js'
import {contentKey, debianKernelsDir, listDebianKernels, resolveDebianKernel, type DebianKernelRecord} from '../../src/kernel/debian-prebuilt.js'
import {removeCachedKernel} from '../../src/kernel/catalog.js'
import {BOOT_MODULES, modulesThisKernelHas, ON_DEMAND_MODULES} from '../../src/kernel/boot.js'
import {parseModulesBuiltin, parseModulesDep, resolveModuleOrder} from '../../src/kernel/initramfs.js'
import {payloadFormat} from '../../src/kernel/pvh.js'

const sha = (c: string) => c.repeat(64)

/** A Packages stanza as the archive writes one (fields abridged). */
const stanza = (fields: Record<string, string>) =>
  Object.entries(fields)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n')

/** A bullseye-like index: the signed and unsigned 5.10 images, other flavours, debug symbols, the metapackage. */
const BULLSEYE = [
  stanza({Package: 'linux-libc-dev', Version: '5.10.223-1', Architecture: 'amd64', Filename: 'pool/main/l/linux/linux-libc-dev_5.10.223-1_amd64.deb', Size: '1', SHA256: sha('0')}),
  stanza({Package: 'linux-image-5.10.0-32-amd64-unsigned', Source: 'linux', Version: '5.10.223-1', Architecture: 'amd64', Depends: 'kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool', Filename: 'pool/main/l/linux/linux-image-5.10.0-32-amd64-unsigned_5.10.223-1_amd64.deb', Size: '54645720', SHA256: sha('1')}),
  stanza({Package: 'linux-image-5.10.0-32-cloud-amd64', Version: '5.10.223-1', Architecture: 'amd64', Filename: 'pool/main/l/linux-signed-amd64/linux-image-5.10.0-32-cloud-amd64_5.10.223-1_amd64.deb', Size: '21032620', SHA256: sha('2')}),
  stanza({Package: 'linux-image-5.10.0-32-rt-amd64', Version: '5.10.223-1', Architecture: 'amd64', Filename: 'pool/main/l/linux-signed-amd64/linux-image-5.10.0-32-rt-amd64_5.10.223-1_amd64.deb', Size: '56054136', SHA256: sha('3')}),
  stanza({Package: 'linux-image-5.10.0-32-amd64-dbg', Version: '5.10.223-1', Architecture: 'amd64', Filename: 'pool/main/l/linux/linux-image-5.10.0-32-amd64-dbg_5.10.223-1_amd64.deb', Size: '900000000', SHA256: sha('4')}),
  stanza({Package: 'linux-image-amd64', Version: '5.10.223-1', Architecture: 'amd64', Depends: 'linux-image-5.10.0-32-amd64 (= 5.10.223-1)', Filename: 'pool/main/l/linux-signed-amd64/linux-image-amd64_5.10.223-1_amd64.deb', Size: '1500', SHA256: sha('5')}),
  stanza({Package: 'linux-image-5.10.0-32-amd64', Source: 'linux-signed-amd64 (5.10.223+1)', Version: '5.10.223-1', Architecture: 'amd64', Depends: 'kmod, linux-base (>= 4.3~)', Filename: 'pool/main/l/linux-signed-amd64/linux-image-5.10.0-32-amd64_5.10.223-1_amd64.deb', Size: '55749416', SHA256: sha('6')}),
  stanza({Package: 'linux-image-5.10.0-30-amd64', Version: '5.10.218-1', Architecture: 'amd64', Filename: 'pool/main/l/linux-signed-amd64/linux-image-5.10.0-30-amd64_5.10.218-1_amd64.deb', Size: '55688836', SHA256: sha('7')}),
  stanza({Package: 'zsh', Version: '5.8-6', Architecture: 'amd64', Filename: 'pool/main/z/zsh/zsh_5.8-6_amd64.deb', Size: '1', SHA256: sha('8')}),
].join('\n\n')

/** A sid-like index from 7.x: linux-image-ABI is a metapackage over linux-binary, linux-modules and linux-base. */
const ABI7 = '7.2.13+deb14-amd64'
const SID = [
  stanza({Package: `linux-base-${ABI7}`, Version: '7.2.13-1', Architecture: 'amd64', Filename: `pool/main/l/linux/linux-base-${ABI7}_7.2.13-1_amd64.deb`, Size: '469412', SHA256: sha('a')}),
  stanza({Package: `linux-binary-unsigned-${ABI7}`, Version: '7.2.13-1', Architecture: 'amd64', Depends: `linux-base-${ABI7} (= 7.2.13-1)`, Filename: `pool/main/l/linux/linux-binary-unsigned-${ABI7}_7.2.13-1_amd64.deb`, Size: '14250700', SHA256: sha('b')}),
  stanza({Package: `linux-modules-${ABI7}`, Version: '7.2.13-1', Architecture: 'amd64', Depends: `kmod, linux-base-${ABI7} (= 7.2.13-1)`, Filename: `pool/main/l/linux/linux-modules-${ABI7}_7.2.13-1_amd64.deb`, Size: '110095088', SHA256: sha('c')}),
  stanza({Package: `linux-binary-${ABI7}`, Version: '7.2.13-1', Architecture: 'amd64', Depends: `linux-base-${ABI7} (= 7.2.13-1)`, Filename: `pool/main/l/linux-signed-amd64/linux-binary-${ABI7}_7.2.13-1_amd64.deb`, Size: '14252084', SHA256: sha('d')}),
  stanza({
    Package: `linux-image-${ABI7}`,
    Version: '7.2.13-1',
    Architecture: 'amd64',
    Depends: `dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-${ABI7} (= 7.2.13-1), linux-binary-${ABI7} (= 7.2.13-1), linux-modules-${ABI7} (= 7.2.13-1)`,
    'Pre-Depends': 'linux-base (>= 4.17~)',
    Filename: `pool/main/l/linux-signed-amd64/linux-image-${ABI7}_7.2.13-1_amd64.deb`,
    Size: '1892',
    SHA256: sha('e'),
  }),
  // A newer image whose modules package is not (yet) in the index: not installable from here.
  stanza({Package: 'linux-image-7.2.14+deb14-amd64', Version: '7.2.14-1', Architecture: 'amd64', Depends: 'linux-binary-7.2.14+deb14-amd64 (= 7.2.14-1), linux-modules-7.2.14+deb14-amd64 (= 7.2.14-1)', Filename: 'pool/main/l/linux-signed-amd64/linux-image-7.2.14+deb14-amd64_7.2.14-1_amd64.deb', Size: '1892', SHA256: sha('f')}),
  stanza({Package: 'linux-binary-7.2.14+deb14-amd64', Version: '7.2.14-1', Architecture: 'amd64', Filename: 'pool/main/l/linux-signed-amd64/linux-binary-7.2.14+deb14-amd64_7.2.14-1_amd64.deb', Size: '14252084', SHA256: sha('9')}),
].join('\n\n')

/** A 6.12 image; id makes its sha256, distinct from the digits the indexes above use. */
const image612 = (abi: string, version: string, id: number) =>
  stanza({Package: `linux-image-${abi}`, Version: version, Architecture: 'amd64', Filename: `pool/main/l/linux-signed-amd64/linux-image-${abi}_${version}_amd64.deb`, Size: '106422608', SHA256: `${id}`.padStart(64, '0')})

const candidatesOf = (suite: string, text: string) => kernelCandidates(suite, kernelStanzas(text))

test('kernelStanzas keeps the linux-* stanzas of an index and nothing else', () => {
  const names = kernelStanzas(`${BULLSEYE}\n`).map((s) => s.get('package'))
  assert.deepEqual(names, [
    'linux-libc-dev',
    'linux-image-5.10.0-32-amd64-unsigned',
    'linux-image-5.10.0-32-cloud-amd64',
    'linux-image-5.10.0-32-rt-amd64',
    'linux-image-5.10.0-32-amd64-dbg',
    'linux-image-amd64',
    'linux-image-5.10.0-32-amd64',
    'linux-image-5.10.0-30-amd64',
  ])
  // A stanza whose Package field is not its first line is still kept whole.
  const odd = kernelStanzas('Package: a\nVersion: 1\n\nVersion: 2\nPackage: linux-x\nSize: 3\n\nPackage: b\n')
  assert.deepEqual(odd.map((s) => [s.get('package'), s.get('version'), s.get('size')]), [['linux-x', '2', '3']])
})

test('the generic amd64 image packages are the kernels: signed and unsigned, no cloud, rt, dbg or metapackage', () => {
  const found = candidatesOf('bullseye', BULLSEYE).map((c) => [c.abi, c.version, c.upstream, c.image, c.signed, c.packages.map((p) => p.name).join(' ')])
  assert.deepEqual(
    found.sort((a, b) => String(a[3]).localeCompare(String(b[3]))),
    [
      ['5.10.0-30-amd64', '5.10.218-1', '5.10.218', 'linux-image-5.10.0-30-amd64', true, 'linux-image-5.10.0-30-amd64'],
      ['5.10.0-32-amd64', '5.10.223-1', '5.10.223', 'linux-image-5.10.0-32-amd64', true, 'linux-image-5.10.0-32-amd64'],
      ['5.10.0-32-amd64', '5.10.223-1', '5.10.223', 'linux-image-5.10.0-32-amd64-unsigned', false, 'linux-image-5.10.0-32-amd64-unsigned'],
    ],
  )
  const signed = candidatesOf('bullseye', BULLSEYE).find((c) => c.image === 'linux-image-5.10.0-32-amd64')!
  assert.deepEqual(signed.packages, [
    {name: 'linux-image-5.10.0-32-amd64', version: '5.10.223-1', filename: 'pool/main/l/linux-signed-amd64/linux-image-5.10.0-32-amd64_5.10.223-1_amd64.deb', sha256: sha('6'), size: 55749416},
  ])
})

test('from 7.x the kernel is the metapackage\'s exact-version parts: binary, modules and base, not the metapackage', () => {
  const found = candidatesOf('sid', SID)
  assert.equal(found.length, 1, 'the 7.2.14 image lacks its modules package in this index')
  const [kernel] = found
  assert.equal(kernel.abi, ABI7)
  assert.equal(kernel.upstream, '7.2.13')
  assert.equal(kernel.signed, true)
  assert.deepEqual(kernel.packages.map((p) => [p.name, p.sha256]), [
    [`linux-base-${ABI7}`, sha('a')],
    [`linux-binary-${ABI7}`, sha('d')],
    [`linux-modules-${ABI7}`, sha('c')],
  ])
})

test('a stanza with an unsafe Filename or no usable SHA256 gives no candidate', () => {
  const bad = [
    image612('6.12.1+deb13-amd64', '6.12.1-1', 11).replace(/Filename: .*/, 'Filename: pool/../../etc/passwd.deb'),
    image612('6.12.2+deb13-amd64', '6.12.2-1', 12).replace(/SHA256: .*/, 'SHA256: 1234'),
    image612('6.12.3+deb13-amd64', '6.12.3-1', 13).replace(/Size: .*/, 'Size: none'),
    image612('6.12.4+deb13-amd64', '6.12.4-1', 14),
  ].join('\n\n')
  assert.deepEqual(candidatesOf('trixie', bad).map((c) => c.abi), ['6.12.4+deb13-amd64'])
})

test('Debian version ordering agrees with dpkg', () => {
  const ordered: Array<[string, '<' | '=' | '>', string]> = [
    ['1.0~rc1', '<', '1.0'],
    ['6.12.90-2~bpo12+1', '<', '6.12.90-2'],
    ['6.12.95-1~bpo12+1', '<', '6.12.117-1'],
    ['1:0.1', '>', '2.0'],
    ['1.0-1', '<', '1.0-1.1'],
    ['1.0a', '>', '1.0'],
    ['1.0', '<', '1.0+b1'],
    ['1.00', '=', '1.0'],
    ['7.3.4-1~bpo13+1', '>', '7.2.13-1'],
    ['5.10.223-1', '>', '5.10.218-1'],
    ['1.0~~', '<', '1.0~'],
    ['2.0-1', '>', '2.0-1~'],
    ['6.1.0', '>', '6.1'],
  ]
  const sign = {'<': -1, '=': 0, '>': 1} as const
  for (const [a, op, b] of ordered) {
    assert.equal(compareDebianVersions(a, b), sign[op], `${a} ${op} ${b}`)
    assert.equal(compareDebianVersions(b, a), 0 - sign[op] || 0, `${b} against ${a}`)
  }
  let dpkg = true
  try {
    execFileSync('dpkg', ['--version'], {stdio: 'ignore'})
  } catch {
    dpkg = false
  }
  if (dpkg) {
    // The table itself, checked against the real thing where it exists.
    for (const [a, op, b] of ordered) {
      const dpkgOp = {'<': 'lt', '=': 'eq', '>': 'gt'}[op]
      assert.doesNotThrow(() => execFileSync('dpkg', ['--compare-versions', a, dpkgOp, b]), `dpkg says ${a} is not ${op} ${b}`)
    }
  }
})

test('upstreamOf drops the epoch and the Debian revision', () => {
  assert.equal(upstreamOf('6.12.95-1~bpo12+1'), '6.12.95')
  assert.equal(upstreamOf('5.10.223-1'), '5.10.223')
  assert.equal(upstreamOf('1:7.3.4-1~bpo13+1'), '7.3.4')
  assert.equal(upstreamOf('6.1'), '6.1')
})

test('parseDebianSpec: series, releases, ABIs, package versions, suites; malformed specs are usage errors', () => {
  assert.equal(parseDebianSpec('distro'), undefined)
  assert.equal(parseDebianSpec('6.12'), undefined)
  assert.deepEqual(parseDebianSpec('debian:6.12'), {text: '6.12', kind: 'series'})
  assert.deepEqual(parseDebianSpec('debian:7'), {text: '7', kind: 'series'})
  assert.deepEqual(parseDebianSpec('debian:6.12.117'), {text: '6.12.117', kind: 'upstream'})
  assert.deepEqual(parseDebianSpec('debian:6.12.117+deb13-amd64'), {text: '6.12.117+deb13-amd64', kind: 'abi'})
  assert.deepEqual(parseDebianSpec('debian:5.10.0-32-amd64'), {text: '5.10.0-32-amd64', kind: 'abi'})
  assert.deepEqual(parseDebianSpec('debian:6.12.90-2~bpo12+1'), {text: '6.12.90-2~bpo12+1', kind: 'version'})
  assert.deepEqual(parseDebianSpec('debian:7/sid'), {text: '7', kind: 'series', suite: 'sid'})
  assert.deepEqual(parseDebianSpec('debian:6.12/bookworm-backports'), {text: '6.12', kind: 'series', suite: 'bookworm-backports'})
  for (const bad of ['debian:', 'debian:latest', 'debian:6.x', 'debian:7/Sid', 'debian:7/sid/x', 'debian:/sid', 'debian:6.12;rm']) {
    assert.throws(() => parseDebianSpec(bad), (e: Error) => e instanceof PmemlabError && e.exitCode === 2 && e.message.includes(bad), bad)
  }
})

test('version matching: a series matches on dot boundaries, a release exactly, an ABI or package version exactly, a suite when named', () => {
  const k = (upstream: string, suites = ['trixie']) => ({abi: `${upstream}+deb13-amd64`, version: `${upstream}-1`, upstream, suites})
  const matches = (spec: string, kernel: ReturnType<typeof k>) => matchesDebianSpec(kernel, parseDebianSpec(spec)!)
  assert.equal(matches('debian:6.1', k('6.1.176')), true)
  assert.equal(matches('debian:6.1', k('6.12.117')), false, '6.1 is not a prefix of 6.12')
  assert.equal(matches('debian:6', k('6.12.117')), true)
  assert.equal(matches('debian:7', k('7.2.13')), true)
  assert.equal(matches('debian:7', k('17.0.1')), false)
  assert.equal(matches('debian:6.12.117', k('6.12.117')), true)
  assert.equal(matches('debian:6.12.11', k('6.12.117')), false)
  assert.equal(matches('debian:6.12.117+deb13-amd64', k('6.12.117')), true)
  assert.equal(matches('debian:6.12.117+deb12-amd64', k('6.12.117')), false)
  assert.equal(matches('debian:6.12.117-1', k('6.12.117')), true)
  assert.equal(matches('debian:6.12/trixie', k('6.12.117')), true)
  assert.equal(matches('debian:6.12/sid', k('6.12.117')), false)
  assert.equal(matches('debian:6.12/sid', k('6.12.117', ['trixie', 'sid'])), true)
})

test('across suites: newest version first, signed before unsigned, the same files listed once with every suite', () => {
  const backports = candidatesOf('bookworm-backports', [image612('6.12.95+deb12-amd64', '6.12.95-1~bpo12+1', 21), image612('6.12.90+deb12.1-amd64', '6.12.90-2~bpo12+1', 22)].join('\n\n'))
  const trixie = candidatesOf('trixie', [image612('6.12.117+deb13-amd64', '6.12.117-1', 23), image612('6.12.107+deb13-amd64', '6.12.107-1', 24)].join('\n\n'))
  const forky = candidatesOf('forky', image612('6.12.117+deb13-amd64', '6.12.117-1', 23))
  const merged = mergeCandidates([candidatesOf('bullseye', BULLSEYE), backports, trixie, forky, candidatesOf('sid', SID)])
  assert.deepEqual(
    merged.map((c) => [c.version, c.signed, c.suites.join(',')]),
    [
      ['7.2.13-1', true, 'sid'],
      ['6.12.117-1', true, 'trixie,forky'],
      ['6.12.107-1', true, 'trixie'],
      ['6.12.95-1~bpo12+1', true, 'bookworm-backports'],
      ['6.12.90-2~bpo12+1', true, 'bookworm-backports'],
      ['5.10.223-1', true, 'bullseye'],
      ['5.10.223-1', false, 'bullseye'],
      ['5.10.218-1', true, 'bullseye'],
    ],
  )
  const pick = (spec: string) => selectCandidates(merged, parseDebianSpec(spec)!).map((c: KernelCandidate) => c.version)
  assert.deepEqual(pick('debian:6.12').slice(0, 1), ['6.12.117-1'])
  assert.deepEqual(pick('debian:6.12/bookworm-backports'), ['6.12.95-1~bpo12+1', '6.12.90-2~bpo12+1'])
  assert.deepEqual(pick('debian:5.10.223'), ['5.10.223-1', '5.10.223-1'])
  assert.deepEqual(pick('debian:7'), ['7.2.13-1'])
  assert.deepEqual(pick('debian:6.1'), [])
  assert.equal(
    describeVersions(merged),
    '5.10.218, 5.10.223; 6.12.90 to 6.12.117 (4 versions); 7.2.13',
  )
})

test('contentKey: a single .deb is keyed by its own sha256; several by a digest of theirs', () => {
  assert.equal(contentKey([{sha256: sha('6')}]), sha('6'))
  const several = contentKey([{sha256: sha('a')}, {sha256: sha('d')}, {sha256: sha('c')}])
  assert.match(several, /^[0-9a-f]{64}$/)
  assert.notEqual(several, contentKey([{sha256: sha('a')}, {sha256: sha('d')}]))
  assert.equal(several, contentKey([{sha256: sha('a')}, {sha256: sha('d')}, {sha256: sha('c')}]))
})

/** modules.dep lines for the NVDIMM stack as Debian's 5.10, 6.12 and 7.x packages have it (after depmod). */
const NVDIMM_DEP = (ext: string) => `kernel/drivers/nvdimm/libnvdimm.ko${ext}:
kernel/drivers/acpi/nfit/nfit.ko${ext}: kernel/drivers/nvdimm/libnvdimm.ko${ext}
kernel/drivers/nvdimm/nd_btt.ko${ext}: kernel/drivers/nvdimm/libnvdimm.ko${ext}
kernel/drivers/nvdimm/nd_pmem.ko${ext}: kernel/drivers/nvdimm/nd_btt.ko${ext} kernel/drivers/nvdimm/libnvdimm.ko${ext}
kernel/drivers/nvdimm/nd_e820.ko${ext}: kernel/drivers/nvdimm/libnvdimm.ko${ext}
kernel/drivers/nvdimm/nd_virtio.ko${ext}: kernel/drivers/nvdimm/libnvdimm.ko${ext}
kernel/drivers/nvdimm/virtio_pmem.ko${ext}: kernel/drivers/nvdimm/nd_virtio.ko${ext} kernel/drivers/nvdimm/libnvdimm.ko${ext}
kernel/drivers/dax/device_dax.ko${ext}:
kernel/drivers/dax/kmem.ko${ext}:
kernel/fs/ext4/ext4.ko${ext}: kernel/fs/jbd2/jbd2.ko${ext} kernel/fs/mbcache.ko${ext}
kernel/fs/jbd2/jbd2.ko${ext}:
kernel/fs/mbcache.ko${ext}:
kernel/drivers/block/virtio_blk.ko${ext}:
kernel/drivers/char/hw_random/virtio-rng.ko${ext}:
kernel/net/9p/9pnet.ko${ext}:
kernel/net/9p/9pnet_virtio.ko${ext}: kernel/net/9p/9pnet.ko${ext}
kernel/fs/9p/9p.ko${ext}: kernel/net/9p/9pnet.ko${ext}
kernel/drivers/md/dm-mod.ko${ext}:
`
const DEP_510 = `${NVDIMM_DEP('')}kernel/drivers/dax/pmem/dax_pmem_core.ko: kernel/drivers/nvdimm/libnvdimm.ko
kernel/drivers/dax/pmem/dax_pmem.ko: kernel/drivers/dax/pmem/dax_pmem_core.ko
kernel/drivers/dax/pmem/dax_pmem_compat.ko: kernel/drivers/dax/pmem/dax_pmem_core.ko
kernel/crypto/crc32c_generic.ko:
kernel/lib/libcrc32c.ko:
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/drivers/virtio/virtio_pci.ko:
kernel/drivers/char/virtio_console.ko:
`
const DEP_612 = `${NVDIMM_DEP('.xz')}kernel/drivers/dax/dax_pmem.ko.xz: kernel/drivers/nvdimm/libnvdimm.ko.xz
kernel/crypto/crc32c_generic.ko.xz:
kernel/lib/libcrc32c.ko.xz:
kernel/fs/xfs/xfs.ko.xz: kernel/lib/libcrc32c.ko.xz
`
const DEP_7 = `${NVDIMM_DEP('.xz')}kernel/drivers/dax/dax_pmem.ko.xz: kernel/drivers/nvdimm/libnvdimm.ko.xz
kernel/crypto/crc32c-cryptoapi.ko.xz:
kernel/fs/xfs/xfs.ko.xz:
`
const BUILTIN_NEW = parseModulesBuiltin('kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\nkernel/drivers/dax/dax.ko\n')
const BUILTIN_510 = parseModulesBuiltin('kernel/drivers/dax/dax.ko\n')

test('the initramfs module lists fit 5.10, 6.12 and 7.x: crc32c_generic and libcrc32c are skipped only where the kernel has none', () => {
  const wanted = [...BOOT_MODULES, ...ON_DEMAND_MODULES]
  const orderFor = (depText: string, builtin: Set<string>) => {
    const dep = parseModulesDep(depText)
    return resolveModuleOrder(dep, modulesThisKernelHas(wanted, dep, builtin), builtin)
  }
  const v510 = orderFor(DEP_510, BUILTIN_510)
  assert.ok(v510.includes('kernel/drivers/dax/pmem/dax_pmem_core.ko'), 'dax_pmem brings dax_pmem_core in 5.10')
  assert.ok(!v510.includes('kernel/drivers/dax/pmem/dax_pmem_compat.ko'), 'the compat module is not loaded')
  assert.ok(v510.includes('kernel/crypto/crc32c_generic.ko') && v510.includes('kernel/lib/libcrc32c.ko'))
  assert.ok(v510.includes('kernel/drivers/virtio/virtio_pci.ko'), 'a module in 5.10, built in later')
  const v612 = orderFor(DEP_612, BUILTIN_NEW)
  assert.ok(v612.includes('kernel/crypto/crc32c_generic.ko.xz') && v612.includes('kernel/lib/libcrc32c.ko.xz'))
  const v7 = orderFor(DEP_7, BUILTIN_NEW)
  assert.ok(!v7.some((path) => /crc32c/.test(path)), v7.join(' '))
  for (const name of ['nd_pmem', 'nfit', 'nd_e820', 'virtio_pmem', 'dax_pmem', 'device_dax', 'ext4', 'xfs']) {
    for (const [version, order] of [['5.10', v510], ['6.12', v612], ['7', v7]] as const) {
      assert.ok(order.some((path) => path.split('/').at(-1)!.startsWith(`${name}.ko`)), `${name} in ${version}`)
    }
  }
  // A module the lab needs is never skipped: its absence stays an error naming it.
  const noPmem = parseModulesDep(DEP_7.replace(/^kernel\/drivers\/nvdimm\/nd_pmem.*\n/m, ''))
  assert.throws(
    () => resolveModuleOrder(noPmem, modulesThisKernelHas(wanted, noPmem, BUILTIN_NEW), BUILTIN_NEW),
    (e: Error) => e instanceof PmemlabError && /nd_pmem/.test(e.message),
  )
})

test('payloadFormat tells Debian\'s xz (to 6.1) from its zstd (6.12 on) kernels', () => {
  assert.equal(payloadFormat(Buffer.from('fd377a585a000004', 'hex')), 'xz')
  assert.equal(payloadFormat(Buffer.from('28b52ffd0488', 'hex')), 'zstd')
  assert.equal(payloadFormat(Buffer.from('1f8b0800', 'hex')), undefined)
})

describe('the cache of Debian kernels (no network)', () => {
  const saved = {cache: process.env.PMEMLAB_CACHE_DIR, mirror: process.env.PMEMLAB_DEBIAN_MIRROR}
  before(async () => {
    process.env.PMEMLAB_CACHE_DIR = await mkdtemp(join(tmpdir(), 'pmemlab-debian-'))
    // Nothing here may reach an archive: a lookup would fail on this address, and the tests with it.
    process.env.PMEMLAB_DEBIAN_MIRROR = 'http://127.0.0.1:9/debian'
  })
  after(async () => {
    await rm(process.env.PMEMLAB_CACHE_DIR!, {recursive: true, force: true})
    for (const [name, value] of [['PMEMLAB_CACHE_DIR', saved.cache], ['PMEMLAB_DEBIAN_MIRROR', saved.mirror]] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })

  /** A complete entry as installCandidate leaves one: unpacked tree, modules.dep, debian.json with stamps. */
  async function entry(key: string, abi: string, version: string, suite: string, signed = true): Promise<string> {
    const dir = join(debianKernelsDir(), key)
    const modules = `root/usr/lib/modules/${abi}`
    await mkdir(join(dir, modules, 'kernel'), {recursive: true})
    await mkdir(join(dir, 'root/boot'), {recursive: true})
    await writeFile(join(dir, `root/boot/vmlinuz-${abi}`), Buffer.alloc(200_000, 7))
    await writeFile(join(dir, modules, 'modules.dep'), 'kernel/drivers/nvdimm/nd_pmem.ko.xz:\n')
    const files = {vmlinuz: `root/boot/vmlinuz-${abi}`, modules}
    const record: DebianKernelRecord = {
      format: 1,
      key,
      abi,
      version,
      upstream: upstreamOf(version),
      image: `linux-image-${abi}${signed ? '' : '-unsigned'}`,
      signed,
      suites: [suite],
      mirror: 'http://deb.debian.org/debian',
      packages: [{name: `linux-image-${abi}`, version, filename: `pool/main/l/linux-signed-amd64/linux-image-${abi}_${version}_amd64.deb`, sha256: key, size: 1, url: 'http://deb.debian.org/debian/pool/x.deb'}],
      fetchedAt: '2026-12-03T00:00:00.000Z',
      files,
      artifacts: await stampFiles(dir, [files.vmlinuz, `${modules}/modules.dep`]),
    }
    await writeFile(join(dir, 'debian.json'), JSON.stringify(record))
    return dir
  }
  const k = (c: string) => c.repeat(64)

  test('debian:X resolves to the newest cached match without the archive; a damaged one is refused with the fix', async () => {
    await entry(k('1'), '6.12.95+deb12-amd64', '6.12.95-1~bpo12+1', 'bookworm-backports')
    await entry(k('2'), '6.12.117+deb13-amd64', '6.12.117-1', 'trixie')
    await entry(k('3'), '5.10.0-32-amd64', '5.10.223-1', 'bullseye')
    // A half-written entry (no debian.json yet) and a temp directory are not entries.
    await mkdir(join(debianKernelsDir(), k('4'), 'root'), {recursive: true})
    await mkdir(join(debianKernelsDir(), `.tmp-${k('5')}-1`), {recursive: true})

    assert.deepEqual((await listDebianKernels()).map((e) => e.record.version), ['6.12.117-1', '6.12.95-1~bpo12+1', '5.10.223-1'])
    const boot = await resolveDebianKernel('debian:6.12')
    assert.equal(boot.abi, '6.12.117+deb13-amd64')
    assert.equal(boot.vmlinuz, join(debianKernelsDir(), k('2'), 'root/boot/vmlinuz-6.12.117+deb13-amd64'))
    assert.equal(boot.modulesDir, join(debianKernelsDir(), k('2'), 'root/usr/lib/modules/6.12.117+deb13-amd64'))
    assert.equal(boot.vmlinux, undefined)
    assert.equal((await resolveDebianKernel('debian:6.12/bookworm-backports')).abi, '6.12.95+deb12-amd64')
    assert.equal((await resolveDebianKernel('debian:6.12.95+deb12-amd64')).abi, '6.12.95+deb12-amd64')
    assert.equal((await resolveDebianKernel('debian:5.10')).abi, '5.10.0-32-amd64')
    // Nothing cached matches: the archive is asked, and the dead mirror is named.
    await assert.rejects(resolveDebianKernel('debian:7/sid'), (e: Error) => e instanceof PmemlabError && e.exitCode === 1 && e.message.includes('http://127.0.0.1:9/debian/dists/sid/main/binary-amd64/Packages.xz'))

    await truncate(join(debianKernelsDir(), k('2'), 'root/boot/vmlinuz-6.12.117+deb13-amd64'), 4096)
    await assert.rejects(resolveDebianKernel('debian:6.12'), (e: Error) =>
      e instanceof PmemlabError && e.exitCode === 4 && /is truncated \(4096 of the 200000 bytes/.test(e.message) && /pmemlab kernel rm 222222222222/.test(e.oneLine()),
    )
  })

  test('kernel rm: by debian:X (the newest cached match) or by key prefix; an ambiguous or unknown one says so', async () => {
    assert.equal((await removeCachedKernel('debian:6.12')).key, k('2'))
    assert.equal((await removeCachedKernel('111111')).key, k('1'))
    await assert.rejects(removeCachedKernel('debian:6.12'), (e: Error) => e instanceof PmemlabError && e.exitCode === 4 && /no cached Debian kernel matches debian:6\.12/.test(e.message))
    await entry(`333333${'a'.repeat(58)}`, '5.10.0-30-amd64', '5.10.218-1', 'bullseye')
    await assert.rejects(removeCachedKernel('333333'), (e: Error) => e instanceof PmemlabError && e.exitCode === 2 && /matches 2 kernels/.test(e.message))
    assert.deepEqual((await listDebianKernels()).map((e) => e.record.version), ['5.10.223-1', '5.10.218-1'])
    const left = (await readdir(debianKernelsDir())).filter((name) => name.startsWith('.tmp-rm-'))
    assert.deepEqual(left, [], 'removed entries leave nothing aside')
  })
})

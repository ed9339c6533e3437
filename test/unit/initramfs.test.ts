import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {cpioNewc, moduleName, parseModulesBuiltin, resolveModuleOrder} from '../../src/kernel/initramfs.js'
import {BOOT_MODULES, ON_DEMAND_MODULES} from '../../src/kernel/boot.js'

const hasCpio = (() => {
  try {
    execFileSync('cpio', ['--version'], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
})()

test('cpioNewc writes newc headers, 4-byte alignment and the trailer', () => {
  const archive = cpioNewc([{path: 'init', mode: 0o755, content: Buffer.from('#!/bin/sh\n')}])
  assert.equal(archive.subarray(0, 6).toString(), '070701')
  assert.equal(archive.length % 4, 0)
  assert.ok(archive.includes(Buffer.from('TRAILER!!!\0')))
  // mode field (second) of the first header: a regular file, 0755
  assert.equal(archive.subarray(14, 22).toString(), (0o100755).toString(16).padStart(8, '0'))
})

test('cpioNewc refuses duplicates and paths that climb out', () => {
  assert.throws(() => cpioNewc([{path: 'a', mode: 0o644, content: Buffer.alloc(1)}, {path: '/a', mode: 0o644, content: Buffer.alloc(1)}]), /duplicate/)
  assert.throws(() => cpioNewc([{path: '../etc/passwd', mode: 0o644, content: Buffer.alloc(0)}]), /invalid cpio path/)
  assert.throws(() => cpioNewc([{path: 'link', mode: 0o120777}]), /no target/)
})

test('cpioNewc output is extracted faithfully by GNU cpio', {skip: hasCpio ? false : 'cpio is not installed (apt-get install cpio)'}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pmemlab-cpio-'))
  try {
    const odd = Buffer.from('three') // unaligned size
    const big = Buffer.alloc(70_001, 7)
    const archive = cpioNewc([
      {path: 'bin', mode: 0o755},
      {path: 'bin/busybox', mode: 0o755, content: odd},
      {path: 'bin/sh', mode: 0o777, target: 'busybox'},
      {path: '/lib/modules/6.1.0/kernel/fs/ext4/ext4.ko', mode: 0o644, content: big}, // parents added
      {path: 'lib/modules', mode: 0o700}, // explicit mode for a directory added as a parent
      {path: 'tmp', mode: 0o1777},
      {path: 'empty', mode: 0o600, content: Buffer.alloc(0)},
    ])
    execFileSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], {cwd: dir, input: archive})
    assert.deepEqual(readFileSync(join(dir, 'bin/busybox')), odd)
    assert.equal(statSync(join(dir, 'bin/busybox')).mode & 0o7777, 0o755)
    assert.equal(readlinkSync(join(dir, 'bin/sh')), 'busybox')
    assert.deepEqual(readFileSync(join(dir, 'lib/modules/6.1.0/kernel/fs/ext4/ext4.ko')), big)
    assert.equal(statSync(join(dir, 'lib/modules')).mode & 0o7777, 0o700)
    assert.equal(statSync(join(dir, 'tmp')).mode & 0o7777, 0o1777)
    assert.equal(statSync(join(dir, 'empty')).size, 0)
    assert.deepEqual(readdirSync(dir).sort(), ['bin', 'empty', 'lib', 'tmp'])
    const listing = execFileSync('cpio', ['-t', '--quiet'], {input: archive}).toString().trim().split('\n')
    assert.deepEqual(listing, [
      'bin',
      'bin/busybox',
      'bin/sh',
      'lib',
      'lib/modules',
      'lib/modules/6.1.0',
      'lib/modules/6.1.0/kernel',
      'lib/modules/6.1.0/kernel/fs',
      'lib/modules/6.1.0/kernel/fs/ext4',
      'lib/modules/6.1.0/kernel/fs/ext4/ext4.ko',
      'tmp',
      'empty',
    ])
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

const SYNTHETIC_DEP = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
`

test('resolveModuleOrder puts dependencies first, once each', () => {
  const order = resolveModuleOrder(SYNTHETIC_DEP, ['virtio_pci', 'virtio_rng', 'ext4'], new Set())
  assert.deepEqual(order, [
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
    'kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/virtio/virtio_pci.ko',
    'kernel/drivers/char/hw_random/virtio-rng.ko',
    'kernel/lib/crc16.ko',
    'kernel/fs/jbd2/jbd2.ko',
    'kernel/fs/ext4/ext4.ko',
  ])
})

test('resolveModuleOrder treats - and _ alike and skips built-in modules', () => {
  assert.deepEqual(resolveModuleOrder(SYNTHETIC_DEP, ['virtio-ring', 'dax'], parseModulesBuiltin('kernel/drivers/dax/dax.ko\n')), [
    'kernel/drivers/virtio/virtio_ring.ko',
  ])
  assert.equal(moduleName('kernel/drivers/char/hw_random/virtio-rng.ko.xz'), 'virtio_rng')
})

test('resolveModuleOrder names a module that is neither in modules.dep nor built in', () => {
  assert.throws(
    () => resolveModuleOrder(SYNTHETIC_DEP, ['ext4', 'nd_pmem'], new Set(['dax'])),
    (error: unknown) => error instanceof PmemlabError && error.exitCode === 4 && /"nd_pmem" is neither in modules\.dep nor built into the kernel/.test(error.message),
  )
  assert.throws(() => resolveModuleOrder('a.ko: b.ko\nb.ko: a.ko\n', ['a'], new Set()), /cycle: a -> b -> a/)
  assert.throws(() => resolveModuleOrder('a.ko: missing.ko\n', ['a'], new Set()), /"missing" \(needed by a\) is missing/)
})

const realModules = (() => {
  try {
    const version = readdirSync('/lib/modules').find((v) => existsSync(join('/lib/modules', v, 'modules.dep')))
    return version ? join('/lib/modules', version) : undefined
  } catch {
    return undefined
  }
})()

test('resolveModuleOrder on the installed kernel finds every guest module', {skip: realModules ? false : 'no /lib/modules/*/modules.dep'}, () => {
  const dir = realModules as string
  const dep = readFileSync(join(dir, 'modules.dep'), 'utf8')
  const builtin = parseModulesBuiltin(readFileSync(join(dir, 'modules.builtin'), 'utf8'))
  const order = resolveModuleOrder(dep, [...BOOT_MODULES, ...ON_DEMAND_MODULES], builtin)
  assert.equal(new Set(order).size, order.length)
  const at = (name: string) => order.findIndex((path) => moduleName(path) === name)
  for (const name of [...BOOT_MODULES, ...ON_DEMAND_MODULES]) {
    if (!builtin.has(name)) assert.ok(at(name) >= 0, `${name} is in the list`)
  }
  for (const [before, after] of [
    ['virtio', 'virtio_pci'],
    ['virtio_ring', 'virtio_blk'],
    ['jbd2', 'ext4'],
    ['libnvdimm', 'nfit'],
    ['nd_btt', 'nd_pmem'],
    ['nd_virtio', 'virtio_pmem'],
    ['libcrc32c', 'xfs'],
    ['9pnet', '9pnet_virtio'],
  ]) {
    if (at(before) >= 0 && at(after) >= 0) assert.ok(at(before) < at(after), `${before} before ${after}`)
  }
  for (const path of order) assert.ok(existsSync(join(dir, path)), `${path} exists`)
})

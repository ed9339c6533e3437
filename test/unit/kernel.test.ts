import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {elfWithNote} from '../helpers/elf.js'
import {bzImagePayload, compareVersions, findDistroKernel, hasPvhNote, isStaticElf, readBootHeader, resolveKernel} from '../../src/kernel/boot.js'

test('compareVersions sorts kernel versions like sort -V', () => {
  const versions = ['6.1.0-9-amd64', '6.12.10-amd64', '6.1.0-56-amd64', '5.10.0-30-amd64', '6.1.0-10-amd64']
  assert.deepEqual([...versions].sort(compareVersions), ['5.10.0-30-amd64', '6.1.0-9-amd64', '6.1.0-10-amd64', '6.1.0-56-amd64', '6.12.10-amd64'])
  assert.equal(compareVersions('6.1', '6.1'), 0)
})

function fakeBzImage(version?: string): Buffer {
  const image = Buffer.alloc(0x1000)
  image.write('HdrS', 0x202, 'latin1')
  image.writeUInt16LE(0x20f, 0x206)
  if (version) {
    image.writeUInt16LE(0x600, 0x20e)
    image.write(`${version} (builder@host) #1 SMP\0`, 0x800, 'latin1')
  }
  return image
}

test('readBootHeader checks the HdrS magic and reads the version string', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pmemlab-kernel-'))
  try {
    writeFileSync(join(dir, 'bzImage'), fakeBzImage('6.1.192'))
    assert.deepEqual(await readBootHeader(join(dir, 'bzImage')), {version: '6.1.192'})
    writeFileSync(join(dir, 'plain'), fakeBzImage())
    assert.deepEqual(await readBootHeader(join(dir, 'plain')), {})
    writeFileSync(join(dir, 'vmlinux'), Buffer.from('\x7fELF not a bzImage'))
    await assert.rejects(readBootHeader(join(dir, 'vmlinux')), (error: unknown) => error instanceof PmemlabError && error.exitCode === 2 && /not a bzImage/.test(error.message))
    const kernel = await resolveKernel(join(dir, 'bzImage'))
    assert.deepEqual(kernel, {
      spec: join(dir, 'bzImage'),
      version: '6.1.192',
      kernel: join(dir, 'bzImage'),
      kernelArgs: ['root=/dev/vda', 'rw', 'init=/sbin/pmemlab-init'],
    })
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

test('resolveKernel names a missing kernel and says what to pass', async () => {
  await assert.rejects(resolveKernel('/nonexistent/bzImage'), (error: unknown) => {
    assert.ok(error instanceof PmemlabError)
    assert.equal(error.exitCode, 4)
    assert.match(error.oneLine(), /^kernel "\/nonexistent\/bzImage" not found: pass --kernel distro, a built kernel .* or the path of a bzImage$/)
    return true
  })
})

test('findDistroKernel without an installed kernel points at linux-image-amd64', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pmemlab-boot-'))
  const saved = {boot: process.env.PMEMLAB_BOOT_DIR, modules: process.env.PMEMLAB_MODULES_DIR}
  try {
    process.env.PMEMLAB_BOOT_DIR = dir
    process.env.PMEMLAB_MODULES_DIR = join(dir, 'modules')
    await assert.rejects(findDistroKernel(), (error: unknown) => error instanceof PmemlabError && error.exitCode === 4 && error.hint === 'apt-get install linux-image-amd64')
    writeFileSync(join(dir, 'vmlinuz-6.1.0-9-amd64'), fakeBzImage())
    await assert.rejects(findDistroKernel(), /no distro kernel with modules/)
  } finally {
    if (saved.boot === undefined) delete process.env.PMEMLAB_BOOT_DIR
    else process.env.PMEMLAB_BOOT_DIR = saved.boot
    if (saved.modules === undefined) delete process.env.PMEMLAB_MODULES_DIR
    else process.env.PMEMLAB_MODULES_DIR = saved.modules
    rmSync(dir, {recursive: true, force: true})
  }
})

test('isStaticElf tells static busybox from a dynamic program', {skip: existsSync('/bin/busybox') ? false : 'no /bin/busybox'}, () => {
  assert.equal(isStaticElf(Buffer.from('#!/bin/sh\n')), false)
  assert.equal(isStaticElf(readFileSync('/bin/ls')), false)
  // busybox-static is what the lab installs; the dynamic busybox package would fail this
  assert.equal(isStaticElf(readFileSync('/bin/busybox')), true)
})

// Whichever Debian kernel the host has: the point release moves with every kernel update.
const distroVmlinuz = (() => {
  try {
    const name = readdirSync('/boot').filter((entry) => /^vmlinuz-.*-amd64$/.test(entry)).sort(compareVersions).pop()
    return name ? readFileSync(join('/boot', name)) : undefined
  } catch {
    return undefined
  }
})()

test('bzImagePayload finds the xz-compressed kernel of a Debian bzImage', {skip: distroVmlinuz ? false : 'no readable Debian kernel in /boot'}, () => {
  const payload = bzImagePayload(distroVmlinuz as Buffer)
  assert.ok(payload)
  assert.equal(payload.subarray(0, 6).toString('latin1'), '\xfd7zXZ\0')
  assert.equal(bzImagePayload(Buffer.from('not a kernel')), undefined)
})

test('hasPvhNote looks for the Xen PHYS32_ENTRY note', () => {
  assert.equal(hasPvhNote(elfWithNote('Xen', 18)), true)
  assert.equal(hasPvhNote(elfWithNote('Xen', 17)), false)
  assert.equal(hasPvhNote(elfWithNote('GNU', 18)), false)
  assert.equal(hasPvhNote(Buffer.from('not an elf')), false)
})

test('compressed module names map to the plain .ko shipped in the initramfs', async () => {
  const {uncompressedName} = await import('../../src/kernel/boot.js')
  assert.equal(uncompressedName('kernel/drivers/nvdimm/libnvdimm.ko.zst'), 'kernel/drivers/nvdimm/libnvdimm.ko')
  assert.equal(uncompressedName('kernel/fs/xfs/xfs.ko.xz'), 'kernel/fs/xfs/xfs.ko')
  assert.equal(uncompressedName('kernel/fs/ext4/ext4.ko'), 'kernel/fs/ext4/ext4.ko')
})

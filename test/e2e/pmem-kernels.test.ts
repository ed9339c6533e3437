import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {after, before, describe, test} from 'node:test'
import {LIST_PMEM, makeLab, parsePmemList, type Lab} from './cli.js'

/**
 * Kernels built from kernel-configs/ in a real lab: the pmem options are in the running kernel,
 * the devices appear, the built-in suite passes, and a kernel without FS_DAX fails it with a
 * reason. Runs after kernel.test.ts, whose build of the same tarball and fragments is a cache hit
 * here (the key is the tarball's sha256, however it was obtained).
 */
const TARBALL = '/usr/src/linux-source-6.1.tar.xz'
const M = 1024 ** 2

describe('built kernels in the lab', {timeout: 3_600_000, skip: existsSync(TARBALL) ? false : `${TARBALL} is not installed`}, () => {
  let lab: Lab
  let key: string
  before(async () => {
    lab = await makeLab()
    const built = await lab.pmemlab(['kernel', 'build', '--source', TARBALL, '--json'], {timeout: 1_800_000})
    assert.equal(built.exitCode, 0, built.stderr)
    key = (JSON.parse(built.stdout) as {key: string}).key
  })
  after(async () => {
    await lab.dispose()
  })

  test('up --kernel with a built kernel: its /proc/config.gz has the pmem options and both devices appear', async () => {
    const result = await lab.pmemlab(['up', '--kernel', key.slice(0, 12), '--memmap', '256M', '--nvdimm', '512M', '--',
      'sh', '-c', `zcat /proc/config.gz | grep -E '^CONFIG_(FS_DAX|DEV_DAX|DEV_DAX_PMEM|BLK_DEV_PMEM|ND_PFN|BTT|ACPI_NFIT|X86_PMEM_LEGACY|VIRTIO_PMEM)='; ${LIST_PMEM}`])
    assert.equal(result.exitCode, 0, result.stderr)
    for (const option of ['FS_DAX', 'DEV_DAX', 'DEV_DAX_PMEM', 'BLK_DEV_PMEM', 'ND_PFN', 'BTT', 'ACPI_NFIT', 'X86_PMEM_LEGACY', 'VIRTIO_PMEM']) {
      assert.match(result.stdout, new RegExp(`^CONFIG_${option}=y$`, 'm'), option)
    }
    const byKind = parsePmemList(result.stdout.split('\n').filter((l) => l.startsWith('pmem')).join('\n'))
    assert.deepEqual(byKind.get('memmap')?.map((d) => d.bytes), [256 * M], result.stdout)
    assert.deepEqual(byKind.get('nvdimm')?.map((d) => d.bytes), [512 * M], result.stdout)
  })

  test('pmemlab test passes on the built kernel', async () => {
    const result = await lab.pmemlab(['test', '--kernel', key, '--json'])
    const report = JSON.parse(result.stdout) as {ok: boolean; summary: {failed: number; passed: number}}
    assert.equal(result.exitCode, 0, result.stderr.split('\n').slice(-30).join('\n'))
    assert.equal(report.ok, true)
    assert.equal(report.summary.failed, 0)
    assert.ok(report.summary.passed > 50, `${report.summary.passed} passed`)
  })

  test('on a kernel built without CONFIG_FS_DAX the suite fails and says why', async () => {
    const built = await lab.pmemlab(['kernel', 'build', '--source', TARBALL, '--set', 'CONFIG_FS_DAX=n', '--json'], {timeout: 1_800_000})
    assert.equal(built.exitCode, 0, built.stderr)
    const noDax = (JSON.parse(built.stdout) as {key: string}).key
    assert.notEqual(noDax, key)
    const result = await lab.pmemlab(['test', '--kernel', noDax, '--json'])
    assert.equal(result.exitCode, 1, result.stderr.split('\n').slice(-30).join('\n'))
    const report = JSON.parse(result.stdout) as {ok: boolean; suites: Array<{tests: Array<{status: string; message?: string; details?: string[]}>}>}
    assert.equal(report.ok, false)
    const failed = report.suites.flatMap((s) => s.tests).filter((t) => t.status === 'fail')
    assert.ok(failed.length > 0)
    assert.ok(failed.some((t) => /FS_DAX/.test(`${t.message ?? ''} ${(t.details ?? []).join(' ')}`)), JSON.stringify(failed.slice(0, 3)))
  })
})

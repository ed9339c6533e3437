import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {LIST_PMEM, makeLab, ndctlTests, parsePmemList, type Lab, type UpstreamReport} from './cli.js'
import {NDCTL} from '../../src/suite/upstream.js'

/**
 * Kernels built from kernel-configs/ in a real lab: the pmem options are in the running kernel,
 * the devices appear, the built-in suite passes, and a kernel without FS_DAX (built with a
 * patch, which must be a cache miss, then a hit) fails it with a reason. Runs after kernel.test.ts, whose build of the same tarball and fragments is a cache hit
 * here (the key is the tarball's sha256, however it was obtained).
 */
const TARBALL = '/usr/src/linux-source-6.1.tar.xz'
const M = 1024 ** 2

/** One notice at boot, after the banner: shows on the console that the running kernel was patched. */
const MARKER_PATCH = `--- a/init/main.c
+++ b/init/main.c
@@ -931,6 +931,7 @@
 \tboot_cpu_init();
 \tpage_address_init();
 \tpr_notice("%s", linux_banner);
+\tpr_notice("pmemlab-e2e: this kernel carries a test patch\\n");
 \tearly_security_init();
 \tsetup_arch(&command_line);
 \tsetup_boot_config();
`

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

  test('ndctl\'s tests on built kernels: without --config ndctl the ones that need its options skip, naming it; with it they pass', async () => {
    // The default fragments leave out tracing, device-mapper, memory failure and kmem.
    const bare = await lab.pmemlab(['test', '--suite', 'ndctl', '--kernel', key, '--filter', 'ndctl/memmap/dax-ext4.sh', '--filter', 'ndctl/nvdimm/dm.sh', '--filter', 'ndctl/memmap/device-dax', '--json'])
    assert.equal(bare.exitCode, 0, bare.stderr.split('\n').slice(-20).join('\n'))
    const skipped = ndctlTests(JSON.parse(bare.stdout) as UpstreamReport).tests
    assert.deepEqual(skipped.map((t) => [t.name, t.status]), [['dax-ext4.sh', 'skip'], ['device-dax', 'skip'], ['dm.sh', 'skip']])
    for (const t of skipped) assert.match(t.message ?? '', /: build it with pmemlab kernel build --config ndctl$/, t.name)

    const built = await lab.pmemlab(['kernel', 'build', '--source', TARBALL, '--config', 'ndctl', '--json'], {timeout: 1_800_000})
    assert.equal(built.exitCode, 0, built.stderr)
    const ndctlKey = (JSON.parse(built.stdout) as {key: string}).key
    assert.notEqual(ndctlKey, key)
    // mmap.sh alone takes about 4 minutes under TCG: upstream.test.ts runs it on the distro kernel.
    // daxctl-devices.sh fails on this kernel (measured: "disable-namespace succeeded, expected
    // failure" once kmem onlined the namespace as RAM), which is not understood yet: left out here.
    const leftOut = ['mmap.sh', 'daxctl-devices.sh']
    const run = await lab.pmemlab(['test', '--suite', 'ndctl', '--kernel', ndctlKey, '--filter', '!ndctl/memmap/mmap.sh', '--filter', '!ndctl/nvdimm/daxctl-devices.sh', '--json'], {timeout: 1_500_000})
    const report = JSON.parse(run.stdout) as UpstreamReport
    const {tests, notPassed} = ndctlTests(report)
    assert.deepEqual(tests.map((t) => t.name), NDCTL.tests.map((t) => t.name).filter((name) => !leftOut.includes(name)))
    assert.equal(notPassed, '')
    assert.equal(run.exitCode, 0, run.stderr.split('\n').slice(-30).join('\n'))
  })

  test('a patched kernel without CONFIG_FS_DAX: a miss for the patch, a hit for the same patch again, the patch in the running kernel, and the suite fails saying why', async () => {
    // One build serves both proofs: --patch (issue 11) and a kernel the suite must fail.
    const dir = await mkdtemp(join(tmpdir(), 'pmemlab-patch-'))
    try {
      const patch = join(dir, '0001-pmemlab-e2e-marker.patch')
      await writeFile(patch, MARKER_PATCH)
      const build = () => lab.pmemlab(['kernel', 'build', '--source', TARBALL, '--set', 'CONFIG_FS_DAX=n', '--patch', patch, '--json'], {timeout: 1_800_000})
      const built = await build()
      assert.equal(built.exitCode, 0, built.stderr)
      const first = JSON.parse(built.stdout) as {key: string; cacheHit: boolean}
      assert.equal(first.cacheHit, false, 'the patch is part of the key: a miss')
      assert.notEqual(first.key, key)
      const again = await build()
      assert.equal(again.exitCode, 0, again.stderr)
      assert.deepEqual(JSON.parse(again.stdout), {...first, cacheHit: true}, 'the same patch again: a hit on the same entry')
      // A patch whose context is not in the source (the line next to its change, which patch's
      // fuzz cannot skip): refused in one line before anything is built.
      const stale = join(dir, '0002-stale.patch')
      const staleText = MARKER_PATCH.replace('linux_banner);', 'linux_banner_gone);')
      assert.notEqual(staleText, MARKER_PATCH)
      await writeFile(stale, staleText)
      const refused = await lab.pmemlab(['kernel', 'build', '--source', TARBALL, '--patch', stale])
      assert.equal(refused.exitCode, 2, refused.stderr)
      assert.equal(refused.stdout, '')
      assert.match(refused.stderr, /^pmemlab: error: --patch 0002-stale\.patch does not apply: init\/main\.c: hunk #1 failed \(at line \d+\): .*nothing was built$/m)
      assert.equal(refused.stderr.trimEnd().split('\n').filter((l) => l.startsWith('pmemlab: error:')).length, 1, refused.stderr)

      const consoleLog = join(dir, 'console.log')
      const result = await lab.pmemlab(['test', '--kernel', first.key, '--console-log', consoleLog, '--json'])
      assert.equal(result.exitCode, 1, result.stderr.split('\n').slice(-30).join('\n'))
      assert.match(await readFile(consoleLog, 'utf8'), /pmemlab-e2e: this kernel carries a test patch/, 'the running kernel is the patched one')
      const report = JSON.parse(result.stdout) as {ok: boolean; suites: Array<{tests: Array<{status: string; message?: string; details?: string[]}>}>}
      assert.equal(report.ok, false)
      const failed = report.suites.flatMap((s) => s.tests).filter((t) => t.status === 'fail')
      assert.ok(failed.length > 0)
      assert.ok(failed.some((t) => /FS_DAX/.test(`${t.message ?? ''} ${(t.details ?? []).join(' ')}`)), JSON.stringify(failed.slice(0, 3)))
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {judgeKvm, probeHostVirt} from '../../src/lab/accel.js'
import {makeLab, type Lab} from './cli.js'

/**
 * Bad input: one line on stderr naming the problem and the fix, the documented exit code, and
 * nothing left behind. None of these boots a guest.
 */
describe('bad input and the doctor', {timeout: 300_000}, () => {
  let lab: Lab
  before(async () => {
    lab = await makeLab()
  })
  after(async () => {
    await lab.dispose()
  })

  const refusals: Array<{why: string; args: string[]; code: number; message: RegExp; env?: Record<string, string>}> = [
    {why: 'a size with an unknown unit', args: ['up', '--mem', '12Q'], code: 2, message: /invalid --mem "12Q".*like 512M/},
    {why: 'a memmap range in the q35 PCI hole', args: ['up', '--machine', 'q35', '--memmap', '256M@3G'], code: 2, message: /0xc0000000.*not inside guest RAM.*omit the offset/},
    {why: 'a memmap range past the end of RAM', args: ['up', '--memmap', '256M@16G'], code: 2, message: /0x400000000.*not inside guest RAM/},
    {why: 'overlapping memmap ranges', args: ['up', '--memmap', '256M@4G', '--memmap', '256M@4G'], code: 2, message: /overlap/i},
    {why: 'a misaligned memmap range', args: ['up', '--memmap', '256M@4100M'], code: 2, message: /not a multiple of 128 MiB/},
    {why: 'an NVDIMM file in a missing directory', args: ['up', '--nvdimm', '512M:/nonexistent-pmemlab-dir/nv.img'], code: 2, message: /does not exist.*mkdir -p/},
    {why: 'an unknown kernel path', args: ['up', '--kernel', '/nonexistent/bzImage'], code: 4, message: /\/nonexistent\/bzImage.*not found/},
    {why: 'exec on a VM that does not exist', args: ['exec', 'nosuchvm', '--', 'true'], code: 4, message: /no VM named "nosuchvm".*pmemlab ls/},
    {why: 'down without a name', args: ['down'], code: 2, message: /--all/},
    {why: 'an unknown flag', args: ['up', '--bogus'], code: 2, message: /bogus/},
    {why: 'a bad VM name', args: ['up', '--name', '../x'], code: 2, message: /invalid VM name/},
    {why: 'QEMU missing', args: ['up', '--dry-run'], code: 3, message: /qemu-system-x86_64-missing not found.*apt-get install qemu-system-x86/, env: {PMEMLAB_QEMU: 'qemu-system-x86_64-missing'}},
  ]

  for (const refusal of refusals) {
    test(`refuses ${refusal.why}`, async () => {
      const result = await lab.pmemlab(refusal.args, {env: refusal.env})
      assert.equal(result.exitCode, refusal.code, result.stderr)
      assert.equal(result.stdout, '')
      const lines = result.stderr.trim().split('\n')
      assert.equal(lines.length, 1, `one line: ${result.stderr}`)
      assert.match(lines[0], /^pmemlab: error: /)
      assert.match(lines[0], refusal.message)
      assert.deepEqual(await lab.vmDirs(), [])
      assert.deepEqual(await lab.qemuProcesses(), [])
      // up and exec start without oclif when they can (src/cli/fast.ts): oclif says the same.
      const throughOclif = await lab.pmemlab(refusal.args, {env: {...refusal.env, PMEMLAB_NO_FAST_START: '1'}})
      assert.deepEqual([throughOclif.exitCode, throughOclif.stdout, throughOclif.stderr], [result.exitCode, result.stdout, result.stderr])
    })
  }

  // Each assertion follows the host's own probe: this host may have no /dev/kvm, one that opens
  // without vmx/svm, or a working KVM.
  test("--accel kvm is refused exactly where KVM does not really work, with the probe's reason", async () => {
    const kvm = judgeKvm(await probeHostVirt())
    const result = await lab.pmemlab(['up', '--dry-run', '--accel', 'kvm'])
    if (kvm.usable) {
      assert.equal(result.exitCode, 0, result.stderr)
    } else {
      assert.equal(result.exitCode, 3)
      const lines = result.stderr.trim().split('\n')
      assert.equal(lines.length, 1, result.stderr)
      assert.ok(lines[0].includes(`--accel kvm is not usable here: ${kvm.reason}`), lines[0])
      assert.match(lines[0], /use --accel tcg/)
    }
  })

  test('doctor reports the accelerator the probe allows, with the reason, and exits 0', async () => {
    const result = await lab.pmemlab(['doctor', '--json'])
    assert.equal(result.exitCode, 0, result.stdout)
    const report = JSON.parse(result.stdout) as {ok: boolean; accel: string; checks: Array<{name: string; ok: boolean; detail: string}>}
    assert.equal(report.ok, true)
    const kvm = judgeKvm(await probeHostVirt())
    const kvmCheck = report.checks.find((c) => c.name === 'kvm')!
    assert.equal(report.accel, kvm.usable ? 'kvm' : 'tcg')
    assert.equal(kvmCheck.ok, kvm.usable)
    assert.ok(kvmCheck.detail.includes(kvm.reason), kvmCheck.detail)
    if (!kvm.usable) assert.match(kvmCheck.detail, /TCG only/)
    assert.match(report.checks.find((c) => c.name === 'qemu')!.detail, /QEMU emulator version \d+/)
  })

  test('doctor exits 3 when QEMU is missing', async () => {
    const result = await lab.pmemlab(['doctor'], {env: {PMEMLAB_QEMU: 'qemu-system-x86_64-missing'}})
    assert.equal(result.exitCode, 3)
    assert.match(result.stdout, /MISSING\s+qemu/)
  })

  test('up --dry-run prints the exact QEMU argv and kernel command line and creates nothing', async () => {
    const text = await lab.pmemlab(['up', '--dry-run', '--name', 'dry', '--memmap', '512M', '--nvdimm', '256M', '--virtio-pmem', '256M'])
    assert.equal(text.exitCode, 0, text.stderr)
    assert.match(text.stdout, /^mkdir -p -m 0700 \S+\/vms\/dry\/disposable\n\S*qemu-system-x86_64 .*-no-reboot/)
    assert.match(text.stdout, /-device nvdimm,id=nvdimm0,memdev=nvmem0/)
    assert.match(text.stdout, /-device virtio-pmem-pci/)
    assert.match(text.stdout, /# kernel command line: .*panic=-1.*memmap=512M!4G/)
    const json = await lab.pmemlab(['up', '--dry-run', '--json', '--name', 'dry', '--machine', 'q35'])
    const plan = JSON.parse(json.stdout) as {argv: string[]; kernelCmdline: string}
    assert.ok(plan.argv.includes('-append'))
    assert.equal(plan.argv[plan.argv.indexOf('-append') + 1], plan.kernelCmdline)
    assert.match(plan.argv[plan.argv.indexOf('-machine') + 1], /^q35,nvdimm=on,max-ram-below-4g=/)
    assert.deepEqual(await lab.vmDirs(), [])
    // The fast start (no oclif) and oclif print the same plan.
    const oclif = {env: {PMEMLAB_NO_FAST_START: '1'}}
    assert.equal((await lab.pmemlab(['up', '--dry-run', '--name', 'dry', '--memmap', '512M', '--nvdimm', '256M', '--virtio-pmem', '256M'], oclif)).stdout, text.stdout)
    assert.equal((await lab.pmemlab(['up', '--dry-run', '--json', '--name', 'dry', '--machine', 'q35'], oclif)).stdout, json.stdout)
  })
})

/**
 * The built-in suite of `pmemlab test`. On every device and filesystem: prepare (fsdax, mkfs,
 * mount -o dax), prove DAX from inside the guest (pmemlab-dax-check: mount options, statx,
 * MAP_SYNC; pmemlab-pmd-check: huge-page faults; pmemlab-libpmem: is_pmem), exercise libpmemobj and pmempool, unmount; device DAX on
 * every NVDIMM; and the root disk as the control that is not DAX.
 */
import {selected, testId, type Filesystem, type TestResult} from './results.js'
import {devdaxChardev, devdaxCommand, deviceName, explainNoDax, mountDir, prepareCommand, type GuestDevice} from './devices.js'
import {BUILTIN, type TestRun} from './testrun.js'

/** The built-in suite: the control on the root disk, every device with every filesystem, device DAX. */
export async function builtinSuite(testRun: TestRun, devices: GuestDevice[]): Promise<void> {
  const sel = (group: string, step: string) => selected(testId(BUILTIN, group, step), testRun.options.filters)
  // The control: the root disk is ext4 without DAX.
  const control = 'control/rootfs'
  if (sel(control, 'dax-check')) await testRun.step(control, 'dax-check', ['pmemlab-dax-check', '--expect', 'nodax', '/var/tmp'], 'tests')
  if (sel(control, 'pmd')) await testRun.step(control, 'pmd', ['pmemlab-pmd-check', '--expect', 'nopmd', '/var/tmp'], 'tests')
  if (sel(control, 'libpmem')) await testRun.step(control, 'libpmem', ['pmemlab-libpmem', '--expect', 'nopmem', '/var/tmp'], 'tests')

  for (const device of devices) {
    for (const fs of testRun.options.filesystems) await filesystemGroup(testRun, device, fs, sel)
  }
  for (const device of devices.filter((d) => d.kind === 'nvdimm')) {
    const group = `devdax/${deviceName(device)}`
    if (!sel(group, 'devdax')) continue
    const prepared = await testRun.step(group, 'namespace', devdaxCommand(device), 'prepare')
    const chardev = devdaxChardev(prepared.run.stdout)
    if (!prepared.ok || !chardev) {
      testRun.skipSteps(BUILTIN, group, ['devdax'], 'the devdax namespace could not be created')
      continue
    }
    await testRun.step(group, 'devdax', ['pmemlab-devdax', chardev], 'tests')
  }
}

async function filesystemGroup(testRun: TestRun, device: GuestDevice, fs: Filesystem, sel: (group: string, step: string) => boolean): Promise<void> {
  const group = `${deviceName(device)}/${fs}`
  const steps = ['dax-check', 'pmd', 'libpmem', 'pmemobj', 'pmempool'].filter((step) => sel(group, step))
  if (steps.length === 0 && !sel(group, 'prepare')) return
  const dir = mountDir(device, fs)
  const prepared = await testRun.step(group, 'prepare', prepareCommand(device, fs, dir, testRun.options.rawNamespaces), 'prepare')
  if (!prepared.ok) {
    testRun.skipSteps(BUILTIN, group, steps, 'the filesystem could not be prepared (see the prepare failure)')
    return
  }
  // virtio-pmem is DAX without MAP_SYNC: its writes need fsync, so libpmem says is_pmem=0.
  const sync = device.kind !== 'virtio-pmem'
  const daxResults: TestResult[] = []
  if (steps.includes('dax-check')) daxResults.push(...(await testRun.step(group, 'dax-check', ['pmemlab-dax-check', '--expect', sync ? 'dax' : 'dax-nosync', dir], 'tests')).tests)
  // Huge pages: 2 MiB-aligned touches of a DAX file are PMD faults, not 512 4 KiB ones each.
  if (steps.includes('pmd')) daxResults.push(...(await testRun.step(group, 'pmd', ['pmemlab-pmd-check', '--expect', 'pmd', dir], 'tests')).tests)
  if (steps.includes('libpmem')) daxResults.push(...(await testRun.step(group, 'libpmem', ['pmemlab-libpmem', '--expect', sync ? 'pmem' : 'nopmem', dir], 'tests')).tests)
  if (daxResults.some((t) => t.status === 'fail')) await explainNoDax(testRun, dir, daxResults)
  let pool = false
  if (steps.includes('pmemobj')) pool = (await testRun.step(group, 'pmemobj', ['pmemlab-pmemobj', 'suite', dir], 'tests')).run.tap !== undefined
  if (steps.includes('pmempool')) {
    if (pool || !steps.includes('pmemobj')) {
      if (!pool) await testRun.guest(['pmemlab-pmemobj', 'suite', dir], {timeoutSec: testRun.options.timeoutSec, live: false})
      await testRun.step(group, 'pmempool', ['pmemlab-suite', 'pool-tools', `${dir}/pmemlab-suite.pool`], 'tests')
    } else testRun.skipSteps(BUILTIN, group, ['pmempool'], 'pmemlab-pmemobj made no pool')
  }
  await testRun.step(group, 'unmount', ['pmemlab-suite', 'unmount', dir], 'prepare')
}

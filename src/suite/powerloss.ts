/**
 * The power-loss case of the built-in suite: a pool on a file-backed NVDIMM with a transaction
 * held open and a pool on a memmap range, then the power cut (QMP quit: no flush, no unmount),
 * then a new VM booted on the same NVDIMM file, which must find exactly the committed data while
 * the memmap range, plain RAM, comes back empty. The NVDIMM file is one pmemlab owns for the run.
 */
import {mkdir, readdir, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {log} from '../core/log.js'
import {stateDir} from '../core/paths.js'
import {sleep} from '../core/process.js'
import {DEFAULT_MEMMAP, DEFAULT_NVDIMM, parseDeviceFlag, withDeviceFile, type TopologyFlags} from '../lab/request.js'
import {listRecords} from '../lab/state.js'
import {testId, type Filesystem, type TestStatus} from './results.js'
import {parseTap} from './tap.js'
import {MOUNT_ROOT, type GuestDevice} from './devices.js'
import {BUILTIN, progressLine, statusOf, stepLine, type GuestRun, type TestRun} from './testrun.js'

/** What a console finding seen while the power is cut happened "during". */
export const POWER_CUT = 'power cut'

/** Records the power-loss writer commits before the cut. */
const POWER_LOSS_RECORDS = 100

/** The topology, with the first NVDIMM backed by FILE unless the user named its file. */
export function withNvdimmFile(topology: TopologyFlags, file: string): {topology: TopologyFlags; owned: boolean} {
  const none = topology.memmap.length === 0 && topology.nvdimm.length === 0 && topology.virtioPmem.length === 0
  const memmap = none ? [DEFAULT_MEMMAP] : topology.memmap
  const nvdimm = none ? [DEFAULT_NVDIMM] : topology.nvdimm
  if (nvdimm.length === 0) return {topology, owned: false}
  if (parseDeviceFlag(nvdimm[0], '--nvdimm').file !== undefined) return {topology: {...topology, memmap, nvdimm}, owned: false}
  return {topology: {...topology, memmap, nvdimm: [withDeviceFile(nvdimm[0], file), ...nvdimm.slice(1)]}, owned: true}
}

/**
 * Gives the run an NVDIMM whose contents outlive the VM: the first NVDIMM is backed by a file
 * pmemlab owns (deleted at the end of the run) unless the user named its file.
 */
export async function useOwnedNvdimmFile(testRun: TestRun): Promise<void> {
  await removeStaleTestFiles()
  testRun.ownedDir = join(stateDir(), 'test-files', testRun.name)
  const file = join(testRun.ownedDir, 'nvdimm0.img')
  const planned = withNvdimmFile(testRun.options.topology, file)
  testRun.topology = planned.topology
  if (planned.owned) await mkdir(testRun.ownedDir, {recursive: true, mode: 0o700})
  else testRun.ownedDir = undefined
}

/**
 * Deletes NVDIMM files of earlier runs that were interrupted (SIGINT ends pmemlab at once; SIGKILL
 * leaves everything): a directory under test-files no running VM uses, older than an hour.
 */
async function removeStaleTestFiles(): Promise<void> {
  const root = join(stateDir(), 'test-files')
  const names = await readdir(root).catch(() => [] as string[])
  if (names.length === 0) return
  const inUse = (await listRecords()).filter((r) => r.running).flatMap((r) => r.record.devices.map((d) => d.file ?? ''))
  for (const name of names) {
    const dir = join(root, name)
    const age = Date.now() - ((await stat(dir).catch(() => undefined))?.mtimeMs ?? Date.now())
    if (age < 3600_000 || inUse.some((file) => file.startsWith(`${dir}/`))) continue
    log.debug(`removing ${dir}, left by an interrupted pmemlab test`)
    await rm(dir, {recursive: true, force: true})
  }
}

/**
 * Writes a pool on the file-backed NVDIMM and holds a transaction open, writes (and syncs) a
 * pool on a memmap range, cuts the power, boots a second VM on the same NVDIMM file, and
 * checks that the NVDIMM pool recovered to exactly its committed data while the memmap range
 * came back empty.
 */
export async function powerLossCase(testRun: TestRun, devices: GuestDevice[]): Promise<void> {
  const fs = testRun.options.filesystems[0]
  const nvdimm = devices.find((d) => d.kind === 'nvdimm' && d.index === 0)
  const memmap = devices.find((d) => d.kind === 'memmap' && d.index === 0)
  const nvGroup = 'power-loss/nvdimm0'
  const mmGroup = 'power-loss/memmap0'
  const record = testRun.session?.record
  const nvFile = record?.devices.find((d) => d.kind === 'nvdimm')?.file
  const pool = (dir: string) => `${dir}/power-loss.pool`
  const nvDir = `${MOUNT_ROOT}/power-loss-nvdimm0`
  const mmDir = `${MOUNT_ROOT}/power-loss-memmap0`
  if (testRun.lost) {
    testRun.record({suite: BUILTIN, group: 'power-loss', name: 'power-loss', status: 'error', durationMs: 0, message: `not run: ${testRun.lost}`})
    return
  }
  if (!nvdimm) testRun.skipSteps(BUILTIN, nvGroup, ['pool survives the power cut'], 'needs an NVDIMM (--nvdimm SIZE)')
  if (!memmap) testRun.skipSteps(BUILTIN, mmGroup, ['memmap loses data, as real DRAM would'], 'needs a memmap range (--memmap SIZE)')
  if (!nvdimm && !memmap) return

  let memmapWritten = false
  if (memmap) {
    const prepared = await testRun.step(mmGroup, 'prepare', ['pmemlab-suite', 'prepare', memmap.kind, '0', fs, mmDir], 'prepare')
    if (prepared.ok) {
      const written = await testRun.step(mmGroup, 'write', ['/bin/sh', '-c', 'pmemlab-pmemobj write "$1" "$2" && sync', 'sh', pool(mmDir), String(POWER_LOSS_RECORDS)], 'tests')
      memmapWritten = written.ok
    }
  }
  let holding = false
  if (nvdimm) {
    const prepared = await testRun.step(nvGroup, 'prepare', ['pmemlab-suite', 'prepare', nvdimm.kind, '0', fs, nvDir], 'prepare')
    if (prepared.ok) holding = await holdTransaction(testRun, nvGroup, pool(nvDir))
  }
  if (testRun.lost) return

  // The cut: QMP quit, no guest flush, no unmount.
  testRun.current = POWER_CUT
  stepLine(`${BUILTIN} power-loss: cutting the power of ${record!.name} (QMP quit, no flush, no unmount)`)
  await testRun.closeWatcher()
  await testRun.session!.powerCut()
  testRun.session = undefined
  try {
    await testRun.boot(`${testRun.name}-2`)
  } catch (error) {
    const message = `the VM did not boot again on ${nvFile ?? 'the NVDIMM file'}: ${(error as Error).message}`
    if (nvdimm) testRun.record({suite: BUILTIN, group: nvGroup, name: 'pool survives the power cut', status: 'error', durationMs: 0, message})
    if (memmap) testRun.record({suite: BUILTIN, group: mmGroup, name: 'memmap loses data, as real DRAM would', status: 'error', durationMs: 0, message})
    testRun.lost = message
    return
  }

  if (nvdimm) {
    if (!holding) testRun.skipSteps(BUILTIN, nvGroup, ['pool survives the power cut'], 'the pool was not written before the cut')
    else {
      const after = 'after the power cut: '
      const mounted = await testRun.step(nvGroup, 'mount', ['pmemlab-suite', 'mount', nvdimm.kind, '0', fs, nvDir], 'prepare', after)
      if (mounted.ok) {
        await testRun.step(nvGroup, 'verify', ['pmemlab-pmemobj', 'verify', pool(nvDir), String(POWER_LOSS_RECORDS)], 'tests', after)
        await testRun.step(nvGroup, 'pmempool', ['pmemlab-suite', 'pool-tools', pool(nvDir)], 'tests', after)
        await testRun.step(nvGroup, 'unmount', ['pmemlab-suite', 'unmount', nvDir], 'prepare', after)
      } else testRun.skipSteps(BUILTIN, nvGroup, [`${after}verify`], `the ${fs} filesystem on the NVDIMM did not mount after the cut`)
    }
  }
  if (memmap) await memmapAfterCut(testRun, mmGroup, memmap, fs, mmDir, pool(mmDir), memmapWritten)
}

/** Starts the writer with --hold and waits until it sits inside its open transaction. */
async function holdTransaction(testRun: TestRun, group: string, pool: string): Promise<boolean> {
  testRun.current = testId(BUILTIN, group, 'write')
  stepLine(`${BUILTIN} ${group}: write, then hold a transaction open`)
  const started = Date.now()
  const out = '/run/pmemlab-power-loss.out'
  const agent = testRun.session!.agent
  let text = ''
  let exited = false
  try {
    const pid = await agent.spawn(['/bin/sh', '-c', `exec "$@" >${out} 2>&1`, 'sh', 'pmemlab-pmemobj', 'write', pool, String(POWER_LOSS_RECORDS), '--hold'])
    const deadline = started + testRun.options.timeoutSec * 1000
    while (!text.includes('# holding') && Date.now() < deadline) {
      exited = (await agent.status(pid)).exited
      text = (await agent.run(['/bin/cat', out], 10_000)).stdout
      if (exited) break
      await sleep(200)
    }
  } catch {
    await testRun.loseGuest('while the pool was written')
  }
  const run: GuestRun = {exitCode: exited ? 1 : 0, stdout: text, stderr: '', elapsedMs: Date.now() - started, timedOut: false, ...(testRun.lost ? {lost: testRun.lost} : {})}
  const holding = text.includes('# holding')
  if (!holding && !exited && !testRun.lost) run.timedOut = true
  run.tap = parseTap(text)
  // The stream ends inside the transaction: its plan says 3, all of which have been printed.
  for (const a of run.tap.asserts) progressLine(statusOf(a), a.name, run.elapsedMs / Math.max(1, run.tap.asserts.length), a.diagnostics[0])
  testRun.phases.testsMs += run.elapsedMs
  const tests = testRun.tapResults(BUILTIN, group, 'write', run)
  return holding && tests.every((t) => t.status === 'pass')
}

async function memmapAfterCut(testRun: TestRun, group: string, memmap: GuestDevice, fs: Filesystem, dir: string, pool: string, written: boolean): Promise<void> {
  const name = 'memmap loses data, as real DRAM would'
  testRun.current = testId(BUILTIN, group, name)
  if (!written) {
    testRun.skipSteps(BUILTIN, group, [name], 'the pool was not written before the cut')
    return
  }
  const mount = await testRun.guest(['pmemlab-suite', 'mount', memmap.kind, '0', fs, dir], {timeoutSec: testRun.options.timeoutSec, live: false})
  if (mount.lost) {
    testRun.record({suite: BUILTIN, group, name, status: 'error', durationMs: mount.elapsedMs, message: mount.lost})
    return
  }
  let status: TestStatus = 'pass'
  let message = `after the power cut the memmap range holds no ${fs} filesystem`
  if (mount.exitCode === 0) {
    const exists = await testRun.guest(['/usr/bin/test', '-e', pool], {timeoutSec: 30, live: false})
    if (exists.exitCode === 0) [status, message] = ['fail', `${pool} survived the power cut on a memmap range, which is plain RAM: was the range really volatile?`]
    else message = `the ${fs} filesystem mounted, but the pool is gone`
    await testRun.guest(['pmemlab-suite', 'unmount', dir], {timeoutSec: 60, live: false})
  }
  testRun.phases.testsMs += mount.elapsedMs
  testRun.record({suite: BUILTIN, group, name, status, durationMs: mount.elapsedMs, message})
}

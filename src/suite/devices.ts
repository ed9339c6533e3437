/**
 * The guest's persistent-memory devices in a test run: what the guest sees (pmemlab-suite
 * devices), and preparing them as a pmem developer would (pmemlab-suite prepare: an fsdax
 * namespace, mkfs, mount -o dax), with the guest's explanation when a mount is not on DAX.
 */
import {log} from '../core/log.js'
import {humanSize} from '../core/size.js'
import {selected, testId, type Filesystem, type TestResult} from './results.js'
import {failing} from './tap.js'
import {BUILTIN, tail, type TestRun} from './testrun.js'

export const MOUNT_ROOT = '/mnt/pmemlab'

/** A persistent-memory device as the guest sees it (pmemlab-suite devices). */
export interface GuestDevice {
  kind: string
  index: number
  namespace: string
  mode: string
  dev: string
  bytes: number
}

export const deviceName = (d: Pick<GuestDevice, 'kind' | 'index'>) => `${d.kind}${d.index}`

/** Parses `pmemlab-suite devices`: KIND INDEX NAMESPACE MODE DEVICE BYTES per line. */
export function parseDevices(text: string): GuestDevice[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length === 6 && /^\d+$/.test(f[1]))
    .map(([kind, index, namespace, mode, dev, bytes]) => ({kind, index: Number(index), namespace, mode, dev, bytes: Number(bytes)}))
}

/** What the guest sees, checked against what the lab was asked for (a built-in test). */
export async function inventory(testRun: TestRun): Promise<GuestDevice[]> {
  testRun.current = 'inventory'
  const run = await testRun.guest(['pmemlab-suite', 'devices'], {timeoutSec: 60, live: false})
  const devices = parseDevices(run.stdout)
  const wanted = (testRun.session?.record.devices ?? []).map((d) => ({kind: d.kind, size: d.size}))
  const want = wanted.map((d) => `${d.kind} ${humanSize(d.size)}`).sort()
  const got = devices.map((d) => `${d.kind} ${humanSize(d.bytes)}`).sort()
  log.info(`guest devices: ${devices.map((d) => `${deviceName(d)} ${d.namespace} (${d.mode}, /dev/${d.dev}, ${humanSize(d.bytes)})`).join(', ') || 'none'}`)
  if (!testRun.builtin || !selected(testId(BUILTIN, 'lab', 'devices'), testRun.options.filters)) return devices
  const ok = run.exitCode === 0 && JSON.stringify(want) === JSON.stringify(got)
  testRun.record({
    suite: BUILTIN,
    group: 'lab',
    name: 'the guest sees every persistent-memory device of the lab',
    status: ok ? 'pass' : 'fail',
    durationMs: run.elapsedMs,
    ...(ok ? {} : {message: `asked for ${want.join(', ') || 'nothing'}; the guest has ${got.join(', ') || 'nothing'}`, details: tail(run.stderr, 5)}),
  })
  return devices
}

/** Where DEVICE is mounted with FS. */
export const mountDir = (device: Pick<GuestDevice, 'kind' | 'index'>, fs: Filesystem) => `${MOUNT_ROOT}/${deviceName(device)}-${fs}`

/**
 * The guest command that makes DEVICE an fsdax namespace with FS on it, mounted -o dax at DIR;
 * with keepRaw, a namespace that is not fsdax stays as it is (a filesystem on it is not on DAX).
 */
export function prepareCommand(device: Pick<GuestDevice, 'kind' | 'index'>, fs: Filesystem, dir: string, keepRaw: boolean): string[] {
  return ['pmemlab-suite', 'prepare', ...(keepRaw ? ['--keep-raw'] : []), device.kind, String(device.index), fs, dir]
}

/** The guest command that makes DEVICE a devdax namespace; it prints "# device /dev/daxX.Y". */
export function devdaxCommand(device: Pick<GuestDevice, 'kind' | 'index'>): string[] {
  return ['pmemlab-suite', 'devdax', device.kind, String(device.index)]
}

/** The character device a devdax command's output names. */
export const devdaxChardev = (stdout: string) => /^# device (\/dev\/dax\S+)$/m.exec(stdout)?.[1]

export interface Mount {
  device: GuestDevice
  dir: string
}

/** Prepares every device with FS for a round of SUITE; stops at the first that fails, saying why. */
export async function mountAll(testRun: TestRun, suite: string, fs: Filesystem, devices: GuestDevice[]): Promise<{mounts: Mount[]; notReady?: string}> {
  const mounts: Mount[] = []
  let notReady: string | undefined
  for (const device of devices) {
    if (notReady) break
    const dir = mountDir(device, fs)
    testRun.current = `${suite}/${fs}: prepare ${deviceName(device)}`
    const run = await testRun.guest(prepareCommand(device, fs, dir, testRun.options.rawNamespaces), {timeoutSec: testRun.options.timeoutSec, live: false})
    if (run.exitCode === 0 && !run.lost) mounts.push({device, dir})
    else {
      const bad = run.tap?.asserts.find(failing)
      notReady = run.lost ?? `${deviceName(device)} could not be prepared with ${fs}${bad ? `: ${bad.name}${bad.diagnostics[0] ? ` (${bad.diagnostics[0]})` : ''}` : ''}`
    }
  }
  return {mounts, notReady}
}

/** Adds the guest's explanation (raw namespace, no FS_DAX, the kernel's words) to DAX failures. */
export async function explainNoDax(testRun: TestRun, dir: string, results: TestResult[]): Promise<void> {
  const run = await testRun.guest(['pmemlab-suite', 'why-not-dax', dir], {timeoutSec: 60, live: false})
  const why = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => l.replace(/^#\s?/, ''))
  if (why.length === 0) return
  const reason = why.find((l) => !l.startsWith('kernel said:')) ?? why[0]
  log.error(`${dir} is not on DAX: ${reason}`)
  for (const line of why.filter((l) => l !== reason)) process.stderr.write(`    ${line}\n`)
  for (const t of results.filter((r) => r.status === 'fail')) {
    t.message = `${t.message ? `${t.message}: ` : ''}${reason}`
    t.details = [...why.filter((l) => l !== reason), ...(t.details ?? [])]
  }
}

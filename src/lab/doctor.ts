import {statfs, mkdir, readdir} from 'node:fs/promises'
import {judgeKvm, probeHostVirt} from './accel.js'
import {run} from '../core/exec.js'
import {cacheDir} from '../core/paths.js'
import {GiB, humanSize} from '../core/size.js'
import {qemuBinaryName, which} from '../core/which.js'
import {probeUnprivilegedBuild, unprivilegedFixLine} from '../image/unprivileged.js'

/** One line of `pmemlab doctor`: required checks decide the exit code, the others only inform. */
export interface Check {
  name: string
  ok: boolean
  required: boolean
  detail: string
  fix?: string
}

export interface DoctorReport {
  ok: boolean // a lab can run
  accel: 'kvm' | 'tcg'
  checks: Check[]
}

async function programCheck(name: string, program: string, debianPackage: string, required: boolean, versionArgs?: string[]): Promise<Check> {
  const path = await which(program)
  if (!path) return {name, ok: false, required, detail: `${program} not found`, fix: `apt-get install ${debianPackage}`}
  if (!versionArgs) return {name, ok: true, required, detail: path}
  const result = await run(path, versionArgs, {reject: false, timeout: 10_000})
  return {name, ok: true, required, detail: `${path}: ${String(result.stdout).split('\n')[0]}`}
}

const KERNEL_TOOLS: Array<[string, string]> = [
  ['make', 'make'],
  ['gcc', 'gcc'],
  ['flex', 'flex'],
  ['bison', 'bison'],
  ['bc', 'bc'],
  ['xz', 'xz-utils'],
]

export async function runDoctor(): Promise<DoctorReport> {
  const checks: Check[] = []
  checks.push(await programCheck('qemu', qemuBinaryName(), 'qemu-system-x86', true, ['--version']))
  const kvm = judgeKvm(await probeHostVirt())
  checks.push({name: 'kvm', ok: kvm.usable, required: false, detail: kvm.usable ? `usable: ${kvm.reason}` : `not usable, TCG only: ${kvm.reason}`})
  checks.push(await programCheck('image builder', 'mmdebstrap', 'mmdebstrap', true, ['--version']))
  checks.push(await programCheck('mkfs.ext4', 'mkfs.ext4', 'e2fsprogs', true))
  checks.push(await unprivilegedCheck())
  checks.push(await programCheck('busybox (distro-kernel initramfs)', 'busybox', 'busybox-static', false))
  const vmlinuz = (await readdir('/boot').catch(() => [] as string[])).filter((f) => f.startsWith('vmlinuz-'))
  checks.push({
    name: 'distro kernel',
    ok: vmlinuz.length > 0,
    required: false,
    detail: vmlinuz.length > 0 ? `/boot/${vmlinuz.sort().at(-1)}` : 'no /boot/vmlinuz-*: --kernel distro will not work',
    fix: vmlinuz.length > 0 ? undefined : 'apt-get install linux-image-amd64',
  })
  const missingTools = []
  for (const [program, pkg] of KERNEL_TOOLS) if (!(await which(program))) missingTools.push(pkg)
  checks.push({
    name: 'kernel toolchain',
    ok: missingTools.length === 0,
    required: false,
    detail: missingTools.length === 0 ? KERNEL_TOOLS.map(([p]) => p).join(', ') + ' found' : `missing: ${missingTools.join(', ')}`,
    fix: missingTools.length === 0 ? undefined : `apt-get install ${missingTools.join(' ')} libelf-dev libssl-dev`,
  })
  checks.push(await programCheck('setpriv (no QEMU outlives a killed pmemlab)', 'setpriv', 'util-linux', false))
  checks.push(await diskCheck())
  return {ok: checks.every((c) => c.ok || !c.required), accel: kvm.usable ? 'kvm' : 'tcg', checks}
}

/** Without root, the image build needs user namespaces and subordinate ids: required then, informational for root. */
async function unprivilegedCheck(): Promise<Check> {
  const verdict = await probeUnprivilegedBuild()
  const name = 'image build without root'
  if (verdict.root) return {name, ok: true, required: false, detail: verdict.detail}
  const ok = verdict.missing.length === 0
  return {name, ok, required: true, detail: verdict.detail, ...(ok ? {} : {fix: unprivilegedFixLine(verdict)})}
}

async function diskCheck(): Promise<Check> {
  const dir = cacheDir()
  await mkdir(dir, {recursive: true}).catch(() => undefined)
  try {
    const fs = await statfs(dir)
    const free = fs.bavail * fs.bsize
    // An image is about 1 GiB, a kernel build tree a few; under 2 GiB nothing useful fits.
    return {name: 'free disk', ok: free >= 2 * GiB, required: true, detail: `${humanSize(free)} free in ${dir}`, fix: free >= 2 * GiB ? undefined : 'free some space or set PMEMLAB_CACHE_DIR'}
  } catch (error) {
    return {name: 'free disk', ok: false, required: true, detail: `cannot read ${dir}: ${(error as Error).message}`, fix: 'set PMEMLAB_CACHE_DIR to a writable directory'}
  }
}

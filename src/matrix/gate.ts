/**
 * A kernel's sanity gate: before its cells run, the kernel boots once with one device of every
 * kind its cells use, and the guest lists what it sees (uname -r, pmemlab-suite devices, dmesg).
 * A kernel that panics or hangs there fails every cell at once, with the console excerpt, instead
 * of failing each the slow way; devices that do not appear fail the cells that need them.
 * Pure: the gate's command line and what its output says; run.ts runs it (`pmemlab up -- CMD`).
 */
import {parseDevices} from '../suite/devices.js'
import {DEFAULT_MEM, type MatrixTopology} from './schema.js'
import type {DeviceKind} from './cells.js'
import type {GateFact} from './state.js'
import {parseSize} from '../core/size.js'

/** The guest side of the gate: sections split by marker lines. */
export const GATE_SCRIPT = 'uname -r; echo @@devices; pmemlab-suite devices; echo @@dmesg; dmesg'

export interface GateTopology {
  mem: string
  memmap: string[]
  nvdimm: string[]
  virtioPmem: string[]
}

/**
 * One device of each kind the kernel's cells use, each the first of its kind in the plan's
 * topologies (so its size is one the plan asks for), with the largest guest RAM of those topologies.
 */
export function gateTopology(topologies: ReadonlyArray<Pick<MatrixTopology, 'mem' | 'memmap' | 'nvdimm' | 'virtioPmem'>>, kinds: readonly DeviceKind[]): GateTopology {
  const first = (pick: (t: (typeof topologies)[number]) => string[]) => topologies.map(pick).find((list) => list.length > 0)?.slice(0, 1) ?? []
  const mems = topologies.map((t) => t.mem)
  const mem = mems.length > 0 ? mems.reduce((a, b) => (parseSize(b) > parseSize(a) ? b : a)) : DEFAULT_MEM
  return {
    mem,
    memmap: kinds.includes('memmap') ? first((t) => t.memmap) : [],
    nvdimm: kinds.includes('nvdimm') ? first((t) => t.nvdimm) : [],
    virtioPmem: kinds.includes('virtio-pmem') ? first((t) => t.virtioPmem) : [],
  }
}

/** The lab flags of a topology, as `up` and `test` take them. */
export function topologyFlags(t: GateTopology): string[] {
  return ['--mem', t.mem, ...t.memmap.flatMap((m) => ['--memmap', m]), ...t.nvdimm.flatMap((n) => ['--nvdimm', n]), ...t.virtioPmem.flatMap((v) => ['--virtio-pmem', v])]
}

/** `pmemlab up` arguments of the gate. */
export function gateArgs(kernelSpec: string, image: string, topology: GateTopology): string[] {
  return ['up', '--kernel', kernelSpec, '--image', image, ...topologyFlags(topology), '--', '/bin/sh', '-c', GATE_SCRIPT]
}

/** What the gate's guest printed: its kernel release, the device kinds it saw, its dmesg. */
export function parseGateOutput(stdout: string): {release?: string; kinds: string[]; dmesg: string} {
  const [head, rest = ''] = stdout.split('\n@@devices\n')
  const [devices, dmesg = ''] = rest.split('\n@@dmesg\n')
  const release = head.trim().split('\n').at(-1)?.trim()
  return {release: release || undefined, kinds: [...new Set(parseDevices(devices).map((d) => d.kind))], dmesg}
}

/** The one-line error a pmemlab child ended with, the excerpt after it, and the kept console log it names. */
export function childError(stderr: string): {line?: string; excerpt: string[]; keptLog?: string} {
  const lines = stderr.split('\n')
  const at = lines.map((l) => l.startsWith('pmemlab: error: ')).lastIndexOf(true)
  if (at < 0) return {excerpt: []}
  const line = lines[at].slice('pmemlab: error: '.length)
  const excerpt: string[] = []
  for (const l of lines.slice(at + 1)) {
    if (!l.startsWith('  | ')) break
    excerpt.push(l.slice(4))
  }
  const kept = /console log kept in (\S+)$/.exec(line)
  return {line, excerpt, ...(kept ? {keptLog: kept[1]} : {})}
}

/**
 * Whether a lab that could not start (exit 6) failed because of its kernel: a guest that
 * panicked, died or never answered at boot. QEMU refusing to start or exiting on its own is the lab's.
 */
export const bootFailureIsKernels = (message: string) => /failed to boot: the guest (kernel panicked|died|rebooted|powered|agent did not answer)|hung/.test(message)

/** The gate's fact from the child's exit status and output (exit codes as README's table). */
export function gateFact(result: {code: number | null; stdout: string; stderr: string; interrupted?: boolean}, wanted: readonly DeviceKind[]): {fact: GateFact; release?: string; keptLog?: string} {
  const error = childError(result.stderr)
  const why = error.line ?? `pmemlab up ended ${result.code === null ? 'by a signal' : `with status ${result.code}`}`
  if (result.code === 0) {
    const seen = parseGateOutput(result.stdout)
    const missing = wanted.filter((kind) => !seen.kinds.includes(kind))
    return {fact: {outcome: 'booted', ...(missing.length > 0 ? {missing} : {})}, release: seen.release}
  }
  const kept = error.keptLog ? {keptLog: error.keptLog} : {}
  if (result.code === 7 || (result.code === 6 && bootFailureIsKernels(why))) {
    return {fact: {outcome: 'failed', reason: why, ...(error.excerpt.length > 0 ? {excerpt: error.excerpt} : {})}, ...kept}
  }
  if (result.code !== null && result.code > 0 && result.code < 64 && !error.line) {
    // The guest command itself failed: the guest booted but its tools did not run.
    return {fact: {outcome: 'error', reason: `the gate's guest command exited with status ${result.code}: ${result.stderr.trim().split('\n').at(-1) ?? ''}`}}
  }
  return {fact: {outcome: 'error', reason: why}, ...kept}
}

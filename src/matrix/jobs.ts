/**
 * How many cells a matrix runs at once when neither --jobs nor the file's `jobs:` says. Pure: the
 * host's figures and the cells' topologies in, a number and the reason for it out.
 *
 * The formula: jobs = max(1, min(cores, floor((available RAM - reserve) / largest cell), cells))
 *
 * - cores: a cell's guest runs its suite one command after another, so it keeps about one
 *   vCPU busy (an idle vCPU halts, under KVM and under TCG, where each vCPU is one host thread).
 *   One cell per core keeps every core working without making guests queue for them, which
 *   would stretch their timeouts.
 * - RAM: a cell's VM takes its guest RAM as QEMU is given it (the usable RAM plus the memmap
 *   ranges, which are carved from that RAM: topology.ts sizes -m to hold both) plus QEMU's own
 *   memory (device models, TCG's translation cache). The largest cell counts for every job,
 *   since any cell may be running in any slot. NVDIMM and virtio-pmem backing files are files:
 *   their pages are page cache, which the host can write back and drop, so they do not count.
 *   The reserve leaves room for pmemlab, the page cache and a kernel build running beside the
 *   cells.
 */
import {humanSize, MiB} from '../core/size.js'
import {topologyRequest} from '../lab/request.js'
import {planTopology} from '../lab/topology.js'
import type {MatrixTopology} from './schema.js'

/** QEMU's own memory beside its guest's RAM (resident size of a TCG guest running the suite, rounded up). */
export const QEMU_OVERHEAD = 384 * MiB
/** Kept free for the host, pmemlab and a kernel build. */
export const HOST_RESERVE = 1024 * MiB

/** Host memory one cell's VM takes: guest RAM with its memmap ranges, plus QEMU itself. */
export function cellMemoryBytes(topology: Pick<MatrixTopology, 'mem' | 'memmap' | 'nvdimm' | 'virtioPmem'>): number {
  const layout = planTopology(topologyRequest({machine: 'pc', mem: topology.mem, memmap: topology.memmap, nvdimm: topology.nvdimm, virtioPmem: topology.virtioPmem}))
  return layout.totalRamBytes + QEMU_OVERHEAD
}

export interface HostFigures {
  cores: number
  /** MemAvailable, in bytes. */
  availableMemory: number
}

/** The default number of cells at once, with one line saying how it was reached. */
export function defaultJobs(host: HostFigures, cellBytes: readonly number[]): {jobs: number; why: string} {
  if (cellBytes.length === 0) return {jobs: 1, why: 'no cell to run'}
  const largest = Math.max(...cellBytes)
  const byMemory = Math.floor(Math.max(0, host.availableMemory - HOST_RESERVE) / largest)
  const jobs = Math.max(1, Math.min(host.cores, byMemory, cellBytes.length))
  const limits = [
    `${host.cores} core${host.cores === 1 ? '' : 's'}`,
    Number.isFinite(host.availableMemory) ? `${humanSize(host.availableMemory)} available / ${humanSize(largest)} per cell = ${byMemory}` : undefined,
    `${cellBytes.length} cell${cellBytes.length === 1 ? '' : 's'}`,
  ].filter(Boolean)
  return {jobs, why: `${jobs} at once (the least of ${limits.join(', ')}${byMemory < 1 ? '; at least 1' : ''})`}
}

import {readFile, statfs} from 'node:fs/promises'
import {usageError, type PmemlabError} from '../core/errors.js'
import {humanSize} from '../core/size.js'
import type {Layout} from './topology.js'

/**
 * Whether a planned VM fits the host. QEMU itself accepts `-m 10T` and a 1 TiB sparse backing file;
 * the guest then dies or hangs long after the command line was accepted. Pure: the layout and the
 * host's figures in, a refusal naming both figures (or nothing) out.
 */
export interface HostCapacity {
  /** MemAvailable from /proc/meminfo. */
  availableMemory: number
  /** Free bytes where the disposable backing files go (the VM's state directory). */
  freeDisk: number
  diskPath: string
}

/** Room left for QEMU itself, the page cache and pmemlab beside the guest's RAM. */
const HOST_MEMORY_RESERVE = 256 * 1024 * 1024

export function checkHostFit(layout: Layout, disposableBytes: number, host: HostCapacity): PmemlabError | undefined {
  const guestMemory = layout.totalRamBytes
  if (guestMemory + HOST_MEMORY_RESERVE > host.availableMemory) {
    const memmap = layout.memmap.reduce((sum, range) => sum + range.size, 0)
    const what = memmap > 0 ? `guest RAM ${humanSize(guestMemory)} (memmap ranges ${humanSize(memmap)} included)` : `guest RAM ${humanSize(guestMemory)}`
    return usageError(
      `${what} does not fit in the host's available memory (${humanSize(host.availableMemory)}, of which pmemlab leaves ${humanSize(HOST_MEMORY_RESERVE)} to QEMU and the host)`,
      'ask for less with --mem or smaller --memmap ranges, or pass --force to boot anyway',
    )
  }
  if (disposableBytes > host.freeDisk) {
    return usageError(
      `the disposable backing files (${humanSize(disposableBytes)}) do not fit in the ${humanSize(host.freeDisk)} free in ${host.diskPath}`,
      'give smaller devices, name your own files (SIZE:FILE) on a roomier disk, set PMEMLAB_STATE_DIR, or pass --force (the files are sparse)',
    )
  }
  return undefined
}

export async function probeHostCapacity(diskPath: string): Promise<HostCapacity> {
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '')
  const available = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo)
  const fs = await statfs(diskPath)
  return {
    availableMemory: available ? Number(available[1]) * 1024 : Number.POSITIVE_INFINITY,
    freeDisk: fs.bavail * fs.bsize,
    diskPath,
  }
}

/** What the benchmarks need to drive a lab by hand: up's flags for a reproducer, and the raw QEMU command's files. */
import {mkdir, open} from 'node:fs/promises'
import {join} from 'node:path'
import {sleep} from '../src/core/process.js'
import {GuestAgent} from '../src/lab/monitor.js'
import {AGENT_RESYNC_MS, AGENT_RETRY_MS} from '../src/lab/vm.js'
import type {ReproPlan} from '../src/repro/schema.js'

/** The up flags that make a reproducer file's lab (what repro/setup.ts labRequestOf builds). */
export function upFlags(plan: ReproPlan): string[] {
  const {lab} = plan
  return [
    ...lab.memmap.flatMap((m) => ['--memmap', m]),
    ...lab.nvdimm.flatMap((d) => ['--nvdimm', d]),
    ...lab.virtioPmem.flatMap((d) => ['--virtio-pmem', d]),
    ...['--mem', lab.mem, '--cpus', String(lab.cpus), '--machine', lab.machine],
    ...lab.append.flatMap((a) => ['--append', a]),
  ]
}

/** What `up --dry-run --json` says the raw command needs. */
export interface DryRun {
  argv: string[]
  devices: Array<{file?: string; size: number}>
}

/** What the raw command of DRY needs on disk: the VM's directory (returned) and sparse backing files. */
export async function makeRawVmFiles(stateDir: string, name: string, dry: DryRun): Promise<string> {
  const dir = join(stateDir, 'vms', name)
  await mkdir(join(dir, 'disposable'), {recursive: true, mode: 0o700})
  for (const device of dry.devices) {
    if (!device.file) continue
    const handle = await open(device.file, 'w')
    await handle.truncate(device.size)
    await handle.close()
  }
  return dir
}

/**
 * The guest agent of a raw QEMU command, waited for the way pmemlab waits for it (lab/vm.ts
 * waitForAgent): one connection answered when qemu-ga starts, retried while QEMU has not made the
 * socket yet. Both sides of a benchmark then wait alike, and only what pmemlab adds is compared.
 */
export async function waitForRawAgent(socket: string, timeoutMs = 300_000): Promise<GuestAgent> {
  for (;;) {
    try {
      return await GuestAgent.connect(socket, timeoutMs, {resyncMs: AGENT_RESYNC_MS})
    } catch {
      await sleep(AGENT_RETRY_MS)
    }
  }
}

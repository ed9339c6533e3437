/** What the benchmarks need to drive a lab by hand: up's flags for a reproducer, and the raw QEMU command's files. */
import {mkdir, open} from 'node:fs/promises'
import {join} from 'node:path'
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

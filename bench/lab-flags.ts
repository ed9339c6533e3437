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

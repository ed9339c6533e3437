import * as Flags from '@oclif/core/flags'
import {LAB_FLAG_TABLE as lab} from './lab-flag-table.js'

/** Flags that describe a lab; shared by `up` and the commands that boot one (test, matrix). Their text and defaults live in lab-flag-table.ts. */
export const labFlags = {
  kernel: Flags.string({description: lab.kernel.description, default: lab.kernel.default}),
  image: Flags.string({description: lab.image.description, default: lab.image.default}),
  memmap: Flags.string({description: lab.memmap.description, multiple: true, helpValue: lab.memmap.helpValue, default: []}),
  nvdimm: Flags.string({description: lab.nvdimm.description, multiple: true, helpValue: lab.nvdimm.helpValue, default: []}),
  'virtio-pmem': Flags.string({description: lab['virtio-pmem'].description, multiple: true, helpValue: lab['virtio-pmem'].helpValue, default: []}),
  mem: Flags.string({description: lab.mem.description, default: lab.mem.default}),
  cpus: Flags.integer({description: lab.cpus.description, default: lab.cpus.default}),
  machine: Flags.string({description: lab.machine.description, options: [...lab.machine.options], default: lab.machine.default}),
  accel: Flags.string({description: lab.accel.description, options: [...lab.accel.options], default: lab.accel.default}),
  append: Flags.string({description: lab.append.description, multiple: true, default: []}),
  'boot-timeout': Flags.integer({description: lab['boot-timeout'].description, default: lab['boot-timeout'].default}),
  force: Flags.boolean({description: lab.force.description}),
}

export {labRequest} from './lab-flag-table.js'

import * as Flags from '@oclif/core/flags'
import type {Interfaces} from '@oclif/core'
import type {AccelRequest} from '../lab/accel.js'
import type {LabRequest} from '../lab/vm.js'
import type {MachineType} from '../lab/topology.js'

/** Flags that describe a lab; shared by `up` and the commands that boot one (test, matrix). */
export const labFlags = {
  kernel: Flags.string({description: 'kernel to boot: "distro" (the host\'s newest /boot/vmlinuz with its modules), "debian:VERSION" (Debian\'s prebuilt kernel, e.g. debian:6.12), a built kernel (latest, a version or key) or a bzImage path', default: 'distro'}),
  image: Flags.string({description: 'guest image: a recipe name (see pmemlab image ls), or the path of your own recipe file (.yaml)', default: 'debian-12'}),
  memmap: Flags.string({description: 'a memmap=SIZE!OFFSET range of legacy pmem carved from guest RAM; OFFSET is placed automatically when omitted', multiple: true, helpValue: 'SIZE[@OFFSET]', default: []}),
  nvdimm: Flags.string({description: 'a file-backed NVDIMM; FILE persists across VMs and is never deleted, without it the backing file is disposable', multiple: true, helpValue: 'SIZE[:FILE]', default: []}),
  'virtio-pmem': Flags.string({description: 'a virtio-pmem device, backed like --nvdimm', multiple: true, helpValue: 'SIZE[:FILE]', default: []}),
  mem: Flags.string({description: 'usable guest RAM, not counting memmap ranges (pmemlab adds those)', default: '1G'}),
  cpus: Flags.integer({description: 'virtual CPUs', default: 2}),
  machine: Flags.string({description: 'QEMU machine type', options: ['pc', 'q35'], default: 'pc'}),
  accel: Flags.string({description: 'accelerator: auto uses KVM only where it really works', options: ['auto', 'kvm', 'tcg'], default: 'auto'}),
  append: Flags.string({description: 'extra kernel command-line arguments, passed as given (not checked against the topology)', multiple: true, default: []}),
  'boot-timeout': Flags.integer({description: 'seconds to wait for the guest agent before the boot counts as failed', default: 180}),
  force: Flags.boolean({description: "boot even when guest RAM or disposable backing files exceed what the host has free"}),
}

/** The lab part of a request, from parsed labFlags: shared by every command that boots a lab. */
export function labRequest(flags: Interfaces.InferredFlags<typeof labFlags>): LabRequest {
  return {
    kernel: flags.kernel,
    image: flags.image,
    topology: {
      machine: flags.machine as MachineType,
      mem: flags.mem,
      memmap: flags.memmap,
      nvdimm: flags.nvdimm,
      virtioPmem: flags['virtio-pmem'],
    },
    cpus: flags.cpus,
    accel: flags.accel as AccelRequest,
    append: flags.append,
    bootTimeoutMs: flags['boot-timeout'] * 1000,
    force: flags.force,
  }
}

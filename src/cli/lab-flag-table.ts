import type {AccelRequest} from '../lab/accel.js'
import type {MachineType} from '../lab/topology.js'
import {DEFAULT_MEM} from '../lab/request.js'
import type {LabRequest} from '../lab/vm.js'

/**
 * The flags that describe a lab, as plain data: flags.ts makes oclif's flags from it, and the fast
 * start (fast.ts) parses `up` with node's parseArgs from it, without loading oclif. One table,
 * so the two cannot drift apart (test/unit/fast-cli.test.ts holds them to it).
 */
export interface FlagSpec {
  type: 'string' | 'integer' | 'boolean'
  description: string
  multiple?: boolean
  default?: string | number | readonly string[]
  options?: readonly string[]
  helpValue?: string
}

export const LAB_FLAG_TABLE = {
  kernel: {type: 'string', description: 'kernel to boot: "distro" (the host\'s newest /boot/vmlinuz with its modules), "debian:VERSION" (Debian\'s prebuilt kernel, e.g. debian:6.12), a built kernel (latest, a version or key) or a bzImage path', default: 'distro'},
  image: {type: 'string', description: 'guest image: a recipe name (see pmemlab image ls), or the path of your own recipe file (.yaml)', default: 'debian-12'},
  memmap: {type: 'string', description: 'a memmap=SIZE!OFFSET range of legacy pmem carved from guest RAM; OFFSET is placed automatically when omitted', multiple: true, helpValue: 'SIZE[@OFFSET]', default: []},
  nvdimm: {type: 'string', description: 'a file-backed NVDIMM; FILE persists across VMs and is never deleted, without it the backing file is disposable; ",labels" (128K) or ",labels=SIZE" gives it a label area for named namespaces', multiple: true, helpValue: 'SIZE[:FILE][,labels]', default: []},
  'virtio-pmem': {type: 'string', description: 'a virtio-pmem device, backed like --nvdimm', multiple: true, helpValue: 'SIZE[:FILE]', default: []},
  mem: {type: 'string', description: 'usable guest RAM, not counting memmap ranges (pmemlab adds those)', default: DEFAULT_MEM},
  cpus: {type: 'integer', description: 'virtual CPUs', default: 2},
  machine: {type: 'string', description: 'QEMU machine type', options: ['pc', 'q35'], default: 'pc'},
  accel: {type: 'string', description: 'accelerator: auto uses KVM only where it really works', options: ['auto', 'kvm', 'tcg'], default: 'auto'},
  append: {type: 'string', description: 'extra kernel command-line arguments, passed as given (not checked against the topology)', multiple: true, default: []},
  'boot-timeout': {type: 'integer', description: 'seconds to wait for the guest agent before the boot counts as failed', default: 180},
  force: {type: 'boolean', description: 'boot even when guest RAM or disposable backing files exceed what the host has free'},
} as const satisfies Record<string, FlagSpec>

/** The flags `up` adds to the lab's. */
export const UP_FLAG_TABLE = {
  name: {type: 'string', description: 'VM name (default: lab-XXXX)'},
  detach: {type: 'boolean', description: 'return once the guest agent answers; stop it later with pmemlab down'},
  'dry-run': {type: 'boolean', description: 'print the exact QEMU command and kernel command line; start nothing'},
  json: {type: 'boolean', description: 'print one JSON document (with --detach or --dry-run)'},
} as const satisfies Record<string, FlagSpec>

/** The flags `exec` adds to the global ones. */
export const EXEC_FLAG_TABLE = {
  timeout: {type: 'integer', description: 'kill the guest command after this many seconds'},
} as const satisfies Record<string, FlagSpec>

/** --verbose, which every command has. */
export const VERBOSE_FLAG = {type: 'boolean', description: 'echo every external command and show more progress'} as const satisfies FlagSpec

/** The values of the lab flags, however they were parsed (by oclif, or by the fast start). */
export interface LabFlagValues {
  kernel: string
  image: string
  memmap: string[]
  nvdimm: string[]
  'virtio-pmem': string[]
  mem: string
  cpus: number
  machine: string
  accel: string
  append: string[]
  'boot-timeout': number
  force?: boolean
}

/** The lab part of a request, from parsed lab flags: shared by every command that boots a lab. */
export function labRequest(flags: LabFlagValues): LabRequest {
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

import {usageError} from '../core/errors.js'
import {parseSize} from '../core/size.js'
import type {MachineType, MemmapRequest, PmemDeviceRequest, TopologyRequest} from './topology.js'

/**
 * The lab as the user describes it on the command line, turned into a topology request.
 * Pure: no files are looked at here (paths are checked when the VM is prepared).
 */
export interface TopologyFlags {
  machine: MachineType
  mem: string
  memmap: string[]
  nvdimm: string[]
  virtioPmem: string[]
}

/** When the user names no persistent memory at all: one memmap range and one NVDIMM. */
export const DEFAULT_MEMMAP = '256M'
export const DEFAULT_NVDIMM = '512M'

export function parseMemmapFlag(text: string): MemmapRequest {
  const [size, offset, extra] = text.split('@')
  if (extra !== undefined || !size) throw usageError(`invalid --memmap "${text}"`, 'write SIZE or SIZE@OFFSET, like 256M or 256M@4G')
  return offset === undefined
    ? {size: parseSize(size, '--memmap size')}
    : {size: parseSize(size, '--memmap size'), offset: parseSize(offset, '--memmap offset')}
}

/** SIZE or SIZE:FILE. FILE may itself contain colons; only the first one separates. */
export function parseDeviceFlag(text: string, flag: string): PmemDeviceRequest {
  const colon = text.indexOf(':')
  const size = colon < 0 ? text : text.slice(0, colon)
  const file = colon < 0 ? undefined : text.slice(colon + 1)
  if (file === '') throw usageError(`invalid ${flag} "${text}"`, `write SIZE or SIZE:FILE, like 512M or 512M:/var/tmp/nvdimm0.img`)
  return file === undefined ? {size: parseSize(size, `${flag} size`)} : {size: parseSize(size, `${flag} size`), file}
}

export function topologyRequest(flags: TopologyFlags): TopologyRequest {
  const none = flags.memmap.length === 0 && flags.nvdimm.length === 0 && flags.virtioPmem.length === 0
  return {
    machine: flags.machine,
    ramBytes: parseSize(flags.mem, '--mem'),
    memmap: (none ? [DEFAULT_MEMMAP] : flags.memmap).map((m) => parseMemmapFlag(m)),
    nvdimms: (none ? [DEFAULT_NVDIMM] : flags.nvdimm).map((n) => parseDeviceFlag(n, '--nvdimm')),
    virtioPmem: flags.virtioPmem.map((v) => parseDeviceFlag(v, '--virtio-pmem')),
  }
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/i

export function checkVmName(name: string): string {
  if (!NAME.test(name)) {
    throw usageError(`invalid VM name "${name}"`, 'use up to 32 letters, digits, "-" or "_", starting with a letter or digit')
  }
  return name
}

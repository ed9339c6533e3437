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
/** --mem when not given: usable guest RAM, not counting memmap ranges. */
export const DEFAULT_MEM = '1G'

export function parseMemmapFlag(text: string): MemmapRequest {
  const [size, offset, extra] = text.split('@')
  if (extra !== undefined || !size) throw usageError(`invalid --memmap "${text}"`, 'write SIZE or SIZE@OFFSET, like 256M or 256M@4G')
  return offset === undefined
    ? {size: parseSize(size, '--memmap size')}
    : {size: parseSize(size, '--memmap size'), offset: parseSize(offset, '--memmap offset')}
}

/** The label area `,labels` gives an NVDIMM: 128 KiB, the least QEMU takes and what run_qemu uses. */
export const DEFAULT_LABEL_BYTES = 128 * 1024
const LABELS = /,labels(?:=([^,:]+))?$/

/**
 * SIZE, SIZE:FILE, and either with ",labels" or ",labels=SIZE" at the end (an NVDIMM with a
 * label area, whose namespaces have names and UUIDs). FILE may itself contain colons; only the
 * first one separates.
 */
export function parseDeviceFlag(text: string, flag: string): PmemDeviceRequest {
  const labels = LABELS.exec(text)
  if (labels) {
    if (flag.endsWith('virtio-pmem')) throw usageError(`invalid ${flag} "${text}"`, 'label areas are an NVDIMM feature: use --nvdimm SIZE,labels')
    const device = parseDeviceFlag(text.slice(0, labels.index), flag)
    return {...device, labelBytes: labels[1] === undefined ? DEFAULT_LABEL_BYTES : parseSize(labels[1], `${flag} label size`)}
  }
  const colon = text.indexOf(':')
  const size = colon < 0 ? text : text.slice(0, colon)
  const file = colon < 0 ? undefined : text.slice(colon + 1)
  if (file === '') throw usageError(`invalid ${flag} "${text}"`, `write SIZE or SIZE:FILE, like 512M or 512M:/var/tmp/nvdimm0.img${flag.endsWith('nvdimm') ? ', with ",labels" after either for a label area' : ''}`)
  return file === undefined ? {size: parseSize(size, `${flag} size`)} : {size: parseSize(size, `${flag} size`), file}
}

/** The device flag TEXT (without a file) backed by FILE: SIZE:FILE, keeping any ",labels". */
export function withDeviceFile(text: string, file: string): string {
  const labels = LABELS.exec(text)
  return labels ? `${text.slice(0, labels.index)}:${file}${labels[0]}` : `${text}:${file}`
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

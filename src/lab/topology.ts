/**
 * Guest memory planner: turns "1G of RAM, a 256M memmap range and a 512M NVDIMM" into the exact
 * guest-physical layout QEMU will build, so every `memmap=nn!ss` range lands on RAM QEMU really backs.
 *
 * Why this matters: `memmap=nn!ss` only MARKS existing guest RAM as legacy persistent memory. A range in
 * the PCI hole or past the end of RAM still shows up as /dev/pmemN, mkfs "succeeds" and every write is
 * silently lost. So the planner sizes `-m` to hold the usable RAM plus the ranges, pins the below/above
 * 4 GiB split with `max-ram-below-4g` (identical on pc and q35), and refuses ranges outside backed RAM.
 *
 * Pure: no I/O. Every refusal is a usageError with one line naming the ranges and how to fix them.
 */
import {usageError} from '../core/errors.js'
import {formatSize, GiB, hex, humanSize, KiB, MiB} from '../core/size.js'

export type MachineType = 'pc' | 'q35'

export interface MemmapRequest {
  size: number // bytes
  offset?: number // guest-physical start; omitted = placed automatically from 4 GiB up
}

export interface PmemDeviceRequest {
  size: number // bytes, NVDIMM or virtio-pmem
  file?: string // the user's persistent backing file
  // NVDIMM only: a label area of this many bytes (namespaces with names and UUIDs). The backend
  // grows by it (rounded up to 2 MiB) so that the guest still sees `size` bytes of pmem.
  labelBytes?: number
}

export interface TopologyRequest {
  machine: MachineType
  ramBytes: number // usable RAM the user asked for (--mem), NOT counting memmap ranges
  memmap: MemmapRequest[]
  nvdimms: PmemDeviceRequest[]
  virtioPmem: PmemDeviceRequest[]
}

/** A guest-physical range, [start, end). */
export interface Range {
  start: number
  end: number
}

export interface Layout {
  machine: MachineType
  totalRamBytes: number // `-m size=`: usable RAM + memmap ranges (+ alignment padding, which is ordinary RAM)
  maxRamBelow4g: number // `-machine max-ram-below-4g=`
  ramRanges: Range[] // guest-physical RAM QEMU backs: [0, below) and [4 GiB, 4 GiB + above)
  memmap: Array<{start: number; size: number}> // placed ranges, sorted by start
  nvdimms: Array<{
    id: string
    /** The backend's size: the pmem plus the label area, rounded up to 2 MiB, when there is one. */
    size: number
    labelBytes: number
    /** Size of the persistent region the guest sees: QEMU aligns (size - label) down to the backend alignment (2 MiB). */
    pmemBytes: number
    file?: string
  }>
  virtioPmem: Array<{id: string; size: number; file?: string}>
  slots: number // `-m slots=` (0 = omitted)
  maxmemBytes: number // `-m maxmem=` (0 = omitted)
  kernelArgs: string[] // e.g. ['memmap=256M!4G']
}

export const FOUR_GIB = 4 * GiB
/** Smallest usable RAM pmemlab accepts (--mem). */
export const MIN_RAM_BYTES = 256 * MiB
/** Every memmap range, NVDIMM, virtio-pmem device and the RAM size are multiples of this (huge page, QEMU `align=2M`). */
export const SIZE_ALIGN = 2 * MiB
/** memmap range starts are multiples of this: one x86-64 memory section (ZONE_DEVICE / pfn metadata want it). */
export const MEMMAP_START_ALIGN = 128 * MiB
/** Below 4 GiB the guest keeps at most this much RAM; the rest lives from 4 GiB up. */
export const MAX_LOW_RAM = 2 * GiB
/**
 * Explicit ranges may not start below this: firmware data, the real-mode area and the kernel image
 * (bzImage is relocated to CONFIG_PHYSICAL_START = 16 MiB and decompressed there) live in the first MiBs.
 */
export const LOW_RESERVED_END = 128 * MiB
/**
 * QEMU loads the initrd at the TOP of below-4G RAM (x86_load_linux in hw/i386/x86.c: initrd_max is
 * below_4g_mem_size minus the ACPI tables). Explicit ranges must keep clear of this much of it.
 */
export const INITRD_RESERVE = 256 * MiB
/** QEMU's minimum non-zero NVDIMM label area (MIN_NAMESPACE_LABEL_SIZE, checked by the nvdimm device). */
export const MIN_NVDIMM_LABEL_BYTES = 128 * KiB
/** ACPI_MAX_RAM_SLOTS in QEMU: the most DIMM slots a pc/q35 machine accepts. */
export const MAX_SLOTS = 256

/** How QEMU splits `-m` RAM around the 32-bit PCI hole. */
export interface RamSplit {
  below4g: number
  above4g: number
}

/**
 * q35, mirroring pc_q35_init() in hw/i386/pc_q35.c (QEMU 7.2):
 *   lowmem = ram_size >= 0xb0000000 (2.75 GiB) ? 0x80000000 (2 GiB) : 0xb0000000
 *   max_ram_below_4g defaults to 4 GiB when unset (0); lowmem = min(lowmem, max_ram_below_4g)
 *   ram_size >= lowmem ? (below = lowmem, above = ram_size - lowmem) : (below = ram_size, above = 0)
 */
export function q35RamSplit(ramSize: number, maxRamBelow4g = 0): RamSplit {
  let lowmem = ramSize >= 0xb0000000 ? 0x80000000 : 0xb0000000
  const limit = maxRamBelow4g || FOUR_GIB
  if (lowmem > limit) lowmem = limit
  return ramSize >= lowmem ? {below4g: lowmem, above4g: ramSize - lowmem} : {below4g: ramSize, above4g: 0}
}

/**
 * pc (i440fx), mirroring pc_init1() in hw/i386/pc_piix.c (QEMU 7.2), for current machine types
 * (pcmc->gigabyte_align is true for everything newer than pc-1.7):
 *   max_ram_below_4g defaults to 0xe0000000 (3.5 GiB) when unset (0); lowmem = max_ram_below_4g
 *   if ram_size >= max_ram_below_4g: lowmem = min(lowmem, 0xc0000000 (3 GiB))   ("gigabyte align")
 *   ram_size >= lowmem ? (below = lowmem, above = ram_size - lowmem) : (below = ram_size, above = 0)
 * So -m 4G gives 3 GiB + 1 GiB, -m 3.25G stays entirely below 4 GiB.
 */
export function pcRamSplit(ramSize: number, maxRamBelow4g = 0): RamSplit {
  const limit = maxRamBelow4g || 0xe0000000
  let lowmem = limit
  if (ramSize >= limit && lowmem > 0xc0000000) lowmem = 0xc0000000
  return ramSize >= lowmem ? {below4g: lowmem, above4g: ramSize - lowmem} : {below4g: ramSize, above4g: 0}
}

export function ramSplit(machine: MachineType, ramSize: number, maxRamBelow4g = 0): RamSplit {
  return machine === 'q35' ? q35RamSplit(ramSize, maxRamBelow4g) : pcRamSplit(ramSize, maxRamBelow4g)
}

/**
 * The `max-ram-below-4g` pmemlab pins: min(usable RAM, 2 GiB), rounded down to a whole GiB once it is
 * at least 1 GiB. Whole GiB keep QEMU quiet: pc warns "Large machine and max_ram_below_4g ... not a
 * multiple of 1G" whenever RAM exceeds a pin that is not. Below 1 GiB of usable RAM that warning on pc
 * is harmless and accepted. Because the pin never exceeds the usable RAM (and RAM = usable + ranges),
 * both machines give below = pin exactly, and everything else lives from 4 GiB up.
 */
export function lowRamPin(usableRam: number): number {
  const low = Math.min(usableRam, MAX_LOW_RAM)
  return low >= GiB ? Math.floor(low / GiB) * GiB : low
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a
const alignDown = (n: number, a: number) => Math.floor(n / a) * a
const overlaps = (a: Range, b: Range) => a.start < b.end && b.start < a.end
const inside = (r: Range, outer: Range) => r.start >= outer.start && r.end <= outer.end

/** `[0x100000000, 0x110000000)` */
export const formatRange = (r: Range) => `[${hex(r.start)}, ${hex(r.end)})`
/** The kernel's spelling of a range: 256M!4G */
const memmapSpec = (size: number, start: number) => `${formatSize(size)}!${formatSize(start)}`

function checkBytes(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw usageError(`${what} must be a positive whole number of bytes, got ${value}`, 'write a size like 512M')
  }
}

function checkSizeAlign(value: number, what: string): void {
  checkBytes(value, what)
  if (value % SIZE_ALIGN !== 0) {
    throw usageError(
      `${what} ${humanSize(value)} (${value} bytes) is not a multiple of 2 MiB`,
      `use ${formatSize(alignUp(value, SIZE_ALIGN))}`,
    )
  }
}

export function planTopology(request: TopologyRequest): Layout {
  const {machine} = request
  if (machine !== 'pc' && machine !== 'q35') {
    throw usageError(`unknown machine type "${String(machine)}"`, 'use pc or q35')
  }

  // ---- usable RAM
  const usable = request.ramBytes
  if (!Number.isSafeInteger(usable) || usable <= 0) {
    throw usageError(`guest RAM must be a positive whole number of bytes, got ${usable}`, 'use --mem 1G')
  }
  if (usable < MIN_RAM_BYTES) {
    throw usageError(`guest RAM ${humanSize(usable)} is too small`, `use at least ${formatSize(MIN_RAM_BYTES)}, like --mem 1G`)
  }
  checkSizeAlign(usable, 'guest RAM')

  // ---- memmap ranges: sizes, then explicit offsets among themselves
  request.memmap.forEach((m, i) => checkSizeAlign(m.size, `memmap range #${i} size`))
  const explicit: Range[] = []
  for (const [i, m] of request.memmap.entries()) {
    if (m.offset === undefined) continue
    const r = {start: m.offset, end: m.offset + m.size}
    const spec = Number.isSafeInteger(m.offset) && m.offset >= 0 ? memmapSpec(m.size, m.offset) : `#${i}`
    if (!Number.isSafeInteger(m.offset) || m.offset < 0) {
      throw usageError(`memmap range ${spec} has an invalid offset ${m.offset}`, 'write the offset like 4G')
    }
    if (m.offset % MEMMAP_START_ALIGN !== 0) {
      throw usageError(
        `memmap range ${spec} ${formatRange(r)} starts at ${hex(m.offset)}, not a multiple of 128 MiB`,
        `use an offset like ${formatSize(alignUp(m.offset, MEMMAP_START_ALIGN))}, or omit the offset to let pmemlab place it`,
      )
    }
    if (m.offset < LOW_RESERVED_END) {
      throw usageError(
        `memmap range ${spec} ${formatRange(r)} overlaps the first 128 MiB (firmware and the kernel loaded at 16 MiB)`,
        'use an offset of at least 128M, or omit the offset to let pmemlab place it from 4G up',
      )
    }
    const clash = explicit.find((e) => overlaps(e, r))
    if (clash) {
      throw usageError(
        `memmap range ${spec} ${formatRange(r)} overlaps memmap range ${memmapSpec(clash.end - clash.start, clash.start)} ${formatRange(clash)}`,
        'move one of them, or omit an offset to let pmemlab place it',
      )
    }
    explicit.push(r)
  }

  // ---- RAM split: pinned so pc and q35 agree; usable RAM first below 4 GiB, the rest from 4 GiB up
  const pin = lowRamPin(usable)
  const usableAbove = usable - pin

  // Automatic ranges: from 4 GiB, after the usable RAM that did not fit below, 128 MiB aligned,
  // first fit around explicit ranges (and each other).
  const placed: Range[] = [...explicit]
  const autoRanges: Range[] = []
  let cursor = alignUp(FOUR_GIB + usableAbove, MEMMAP_START_ALIGN)
  for (const m of request.memmap) {
    if (m.offset !== undefined) continue
    let candidate: Range = {start: cursor, end: cursor + m.size}
    for (;;) {
      const clash = placed.find((p) => overlaps(p, candidate))
      if (!clash) break
      const start = alignUp(clash.end, MEMMAP_START_ALIGN)
      candidate = {start, end: start + m.size}
    }
    placed.push(candidate)
    autoRanges.push(candidate)
    cursor = alignUp(candidate.end, MEMMAP_START_ALIGN)
  }

  // Total RAM: usable + every range, grown (padding = ordinary RAM) so the highest automatic range is backed.
  const rangeBytes = request.memmap.reduce((sum, m) => sum + m.size, 0)
  let totalRam = usable + rangeBytes
  for (const r of autoRanges) totalRam = Math.max(totalRam, pin + (r.end - FOUR_GIB))

  const split = ramSplit(machine, totalRam, pin)
  if (split.below4g !== pin || split.below4g + split.above4g !== totalRam) {
    // Cannot happen while pin <= usable <= totalRam and pin <= 2 GiB; guards a future edit of the rules.
    throw new Error(`internal: ${machine} split of ${totalRam} with max-ram-below-4g=${pin} is ${JSON.stringify(split)}`)
  }
  const low: Range = {start: 0, end: split.below4g}
  const high: Range = {start: FOUR_GIB, end: FOUR_GIB + split.above4g}
  const ramRanges = split.above4g > 0 ? [low, high] : [low]
  const ramText = ramRanges.map(formatRange).join(' and ')

  // Explicit ranges must sit on RAM the planner gives for usable RAM + all ranges. The planner does NOT
  // grow RAM to reach an explicit offset: a far offset is almost always a typo, and silently adding
  // gigabytes of guest RAM would hide it.
  const lowWindow: Range = {start: LOW_RESERVED_END, end: Math.max(LOW_RESERVED_END, low.end - INITRD_RESERVE)}
  for (const r of explicit) {
    const spec = memmapSpec(r.end - r.start, r.start)
    if (inside(r, high)) continue
    if (overlaps(r, low) && r.end <= low.end) {
      if (inside(r, lowWindow)) continue
      const hint =
        lowWindow.end > lowWindow.start
          ? `keep it inside ${formatRange(lowWindow)}, or omit the offset to let pmemlab place it from 4G up`
          : `with ${humanSize(usable)} of RAM there is no room below 4 GiB: omit the offset to let pmemlab place it from 4G up`
      throw usageError(
        `memmap range ${spec} ${formatRange(r)} reaches into the top ${humanSize(INITRD_RESERVE)} of RAM below 4 GiB ${formatRange(low)}, where QEMU loads the initrd`,
        hint,
      )
    }
    throw usageError(
      `memmap range ${spec} ${formatRange(r)} is not inside guest RAM ${ramText}: the kernel would create a pmem device whose writes are lost`,
      `pick an offset inside that RAM (a multiple of 128M), or omit the offset to let pmemlab place it`,
    )
  }

  const memmap = placed
    .map((r) => ({start: r.start, size: r.end - r.start}))
    .sort((a, b) => a.start - b.start)

  // ---- NVDIMMs and virtio-pmem: QEMU's device-memory region above RAM, sized maxmem - ram
  const nvdimms = request.nvdimms.map((d, i) => {
    checkSizeAlign(d.size, `NVDIMM #${i} size`)
    const label = d.labelBytes ?? 0
    checkLabelBytes(label)
    // hw/mem/nvdimm.c nvdimm_prepare_memory_region(): the label area is the END of the backend, and
    // pmem = QEMU_ALIGN_DOWN(size - label, backend align). A backend of SIZE + the label rounded up
    // to 2 MiB leaves exactly SIZE of pmem: a region of a whole number of 16 MiB namespace
    // alignments, which ndctl needs to see all of it available (align.sh looks for exactly that).
    const backend = d.size + alignUp(label, SIZE_ALIGN)
    return {id: `nvdimm${i}`, size: backend, labelBytes: label, pmemBytes: alignDown(backend - label, SIZE_ALIGN), ...(d.file === undefined ? {} : {file: d.file})}
  })
  const virtioPmem = request.virtioPmem.map((d, i) => {
    if (d.labelBytes) throw usageError(`virtio-pmem #${i} cannot have labels`, 'label areas are an NVDIMM feature: use --nvdimm SIZE,labels')
    checkSizeAlign(d.size, `virtio-pmem device #${i} size`)
    return {id: `vpmem${i}`, size: d.size, ...(d.file === undefined ? {} : {file: d.file})}
  })

  const deviceBytes = [...nvdimms, ...virtioPmem].reduce((sum, d) => sum + d.size, 0)
  const hasDevices = nvdimms.length + virtioPmem.length > 0
  // NVDIMMs take DIMM slots (QEMU refuses "no slots where allocated" otherwise); virtio-pmem does not,
  // but one slot is kept whenever there is device memory. QEMU itself sizes the region as
  // maxmem - ram + 1 GiB per slot (pc_get_device_memory_range in hw/i386/pc.c), so maxmem = ram + devices
  // is enough: memory_device_check_addable() only requires the sum of device sizes <= maxmem - ram.
  const slots = hasDevices ? Math.max(1, nvdimms.length) : 0
  if (slots > MAX_SLOTS) {
    throw usageError(`${nvdimms.length} NVDIMMs is more than QEMU's ${MAX_SLOTS} memory slots`, `use at most ${MAX_SLOTS}`)
  }
  const maxmemBytes = hasDevices ? totalRam + deviceBytes : 0

  return {
    machine,
    totalRamBytes: totalRam,
    maxRamBelow4g: pin,
    ramRanges,
    memmap,
    nvdimms,
    virtioPmem,
    slots,
    maxmemBytes,
    kernelArgs: memmap.map((m) => `memmap=${memmapSpec(m.size, m.start)}`),
  }
}

/** A label area QEMU accepts: 0 (label-less), or at least 128 KiB in whole 4 KiB pages. */
function checkLabelBytes(label: number): void {
  if (!Number.isSafeInteger(label) || label < 0) {
    throw usageError(`NVDIMM label size must be a whole number of bytes, got ${label}`, 'use 128K, or 0 for label-less')
  }
  if (label > 0 && label < MIN_NVDIMM_LABEL_BYTES) {
    throw usageError(`NVDIMM label size ${humanSize(label)} is smaller than QEMU's minimum of 128 KiB`, 'use 128K, or 0 for label-less')
  }
  if (label % (4 * KiB) !== 0) {
    throw usageError(`NVDIMM label size ${label} bytes is not a multiple of 4 KiB`, `use ${formatSize(alignUp(label, 4 * KiB))}`)
  }
}

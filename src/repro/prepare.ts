/**
 * The prepare block of a reproducer file: how each persistent-memory device is set up before the
 * script runs. It describes exactly what `pmemlab test` does to a device (suite/devices.ts,
 * through the guest's pmemlab-suite), so that a run prepares devices with the suite's commands
 * and nothing of its own. Pure.
 *
 *   prepare:
 *     nvdimm0: {mode: fsdax, mkfs: xfs, mount: /mnt/pmem}   # namespace, mkfs, mount -o dax
 *     memmap0: {mode: raw, mkfs: ext4}                       # mounted at /mnt/pmemlab/memmap0-ext4
 *     nvdimm1: {mode: devdax}                                # /dev/daxX.Y
 *
 * Devices are named as the suite names them: kind and index (memmap0, nvdimm1, virtio-pmem0),
 * counted within a kind in the order the lab lists them. A device not named is left as it boots.
 */
import {z} from 'zod'
import type {LocatedYaml, YamlPath} from '../core/located.js'
import {guestPathSchema} from '../image/recipe.js'
import {devdaxCommand, mountDir, prepareCommand} from '../suite/devices.js'
import {FILESYSTEMS, type Filesystem} from '../suite/results.js'

export type DeviceKind = 'memmap' | 'nvdimm' | 'virtio-pmem'

/**
 * fsdax: the namespace becomes fsdax, gets a filesystem and is mounted -o dax (pmemlab-suite
 * prepare). raw: the namespace stays as it boots (raw for memmap ranges and label-less NVDIMMs);
 * a filesystem on it is mounted the same way, but cannot be on DAX (prepare --keep-raw).
 * devdax: a /dev/dax character device (pmemlab-suite devdax).
 */
export type NamespaceMode = 'fsdax' | 'raw' | 'devdax'

export interface DevicePreparation {
  /** "nvdimm0": the device's kind and its index within the kind. */
  device: string
  kind: DeviceKind
  index: number
  mode: NamespaceMode
  /** The filesystem made on it and mounted, or none. */
  mkfs: Filesystem | 'none'
  /** The guest directory it is mounted on, when it has a filesystem. */
  mount?: string
  where: string
}

export const prepareShape = z
  .object({
    // sector is named so that it gets its own answer rather than "not allowed".
    mode: z.enum(['fsdax', 'devdax', 'raw', 'sector']).default('fsdax'),
    mkfs: z.enum([...FILESYSTEMS, 'none']).optional(),
    mount: guestPathSchema.optional(),
  })
  .strict()

const DEVICE = /^(memmap|nvdimm|virtio-pmem)(\d+)$/

/** Checks one device's entry (AT is ['prepare', NAME]) against the lab's device COUNTS. */
export function checkPreparation(yaml: LocatedYaml, name: string, p: z.infer<typeof prepareShape>, counts: Record<DeviceKind, number>): DevicePreparation {
  const at: YamlPath = ['prepare', name]
  const named = DEVICE.exec(name)
  if (!named) throw yaml.error(['prepare'], `"${name}" names no device`, 'write a kind and an index, like memmap0, nvdimm0 or virtio-pmem1', name)
  const [kind, index] = [named[1] as DeviceKind, Number(named[2])]
  if (index >= counts[kind]) {
    const has = counts[kind] === 0 ? `no ${kind}` : `${counts[kind]} ${kind} (${Array.from({length: counts[kind]}, (_, i) => `${kind}${i}`).join(', ')})`
    throw yaml.error(['prepare'], `the lab has ${has}`, `name a device of the lab, or add one to lab.${kind}`, name)
  }
  const where = yaml.whereIs(at)
  if (p.mode === 'sector') {
    throw yaml.error([...at, 'mode'], 'sector (BTT) namespaces are not among what pmemlab-suite prepares (fsdax, raw, devdax)', 'write mode: raw, and convert it in run: with ndctl create-namespace -f -e NAMESPACE -m sector')
  }
  if (p.mode === 'devdax') {
    if (p.mkfs !== undefined && p.mkfs !== 'none') throw yaml.error([...at, 'mkfs'], 'a devdax namespace has no block device to make a filesystem on', 'remove mkfs:, or write mode: fsdax')
    if (p.mount !== undefined) throw yaml.error([...at, 'mount'], 'a devdax namespace is not mounted', 'remove mount:, or write mode: fsdax with mkfs')
    return {device: name, kind, index, mode: 'devdax', mkfs: 'none', where}
  }
  const mkfs = p.mkfs ?? (p.mode === 'raw' ? 'none' : undefined)
  if (mkfs === undefined || (p.mode === 'fsdax' && mkfs === 'none')) {
    // pmemlab-suite makes a namespace fsdax together with its filesystem and mount.
    throw yaml.error(p.mkfs === undefined ? at : [...at, 'mkfs'], 'an fsdax namespace is prepared with a filesystem on it', `write mkfs: ${FILESYSTEMS.join(' or ')}, or mode: raw to leave the device as it boots`)
  }
  if (mkfs === 'none') {
    if (p.mount !== undefined) throw yaml.error([...at, 'mount'], 'nothing to mount without a filesystem', `add mkfs: ${FILESYSTEMS.join(' or ')}, or remove mount:`)
    return {device: name, kind, index, mode: 'raw', mkfs, where}
  }
  return {device: name, kind, index, mode: p.mode, mkfs, mount: p.mount ?? mountDir({kind, index}, mkfs), where}
}

/** Two devices mounted on one directory would hide one of them. */
export function checkMounts(yaml: LocatedYaml, preparations: readonly DevicePreparation[]): void {
  preparations.forEach((p, i) => {
    const other = preparations.findIndex((q) => q.mount !== undefined && q.mount === p.mount)
    if (p.mount !== undefined && other < i) throw yaml.error(['prepare', p.device, 'mount'], `${p.mount} is where ${preparations[other].device} is mounted too`, 'give each device its own directory')
  })
}

/** The guest commands (suite/devices.ts) that prepare the devices, in the file's order; none for a raw device without a filesystem. */
export function preparationCommands(preparations: readonly DevicePreparation[]): Array<{device: string; argv: string[]}> {
  return preparations.flatMap((p) => {
    if (p.mode === 'devdax') return [{device: p.device, argv: devdaxCommand(p)}]
    if (p.mkfs === 'none') return []
    return [{device: p.device, argv: prepareCommand(p, p.mkfs, p.mount!, p.mode === 'raw')}]
  })
}

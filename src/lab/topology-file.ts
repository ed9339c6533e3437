/**
 * A lab's persistent memory and RAM as pmemlab's files write them (a matrix's topologies, a
 * reproducer's lab): the lists the `up` flags take, each value checked as its flag would be and
 * a mistake named by its line. Pure.
 */
import {list, text, type LocatedYaml, type YamlPath} from '../core/located.js'
import {PmemlabError} from '../core/errors.js'
import {parseSize} from '../core/size.js'
import {parseDeviceFlag, parseMemmapFlag} from './request.js'
import type {MemmapRequest, PmemDeviceRequest} from './topology.js'

/** The keys, as --memmap, --nvdimm, --virtio-pmem and --mem name them. */
export const pmemFields = {memmap: list(text), nvdimm: list(text), 'virtio-pmem': list(text), mem: text.optional()}

export interface PmemLists {
  memmap: string[]
  nvdimm: string[]
  'virtio-pmem': string[]
}

export interface CheckedPmem {
  memmap: MemmapRequest[]
  nvdimm: PmemDeviceRequest[]
  virtioPmem: PmemDeviceRequest[]
}

/**
 * Checks every value under AT as its flag would; a value naming a backing FILE is passed to
 * onFile with its path, which may refuse it (a matrix, whose cells cannot share one).
 */
export function checkPmem(yaml: LocatedYaml, at: YamlPath, t: PmemLists, onFile: (path: YamlPath, value: string, file: string) => void = () => {}): CheckedPmem {
  const check = <T extends {file?: string}>(key: keyof PmemLists, parse: (value: string) => T): T[] =>
    t[key].map((value, j) => {
      let parsed: T
      try {
        parsed = parse(value)
      } catch (error) {
        throw yaml.error([...at, key, j], error instanceof PmemlabError ? error.oneLine() : String(error))
      }
      if (parsed.file !== undefined) onFile([...at, key, j], value, parsed.file)
      return parsed
    })
  return {
    memmap: check('memmap', (v): MemmapRequest & {file?: string} => parseMemmapFlag(v)),
    nvdimm: check('nvdimm', (v) => parseDeviceFlag(v, 'nvdimm')),
    virtioPmem: check('virtio-pmem', (v) => parseDeviceFlag(v, 'virtio-pmem')),
  }
}

/** The guest RAM written at PATH, in bytes, or the error naming its line. */
export function checkMem(yaml: LocatedYaml, path: YamlPath, mem: string): number {
  try {
    return parseSize(mem, 'mem')
  } catch (error) {
    throw yaml.error(path, (error as PmemlabError).oneLine())
  }
}

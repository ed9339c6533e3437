/**
 * The cells of a matrix: the product of its axes (kernels x topologies x filesystems x suites,
 * in that order of nesting, each axis in the file's order) minus the cells the exclude rules
 * leave out. Pure: a plan in, cells out.
 *
 * Kernel versions. A rule with min_version/max_version needs the kernel's version. Specs that
 * carry one (debian:6.12, a built version 6.1, build: {version: 6.12}) are decided here. Others
 * (distro, latest, a key, a path, a source tarball or tree) are known only once the kernel is
 * resolved or built, and so is "debian:6.12" against a bound as precise as 6.12.5. Such a cell
 * stays in the plan with the rule in `pending`; once the runner knows the version it calls
 * excludedByVersion(), and a cell excluded then is reported as `skip` with the rule, never
 * dropped (a fanned-out CI job was already listed for it). A rule the version still cannot
 * decide (a kernel that never says its version) excludes nothing: pmemlab errs toward running.
 */
import {usageError} from '../core/errors.js'
import type {Filesystem} from '../suite/results.js'
import {closest} from '../core/located.js'
import type {MatrixKernel} from './kernels.js'
import type {ExcludeRule, MatrixPlan, MatrixSuite, MatrixTopology} from './schema.js'

export interface Cell {
  /** KERNEL-TOPOLOGY-FILESYSTEM-SUITE, e.g. 6.12-memmap-ext4-builtin: stable, readable, safe as a file name. */
  id: string
  kernel: MatrixKernel
  topology: MatrixTopology
  filesystem: Filesystem
  suite: MatrixSuite
  /** Rules matching this cell on every axis, undecided until the kernel's version is known. */
  pending: ExcludeRule[]
}

export interface Expansion {
  cells: Cell[]
  /** The cells the rules leave out, each with the first rule that does. */
  excluded: Array<{id: string; rule: ExcludeRule}>
}

export type DeviceKind = 'memmap' | 'nvdimm' | 'virtio-pmem'

export const cellId = (kernel: {name: string}, topology: {name: string}, filesystem: string, suite: {name: string}) =>
  `${kernel.name}-${topology.name}-${filesystem}-${suite.name}`

/** Every cell of the plan in a deterministic order; a usage error when IDs collide or nothing is left. */
export function expandCells(plan: MatrixPlan): Expansion {
  const cells: Cell[] = []
  const excluded: Expansion['excluded'] = []
  const ids = new Map<string, Omit<Cell, 'id' | 'pending'>>()
  for (const kernel of plan.kernels) {
    for (const topology of plan.topologies) {
      for (const filesystem of plan.filesystems) {
        for (const suite of plan.suites) {
          const axes = {kernel, topology, filesystem, suite}
          const id = cellId(kernel, topology, filesystem, suite)
          const other = ids.get(id.toLowerCase())
          if (other) {
            throw usageError(
              `${kernel.where}: two cells get the ID "${id}" (${describe(other)}; ${describe(axes)})`,
              'rename a kernel, topology or suite so that their names joined by "-" differ',
            )
          }
          ids.set(id.toLowerCase(), axes)
          const pending: ExcludeRule[] = []
          const rule = plan.exclude.find((r) => {
            const matches = ruleMatches(r, axes, kernel.version)
            if (matches === undefined) pending.push(r)
            return matches === true
          })
          if (rule) excluded.push({id, rule})
          else cells.push({id, ...axes, pending})
        }
      }
    }
  }
  if (cells.length === 0) throw usageError(`${plan.file}: the exclude rules leave no cell to run`, `loosen them (the first is at ${plan.exclude[0]?.where})`)
  return {cells, excluded}
}

const describe = (axes: Omit<Cell, 'id' | 'pending'>) =>
  `kernel ${axes.kernel.name}, topology ${axes.topology.name}, ${axes.filesystem}, suite ${axes.suite.name}`

/**
 * Whether RULE leaves out a cell with these axes and kernel VERSION: true, false, or undefined
 * when only the version is missing to tell. Values on one axis are alternatives; axes combine.
 */
export function ruleMatches(
  rule: ExcludeRule,
  axes: {kernel: MatrixKernel; topology: {name: string}; filesystem: string; suite: {name: string}},
  version: string | undefined,
): boolean | undefined {
  const named = (values: readonly string[] | undefined, ...names: Array<string | undefined>) => !values || names.some((n) => n !== undefined && values.includes(n))
  const onAxes =
    named(rule.kernel, axes.kernel.name, axes.kernel.spec) &&
    named(rule.topology, axes.topology.name) &&
    named(rule.filesystem, axes.filesystem) &&
    named(rule.suite, axes.suite.name)
  if (!onAxes) return false
  return versionInRange(version, rule.minVersion, rule.maxVersion)
}

/** [6, 12, 3] from "6.12.3", "6.12", "6.12.38+deb13-amd64" or "6.1.0-pmemlab"; undefined when it starts otherwise. */
export function versionParts(version: string): number[] | undefined {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version)
  return match ? match.slice(1).filter((p) => p !== undefined).map(Number) : undefined
}

/** VERSION against BOUND over the bound's precision: 6.1.192 vs 6.1 is 0; undefined when VERSION is too coarse. */
function compareAt(version: number[], bound: number[]): number | undefined {
  for (let i = 0; i < bound.length; i++) {
    if (i >= version.length) return undefined
    if (version[i] !== bound[i]) return Math.sign(version[i] - bound[i])
  }
  return 0
}

/**
 * Whether VERSION lies in [MIN, MAX], each bound inclusive at its own precision: max 6.1 holds
 * every 6.1.N, min 6.12 every 6.12.N. Undefined when VERSION is unknown or too coarse to tell
 * (6.12 against max 6.12.5); false as soon as either bound rules it out.
 */
export function versionInRange(version: string | undefined, min?: string, max?: string): boolean | undefined {
  if (min === undefined && max === undefined) return true
  const parts = version === undefined ? undefined : versionParts(version)
  if (!parts) return undefined
  const low = min === undefined ? 1 : compareAt(parts, versionParts(min)!)
  const high = max === undefined ? -1 : compareAt(parts, versionParts(max)!)
  const aboveMin = low === undefined ? undefined : low >= 0
  const belowMax = high === undefined ? undefined : high <= 0
  if (aboveMin === false || belowMax === false) return false
  return aboveMin && belowMax ? true : undefined
}

/** Once the cell's kernel is resolved: the pending rule its VERSION falls under, if any. */
export function excludedByVersion(cell: Pick<Cell, 'pending'>, version: string | undefined): ExcludeRule | undefined {
  return cell.pending.find((rule) => versionInRange(version, rule.minVersion, rule.maxVersion) === true)
}

/** The reason a cell excluded by RULE reads with. */
export function exclusionReason(rule: ExcludeRule, version?: string): string {
  const range = [rule.minVersion && `from ${rule.minVersion}`, rule.maxVersion && `up to ${rule.maxVersion}`].filter(Boolean).join(' ')
  return `excluded by the rule at ${rule.where}${version !== undefined && range ? `: kernel ${version} is ${range}` : ''}`
}

/** Whether a rule of the cell still waits for a VERSION more precise than what is known (only a boot can tell). */
export function versionUndecided(cell: Pick<Cell, 'pending'>, version: string | undefined): boolean {
  return cell.pending.some((rule) => versionInRange(version, rule.minVersion, rule.maxVersion) === undefined)
}

/** The cell --cell ID names; a usage error that says why not (excluded, or a near miss). */
export function findCell(expansion: Expansion, id: string, file: string): Cell {
  const cell = expansion.cells.find((c) => c.id === id)
  if (cell) return cell
  const out = expansion.excluded.find((e) => e.id === id)
  if (out) throw usageError(`cell "${id}" of ${file} is ${exclusionReason(out.rule)}`, 'run another cell, or change the rule')
  const near = closest(id, expansion.cells.map((c) => c.id))
  throw usageError(`${file} has no cell "${id}"`, near ? `did you mean ${near}?` : `list them with pmemlab matrix ${file} --list`)
}

/** The device kinds a topology has. */
export function deviceKinds(topology: Pick<MatrixTopology, 'memmap' | 'nvdimm' | 'virtioPmem'>): DeviceKind[] {
  const kinds: DeviceKind[] = []
  if (topology.memmap.length > 0) kinds.push('memmap')
  if (topology.nvdimm.length > 0) kinds.push('nvdimm')
  if (topology.virtioPmem.length > 0) kinds.push('virtio-pmem')
  return kinds
}

/**
 * The cells by kernel, in plan order: each kernel is built (or fetched) and gated once, and its
 * sanity gate has to show every device kind its cells use.
 */
export function kernelGroups(cells: readonly Cell[]): Array<{kernel: MatrixKernel; cells: Cell[]; deviceKinds: DeviceKind[]}> {
  const groups = new Map<string, {kernel: MatrixKernel; cells: Cell[]; deviceKinds: DeviceKind[]}>()
  for (const cell of cells) {
    const group = groups.get(cell.kernel.name) ?? {kernel: cell.kernel, cells: [], deviceKinds: []}
    group.cells.push(cell)
    for (const kind of deviceKinds(cell.topology)) if (!group.deviceKinds.includes(kind)) group.deviceKinds.push(kind)
    groups.set(cell.kernel.name, group)
  }
  for (const group of groups.values()) group.deviceKinds.sort((a, b) => KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b))
  return [...groups.values()]
}

const KIND_ORDER: DeviceKind[] = ['memmap', 'nvdimm', 'virtio-pmem']

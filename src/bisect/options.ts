/**
 * `pmemlab bisect` and `pmemlab bisect step` as their flags ask for them, checked before anything
 * is read, built or started: bad input is one line (exit 2). Pure: the parsed flags in, what to
 * do out; paths are resolved against CWD. The edge (run.ts) then checks what needs the disk or
 * git: the tree, the refs, the reproducer file, the fragments.
 *
 * What each run of a step runs: --repro FILE (a reproducer, with its own lab), or the command
 * after `--` (in a lab made as `up` makes it, from the lab flags), or nothing with --type build
 * and boot (boot: each run is a boot of that lab). --resume takes everything from the state file
 * but --jobs, which is this machine's business.
 */
import {relative, resolve} from 'node:path'
import {usageError} from '../core/errors.js'
import {isRecipePath} from '../image/spec.js'
import {DEFAULT_IMAGE} from '../image/store.js'
import {BOOT_TIMEOUT_MS} from '../repro/setup.js'
import type {BisectLab, BisectRecipe, BisectState} from './state.js'
import {BISECT_TYPES, stepOptionsProblem, type BisectType, type StepOptions} from './step-verdict.js'

/** The flags both commands share, as oclif parses them (absent when not given: their defaults are applied here). */
export interface StepFlags {
  tree?: string
  repro?: string
  /** The words after `--`. */
  command: string[]
  runs?: number
  'bad-threshold'?: number
  'max-errors'?: number
  reverse?: boolean
  type?: string
  output?: string
  timeout?: number
  config: string[]
  set: string[]
  base?: string
  debug?: boolean
  jobs?: number
  image?: string
  memmap: string[]
  nvdimm: string[]
  'virtio-pmem': string[]
  mem?: string
  cpus?: number
  machine?: string
  accel?: string
  append: string[]
  'boot-timeout'?: number
  force?: boolean
}

export interface BisectFlags extends StepFlags {
  good?: string
  bad?: string
  resume?: boolean
}

export const DEFAULT_OUTPUT = 'bisect-results'
/** Seconds a `-- COMMAND` may run before it counts as hung (reproduced), as `test --timeout` defaults. */
export const DEFAULT_COMMAND_TIMEOUT_SEC = 600

/** What one step runs, and how: the part of a bisect that `bisect step` runs alone. */
export interface StepSetup {
  tree: string
  test: BisectState['test']
  options: StepOptions
  recipe: BisectRecipe
  lab?: BisectLab
  output: string
  jobs?: number
}

export type BisectAsk =
  | {kind: 'resume'; output: string; jobs?: number}
  | {kind: 'start'; setup: StepSetup; good: string; bad: string}

const LAB_FLAGS = ['image', 'memmap', 'nvdimm', 'virtio-pmem', 'mem', 'cpus', 'machine', 'accel', 'append', 'boot-timeout', 'force'] as const

/** The flags among NAMES that were given. */
function given(flags: StepFlags, names: readonly (keyof StepFlags)[]): string[] {
  return names.filter((name) => {
    const value = flags[name]
    return Array.isArray(value) ? value.length > 0 : value !== undefined && value !== false
  }).map((name) => `--${name}`)
}

/** Whether PATH is DIR or inside it. */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(resolve(dir), resolve(path))
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'))
}

const oneOf = <T extends string>(value: string | undefined, options: readonly T[], flag: string, fallback: T): T => {
  if (value === undefined) return fallback
  if (!(options as readonly string[]).includes(value)) throw usageError(`${flag} ${value}: write one of ${options.join(', ')}`)
  return value as T
}

/** A step's setup from FLAGS: see the top of this file. */
export function stepSetupOf(flags: StepFlags, cwd: string): StepSetup {
  if (flags.tree === undefined) throw usageError('which kernel tree? give --tree DIR, a git checkout of the kernel')
  const tree = resolve(cwd, flags.tree)
  const type: BisectType = oneOf(flags.type, BISECT_TYPES, '--type', 'test')
  const command = flags.command
  if (flags.repro !== undefined && command.length > 0) throw usageError(`give --repro FILE or a command after --, not both`)
  if (type !== 'test' && (flags.repro !== undefined || command.length > 0)) {
    throw usageError(`--type ${type} runs no test of its own: drop ${flags.repro !== undefined ? '--repro' : 'the command after --'}, or use --type test`)
  }
  if (type === 'test' && flags.repro === undefined && command.length === 0) {
    throw usageError('what is the test? give --repro FILE (a reproducer file) or a command after --', 'for example: pmemlab bisect --tree ~/linux --good v6.1 --bad HEAD --repro bug.yaml')
  }
  const runs = flags.runs ?? 1
  const options: StepOptions = {type, runs, badThreshold: flags['bad-threshold'] ?? 1, maxErrors: flags['max-errors'] ?? 0, reverse: flags.reverse === true}
  const problem = stepOptionsProblem(options)
  if (problem) throw usageError(problem)

  const labGiven = given(flags, LAB_FLAGS)
  const inLab = command.length > 0 || type === 'boot'
  if (!inLab && labGiven.length > 0) {
    const why = flags.repro !== undefined ? 'the reproducer file names its lab' : 'a --type build bisect boots nothing'
    throw usageError(`${labGiven.join(', ')}: ${why}`, `drop ${labGiven.length === 1 ? 'it' : 'them'}`)
  }
  if (flags.timeout !== undefined && command.length === 0) throw usageError('--timeout goes with a command after --', flags.repro !== undefined ? "the reproducer file's expect.timeout says how long its script may run" : undefined)
  if (flags.timeout !== undefined && (!Number.isInteger(flags.timeout) || flags.timeout < 1)) throw usageError(`--timeout ${flags.timeout}: write a whole number of seconds, 1 or more`)

  const test: BisectState['test'] =
    flags.repro !== undefined
      ? {kind: 'repro', file: resolve(cwd, flags.repro)}
      : command.length > 0
        ? {kind: 'command', argv: command, timeoutSec: flags.timeout ?? DEFAULT_COMMAND_TIMEOUT_SEC}
        : {kind: 'none'}
  const recipe: BisectRecipe = {configs: flags.config.map((file) => resolve(cwd, file)), sets: flags.set, base: oneOf(flags.base, ['tinyconfig', 'defconfig'] as const, '--base', 'tinyconfig'), debug: flags.debug === true}
  const lab = inLab ? labOf(flags, cwd) : undefined
  const output = resolve(cwd, flags.output ?? DEFAULT_OUTPUT)
  if (isInside(output, tree)) {
    throw usageError(`--output ${flags.output ?? DEFAULT_OUTPUT} is inside the tree ${tree}: git checks out commits there, and files left in it would become part of every build`, `give a directory outside the tree, like --output ${resolve(tree, '..', DEFAULT_OUTPUT)}`)
  }
  if (flags.jobs !== undefined && (!Number.isInteger(flags.jobs) || flags.jobs < 1)) throw usageError(`--jobs ${flags.jobs}: write a whole number, 1 or more`)
  return {tree, test, options, recipe, ...(lab ? {lab} : {}), output, ...(flags.jobs !== undefined ? {jobs: flags.jobs} : {})}
}

function labOf(flags: StepFlags, cwd: string): BisectLab {
  const bootTimeoutSec = flags['boot-timeout'] ?? BOOT_TIMEOUT_MS / 1000
  if (!Number.isInteger(bootTimeoutSec) || bootTimeoutSec < 1) throw usageError(`--boot-timeout ${bootTimeoutSec}: write a whole number of seconds, 1 or more`)
  // A backing file is named relative to where the command was given; a state resumed elsewhere must find it.
  const device = (text: string) => {
    const colon = text.indexOf(':')
    return colon < 0 ? text : `${text.slice(0, colon)}:${resolve(cwd, text.slice(colon + 1))}`
  }
  // An image recipe given as a path is resolved the same way; a name is left as it is.
  const image = flags.image === undefined ? DEFAULT_IMAGE : isRecipePath(flags.image) ? resolve(cwd, flags.image) : flags.image
  return {
    image,
    machine: oneOf(flags.machine, ['pc', 'q35'] as const, '--machine', 'pc'),
    mem: flags.mem ?? '1G',
    memmap: flags.memmap,
    nvdimm: flags.nvdimm.map(device),
    virtioPmem: flags['virtio-pmem'].map(device),
    cpus: flags.cpus ?? 2,
    accel: oneOf(flags.accel, ['auto', 'kvm', 'tcg'] as const, '--accel', 'auto'),
    append: flags.append,
    bootTimeoutSec,
    force: flags.force === true,
  }
}

/** What `pmemlab bisect` is asked: start a bisect, or resume the one in --output. */
export function bisectAskOf(flags: BisectFlags, cwd: string): BisectAsk {
  if (flags.resume) {
    const others = given(flags, ['tree', 'repro', 'command', 'runs', 'bad-threshold', 'max-errors', 'reverse', 'type', 'timeout', 'config', 'set', 'base', 'debug', ...LAB_FLAGS])
    if (flags.good !== undefined) others.unshift('--good')
    if (flags.bad !== undefined) others.unshift('--bad')
    if (others.length > 0) {
      const words = others.map((o) => (o === '--command' ? 'the command after --' : o))
      throw usageError(`--resume goes on as the state file says: drop ${words.join(', ')}`, 'give only --output DIR (the directory of the bisect), and --jobs or --json if you want them')
    }
    return {kind: 'resume', output: resolve(cwd, flags.output ?? DEFAULT_OUTPUT), ...(flags.jobs !== undefined ? {jobs: flags.jobs} : {})}
  }
  const setup = stepSetupOf(flags, cwd)
  if (flags.good === undefined || flags.bad === undefined) {
    const missing = [flags.good === undefined && '--good', flags.bad === undefined && '--bad'].filter(Boolean).join(' and ')
    throw usageError(`give ${missing}: the commits where the bug does not and does reproduce`, flags.reverse === true ? 'with --reverse, --bad is the older commit (the bug is there) and --good the newer one (fixed)' : undefined)
  }
  return {kind: 'start', setup, good: flags.good, bad: flags.bad}
}

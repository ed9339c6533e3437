/**
 * The matrix file (`pmemlab matrix FILE`): a versioned YAML document naming the axes of a CI
 * matrix (kernels x topologies x filesystems x suites), the cells to leave out, and how to run
 * them. Pure: text in, a validated MatrixPlan out, or one line naming FILE:LINE:COLUMN (exit 2).
 *
 *   version: 1
 *   name: pmem-kernels                    # optional; titles the summary and the JUnit report
 *   kernels:
 *     - debian:6.12                       # what --kernel takes: distro, latest, debian:V, V, KEY, ./PATH
 *     - name: 5.10                        # a kernel pmemlab builds (what `kernel build` takes)
 *       build: {version: '5.10', from: debian, configs: [my.config], set: [CONFIG_KASAN=y]}
 *     - build: {version: '6.12', patches: [0001-fix.patch]}   # applied in order (kernel build --patch)
 *   topologies:                           # named; lists as the `up` flags take them
 *     memmap: {memmap: [256M]}
 *     nvdimm: {nvdimm: [512M], mem: 1G}
 *   filesystems: [ext4, xfs]              # default: ext4, xfs
 *   suites: [builtin, ndctl, ./my-suite]  # default: builtin
 *   exclude:
 *     - {topology: virtio, max_version: '5.2'}   # virtio-pmem arrived in 5.3
 *   retries: 1                            # extra attempts of a cell that did not pass
 *   jobs: auto                            # cells at once; auto fits the host's cores and RAM
 *   timeout: 1800                         # seconds one cell may take, boot to last test
 *   share_boots: true                     # cells differing only in filesystem share one boot (share.ts)
 *
 * Relative paths (suites, kernel paths, build sources, trees, fragments, patches) are relative to the
 * matrix file: resolve them with planPath(). The hash covers what the file says, not where it
 * is or how it is laid out, so a CI job and a laptop agree on it.
 */
import {createHash} from 'node:crypto'
import {basename, dirname, resolve} from 'node:path'
import {z} from 'zod'
import {list, LocatedYaml, text, type YamlPath} from '../core/located.js'
import {buildShape, version} from '../kernel/spec.js'
import {checkMem, checkPmem, pmemFields} from '../lab/topology-file.js'
import {FILESYSTEMS, type Filesystem} from '../suite/results.js'
import {isNamedSuite} from '../suite/names.js'
import {checkKernel, kernelEntry, kernelShape, name, NAME, NAME_FIX, oneOrMore, safeName, type MatrixKernel} from './kernels.js'

export const MATRIX_FORMAT = 1
/** Guest RAM of a topology that names no mem (as `up --mem`). */
export const DEFAULT_MEM = '1G'

export interface MatrixTopology {
  name: string
  memmap: string[]
  nvdimm: string[]
  virtioPmem: string[]
  mem: string
  where: string
}

export interface MatrixSuite {
  name: string
  /** "builtin", or a directory (relative to the matrix file). */
  source: string
  where: string
}

export interface ExcludeRule {
  /** Values are names (kernels may also be named by their spec); a missing key matches anything. */
  kernel?: string[]
  topology?: string[]
  filesystem?: Filesystem[]
  suite?: string[]
  /** Kernel versions from minVersion and up to maxVersion, each bound inclusive at its precision. */
  minVersion?: string
  maxVersion?: string
  where: string
}

export interface MatrixPlan {
  file: string
  /** The directory relative paths in the file are relative to. */
  baseDir: string
  /** sha256 of the plan's content: cells from files with another hash are never merged. */
  hash: string
  name?: string
  kernels: MatrixKernel[]
  topologies: MatrixTopology[]
  filesystems: Filesystem[]
  suites: MatrixSuite[]
  exclude: ExcludeRule[]
  retries: number
  /** Cells at once, or auto: the runner fits it to the host's cores and RAM. */
  jobs: number | 'auto'
  /** Seconds one cell may take; undefined: the runner's default. */
  timeoutSec?: number
  /** Cells that differ only in filesystem run in one boot (share.ts); absent when the file does not ask. */
  shareBoots?: true
}

// ---------------------------------------------------------------------------------------------
// The shape (zod); meaning across fields is checked afterwards, with positions.

const topologyShape = z.object(pmemFields).strict()

const suiteShape = z.object({dir: text, name: name.optional()}).strict()
const suiteEntry = z.preprocess((v) => (typeof v === 'string' ? (isNamedSuite(v) ? {dir: v, name: v} : {dir: v}) : v), suiteShape)

const excludeShape = z
  .object({
    kernel: oneOrMore(text),
    topology: oneOrMore(text),
    filesystem: oneOrMore(z.enum(FILESYSTEMS)),
    suite: oneOrMore(text),
    min_version: version.optional(),
    max_version: version.optional(),
  })
  .strict()

const fileShape = z
  .object({
    version: z.number({invalid_type_error: 'write version: 1'}),
    /** A title, not an ID: one line of any text. */
    name: z.string().min(1).max(100).regex(/^[^\n]*$/, 'write one line').optional(),
    kernels: z.array(kernelEntry).min(1),
    topologies: z.record(z.string(), topologyShape.nullish().transform((v) => v ?? topologyShape.parse({}))),
    filesystems: z.array(z.enum(FILESYSTEMS)).min(1).default([...FILESYSTEMS]),
    suites: z.array(suiteEntry).min(1).default(['builtin']),
    exclude: list(excludeShape),
    retries: z.number().int('write a whole number').min(0).max(5).default(0),
    jobs: z.union([z.literal('auto'), z.number().int('write a whole number').min(1).max(64)], {errorMap: () => ({message: 'write auto or a whole number from 1 to 64'})}).default('auto'),
    timeout: z.number().positive().max(24 * 3600).optional(),
    share_boots: z.boolean().default(false),
  })
  .strict()

/** The keys an object at PATH takes, for "unknown key" messages. */
function knownKeys(path: YamlPath): readonly string[] {
  const keys = (shape: z.AnyZodObject) => Object.keys(shape.shape)
  if (path.length === 0) return keys(fileShape)
  if (path[0] === 'kernels') return path.length >= 3 ? keys(buildShape) : keys(kernelShape)
  if (path[0] === 'topologies') return keys(topologyShape)
  if (path[0] === 'suites') return keys(suiteShape)
  if (path[0] === 'exclude') return keys(excludeShape)
  return []
}

// ---------------------------------------------------------------------------------------------
// Reading a file

/** Parses and validates a matrix file's TEXT; FILE names it in errors and anchors its relative paths. */
export function parseMatrix(text: string, file: string): MatrixPlan {
  const yaml = LocatedYaml.parse(text, file, new Set(['version', 'retries', 'jobs', 'timeout']))
  const data = yaml.versioned(MATRIX_FORMAT, {what: 'a matrix file (a mapping with version, kernels and topologies)', example: 'examples/matrix.yaml'}, fileShape, knownKeys)
  const kernels = data.kernels.map((entry, i) => checkKernel(yaml, entry, i))
  unique(yaml, kernels, 'kernels', 'kernel', 'give one of them a name:')
  const topologies = Object.entries(data.topologies).map(([topologyName, t]) => checkTopology(yaml, topologyName, t))
  if (topologies.length === 0) throw yaml.error(['topologies'], 'is empty', 'name at least one, like memmap: {memmap: [256M]}')
  const suites = data.suites.map((s, i): MatrixSuite => ({name: s.name ?? safeName(basename(s.dir)), source: s.dir, where: yaml.whereIs(['suites', i])}))
  unique(yaml, suites, 'suites', 'suite', 'give one of them a name: ({dir: DIR, name: NAME})')
  distinct(yaml, data.filesystems, 'filesystems')
  const axes = {kernels, topologies, filesystems: data.filesystems, suites}
  const exclude = data.exclude.map((rule, i) => checkRule(yaml, rule, i, axes))
  // Only when asked, so that the hash of a file that does not say it stays what it was.
  const content = {name: data.name, ...axes, exclude, retries: data.retries, jobs: data.jobs, timeoutSec: data.timeout, ...(data.share_boots ? {shareBoots: true as const} : {})}
  return {file, baseDir: dirname(resolve(file)), hash: contentHash(content), ...content}
}

/** A path written in the plan, resolved against the matrix file's directory. */
export const planPath = (plan: Pick<MatrixPlan, 'baseDir'>, path: string) => resolve(plan.baseDir, path)

function checkTopology(yaml: LocatedYaml, topologyName: string, t: z.infer<typeof topologyShape>): MatrixTopology {
  const at: YamlPath = ['topologies', topologyName]
  // Errors about the topology as a whole point at its name.
  if (!NAME.test(topologyName)) throw yaml.error(['topologies'], `"${topologyName}" cannot name a topology`, NAME_FIX, topologyName)
  checkPmem(yaml, at, t, (path, value) => {
    throw yaml.error(path, `"${value}" names a backing file`, 'write SIZE only: cells run in parallel and cannot share a file, so each gets its own disposable one')
  })
  if (t.memmap.length + t.nvdimm.length + t['virtio-pmem'].length === 0) {
    throw yaml.error(['topologies'], 'has no persistent memory', 'list at least one of memmap, nvdimm or virtio-pmem, like {nvdimm: [512M]}', topologyName)
  }
  const mem = t.mem ?? DEFAULT_MEM
  checkMem(yaml, [...at, 'mem'], mem)
  return {name: topologyName, memmap: t.memmap, nvdimm: t.nvdimm, virtioPmem: t['virtio-pmem'], mem, where: yaml.whereIs(at)}
}

interface Axes {
  kernels: MatrixKernel[]
  topologies: MatrixTopology[]
  filesystems: Filesystem[]
  suites: MatrixSuite[]
}

function checkRule(yaml: LocatedYaml, rule: z.infer<typeof excludeShape>, i: number, axes: Axes): ExcludeRule {
  const at: YamlPath = ['exclude', i]
  const known: Record<'kernel' | 'topology' | 'filesystem' | 'suite', string[]> = {
    kernel: [...new Set(axes.kernels.flatMap((k) => (k.spec !== undefined ? [k.name, k.spec] : [k.name])))],
    topology: axes.topologies.map((t) => t.name),
    filesystem: axes.filesystems,
    suite: axes.suites.map((s) => s.name),
  }
  for (const axis of ['kernel', 'topology', 'filesystem', 'suite'] as const) {
    rule[axis]?.forEach((value, j) => {
      if (!known[axis].includes(value)) {
        throw yaml.error([...at, axis, ...(Array.isArray(yaml.valueAt([...at, axis])) ? [j] : [])], `no ${axis} is named "${value}"`, `the plan's are ${known[axis].join(', ')}`)
      }
    })
  }
  const [min, max] = [rule.min_version, rule.max_version]
  if (min !== undefined && max !== undefined && compareVersionText(min, max) > 0) {
    throw yaml.error(at, `min_version ${min} is above max_version ${max}: the range names no version`, 'swap them', 'min_version')
  }
  const conditions = ['kernel', 'topology', 'filesystem', 'suite', 'min_version', 'max_version'].filter((key) => rule[key as keyof typeof rule] !== undefined)
  if (conditions.length === 0) throw yaml.error(at, 'has no condition and would exclude every cell', 'name a kernel, topology, filesystem, suite, min_version or max_version')
  return {kernel: rule.kernel, topology: rule.topology, filesystem: rule.filesystem, suite: rule.suite, minVersion: min, maxVersion: max, where: yaml.whereIs(at)}
}

/** Orders "6.1" and "6.1.0" as equal: only for checking a range is not empty. */
function compareVersionText(a: string, b: string): number {
  const parts = (v: string) => v.split('.').map(Number)
  const [x, y] = [parts(a), parts(b)]
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0)
  return 0
}

// Case-insensitively: IDs become file and artifact names, and some of those ignore case.
function unique(yaml: LocatedYaml, items: Array<{name: string}>, key: string, what: string, fix: string): void {
  const seen = new Map<string, number>()
  items.forEach((item, i) => {
    const first = seen.get(item.name.toLowerCase())
    if (first !== undefined) throw yaml.error([key, i], `two ${what}s are named "${item.name}" (the other at ${yaml.whereIs([key, first])})`, fix)
    seen.set(item.name.toLowerCase(), i)
  })
}

function distinct(yaml: LocatedYaml, values: readonly string[], key: string): void {
  values.forEach((value, i) => {
    if (values.indexOf(value) !== i) throw yaml.error([key, i], `"${value}" is listed twice`, 'list it once')
  })
}

/** sha256 over the plan's content in a canonical form: sorted keys, no positions. */
function contentHash(content: object): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical)
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value)
          .filter(([key, v]) => key !== 'where' && v !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([key, v]) => [key, canonical(v)]),
      )
    }
    return value
  }
  return createHash('sha256').update(JSON.stringify({format: MATRIX_FORMAT, ...(canonical(content) as object)})).digest('hex')
}

/**
 * The store of built kernels: kernels/<key>/ with build.json, .config, build.log and bzImage.
 * Listing, resolving a --kernel spec (key prefix, version, latest), removing and pruning. Kept
 * apart from kbuild.ts so that booting a built kernel loads no downloader or tar code.
 */
import {readdir, readFile, rename, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {z} from 'zod'
import {checkArtifact} from '../core/artifact.js'
import {directorySize, pidOfTemp, removeStaleTemps} from '../core/cache.js'
import {ExitCode, notFound, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {buildDir, downloadsDir, kernelsDir} from '../core/paths.js'
import {processAlive} from '../core/process.js'
import {canAccess as exists} from '../core/which.js'

/** How a built kernel boots: its root is the guest image, its init pmemlab's. */
export const KERNEL_ARGS = ['root=/dev/vda', 'rw', 'init=/sbin/pmemlab-init']

/** A kernel.org release: 6.1 (the newest 6.1.N) or 6.12.3. */
export const VERSION_SPEC = /^(\d+)\.(\d+)(?:\.(\d+))?$/

/** What identifies the source in build.json. */
export type SourceRecord =
  | {kind: 'version'; requested: string; version: string; file: string; url: string; sha256: string}
  | {kind: 'source'; file: string; sha256: string}
  | {kind: 'tree'; dir: string; ref?: string; commit: string; dirty: string | null}

export const sourceRecordSchema = z.union([
  z.object({kind: z.literal('version'), requested: z.string(), version: z.string(), file: z.string(), url: z.string(), sha256: z.string()}),
  z.object({kind: z.literal('source'), file: z.string(), sha256: z.string()}),
  z.object({kind: z.literal('tree'), dir: z.string(), ref: z.string().optional(), commit: z.string(), dirty: z.string().nullable()}),
])

const buildJsonSchema = z
  .object({
    key: z.string().regex(/^[0-9a-f]{64}$/),
    version: z.string(),
    kernelVersion: z.string(),
    source: sourceRecordSchema,
    base: z.enum(['tinyconfig', 'defconfig']),
    debug: z.boolean(),
    fragments: z.array(z.object({name: z.string(), path: z.string(), sha256: z.string(), user: z.boolean()})),
    sets: z.array(z.string()),
    /** --patch, in the order applied, each kept in the entry under `file`; older entries have none. */
    patches: z.array(z.object({name: z.string(), file: z.string(), sha256: z.string()})).optional(),
    requested: z.record(z.string()),
    compiler: z.string(),
    ccache: z.boolean(),
    arch: z.string(),
    jobs: z.number(),
    modules: z.boolean(),
    objects: z.number(),
    timings: z.object({fetchMs: z.number(), extractMs: z.number(), configureMs: z.number(), buildMs: z.number(), totalMs: z.number()}),
    createdAt: z.string(),
    files: z.object({kernel: z.string(), config: z.string(), log: z.string(), systemMap: z.string().optional(), vmlinux: z.string().optional(), pvh: z.string().optional()}),
    /** Size and sample digest of each file when it was built (core/artifact.ts); older entries have none. */
    artifacts: z.record(z.object({bytes: z.number(), sample: z.string()})).optional(),
  })
  .passthrough()

export type BuildJson = z.infer<typeof buildJsonSchema>

/**
 * An entry's build.json when the entry is complete (its kernel is there), with what is wrong
 * with its files when they are no longer the ones built (truncated, grown, rewritten, missing).
 * A stat and two 64 KiB reads per file: cheap enough for every boot.
 */
export async function inspectEntry(dir: string): Promise<{build: BuildJson; damage?: string} | undefined> {
  const build = await readBuildJson(dir)
  if (!build) return undefined
  for (const [name, recorded] of Object.entries(build.artifacts ?? {})) {
    const damage = await checkArtifact(join(dir, name), recorded)
    if (damage) return {build, damage}
  }
  return {build}
}

/** An entry's build.json when the entry is complete (its kernel is there), unchecked otherwise. */
async function readBuildJson(dir: string): Promise<BuildJson | undefined> {
  try {
    const parsed = buildJsonSchema.safeParse(JSON.parse(await readFile(join(dir, 'build.json'), 'utf8')))
    if (!parsed.success || !(await exists(join(dir, parsed.data.files.kernel)))) return undefined
    return parsed.data
  } catch {
    return undefined
  }
}

/** An entry's build.json when the entry is complete and intact, else undefined (a build replaces it). */
export async function readEntry(dir: string): Promise<BuildJson | undefined> {
  const found = await inspectEntry(dir)
  return found && !found.damage ? found.build : undefined
}

export interface KernelEntry {
  key: string
  dir: string
  kernel: string
  bytes: number
  build: BuildJson
  /** What is wrong with the entry's files (see inspectEntry); such an entry is listed and removable, never booted. */
  damage?: string
}

/** Every complete entry, newest first, damaged ones included (with their damage). */
export async function listKernels(): Promise<KernelEntry[]> {
  return Promise.all((await listBuilds()).map(({dir}) => describeEntry(dir))).then((entries) => entries.filter((entry) => entry !== undefined))
}

/**
 * Every entry's build.json, newest first, without checking its files or measuring it: what
 * choosing one entry needs (a bisect leaves dozens, and every boot chooses one).
 */
async function listBuilds(): Promise<Array<{dir: string; build: BuildJson}>> {
  const builds: Array<{dir: string; build: BuildJson}> = []
  for (const name of await readdir(kernelsDir()).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    const dir = join(kernelsDir(), name)
    const build = await readBuildJson(dir)
    if (build?.key === name) builds.push({dir, build})
  }
  return builds.sort((a, b) => b.build.createdAt.localeCompare(a.build.createdAt) || a.build.key.localeCompare(b.build.key))
}

/** The entry in DIR with its files checked and its size, or undefined when it is incomplete. */
async function describeEntry(dir: string): Promise<KernelEntry | undefined> {
  const found = await inspectEntry(dir)
  if (!found) return undefined
  const {build, damage} = found
  return {key: build.key, dir, kernel: join(dir, build.files.kernel), bytes: await directorySize(dir), build, ...(damage ? {damage} : {})}
}

export type SpecForm = 'latest' | 'key' | 'version'

/** Which form a --kernel spec has: `latest`, a key or key prefix (6+ hex digits), a version; undefined for anything else. */
export function specForm(spec: string): SpecForm | undefined {
  if (spec === 'latest') return 'latest'
  if (/^[0-9a-f]{6,64}$/.test(spec)) return 'key'
  if (VERSION_SPEC.test(spec)) return 'version'
  return undefined
}

function versionMatches(build: BuildJson, version: string): boolean {
  return build.version === version || build.kernelVersion === version || build.kernelVersion.startsWith(`${version}.`) || build.version.startsWith(`${version}.`)
}

/** The entries a spec names: all matches for a key prefix, the newest for a version or latest. */
async function matchEntries(spec: string): Promise<{form: SpecForm; matches: KernelEntry[]} | undefined> {
  const form = specForm(spec)
  if (!form) return undefined
  const builds = await listBuilds()
  const chosen =
    form === 'latest' ? builds.slice(0, 1) : form === 'key' ? builds.filter(({build}) => build.key.startsWith(spec)) : builds.filter(({build}) => versionMatches(build, spec)).slice(0, 1)
  // Only the chosen entries have their files checked (and a damaged one is still chosen: it is refused by name, never skipped).
  const matches = await Promise.all(chosen.map(({dir}) => describeEntry(dir)))
  return {form, matches: matches.filter((entry) => entry !== undefined)}
}


export async function findOne(spec: string): Promise<KernelEntry | undefined> {
  const found = await matchEntries(spec)
  if (!found) return undefined
  if (found.matches.length === 0) {
    throw notFound(
      found.form === 'latest' ? 'no kernel has been built yet' : `no built kernel matches "${spec}"`,
      'see pmemlab kernel ls, or build one with pmemlab kernel build',
    )
  }
  if (found.matches.length > 1) throw usageError(`"${spec}" matches ${found.matches.length} kernels`, 'give more digits of the key')
  return found.matches[0]
}

/**
 * For the VM runtime (`up --kernel`): a full key or unique prefix (6+ hex digits), a version
 * (the newest entry of it) or `latest`. Undefined when spec has none of these forms; a notFound
 * error when it does but nothing matches.
 */
export async function resolveBuiltKernel(
  spec: string,
): Promise<{spec: string; version: string; key: string; kernel: string; pvh?: string; kernelArgs: string[]; buildJson: string} | undefined> {
  const entry = await findOne(spec)
  if (!entry) return undefined
  if (entry.damage) throw damagedKernel(entry)
  const pvh = entry.build.files.pvh ? {pvh: join(entry.dir, entry.build.files.pvh)} : {}
  return {spec, version: entry.build.kernelVersion, key: entry.key, kernel: entry.kernel, ...pvh, kernelArgs: [...KERNEL_ARGS], buildJson: join(entry.dir, 'build.json')}
}

/** The one line for a damaged entry: which file, what is wrong, and the fix. */
export function damagedKernel(entry: KernelEntry): PmemlabError {
  const key = entry.key.slice(0, 12)
  return new PmemlabError(`built kernel ${key} is damaged: ${entry.damage ?? 'unknown damage'}`, ExitCode.notFound, `remove it with pmemlab kernel rm ${key}, then build it again`)
}

/** Removes the entry spec names (key prefix, version, latest). */
export async function removeKernel(spec: string): Promise<KernelEntry> {
  const entry = await findOne(spec)
  if (!entry) throw usageError(`"${spec}" is not a kernel key, version or "latest"`)
  const aside = join(kernelsDir(), `.tmp-rm-${entry.key}-${process.pid}`)
  await rename(entry.dir, aside) // atomic: the entry is gone for readers at once
  await rm(aside, {recursive: true, force: true})
  return entry
}

export interface PruneResult {
  removed: KernelEntry[]
  /** Build trees, failed logs and leftovers of interrupted builds. */
  removedPaths: string[]
  freedBytes: number
}

/**
 * Keeps the newest `keep` entries (default 3) and removes the others, plus everything in build/
 * that no running pmemlab holds: extracted sources, failed logs, leftovers of killed builds.
 * Downloads are kept (they are what an air-gapped lab cannot get again).
 */
export async function pruneKernels(options: {keep?: number} = {}): Promise<PruneResult> {
  const keep = options.keep ?? 3
  if (!Number.isInteger(keep) || keep < 0) throw usageError(`--keep ${keep}: expected a whole number, 0 or more`)
  const result: PruneResult = {removed: [], removedPaths: [], freedBytes: 0}
  const entries = await listKernels()
  // Damaged entries go first: none of them can boot, so none counts towards keep.
  const doomed = [...entries.filter((e) => e.damage), ...entries.filter((e) => !e.damage).slice(keep)]
  for (const entry of doomed) {
    await rm(entry.dir, {recursive: true, force: true})
    result.removed.push(entry)
    result.freedBytes += entry.bytes
  }
  const live = async (pid: number) => pid !== process.pid && (await processAlive(pid))
  const lockHolders: number[] = []
  for (const dir of [kernelsDir(), buildDir()]) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.lock')) continue
      const pid = Number((await readFile(join(dir, name), 'utf8').catch(() => '')).trim())
      if (pid && (await live(pid))) lockHolders.push(pid)
      else await rm(join(dir, name), {force: true})
    }
  }
  const remove = async (path: string) => {
    const info = await stat(path).catch(() => undefined)
    if (!info) return
    const bytes = info.isDirectory() ? await directorySize(path) : info.size
    await rm(path, {recursive: true, force: true})
    result.removedPaths.push(path)
    result.freedBytes += bytes
  }
  for (const name of await readdir(kernelsDir()).catch(() => [] as string[])) {
    const owner = name.startsWith('.tmp-') ? pidOfTemp(name) : undefined
    if (owner !== undefined && !(await live(owner))) await remove(join(kernelsDir(), name))
  }
  // Build trees: a running build may be reading an extracted source, so leave build/ alone then.
  if (lockHolders.length > 0) {
    log.info(`a kernel build is running (pid ${lockHolders.join(', ')}): build trees are kept`)
  } else {
    for (const name of await readdir(buildDir()).catch(() => [] as string[])) {
      if (name === 'file-hashes.json') continue
      await remove(join(buildDir(), name))
    }
  }
  await removeStaleTemps(downloadsDir(), /\.part-\d+$/)
  return result
}


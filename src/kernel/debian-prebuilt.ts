/**
 * Debian's prebuilt kernels (`--kernel debian:6.12`): resolved in the Packages indexes of the
 * suites source builds search too (debian-source.ts: DEFAULT_DEBIAN_SUITES or
 * $PMEMLAB_DEBIAN_SUITES), downloaded from the mirror and checked against the index's
 * SHA256 before anything is unpacked, unpacked with `dpkg-deb -x` (never installed on the host)
 * into debian-kernels/<key>/, keyed by the packages' content. An entry is built in a temp
 * directory and renamed into place when complete. Once one matches, a spec resolves from the
 * cache without the network; `pullDebianKernel` asks the archive again.
 */
import {createHash} from 'node:crypto'
import {mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {z} from 'zod'
import {checkArtifact, stampFiles} from '../core/artifact.js'
import {acquireLock, directorySize, removeStaleTemps} from '../core/cache.js'
import {fetchIndex, hostDebianMirror} from '../core/debian.js'
import {ExitCode, notFound, PmemlabError, usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {log} from '../core/log.js'
import {noSpaceError} from '../core/nospace.js'
import {cacheDir} from '../core/paths.js'
import {humanSize} from '../core/size.js'
import {canAccess as exists, requireProgram} from '../core/which.js'
import {
  compareDebianVersions,
  DEBIAN_SPEC_HINT,
  describeVersions,
  kernelCandidates,
  kernelStanzas,
  matchesDebianSpec,
  mergeCandidates,
  parseDebianSpec,
  selectCandidates,
  type DebianSpec,
  type KernelCandidate,
} from './debian-index.js'
import {debianSuites} from './debian-source.js'
import {download, DownloadError} from '../core/download.js'
import {bzImagePayload, extractPvhVmlinux} from './pvh.js'

export const debianKernelsDir = () => join(cacheDir(), 'debian-kernels')

const recordSchema = z.object({
  format: z.literal(1),
  key: z.string().regex(/^[0-9a-f]{64}$/),
  abi: z.string(),
  version: z.string(),
  upstream: z.string(),
  image: z.string(),
  signed: z.boolean(),
  suites: z.array(z.string()),
  mirror: z.string(),
  packages: z.array(z.object({name: z.string(), version: z.string(), filename: z.string(), sha256: z.string(), size: z.number(), url: z.string()})),
  fetchedAt: z.string(),
  /** Relative to the entry: the bzImage, the PVH vmlinux made from it (when it has a PVH entry), the modules directory. */
  files: z.object({vmlinuz: z.string(), vmlinux: z.string().optional(), modules: z.string()}),
  artifacts: z.record(z.object({bytes: z.number(), sample: z.string()})),
})

export type DebianKernelRecord = z.infer<typeof recordSchema>

export interface DebianKernelEntry {
  key: string
  dir: string
  record: DebianKernelRecord
  /** What is wrong with its files; such an entry is listed and removable, never booted. */
  damage?: string
}

/** The content key: a single .deb's own sha256; for a kernel in several packages, a digest of theirs. */
export function contentKey(packages: Array<{sha256: string}>): string {
  if (packages.length === 1) return packages[0].sha256
  const hash = createHash('sha256').update('pmemlab-debian-kernel-v1\0')
  for (const p of packages) hash.update(`${p.sha256}\0`)
  return hash.digest('hex')
}

/** One line naming a kernel: "linux-image-6.12.117+deb13-amd64 6.12.117-1 (trixie)". */
export const describeKernel = (k: {image: string; version: string; suites: string[]}) => `${k.image} ${k.version} (${k.suites.join(', ')})`

async function inspectEntry(dir: string, key: string): Promise<DebianKernelEntry | undefined> {
  let record: DebianKernelRecord
  try {
    const parsed = recordSchema.safeParse(JSON.parse(await readFile(join(dir, 'debian.json'), 'utf8')))
    if (!parsed.success || parsed.data.key !== key) return undefined
    record = parsed.data
  } catch {
    return undefined
  }
  for (const [name, recorded] of Object.entries(record.artifacts)) {
    const damage = await checkArtifact(join(dir, name), recorded)
    if (damage) return {key, dir, record, damage}
  }
  return {key, dir, record}
}

const newestFirst = (a: DebianKernelEntry, b: DebianKernelEntry) =>
  compareDebianVersions(b.record.version, a.record.version) || Number(b.record.signed) - Number(a.record.signed) || a.key.localeCompare(b.key)

/** Every complete entry, newest first, damaged ones included (with their damage). */
export async function listDebianKernels(): Promise<DebianKernelEntry[]> {
  const entries: DebianKernelEntry[] = []
  for (const name of await readdir(debianKernelsDir()).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    const entry = await inspectEntry(join(debianKernelsDir(), name), name)
    if (entry) entries.push(entry)
  }
  return entries.sort(newestFirst)
}

/** The size of an entry on disk (a walk of its ~4,000 files: for listings, not for boots). */
export const entryBytes = (entry: DebianKernelEntry) => directorySize(entry.dir)

/** The one line for a damaged entry: which file, what is wrong, and the fix. */
export function damagedDebianKernel(entry: DebianKernelEntry): PmemlabError {
  const key = entry.key.slice(0, 12)
  return new PmemlabError(
    `Debian kernel ${entry.record.abi} (${key}) is damaged: ${entry.damage ?? 'unknown damage'}`,
    ExitCode.notFound,
    `remove it with pmemlab kernel rm ${key}, then run pmemlab kernel pull debian:${entry.record.abi}`,
  )
}

export interface DebianBoot {
  abi: string
  vmlinuz: string
  vmlinux?: string
  modulesDir: string
  entry: DebianKernelEntry
}

function bootOf(entry: DebianKernelEntry): DebianBoot {
  if (entry.damage) throw damagedDebianKernel(entry)
  const {files, abi} = entry.record
  return {abi, vmlinuz: join(entry.dir, files.vmlinuz), vmlinux: files.vmlinux ? join(entry.dir, files.vmlinux) : undefined, modulesDir: join(entry.dir, files.modules), entry}
}

const checkSpec = (spec: string): DebianSpec => {
  const parsed = parseDebianSpec(spec)
  if (!parsed) throw usageError(`"${spec}" is not a Debian kernel spec`, DEBIAN_SPEC_HINT)
  return parsed
}

/**
 * For `--kernel debian:X`: the newest cached kernel that matches, without the network; when none
 * does, the newest the archive has, fetched into the cache. Says on stderr which was taken.
 */
export async function resolveDebianKernel(spec: string, options: {signal?: AbortSignal} = {}): Promise<DebianBoot> {
  const parsed = checkSpec(spec)
  const cached = (await listDebianKernels()).find((entry) => matchesDebianSpec(entry.record, parsed))
  if (cached) {
    log.info(`${spec}: ${describeKernel(cached.record)}, cached as ${cached.key.slice(0, 12)} (pmemlab kernel pull ${spec} looks for a newer one)`)
    return bootOf(cached)
  }
  return bootOf((await pullDebianKernel(spec, options)).entry)
}

/**
 * Resolves spec in the archive's indexes and makes sure its newest match is cached. A package
 * that the index lists but the pool no longer has (HTTP 404) gives way to the next newest match.
 */
export async function pullDebianKernel(spec: string, options: {signal?: AbortSignal} = {}): Promise<{entry: DebianKernelEntry; downloaded: boolean}> {
  const parsed = checkSpec(spec)
  const archive = await readArchive(parsed.suite === undefined ? debianSuites() : [parsed.suite], options.signal)
  const matches = selectCandidates(archive.candidates, parsed)
  if (matches.length === 0) {
    const unread = archive.unread.length > 0 ? ` (${archive.unread.join(', ')} could not be read)` : ''
    throw notFound(
      `no Debian kernel matches ${spec}: the ${archive.read.length === 1 ? 'index' : 'indexes'} of ${archive.read.join(', ')}${unread} hold${archive.read.length === 1 ? 's' : ''} ${describeVersions(archive.candidates) || 'no amd64 kernel'}`,
      'pick one of those versions',
    )
  }
  for (const candidate of matches) {
    const key = contentKey(candidate.packages)
    const existing = await inspectEntry(join(debianKernelsDir(), key), key)
    if (existing && !existing.damage) {
      log.info(`${spec}: ${describeKernel(candidate)}, already cached as ${key.slice(0, 12)}`)
      return {entry: existing, downloaded: false}
    }
    log.info(`${spec}: taking ${describeKernel(candidate)}, the newest of ${matches.length} match${matches.length === 1 ? '' : 'es'}`)
    if (!candidate.signed) log.warn(`${candidate.image} is the unsigned build: loading its modules taints the kernel ("module verification failed")`)
    try {
      return {entry: await installCandidate(candidate, archive.mirrors.get(candidate.suites[0])!, options.signal), downloaded: true}
    } catch (error) {
      // Indexes list packages the pool has already dropped: the next newest match may be there.
      if (!(error instanceof DownloadError) || (error.status !== 404 && error.status !== 410)) throw error
      log.warn(`${error.message}: the index lists it, the pool no longer has it; trying the next newest match`)
    }
  }
  throw notFound(`every package matching ${spec} that the indexes list is missing from the pool (HTTP 404)`, 'the mirror may be catching up: try again later, or another version')
}

interface Archive {
  candidates: KernelCandidate[]
  mirrors: Map<string, string>
  read: string[]
  unread: string[]
}

/**
 * The suites' Packages indexes, three at a time (each is tens of MB decompressed). A suite that
 * cannot be read is skipped with a warning; when none can, the first failure (naming its URL) is the error.
 */
async function readArchive(suites: string[], signal?: AbortSignal): Promise<Archive> {
  const results: Array<{suite: string; mirror: string; candidates?: KernelCandidate[]; error?: unknown}> = []
  const queue = [...suites]
  const worker = async () => {
    for (let suite = queue.shift(); suite !== undefined; suite = queue.shift()) {
      const mirror = await hostDebianMirror(suite)
      try {
        const text = await fetchIndex(mirror, suite, 'main/binary-amd64/Packages.xz', signal)
        results.push({suite, mirror, candidates: kernelCandidates(suite, kernelStanzas(text))})
      } catch (error) {
        if (signal?.aborted) throw error
        results.push({suite, mirror, error})
      }
    }
  }
  log.info(`reading the kernel packages of ${suites.join(', ')} from Debian's archive`)
  await Promise.all([worker(), worker(), worker()])
  results.sort((a, b) => suites.indexOf(a.suite) - suites.indexOf(b.suite))
  const failed = results.filter((r) => r.error !== undefined)
  if (failed.length === results.length) throw failed[0].error
  for (const f of failed) log.warn(`skipping ${f.suite}: ${f.error instanceof PmemlabError ? f.error.message : String(f.error)}`)
  return {
    candidates: mergeCandidates(results.map((r) => r.candidates ?? [])),
    mirrors: new Map(results.map((r) => [r.suite, r.mirror])),
    read: results.filter((r) => !r.error).map((r) => r.suite),
    unread: failed.map((f) => f.suite),
  }
}

/** Downloads, verifies and unpacks a candidate into its entry; one pmemlab at a time per key. */
async function installCandidate(candidate: KernelCandidate, mirror: string, signal?: AbortSignal): Promise<DebianKernelEntry> {
  const key = contentKey(candidate.packages)
  const root = debianKernelsDir()
  const dir = join(root, key)
  await mkdir(root, {recursive: true})
  await removeStaleTemps(root, /^\.tmp-(rm-)?[0-9a-f]{64}-\d+$/)
  const release = await acquireLock(join(root, `${key}.lock`), `Debian kernel ${candidate.abi}`, signal)
  const temp = join(root, `.tmp-${key}-${process.pid}`)
  try {
    const again = await inspectEntry(dir, key)
    if (again && !again.damage) return again // another pmemlab fetched it meanwhile
    await rm(temp, {recursive: true, force: true})
    await mkdir(join(temp, 'debs'), {recursive: true})
    const packages = []
    for (const p of candidate.packages) {
      const url = `${mirror.replace(/\/+$/, '')}/${p.filename}`
      await download(url, join(temp, 'debs', `${p.name}.deb`), p.sha256, `${candidate.suites[0]}'s Packages index`, signal)
      packages.push({...p, url})
    }
    const dpkgDeb = await requireProgram('dpkg-deb', 'dpkg')
    for (const p of candidate.packages) await run(dpkgDeb, ['-x', join(temp, 'debs', `${p.name}.deb`), join(temp, 'root')], {cancelSignal: signal})
    await rm(join(temp, 'debs'), {recursive: true, force: true})
    const files = await prepareTree(temp, candidate.abi, signal)
    const record: DebianKernelRecord = {
      format: 1,
      key,
      abi: candidate.abi,
      version: candidate.version,
      upstream: candidate.upstream,
      image: candidate.image,
      signed: candidate.signed,
      suites: candidate.suites,
      mirror,
      packages,
      fetchedAt: new Date().toISOString(),
      files,
      artifacts: await stampFiles(temp, [files.vmlinuz, ...(files.vmlinux ? [files.vmlinux] : []), `${files.modules}/modules.dep`]),
    }
    await writeFile(join(temp, 'debian.json'), `${JSON.stringify(record, null, 2)}\n`)
    await rm(dir, {recursive: true, force: true}) // a damaged entry of the same key
    await rename(temp, dir)
    log.info(`cached ${candidate.abi} as ${key.slice(0, 12)} (${humanSize(await directorySize(dir))} unpacked)`)
    return {key, dir, record}
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    const full = await noSpaceError(error, {doing: `unpacking Debian kernel ${candidate.abi}`, dirs: [{dir: root, envVar: 'PMEMLAB_CACHE_DIR'}]})
    throw full ?? error
  } finally {
    await release()
  }
}

/**
 * Finds the kernel and its modules in an unpacked tree (boot/vmlinuz-ABI and lib/modules/ABI up to
 * 6.1; /usr/lib/modules/ABI from 6.12, with the vmlinuz inside it from 7.x), indexes the modules
 * with the host's depmod (the packages leave that to their postinst), and makes the PVH vmlinux.
 */
async function prepareTree(entry: string, abi: string, signal?: AbortSignal): Promise<DebianKernelRecord['files']> {
  const modulesCandidates = [`root/usr/lib/modules/${abi}`, `root/lib/modules/${abi}`]
  const vmlinuzCandidates = [`root/boot/vmlinuz-${abi}`, ...modulesCandidates.map((dir) => `${dir}/vmlinuz`)]
  const modules = await firstExisting(entry, modulesCandidates.map((dir) => `${dir}/kernel`))
  const vmlinuz = await firstExisting(entry, vmlinuzCandidates)
  if (!modules || !vmlinuz) {
    throw new PmemlabError(`Debian kernel ${abi}: the packages hold no ${vmlinuz ? 'modules' : 'vmlinuz'} (looked for ${(vmlinuz ? modulesCandidates : vmlinuzCandidates).join(', ')})`)
  }
  const modulesDir = modules.slice(0, -'/kernel'.length)
  if (!bzImagePayload(await readFile(join(entry, vmlinuz)))) throw new PmemlabError(`Debian kernel ${abi}: ${vmlinuz} is not a bzImage`)
  const depmod = await requireProgram('depmod', 'kmod')
  const base = join(entry, modulesDir.slice(0, -`lib/modules/${abi}`.length))
  await run(depmod, ['-b', base, abi], {cancelSignal: signal})
  if (!(await exists(join(entry, modulesDir, 'modules.dep')))) throw new PmemlabError(`Debian kernel ${abi}: depmod wrote no modules.dep`)
  // Made even under PMEMLAB_NO_PVH=1 (which only chooses what boots), so that the entry is the same either way.
  const whyNot = await extractPvhVmlinux(join(entry, vmlinuz), join(entry, 'vmlinux'))
  if (whyNot) log.info(`Debian kernel ${abi} boots as a bzImage (no PVH vmlinux: ${whyNot.reason})`)
  return {vmlinuz, ...(whyNot ? {} : {vmlinux: 'vmlinux'}), modules: modulesDir}
}

async function firstExisting(dir: string, paths: string[]): Promise<string | undefined> {
  for (const path of paths) if (await exists(join(dir, path))) return path
  return undefined
}

/**
 * The entries a `kernel rm` spec names: debian:X (the newest cached match) or a key prefix of
 * 6 or more hex digits (every entry it starts). Undefined for a spec of neither form.
 */
export async function findDebianKernels(spec: string): Promise<DebianKernelEntry[] | undefined> {
  if (spec.startsWith('debian:')) {
    const parsed = checkSpec(spec)
    return (await listDebianKernels()).filter((entry) => matchesDebianSpec(entry.record, parsed)).slice(0, 1)
  }
  if (/^[0-9a-f]{6,64}$/.test(spec)) return (await listDebianKernels()).filter((entry) => entry.key.startsWith(spec))
  return undefined
}

/** Removes an entry: renamed aside first, so that it is gone for readers at once. */
export async function removeDebianKernel(entry: DebianKernelEntry): Promise<void> {
  const aside = join(debianKernelsDir(), `.tmp-rm-${entry.key}-${process.pid}`)
  await rename(entry.dir, aside)
  await rm(aside, {recursive: true, force: true})
}

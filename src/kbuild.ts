/**
 * Guest kernels built from checked-in fragments: fetch (kernel.org or a mirror, checksummed),
 * extract (safely), configure (tinyconfig + fragments + olddefconfig, then prove that nothing
 * requested was dropped), build (make, ccache, progress on stderr) and cache (content-addressed).
 *
 * Layout under cacheDir():
 *   downloads/linux-X.tar.xz (+ .sha256)   verified tarballs; written under a temp name, renamed when the sum matches
 *   build/src-<sha>/                        extracted sources, one per tarball (or git commit); reused
 *   build/out-<key>-<pid>/                  make's O= directory while a build runs
 *   build/failed-<key>.log                  the make output of the last failed build of a key
 *   kernels/<key>/                          finished entries: build.json, .config, build.log, bzImage, System.map
 *   kernels/<key>.lock                      held (pid inside) while a key is being built
 */
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream, readFileSync, rmSync} from 'node:fs'
import {copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import {join, posix, resolve} from 'node:path'
import {PassThrough, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {setTimeout as sleep} from 'node:timers/promises'
import got from 'got'
import * as tar from 'tar'
import {z} from 'zod'
import {ExitCode, notFound, PmemlabError, usageError} from './errors.js'
import {run} from './exec.js'
import {
  applyFragment,
  explain,
  explainDrop,
  mergeFragments,
  origin,
  parseDotConfig,
  parseKconfig,
  parseSet,
  renderAssignment,
  renderFragment,
  verifyConfig,
  type Explanation,
  type FragmentInput,
  type KconfigTree,
} from './kconfig.js'
import {humanSize} from './size.js'
import {isVerbose, log, shellQuote} from './log.js'
import {cacheDir, packageRoot} from './paths.js'
import {processAlive} from './process.js'
import {requireProgram, which} from './which.js'

export const DEFAULT_MIRROR = 'https://cdn.kernel.org/pub/linux/kernel'
export const KERNEL_ARGS = ['root=/dev/vda', 'rw', 'init=/sbin/pmemlab-init']
const KEY_FORMAT = 1

export type KernelSource =
  | {kind: 'version'; version: string; mirror?: string}
  | {kind: 'source'; file: string}
  | {kind: 'tree'; dir: string; ref?: string}

export type KernelBase = 'tinyconfig' | 'defconfig'

export interface BuildRequest {
  source: KernelSource
  /** User fragments (--config FILE), applied after the checked-in ones. */
  configs?: string[]
  /** --set CONFIG_X=VALUE, applied last. */
  sets?: string[]
  /** Add kernel-configs/debug.config. */
  debug?: boolean
  base?: KernelBase
  jobs?: number
}

/** What identifies the source in build.json. */
export type SourceRecord =
  | {kind: 'version'; requested: string; version: string; file: string; url: string; sha256: string}
  | {kind: 'source'; file: string; sha256: string}
  | {kind: 'tree'; dir: string; ref?: string; commit: string; dirty: string | null}

const sourceRecordSchema = z.union([
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
    requested: z.record(z.string()),
    compiler: z.string(),
    ccache: z.boolean(),
    arch: z.string(),
    jobs: z.number(),
    modules: z.boolean(),
    objects: z.number(),
    timings: z.object({fetchMs: z.number(), extractMs: z.number(), configureMs: z.number(), buildMs: z.number(), totalMs: z.number()}),
    createdAt: z.string(),
    files: z.object({kernel: z.string(), config: z.string(), log: z.string(), systemMap: z.string().optional(), vmlinux: z.string().optional()}),
  })
  .passthrough()

export type BuildJson = z.infer<typeof buildJsonSchema>

export interface BuildResult {
  cacheHit: boolean
  key: string
  /** The entry's directory. */
  dir: string
  /** The bzImage. */
  kernel: string
  build: BuildJson
}

// ------------------------------------------------------------------------------------------------
// Paths, keys, small helpers
// ------------------------------------------------------------------------------------------------

export const kernelsDir = () => join(cacheDir(), 'kernels')
export const downloadsDir = () => join(cacheDir(), 'downloads')
export const buildDir = () => join(cacheDir(), 'build')
export const fragmentsDir = () => join(packageRoot, 'kernel-configs')

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex')

export function hostArch(): string {
  if (process.arch !== 'x64') throw usageError(`pmemlab builds x86_64 guest kernels, on x86_64 hosts only (this host is ${process.arch})`)
  return 'x86_64'
}

export interface KeyInputs {
  /** Tarball: {tarball: sha256}. Git tree: {commit, dirty}. */
  source: Record<string, string | null | undefined>
  base: KernelBase
  /** The merged fragment. */
  fragment: string
  /** First line of `gcc --version`. */
  compiler: string
  arch: string
}

/** Comments and blank lines dropped, lines trimmed and sorted: the fragment's meaning, not its layout. */
export function normaliseFragmentText(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && (!line.startsWith('#') || / is not set$/.test(line)))
  return [...new Set(lines)].sort().join('\n')
}

/** The content address of a build: sha256 over its inputs. */
export function computeKey(inputs: KeyInputs): string {
  const source = Object.fromEntries(Object.entries(inputs.source).sort(([a], [b]) => a.localeCompare(b)))
  return sha256(
    JSON.stringify({format: KEY_FORMAT, source, base: inputs.base, fragment: normaliseFragmentText(inputs.fragment), compiler: inputs.compiler.trim(), arch: inputs.arch}),
  )
}

function pidOfTemp(name: string): number | undefined {
  const match = /-(\d+)$/.exec(name)
  return match ? Number(match[1]) : undefined
}

/** Removes the temp files and directories in dir whose owner (the pid at the end of the name) is gone. */
async function removeStaleTemps(dir: string, pattern: RegExp): Promise<string[]> {
  const removed: string[] = []
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!pattern.test(name)) continue
    const pid = pidOfTemp(name)
    if (pid !== undefined && pid !== process.pid && (await processAlive(pid))) continue
    await rm(join(dir, name), {recursive: true, force: true})
    removed.push(join(dir, name))
  }
  return removed
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000)
  return seconds < 60 ? `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`
}

// ------------------------------------------------------------------------------------------------
// Interrupts: Ctrl-C stops make (its whole process group) and every temp file goes
// ------------------------------------------------------------------------------------------------

class Interrupt {
  readonly controller = new AbortController()
  /** Files holding the pids of running makes (each leads its own process group). */
  readonly pidFiles = new Set<string>()
  signal?: NodeJS.Signals
  private readonly handler = (signal: NodeJS.Signals) => this.fire(signal)

  get aborted() {
    return this.controller.signal
  }

  install(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, this.handler)
  }

  uninstall(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, this.handler)
  }

  private fire(signal: NodeJS.Signals): void {
    if (this.signal) {
      // A second Ctrl-C: stop now.
      this.killAll('SIGKILL')
      process.exit(ExitCode.interrupted)
    }
    this.signal = signal
    log.warn(`${signal}: stopping the kernel build`)
    this.killAll('SIGTERM')
    setTimeout(() => this.killAll('SIGKILL'), 5000).unref()
    this.controller.abort(new PmemlabError(`interrupted by ${signal}: nothing was cached`, ExitCode.interrupted))
  }

  killAll(signal: NodeJS.Signals): void {
    for (const file of this.pidFiles) {
      try {
        const pid = Number(readFileSync(file, 'utf8').trim())
        if (pid > 0) killGroup(pid, signal)
      } catch {
        // not started yet, or gone
      }
    }
  }

  /** Throws the interrupt error if a signal came in. */
  check(): void {
    if (this.signal) throw this.controller.signal.reason as PmemlabError
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // gone
  }
}

// ------------------------------------------------------------------------------------------------
// Locks: an O_EXCL file holding the owner's pid; stale when that process is gone
// ------------------------------------------------------------------------------------------------

export async function acquireLock(path: string, what: string, signal?: AbortSignal): Promise<() => Promise<void>> {
  let announced = false
  for (;;) {
    try {
      const handle = await open(path, 'wx')
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      return async () => {
        await rm(path, {force: true})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const content = await readFile(path, 'utf8').catch(() => undefined)
    if (content === undefined) continue // released meanwhile
    const pid = Number(content.trim())
    let stale: boolean
    if (Number.isInteger(pid) && pid > 0) stale = !(await processAlive(pid))
    else stale = Date.now() - (await stat(path).then((s) => s.mtimeMs).catch(() => Date.now())) > 10_000 // being written, or junk
    if (stale) {
      // Move it aside atomically; if what we moved turns out to be a live lock, put it back.
      const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`
      try {
        await rename(path, aside)
        const movedPid = Number((await readFile(aside, 'utf8')).trim())
        if (movedPid !== pid && (await processAlive(movedPid))) await link(aside, path).catch(() => undefined)
      } catch {
        // someone else got there first
      }
      await rm(aside, {force: true})
      log.debug(`removed the stale lock ${path} (pid ${content.trim()} is gone)`)
      continue
    }
    if (!announced) {
      log.info(`waiting for pmemlab (pid ${pid}) which is building the same ${what}`)
      announced = true
    }
    await sleep(300, undefined, {signal})
  }
}

// ------------------------------------------------------------------------------------------------
// Progress on stderr
// ------------------------------------------------------------------------------------------------

class Progress {
  private last = 0
  private lastStep = -1
  private shown = false
  private readonly tty = process.stderr.isTTY === true

  constructor(private readonly label: string) {}

  update(text: string, fraction: number | undefined, force = false): void {
    const now = Date.now()
    if (!force && now - this.last < 1000) return
    if (this.tty) {
      process.stderr.write(`\r\u001B[2Kpmemlab: ${this.label}: ${text}`)
      this.shown = true
      this.last = now
      return
    }
    // Not a terminal (CI logs): one line per tenth, at most once a second.
    const step = fraction === undefined ? Math.floor(now / 30_000) : Math.floor(fraction * 10)
    if (!force && step === this.lastStep) return
    this.lastStep = step
    this.last = now
    log.info(`${this.label}: ${text}`)
  }

  done(): void {
    if (this.tty && this.shown) process.stderr.write('\r\u001B[2K')
  }
}

// ------------------------------------------------------------------------------------------------
// Fragments
// ------------------------------------------------------------------------------------------------

export interface FragmentRecord {
  name: string
  path: string
  sha256: string
  user: boolean
}

export interface LoadedFragments {
  records: FragmentRecord[]
  inputs: FragmentInput[]
  merged: ReturnType<typeof mergeFragments>
  /** The merged fragment, sorted: what goes into .config and into the key. */
  text: string
}

/** The checked-in fragments (qemu-base, pmem, debug when asked), then --config files, then --set. */
export async function loadFragments(request: Pick<BuildRequest, 'configs' | 'sets' | 'debug'>): Promise<LoadedFragments> {
  const records: FragmentRecord[] = []
  const inputs: FragmentInput[] = []
  const builtin = ['qemu-base.config', 'pmem.config', ...(request.debug ? ['debug.config'] : [])]
  for (const name of builtin) {
    const path = join(fragmentsDir(), name)
    const text = await readFile(path, 'utf8')
    records.push({name: `kernel-configs/${name}`, path, sha256: sha256(text), user: false})
    inputs.push({name: `kernel-configs/${name}`, text})
  }
  for (const file of request.configs ?? []) {
    const path = resolve(file)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (error) {
      throw usageError(`cannot read the fragment ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
    records.push({name: file, path, sha256: sha256(text), user: true})
    inputs.push({name: file, text, user: true})
  }
  if (request.sets && request.sets.length > 0) {
    const text = request.sets.map((set) => {
      const {symbol, value} = parseSet(set)
      return renderAssignment(symbol, value)
    })
    inputs.push({name: '--set', text: text.join('\n'), user: true})
  }
  const merged = mergeFragments(inputs)
  for (const override of merged.overrides) {
    const to = override.to.file === '--set' ? origin(override.to) : `CONFIG_${override.symbol}=${override.to.value} in ${origin(override.to)}`
    log.info(`${to} overrides CONFIG_${override.symbol}=${override.from.value} from ${origin(override.from)}`)
  }
  return {records, inputs, merged, text: renderFragment(merged.options)}
}

// ------------------------------------------------------------------------------------------------
// Downloads
// ------------------------------------------------------------------------------------------------

export function resolveMirror(mirror?: string): string {
  return (mirror ?? process.env.PMEMLAB_KERNEL_MIRROR ?? DEFAULT_MIRROR).replace(/\/+$/, '')
}

const VERSION_SPEC = /^(\d+)\.(\d+)(?:\.(\d+))?$/

export function checkVersionSpec(version: string): RegExpExecArray {
  const match = VERSION_SPEC.exec(version)
  if (!match) throw usageError(`--version ${version}: expected a release such as 6.1 or 6.12.3`, 'release candidates and other trees: use --tree DIR [--ref REF]')
  return match
}

/** kernel.org's layout: MIRROR/v6.x/linux-6.12.3.tar.xz and MIRROR/v6.x/sha256sums.asc. */
export function releaseDirUrl(mirror: string, version: string): string {
  const [, major] = checkVersionSpec(version)
  return `${resolveMirror(mirror)}/v${major}.x`
}

/**
 * The `<sha256>  <file>` lines of sha256sums.asc. The PGP clear-signature around them is ignored:
 * pmemlab does not verify it (see docs/kernels.md).
 */
export function parseSha256Sums(text: string): Map<string, string> {
  const sums = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$/.exec(line.trim())
    if (match) sums.set(match[2], match[1].toLowerCase())
  }
  return sums
}

const pointOf = (name: string, version: string) => {
  if (name === `linux-${version}.tar.xz`) return 0
  const match = new RegExp(`^linux-${version.replaceAll('.', '\\.')}\\.(\\d+)\\.tar\\.xz$`).exec(name)
  return match ? Number(match[1]) : undefined
}

/** "6.12.3" is that file; "6.12" is the newest 6.12.N listed (6.12 itself counting as 6.12.0). */
export function pickRelease(version: string, names: Iterable<string>): string | undefined {
  const [, , , point] = checkVersionSpec(version)
  if (point !== undefined) {
    const wanted = `linux-${version}.tar.xz`
    return [...names].includes(wanted) ? wanted : undefined
  }
  let best: {name: string; point: number} | undefined
  for (const name of names) {
    const p = pointOf(name, version)
    if (p !== undefined && (!best || p > best.point)) best = {name, point: p}
  }
  return best?.name
}

export interface Tarball {
  file: string
  sha256: string
  version: string
  url: string
  downloaded: boolean
}

/**
 * A verified kernel.org tarball in downloads/: fetched from the mirror when not there yet. The
 * checksum is checked while the file is still under its temp name; a cut-off download or a
 * mismatch removes it and says which.
 */
export async function fetchKernelTarball(request: {version: string; mirror?: string; signal?: AbortSignal}): Promise<Tarball> {
  const {version} = request
  checkVersionSpec(version)
  const dirUrl = releaseDirUrl(request.mirror ?? resolveMirror(), version)
  const sumsUrl = `${dirUrl}/sha256sums.asc`
  const downloads = downloadsDir()
  await mkdir(downloads, {recursive: true})
  await removeStaleTemps(downloads, /\.part-\d+$/)

  let sums: Map<string, string>
  try {
    log.debug(`GET ${sumsUrl}`)
    const text = await got(sumsUrl, {timeout: {connect: 30_000, response: 60_000}, retry: {limit: 1}, signal: request.signal}).text()
    sums = parseSha256Sums(text)
  } catch (error) {
    if (request.signal?.aborted) throw request.signal.reason
    // Offline: a tarball verified earlier will do.
    const cached = await cachedRelease(version)
    if (cached) {
      log.warn(`cannot fetch ${sumsUrl} (${(error as Error).message}): using ${cached.file}, verified when it was downloaded`)
      return {...cached, url: `${dirUrl}/${cached.name}`, version: cached.name.slice('linux-'.length, -'.tar.xz'.length), downloaded: false}
    }
    throw new PmemlabError(`cannot fetch ${sumsUrl}: ${(error as Error).message}`, ExitCode.failure, 'check --mirror or PMEMLAB_KERNEL_MIRROR, or build from a local tarball with --source FILE')
  }
  const name = pickRelease(version, sums.keys())
  if (!name) throw notFound(`no linux-${version}${VERSION_SPEC.exec(version)![3] === undefined ? '[.N]' : ''}.tar.xz in ${sumsUrl}`, 'check the version, or the mirror')
  const expected = sums.get(name)!
  const resolved = name.slice('linux-'.length, -'.tar.xz'.length)
  const url = `${dirUrl}/${name}`
  const file = join(downloads, name)
  const recorded = await readFile(`${file}.sha256`, 'utf8').then((s) => s.trim(), () => undefined)
  if (recorded === expected && (await exists(file))) return {file, sha256: expected, version: resolved, url, downloaded: false}
  if (recorded !== undefined && recorded !== expected) log.warn(`${name} in the cache does not match ${sumsUrl}: downloading it again`)

  await download(url, file, expected, request.signal)
  return {file, sha256: expected, version: resolved, url, downloaded: true}
}

async function cachedRelease(version: string): Promise<{file: string; name: string; sha256: string} | undefined> {
  const names = (await readdir(downloadsDir()).catch(() => [] as string[])).filter((n) => n.endsWith('.tar.xz'))
  const verified: string[] = []
  for (const name of names) if (await exists(join(downloadsDir(), `${name}.sha256`))) verified.push(name)
  const name = pickRelease(version, verified)
  if (!name) return undefined
  const file = join(downloadsDir(), name)
  return {file, name, sha256: (await readFile(`${file}.sha256`, 'utf8')).trim()}
}

/** Streams url to a temp file next to `file`, hashing as it goes; renames only when the sum matches. */
async function download(url: string, file: string, expected: string, signal?: AbortSignal): Promise<void> {
  const part = `${file}.part-${process.pid}`
  const name = posix.basename(file)
  const hash = createHash('sha256')
  const progress = new Progress(`downloading ${name}`)
  let received = 0
  let total: number | undefined
  log.info(`downloading ${url}`)
  try {
    const stream = got.stream(url, {timeout: {connect: 30_000, response: 60_000, read: 60_000}, retry: {limit: 0}, signal})
    stream.on('response', (response: {headers: Record<string, string | undefined>}) => {
      const length = Number(response.headers['content-length'])
      if (Number.isFinite(length) && length > 0) total = length
    })
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length
      hash.update(chunk)
      progress.update(total ? `${humanSize(received)} of ${humanSize(total)} (${Math.floor((100 * received) / total)}%)` : humanSize(received), total ? received / total : undefined)
    })
    await pipeline(stream, createWriteStream(part, {mode: 0o644}))
  } catch (error) {
    progress.done()
    await rm(part, {force: true})
    if (signal?.aborted) throw signal.reason
    const status = (error as {response?: {statusCode?: number}}).response?.statusCode
    if (status !== undefined && status >= 400) throw new PmemlabError(`cannot download ${url}: HTTP ${status}`, ExitCode.failure, 'check the version and the mirror; nothing was kept')
    const amount = total ? `${humanSize(received)} of ${humanSize(total)}` : humanSize(received)
    throw new PmemlabError(`the download of ${url} was cut off after ${amount} (${(error as Error).message})`, ExitCode.failure, 'nothing was kept; run the build again to retry')
  }
  progress.done()
  if (total !== undefined && received !== total) {
    await rm(part, {force: true})
    throw new PmemlabError(`the download of ${url} was cut off after ${humanSize(received)} of ${humanSize(total)}`, ExitCode.failure, 'nothing was kept; run the build again to retry')
  }
  const actual = hash.digest('hex')
  if (actual !== expected) {
    await rm(part, {force: true})
    throw new PmemlabError(
      `checksum mismatch for ${name}: sha256sums.asc says ${expected}, the download is ${actual}`,
      ExitCode.failure,
      'the mirror serves a different or corrupted file; nothing was kept',
    )
  }
  await writeFile(`${file}.sha256.part-${process.pid}`, `${expected}\n`)
  await rename(part, file)
  await rename(`${file}.sha256.part-${process.pid}`, `${file}.sha256`)
  log.info(`downloaded ${name} (${humanSize(received)}, sha256 ${expected.slice(0, 16)}… verified)`)
}

// ------------------------------------------------------------------------------------------------
// Safe extraction
// ------------------------------------------------------------------------------------------------

/** Why a tar entry may not be extracted, or undefined when it is fine. Paths are the archive's, before stripping the top directory. */
export function unsafeEntryReason(entry: {path: string; type: string; linkpath?: string}): string | undefined {
  const path = entry.path.replaceAll('\\', '/')
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'absolute path'
  if (path.split('/').includes('..')) return '".." in the path'
  if (['CharacterDevice', 'BlockDevice', 'FIFO'].includes(entry.type)) return `${entry.type} entry`
  if (entry.type === 'Link' || entry.type === 'SymbolicLink') {
    const target = (entry.linkpath ?? '').replaceAll('\\', '/')
    if (target.startsWith('/')) return `${entry.type === 'Link' ? 'hard link' : 'symlink'} to an absolute path`
    // Hard links name an archive path; symlinks are relative to the link's directory. Either must stay inside the top directory.
    const base = entry.type === 'Link' ? '' : posix.dirname(path)
    const resolved = posix.normalize(posix.join(base, target))
    const top = path.split('/')[0]
    if (resolved === '..' || resolved.startsWith('../') || (entry.type === 'Link' && resolved.split('/').includes('..'))) return `link that leaves the tree (${target})`
    if (entry.type === 'SymbolicLink' && resolved.split('/')[0] !== top) return `symlink that leaves the tree (${target})`
  }
  return undefined
}

/**
 * Extracts a tar stream into dest, dropping the top directory (linux-6.1/, linux-source-6.1/).
 * Absolute paths, ".." and links that point out of the tree are refused: the whole extraction
 * fails and names them (the caller removes the partial directory).
 */
export async function extractTarStream(input: Readable, dest: string, label: string, signal?: AbortSignal): Promise<void> {
  const refused: string[] = []
  await mkdir(dest, {recursive: true})
  const extractor = tar.x({
    cwd: dest,
    strip: 1,
    // Files belong to whoever runs pmemlab, even as root (the archive's uids mean nothing here).
    preserveOwner: false,
    filter: (path, entry) => {
      const type = 'type' in entry ? String(entry.type) : 'File'
      const linkpath = 'linkpath' in entry ? (entry.linkpath as string | undefined) : undefined
      const reason = unsafeEntryReason({path, type, linkpath})
      if (reason) refused.push(`${path} (${reason})`)
      return reason === undefined
    },
    onwarn: (code: string, message: string) => {
      if (code !== 'TAR_ENTRY_INFO') log.debug(`tar: ${code}: ${message}`)
    },
  })
  await pipeline(input, extractor, {signal})
  if (refused.length > 0) {
    throw new PmemlabError(
      `refusing ${label}: ${refused.length} unsafe entr${refused.length === 1 ? 'y' : 'ies'}: ${refused.slice(0, 3).join(', ')}${refused.length > 3 ? ', …' : ''}`,
      ExitCode.failure,
      'an archive with absolute paths, ".." or links out of the tree is not extracted',
    )
  }
}

/** Extracts a .tar.xz (through xz -dc), .tar.gz or .tar file into dest. */
export async function extractTarball(file: string, dest: string, signal?: AbortSignal): Promise<void> {
  const magic = Buffer.alloc(6)
  const handle = await open(file, 'r')
  try {
    await handle.read(magic, 0, 6, 0)
  } finally {
    await handle.close()
  }
  const isXz = magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))
  if (isXz) {
    const xz = await requireProgram('xz', 'xz-utils')
    const pass = new PassThrough()
    const extraction = extractTarStream(pass, dest, file, signal)
    const child = run(xz, ['-dc', '--', file], {stdin: 'ignore', stdout: ['pipe', pass], buffer: false, cancelSignal: signal})
    await Promise.all([extraction, child])
  } else {
    // gzip or plain tar: the tar package handles both.
    await extractTarStream(createReadStream(file), dest, file, signal)
  }
}

// ------------------------------------------------------------------------------------------------
// Sources
// ------------------------------------------------------------------------------------------------

interface PreparedSource {
  record: SourceRecord
  /** What the key uses. */
  keySource: Record<string, string | null>
  /** Where the kernel source is, or how to get it. */
  srcDir?: string
  tarball?: string
  gitArchive?: {dir: string; commit: string}
  fetchMs: number
}

/** sha256 of a file, remembered by path, size, mtime and inode so a second build need not reread 140 MB. */
async function hashFileCached(file: string): Promise<string> {
  const info = await stat(file)
  const memoFile = join(buildDir(), 'file-hashes.json')
  type Memo = Record<string, {size: number; mtimeMs: number; ino: number; sha256: string}>
  const memo: Memo = await readFile(memoFile, 'utf8').then((t) => JSON.parse(t) as Memo, () => ({}))
  const known = memo[file]
  if (known && known.size === info.size && known.mtimeMs === info.mtimeMs && known.ino === info.ino) return known.sha256
  const hash = createHash('sha256')
  await pipeline(createReadStream(file), hash)
  const digest = hash.digest('hex')
  memo[file] = {size: info.size, mtimeMs: info.mtimeMs, ino: info.ino, sha256: digest}
  await mkdir(buildDir(), {recursive: true})
  const temp = `${memoFile}.tmp-${process.pid}`
  await writeFile(temp, JSON.stringify(memo, null, 1))
  await rename(temp, memoFile)
  return digest
}

async function git(dir: string, args: string[], options: {encoding?: 'buffer'} = {}) {
  const gitPath = await requireProgram('git', 'git')
  try {
    return await run(gitPath, ['-C', dir, ...args], {stdin: 'ignore', encoding: options.encoding === 'buffer' ? 'buffer' : 'utf8', maxBuffer: 1024 * 1024 * 1024})
  } catch (error) {
    const stderr = String((error as {stderr?: unknown}).stderr ?? '').trim().split('\n')[0]
    throw usageError(`git ${args.join(' ')} in ${dir} failed${stderr ? `: ${stderr}` : ''}`)
  }
}

async function prepareSource(source: KernelSource, signal?: AbortSignal): Promise<PreparedSource> {
  const started = Date.now()
  switch (source.kind) {
    case 'version': {
      const tarball = await fetchKernelTarball({version: source.version, mirror: resolveMirror(source.mirror), signal})
      return {
        record: {kind: 'version', requested: source.version, version: tarball.version, file: posix.basename(tarball.file), url: tarball.url, sha256: tarball.sha256},
        keySource: {tarball: tarball.sha256},
        tarball: tarball.file,
        fetchMs: Date.now() - started,
      }
    }
    case 'source': {
      const file = resolve(source.file)
      if (!/\.tar(\.xz|\.gz)?$|\.tgz$/.test(file)) throw usageError(`--source ${source.file}: expected a .tar.xz, .tar.gz or .tar file`)
      if (!(await exists(file))) throw notFound(`--source ${source.file}: no such file`)
      const digest = await hashFileCached(file)
      return {record: {kind: 'source', file, sha256: digest}, keySource: {tarball: digest}, tarball: file, fetchMs: 0}
    }
    case 'tree': {
      const dir = resolve(source.dir)
      if (!(await exists(join(dir, 'Kconfig'))) || !(await exists(join(dir, 'Makefile')))) throw usageError(`--tree ${source.dir}: not a kernel source tree (no Kconfig or Makefile)`)
      const rev = source.ref ?? 'HEAD'
      const commit = String((await git(dir, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`])).stdout).trim()
      if (source.ref) {
        return {record: {kind: 'tree', dir, ref: source.ref, commit, dirty: null}, keySource: {commit, dirty: null}, gitArchive: {dir, commit}, fetchMs: 0}
      }
      if ((await exists(join(dir, '.config'))) || (await exists(join(dir, 'include', 'config', 'auto.conf')))) {
        throw usageError(
          `${dir} has an in-tree build (.config): the kernel refuses out-of-tree (O=) builds of such a tree`,
          `run "make mrproper" there (it deletes that build), or build a clean snapshot with --ref HEAD`,
        )
      }
      const dirty = await dirtyHash(dir)
      if (dirty) log.info(`${dir} has uncommitted changes: they are part of the build (diff ${dirty.slice(0, 12)})`)
      return {record: {kind: 'tree', dir, commit, dirty}, keySource: {commit, dirty}, srcDir: dir, fetchMs: 0}
    }
  }
}

/** null for a clean tree; else sha256 over `git diff HEAD` and the untracked files (names and contents). */
async function dirtyHash(dir: string): Promise<string | null> {
  const status = String((await git(dir, ['status', '--porcelain', '--untracked-files=normal'])).stdout)
  if (status.trim() === '') return null
  const hash = createHash('sha256')
  hash.update((await git(dir, ['diff', 'HEAD', '--binary'], {encoding: 'buffer'})).stdout as Uint8Array)
  const untracked = String((await git(dir, ['ls-files', '-z', '--others', '--exclude-standard'])).stdout).split('\0').filter(Boolean).sort()
  for (const file of untracked) {
    hash.update(`\0untracked\0${file}\0`)
    hash.update(await readFile(join(dir, file)).catch(() => Buffer.alloc(0)))
  }
  return hash.digest('hex')
}

/** The extracted source of a tarball or git commit, shared by every build of it. */
async function sourceDir(prepared: PreparedSource, interrupt?: Interrupt): Promise<{dir: string; extractMs: number}> {
  if (prepared.srcDir) return {dir: prepared.srcDir, extractMs: 0}
  const id = prepared.tarball ? (prepared.keySource.tarball as string) : `git-${prepared.gitArchive!.commit}`
  const dir = join(buildDir(), `src-${id.slice(0, 24)}`)
  const marker = join(dir, '.pmemlab-source')
  if (await exists(marker)) return {dir, extractMs: 0}
  await mkdir(buildDir(), {recursive: true})
  const release = await acquireLock(`${dir}.lock`, 'kernel source', interrupt?.aborted)
  const temp = `${dir}.tmp-${process.pid}`
  try {
    if (await exists(marker)) return {dir, extractMs: 0}
    await removeStaleTemps(buildDir(), new RegExp(`^src-${id.slice(0, 24)}\\.tmp-\\d+$`))
    await rm(dir, {recursive: true, force: true})
    const started = Date.now()
    const label = prepared.tarball ? posix.basename(prepared.tarball) : `${prepared.gitArchive!.dir} at ${prepared.gitArchive!.commit.slice(0, 12)}`
    log.info(`extracting ${label}`)
    if (prepared.tarball) {
      await extractTarball(prepared.tarball, temp, interrupt?.aborted)
    } else {
      const {dir: repo, commit} = prepared.gitArchive!
      const gitPath = await requireProgram('git', 'git')
      const pass = new PassThrough()
      const extraction = extractTarStream(pass, temp, `git archive ${commit}`, interrupt?.aborted)
      const child = run(gitPath, ['-C', repo, 'archive', '--format=tar', '--prefix=linux/', commit], {stdin: 'ignore', stdout: ['pipe', pass], buffer: false, cancelSignal: interrupt?.aborted})
      await Promise.all([extraction, child])
    }
    interrupt?.check()
    if (!(await exists(join(temp, 'Kconfig')))) throw new PmemlabError(`${label} does not hold a kernel source tree (no Kconfig at its top)`, ExitCode.failure)
    await writeFile(join(temp, '.pmemlab-source'), `${JSON.stringify(prepared.record)}\n`)
    await rename(temp, dir)
    const extractMs = Date.now() - started
    log.info(`extracted in ${formatDuration(extractMs)}`)
    return {dir, extractMs}
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    throw interrupt?.signal ? interrupt.controller.signal.reason : error
  } finally {
    await release()
  }
}

/** VERSION.PATCHLEVEL.SUBLEVEL(EXTRAVERSION) from a tree's top Makefile. */
export function makefileVersion(makefile: string): string {
  const get = (name: string) => new RegExp(`^${name}[ \\t]*=[ \\t]*(\\S*)`, 'm').exec(makefile)?.[1] ?? ''
  const sub = get('SUBLEVEL')
  return `${get('VERSION')}.${get('PATCHLEVEL')}${sub && sub !== '0' ? `.${sub}` : ''}${get('EXTRAVERSION')}`
}

export function readKconfigTree(srcDir: string): KconfigTree {
  return parseKconfig((path) => {
    try {
      return readFileSync(join(srcDir, path), 'utf8')
    } catch {
      return undefined
    }
  })
}

// ------------------------------------------------------------------------------------------------
// make
// ------------------------------------------------------------------------------------------------

interface Toolchain {
  compiler: string
  ccache: boolean
  /** CC=... HOSTCC=... for make. */
  makeVars: string[]
}

async function toolchain(): Promise<Toolchain> {
  const gcc = await requireProgram('gcc', 'build-essential')
  await requireProgram('make', 'build-essential')
  const compiler = String((await run(gcc, ['--version'], {stdin: 'ignore'})).stdout).split('\n')[0].trim()
  const ccache = (await which('ccache')) !== undefined && process.env.PMEMLAB_CCACHE !== '0'
  return {compiler, ccache, makeVars: ccache ? ['CC=ccache gcc', 'HOSTCC=ccache gcc'] : []}
}

const OBJECT_LINE = /^\s+(CC|LD|AS)\s/

/**
 * Runs make in its own process group (so that Ctrl-C can stop all of it: a small sh records
 * make's pid, which is also its group id, then execs make), all output into the log.
 * onLine sees every line (progress counting).
 */
async function runMake(what: string, args: string[], logFile: string, pidFile: string, interrupt: Interrupt, onLine?: (line: string) => void): Promise<void> {
  interrupt.check()
  const logStream = createWriteStream(logFile, {flags: 'a'})
  logStream.write(`$ ${shellQuote(['make', ...args])}\n`)
  log.debug(`$ ${shellQuote(['make', ...args])}`)
  const tail: string[] = []
  const onOutput = function* (line: unknown) {
    const text = String(line)
    logStream.write(`${text}\n`)
    tail.push(text)
    if (tail.length > 40) tail.shift()
    if (isVerbose()) process.stderr.write(`  ${text}\n`)
    onLine?.(text)
  }
  interrupt.pidFiles.add(pidFile)
  let result
  try {
    result = await run('sh', ['-c', 'echo $$ >"$0" && exec "$@"', pidFile, 'make', ...args], {
      stdin: 'ignore',
      stdout: onOutput,
      stderr: onOutput,
      buffer: false,
      reject: false,
      detached: true,
      env: {LC_ALL: 'C'},
      cancelSignal: interrupt.aborted,
    })
  } finally {
    interrupt.pidFiles.delete(pidFile)
    rmSync(pidFile, {force: true})
    await new Promise<void>((done) => logStream.end(done))
  }
  interrupt.check()
  if (result.exitCode !== 0) {
    const errors = tail.filter((line) => /error|Error \d|\*\*\*/.test(line)).slice(-8)
    for (const line of errors.length > 0 ? errors : tail.slice(-8)) process.stderr.write(`  ${line}\n`)
    throw new PmemlabError(`make ${what} failed (${result.exitCode === undefined ? result.signal ?? 'killed' : `exit code ${result.exitCode}`})`, ExitCode.failure)
  }
}

/** The object count of the newest earlier build like this one, for the progress estimate. */
async function estimateObjects(base: KernelBase, debug: boolean): Promise<number> {
  const similar = (await listKernels()).find((entry) => entry.build.base === base && entry.build.debug === debug && entry.build.objects > 0)
  if (similar) return similar.build.objects
  const estimate = base === 'tinyconfig' ? 1500 : 3200
  return debug ? Math.round(estimate * 1.15) : estimate
}

// ------------------------------------------------------------------------------------------------
// Build
// ------------------------------------------------------------------------------------------------

async function readEntry(dir: string): Promise<BuildJson | undefined> {
  try {
    const parsed = buildJsonSchema.safeParse(JSON.parse(await readFile(join(dir, 'build.json'), 'utf8')))
    if (!parsed.success) return undefined
    if (!(await exists(join(dir, parsed.data.files.kernel)))) return undefined
    return parsed.data
  } catch {
    return undefined
  }
}

function hitResult(key: string, build: BuildJson): BuildResult {
  const dir = join(kernelsDir(), key)
  return {cacheHit: true, key, dir, kernel: join(dir, build.files.kernel), build}
}

/**
 * `pmemlab kernel build`: a cache hit returns at once; otherwise fetch, extract, configure,
 * verify (a dropped option fails here, before compiling), build and store the entry atomically.
 */
export async function buildKernel(request: BuildRequest): Promise<BuildResult> {
  const started = Date.now()
  const base = request.base ?? 'tinyconfig'
  const arch = hostArch()
  const interrupt = new Interrupt()
  interrupt.install()
  try {
    const fragments = await loadFragments(request)
    const [prepared, tools] = await Promise.all([prepareSource(request.source, interrupt.aborted), toolchain()])
    const key = computeKey({source: prepared.keySource, base, fragment: fragments.text, compiler: tools.compiler, arch})
    const entryDir = join(kernelsDir(), key)
    const cached = await readEntry(entryDir)
    if (cached) {
      log.info(`cache hit: ${key.slice(0, 12)} (linux ${cached.kernelVersion}, built ${cached.createdAt})`)
      return hitResult(key, cached)
    }

    await mkdir(kernelsDir(), {recursive: true})
    const release = await acquireLock(`${entryDir}.lock`, 'kernel', interrupt.aborted)
    const tempEntry = join(kernelsDir(), `.tmp-${key}-${process.pid}`)
    const outDir = join(buildDir(), `out-${key.slice(0, 16)}-${process.pid}`)
    try {
      const again = await readEntry(entryDir)
      if (again) {
        log.info(`cache hit: ${key.slice(0, 12)} (built meanwhile by another pmemlab)`)
        return hitResult(key, again)
      }
      await removeStaleTemps(kernelsDir(), new RegExp(`^\\.tmp-${key}-\\d+$`))
      await removeStaleTemps(buildDir(), new RegExp(`^out-${key.slice(0, 16)}-\\d+$`))
      await rm(entryDir, {recursive: true, force: true}) // an incomplete leftover (no build.json or no bzImage)
      await mkdir(tempEntry, {recursive: true})
      await mkdir(outDir, {recursive: true})
      const logFile = join(tempEntry, 'build.log')
      const pidFile = join(buildDir(), `make-${key.slice(0, 16)}.pid`)

      const {dir: srcDir, extractMs} = await sourceDir(prepared, interrupt)
      const kernelVersion = makefileVersion(await readFile(join(srcDir, 'Makefile'), 'utf8'))
      const makeBase = ['-C', srcDir, `O=${outDir}`, ...tools.makeVars]

      // Configure, then prove that every requested option survived.
      const configureStarted = Date.now()
      log.info(`configuring linux ${kernelVersion}: ${base} + ${fragments.records.map((r) => r.name.replace(/^kernel-configs\//, '')).join(' + ')}${request.sets?.length ? ` + ${request.sets.length} --set` : ''}`)
      await runMake(base, [...makeBase, base], logFile, pidFile, interrupt)
      const configPath = join(outDir, '.config')
      await writeFile(configPath, applyFragment(await readFile(configPath, 'utf8'), fragments.merged.options))
      await runMake('olddefconfig', [...makeBase, 'olddefconfig'], logFile, pidFile, interrupt)
      const finalConfig = await readFile(configPath, 'utf8')
      const drops = verifyConfig(fragments.merged.options, finalConfig)
      if (drops.length > 0) {
        const tree = readKconfigTree(srcDir)
        const final = parseDotConfig(finalConfig)
        for (const drop of drops) log.error(`${explainDrop(tree, drop, final, fragments.merged.options)} [requested in ${origin(drop.option)}]`)
        throw new PmemlabError(
          `${drops.length} requested option${drops.length === 1 ? '' : 's'} did not survive make olddefconfig: nothing was compiled`,
          ExitCode.failure,
          'fix the fragment or --set named above (pmemlab kernel config --explain CONFIG_X shows the dependencies)',
        )
      }
      const configureMs = Date.now() - configureStarted

      // Build.
      const modules = /^CONFIG_[A-Za-z0-9_]+=m$/m.test(finalConfig)
      const jobs = request.jobs ?? availableParallelism()
      const estimate = await estimateObjects(base, request.debug === true)
      const progress = new Progress('building')
      let objects = 0
      const buildStarted = Date.now()
      log.info(`building bzImage${modules ? ' and modules' : ''} with ${jobs} job${jobs === 1 ? '' : 's'}${tools.ccache ? ' and ccache' : ''} (make output, until it moves into the entry: ${logFile})`)
      try {
        await runMake(modules ? 'bzImage modules' : 'bzImage', [...makeBase, `-j${jobs}`, 'bzImage', ...(modules ? ['modules'] : [])], logFile, pidFile, interrupt, (line) => {
          if (!OBJECT_LINE.test(line)) return
          objects++
          const shown = Math.min(objects, estimate)
          const fraction = Math.min(0.99, objects / estimate)
          progress.update(objects > estimate ? `${objects} objects (more than the ${estimate} expected)` : `${shown}/${estimate} objects (${Math.floor(fraction * 100)}%)`, fraction)
        })
      } finally {
        progress.done()
      }
      if (modules) await runMake('modules_install', [...makeBase, `INSTALL_MOD_PATH=${join(tempEntry, 'modules')}`, 'INSTALL_MOD_STRIP=1', 'modules_install'], logFile, pidFile, interrupt)
      const buildMs = Date.now() - buildStarted

      // Assemble the entry and publish it with one rename.
      await copyFile(join(outDir, 'arch', 'x86', 'boot', 'bzImage'), join(tempEntry, 'bzImage'))
      await copyFile(configPath, join(tempEntry, '.config'))
      await copyFile(join(outDir, 'System.map'), join(tempEntry, 'System.map')).catch(() => undefined)
      if (request.debug) await copyFile(join(outDir, 'vmlinux'), join(tempEntry, 'vmlinux'))
      const build: BuildJson = {
        key,
        version: prepared.record.kind === 'version' ? prepared.record.version : kernelVersion,
        kernelVersion,
        source: prepared.record,
        base,
        debug: request.debug === true,
        fragments: fragments.records,
        sets: request.sets ?? [],
        requested: Object.fromEntries([...fragments.merged.options].map(([symbol, option]) => [`CONFIG_${symbol}`, option.value])),
        compiler: tools.compiler,
        ccache: tools.ccache,
        arch,
        jobs,
        modules,
        objects,
        timings: {fetchMs: prepared.fetchMs, extractMs, configureMs, buildMs, totalMs: Date.now() - started},
        createdAt: new Date().toISOString(),
        files: {kernel: 'bzImage', config: '.config', log: 'build.log', systemMap: 'System.map', ...(request.debug ? {vmlinux: 'vmlinux'} : {})},
      }
      await writeFile(join(tempEntry, 'build.json'), `${JSON.stringify(build, null, 2)}\n`)
      interrupt.check()
      await rename(tempEntry, entryDir)
      log.info(`built linux ${kernelVersion} in ${formatDuration(build.timings.totalMs)} (${objects} objects): ${key.slice(0, 12)}`)
      return {cacheHit: false, key, dir: entryDir, kernel: join(entryDir, 'bzImage'), build}
    } catch (error) {
      // Keep the make output of a failed build where the user can read it.
      if (!interrupt.signal && (await exists(join(tempEntry, 'build.log')))) {
        const failedLog = join(buildDir(), `failed-${key.slice(0, 16)}.log`)
        await rename(join(tempEntry, 'build.log'), failedLog).catch(() => undefined)
        if (error instanceof PmemlabError && error.message.startsWith('make ')) {
          throw new PmemlabError(error.message, error.exitCode, `the make output is in ${failedLog}`)
        }
      }
      throw interrupt.signal ? interrupt.controller.signal.reason : error
    } finally {
      interrupt.killAll('SIGKILL')
      await rm(tempEntry, {recursive: true, force: true})
      await rm(outDir, {recursive: true, force: true})
      await release()
    }
  } catch (error) {
    if (interrupt.signal) throw interrupt.controller.signal.reason
    throw error
  } finally {
    interrupt.uninstall()
  }
}

// ------------------------------------------------------------------------------------------------
// The cache: list, resolve, remove, prune
// ------------------------------------------------------------------------------------------------

export interface KernelEntry {
  key: string
  dir: string
  kernel: string
  bytes: number
  build: BuildJson
}

async function directorySize(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, {withFileTypes: true}).catch(() => [])) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await directorySize(path)
    else total += await stat(path).then((s) => s.size, () => 0)
  }
  return total
}

/** Every complete entry, newest first. */
export async function listKernels(): Promise<KernelEntry[]> {
  const entries: KernelEntry[] = []
  for (const name of await readdir(kernelsDir()).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    const dir = join(kernelsDir(), name)
    const build = await readEntry(dir)
    if (!build || build.key !== name) continue
    entries.push({key: name, dir, kernel: join(dir, build.files.kernel), bytes: await directorySize(dir), build})
  }
  return entries.sort((a, b) => b.build.createdAt.localeCompare(a.build.createdAt) || a.key.localeCompare(b.key))
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
  const entries = await listKernels()
  if (form === 'latest') return {form, matches: entries.slice(0, 1)}
  if (form === 'key') return {form, matches: entries.filter((e) => e.key.startsWith(spec))}
  return {form, matches: entries.filter((e) => versionMatches(e.build, spec)).slice(0, 1)}
}

async function findOne(spec: string): Promise<KernelEntry | undefined> {
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
): Promise<{spec: string; version: string; key: string; kernel: string; kernelArgs: string[]; buildJson: string} | undefined> {
  const entry = await findOne(spec)
  if (!entry) return undefined
  return {spec, version: entry.build.kernelVersion, key: entry.key, kernel: entry.kernel, kernelArgs: [...KERNEL_ARGS], buildJson: join(entry.dir, 'build.json')}
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
  for (const entry of (await listKernels()).slice(keep)) {
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

// ------------------------------------------------------------------------------------------------
// Explain (pmemlab kernel config --explain)
// ------------------------------------------------------------------------------------------------

export interface ExplainRequest {
  symbol: string
  source?: KernelSource
  /** A .config to evaluate the dependencies against. */
  dotConfig?: string
  /** A built kernel (key, version, latest): its .config, and its source when none is given. */
  kernel?: string
}

export interface ExplainResult {
  kernelVersion: string
  explanation: Explanation
  /** With a .config where the symbol is off: why, in one line. */
  reason?: string
}

/** The Kconfig facts about one symbol, from the given source (or a built kernel's source). */
export async function explainSymbol(request: ExplainRequest): Promise<ExplainResult> {
  const symbol = request.symbol.replace(/^CONFIG_/, '')
  if (!/^[A-Za-z0-9_]+$/.test(symbol)) throw usageError(`--explain ${request.symbol}: expected a symbol such as CONFIG_DEV_DAX`)
  let configText: string | undefined
  let source = request.source
  if (request.kernel) {
    const entry = await findOne(request.kernel)
    if (!entry) throw usageError(`--kernel ${request.kernel}: expected a kernel key, version or "latest"`)
    configText = await readFile(join(entry.dir, entry.build.files.config), 'utf8')
    source ??= sourceOfEntry(entry.build)
  }
  if (request.dotConfig) {
    try {
      configText = await readFile(request.dotConfig, 'utf8')
    } catch (error) {
      throw usageError(`cannot read ${request.dotConfig}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  if (!source) throw usageError('which kernel source? give --source FILE, --tree DIR, --version V or --kernel SPEC')
  const prepared = await prepareSource(source)
  const {dir} = await sourceDir(prepared)
  const kernelVersion = makefileVersion(await readFile(join(dir, 'Makefile'), 'utf8'))
  const tree = readKconfigTree(dir)
  const config = configText === undefined ? undefined : parseDotConfig(configText)
  const explanation = explain(tree, symbol, config)
  if (!explanation.exists) throw notFound(`CONFIG_${symbol} does not exist in this kernel's Kconfig (linux ${kernelVersion})`)
  const result: ExplainResult = {kernelVersion, explanation}
  if (config && (explanation.value === 'n' || explanation.value === undefined)) {
    result.reason = explainDrop(tree, {symbol, requested: 'y', actual: config.get(symbol)}, config).replace(' was dropped', ' is off')
  }
  return result
}

function sourceOfEntry(build: BuildJson): KernelSource {
  const source = build.source
  if (source.kind === 'version') return {kind: 'version', version: source.version, mirror: source.url.replace(/\/v\d+\.x\/[^/]+$/, '')}
  if (source.kind === 'source') return {kind: 'source', file: source.file}
  return {kind: 'tree', dir: source.dir, ref: source.dirty ? undefined : source.commit}
}

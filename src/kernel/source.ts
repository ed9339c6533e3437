/**
 * The kernel source of a build: a kernel.org release (downloaded and verified by fetch.ts), a
 * Debian orig tarball (resolved and verified by debian-source.ts), a tarball, or a git tree (its
 * working tree in place, or a commit through git archive). A tarball
 * or commit is extracted once, under build/src-<id>/, and shared by every build of it; with
 * --patch, a copy of it is patched (patch-tree.ts), never the extracted source or the user's tree.
 */
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {join, posix, resolve} from 'node:path'
import {PassThrough} from 'node:stream'
import {acquireLock, hashFileCached, removeStaleTemps} from '../core/cache.js'
import {ExitCode, notFound, PmemlabError, usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {log} from '../core/log.js'
import {buildDir} from '../core/paths.js'
import {canAccess as exists, requireProgram} from '../core/which.js'
import {fetchDebianOrig} from './debian-source.js'
import {extractTarball, extractTarStream, fetchKernelTarball, resolveMirror} from './fetch.js'
import {parseKconfig, type KconfigTree} from './kconfig/parse.js'
import {formatDuration, type Interrupt} from './make.js'
import {patchedSourceDir} from './patch-tree.js'
import type {PatchInput} from './patch.js'
import type {SourceRecord} from './store.js'

export type KernelSource =
  | {kind: 'version'; version: string; mirror?: string}
  /** A version resolved in Debian's Sources indexes; mirror and suites default as debian-source.ts says. */
  | {kind: 'debian'; version: string; mirror?: string; suites?: string[]; pinned?: {url: string; sha256: string}}
  | {kind: 'source'; file: string}
  | {kind: 'tree'; dir: string; ref?: string}

export interface PreparedSource {
  record: SourceRecord
  /** What the key uses. */
  keySource: Record<string, string | null>
  /** Where the kernel source is, or how to get it. */
  srcDir?: string
  tarball?: string
  gitArchive?: {dir: string; commit: string}
  /** --patch, in order (none when absent): sourceDir() gives a patched copy of the source when there are any. */
  patches?: PatchInput[]
  fetchMs: number
}

/** `--version debian:6.12`, and what build.json's source record says was requested. */
export const DEBIAN_PREFIX = 'debian:'

/** A source record of a build from Debian's archive (a release record whose request was "debian:V"). */
export const isDebianRecord = (record: SourceRecord) => record.kind === 'version' && record.requested.startsWith(DEBIAN_PREFIX)

/**
 * The source a built kernel's record names, to read it again (`kernel config --kernel KEY`). A
 * Debian build names its exact tarball, so it is fetched by URL and checksum, not looked up again.
 */
export function sourceOfRecord(record: SourceRecord): KernelSource {
  if (record.kind === 'version') {
    if (isDebianRecord(record)) return {kind: 'debian', version: record.version, pinned: {url: record.url, sha256: record.sha256}}
    return {kind: 'version', version: record.version, mirror: record.url.replace(/\/v\d+\.x\/[^/]+$/, '')}
  }
  if (record.kind === 'source') return {kind: 'source', file: record.file}
  return {kind: 'tree', dir: record.dir, ref: record.dirty ? undefined : record.commit}
}

export async function git(dir: string, args: string[], options: {encoding?: 'buffer'} = {}) {
  const gitPath = await requireProgram('git', 'git')
  try {
    return await run(gitPath, ['-C', dir, ...args], {stdin: 'ignore', encoding: options.encoding === 'buffer' ? 'buffer' : 'utf8', maxBuffer: 1024 * 1024 * 1024})
  } catch (error) {
    const stderr = String((error as {stderr?: unknown}).stderr ?? '').trim().split('\n')[0]
    throw usageError(`git ${args.join(' ')} in ${dir} failed${stderr ? `: ${stderr}` : ''}`)
  }
}

export async function prepareSource(source: KernelSource, signal?: AbortSignal, patches: PatchInput[] = []): Promise<PreparedSource> {
  const started = Date.now()
  if (patches.length > 0 && source.kind === 'tree' && !source.ref) {
    // The working tree is built in place (make O=...), and pmemlab never writes to a user's tree.
    throw usageError(
      `--patch cannot be applied to the working tree of --tree ${source.dir}: pmemlab builds it in place and never writes to it`,
      'add --ref HEAD to patch a clean snapshot of a commit in pmemlab\'s own copy, or apply the patches in your tree yourself (git am)',
    )
  }
  switch (source.kind) {
    case 'version': {
      const tarball = await fetchKernelTarball({version: source.version, mirror: resolveMirror(source.mirror), signal})
      return {
        record: {kind: 'version', requested: source.version, version: tarball.version, file: posix.basename(tarball.file), url: tarball.url, sha256: tarball.sha256},
        keySource: {tarball: tarball.sha256},
        tarball: tarball.file,
        patches,
        fetchMs: Date.now() - started,
      }
    }
    case 'debian': {
      const orig = await fetchDebianOrig({version: source.version, mirror: source.mirror, suites: source.suites, pinned: source.pinned, signal})
      return {
        // A release record (store.ts knows no other), told apart by its "debian:" request.
        record: {kind: 'version', requested: `${DEBIAN_PREFIX}${source.version}`, version: orig.version, file: posix.basename(orig.file), url: orig.url, sha256: orig.sha256},
        keySource: {tarball: orig.sha256, version: orig.version, origin: 'debian'},
        tarball: orig.file,
        patches,
        fetchMs: Date.now() - started,
      }
    }
    case 'source': {
      const file = resolve(source.file)
      if (!/\.tar(\.xz|\.gz)?$|\.tgz$/.test(file)) throw usageError(`--source ${source.file}: expected a .tar.xz, .tar.gz or .tar file`)
      if (!(await exists(file))) throw notFound(`--source ${source.file}: no such file`)
      const digest = await hashFileCached(file, join(buildDir(), 'file-hashes.json'))
      return {record: {kind: 'source', file, sha256: digest}, keySource: {tarball: digest}, tarball: file, patches, fetchMs: 0}
    }
    case 'tree': {
      const {dir, commit} = await checkTree(source)
      if (source.ref) {
        return {record: {kind: 'tree', dir, ref: source.ref, commit, dirty: null}, keySource: {commit, dirty: null}, gitArchive: {dir, commit}, patches, fetchMs: 0}
      }
      const dirty = await dirtyHash(dir)
      if (dirty) log.info(`${dir} has uncommitted changes: they are part of the build (diff ${dirty.slice(0, 12)})`)
      return {record: {kind: 'tree', dir, commit, dirty}, keySource: {commit, dirty}, srcDir: dir, patches, fetchMs: 0}
    }
  }
}

/**
 * What prepareSource checks of a git tree before anything is built, without hashing its changes:
 * a kernel tree, the commit of REF (HEAD by default), and for the working tree no in-tree build.
 */
export async function checkTree(source: {dir: string; ref?: string}): Promise<{dir: string; commit: string}> {
  const dir = resolve(source.dir)
  if (!(await exists(join(dir, 'Kconfig'))) || !(await exists(join(dir, 'Makefile')))) throw usageError(`--tree ${source.dir}: not a kernel source tree (no Kconfig or Makefile)`)
  const commit = String((await git(dir, ['rev-parse', '--verify', '--quiet', `${source.ref ?? 'HEAD'}^{commit}`])).stdout).trim()
  if (!source.ref && ((await exists(join(dir, '.config'))) || (await exists(join(dir, 'include', 'config', 'auto.conf'))))) {
    throw usageError(
      `${dir} has an in-tree build (.config): the kernel refuses out-of-tree (O=) builds of such a tree`,
      `run "make mrproper" there (it deletes that build), or build a clean snapshot with --ref HEAD`,
    )
  }
  return {dir, commit}
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

/**
 * The source tree to build: the extracted tarball or git commit, shared by every build of it, or
 * with patches its patched copy (extractMs then includes the patching).
 */
export async function sourceDir(prepared: PreparedSource, interrupt?: Interrupt): Promise<{dir: string; extractMs: number}> {
  if (prepared.srcDir) return {dir: prepared.srcDir, extractMs: 0}
  const pristine = await extractedDir(prepared, interrupt)
  if (!prepared.patches || prepared.patches.length === 0) return pristine
  const patched = await patchedSourceDir(pristine.dir, prepared.patches, interrupt)
  return {dir: patched.dir, extractMs: pristine.extractMs + patched.patchMs}
}

/** The extracted source of a tarball or git commit, shared by every build of it. */
async function extractedDir(prepared: PreparedSource, interrupt?: Interrupt): Promise<{dir: string; extractMs: number}> {
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

/** The Kconfig files of a source tree, read as the parser asks for them (a missing one is undefined). */
export function readKconfigTree(srcDir: string): KconfigTree {
  return parseKconfig((path) => {
    try {
      return readFileSync(join(srcDir, path), 'utf8')
    } catch {
      return undefined
    }
  })
}

/**
 * Kernel sources from kernel.org or a mirror: the release picked from sha256sums.asc, downloaded
 * with got into downloads/ under a temp name, verified, then renamed; and safe extraction of
 * tarballs (xz through `xz -dc`) and `git archive` streams.
 */
import {createReadStream} from 'node:fs'
import {mkdir, open, readdir, readFile, rename, rm} from 'node:fs/promises'
import {join, posix} from 'node:path'
import {PassThrough, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import * as tar from 'tar'
import {removeStaleTemps} from '../core/cache.js'
import {ExitCode, notFound, PmemlabError, usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {loadGot} from '../core/http.js'
import {download, verifiedDownload} from '../core/download.js'
import {VERSION_SPEC} from './store.js'
import {log} from '../core/log.js'
import {downloadsDir} from '../core/paths.js'
import {canAccess as exists, requireProgram} from '../core/which.js'

export const DEFAULT_MIRROR = 'https://cdn.kernel.org/pub/linux/kernel'

export function resolveMirror(mirror?: string): string {
  return (mirror ?? process.env.PMEMLAB_KERNEL_MIRROR ?? DEFAULT_MIRROR).replace(/\/+$/, '')
}

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
    const got = await loadGot()
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
  const recorded = await verifiedDownload(file)
  if (recorded === expected) return {file, sha256: expected, version: resolved, url, downloaded: false}
  if (recorded !== undefined) log.warn(`${name} in the cache does not match ${sumsUrl}: downloading it again`)

  await download(url, file, expected, 'sha256sums.asc', request.signal)
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
    onwarn: (code: string, message: string, data: {code?: string}) => {
      // An entry that could not be written (a full disk, EACCES...) is a tree with holes: stop at
      // the first one rather than decompress the rest and mark an incomplete source as complete.
      if (code === 'TAR_ENTRY_ERROR') extractor.abort(data instanceof Error ? data : Object.assign(new Error(message), {code: data.code}))
      else if (code !== 'TAR_ENTRY_INFO') log.debug(`tar: ${code}: ${message}`)
    },
  })
  try {
    await pipeline(input, extractor, {signal})
  } catch (error) {
    await discardPartial(dest)
    throw error
  }
  if (refused.length > 0) {
    throw new PmemlabError(
      `refusing ${label}: ${refused.length} unsafe entr${refused.length === 1 ? 'y' : 'ies'}: ${refused.slice(0, 3).join(', ')}${refused.length > 3 ? ', …' : ''}`,
      ExitCode.failure,
      'an archive with absolute paths, ".." or links out of the tree is not extracted',
    )
  }
}

/**
 * Removes what a failed extraction wrote. Writes already under way when it stopped go on for a
 * moment, and one of them creating a file while rm walks the tree fails rm: the tree is moved
 * aside first, so that they (which name paths under dest) find nothing and stop.
 */
async function discardPartial(dest: string): Promise<void> {
  const aside = `${dest}.discard-${process.pid}`
  const moved = await rename(dest, aside).then(() => true, () => false)
  await rm(moved ? aside : dest, {recursive: true, force: true, maxRetries: 10, retryDelay: 50})
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
    try {
      await Promise.all([extraction, child])
    } catch (error) {
      // A failed extraction stops reading: xz would wait on the full pipe until pmemlab exits.
      child.kill('SIGKILL')
      await child.catch(() => undefined)
      throw error
    }
  } else {
    // gzip or plain tar: the tar package handles both.
    await extractTarStream(createReadStream(file), dest, file, signal)
  }
}


/**
 * Debian's archive as a kernel source: the `linux` source package's orig tarball
 * (`linux_<version>.orig.tar.xz`: upstream minus a few non-free files), found in the Sources
 * indexes of a list of suites, downloaded from the Debian mirror into downloads/ under a temp
 * name and checked against the index's sha256 before anything reads it.
 *
 * A version resolves to the newest listed upstream version that matches it (6.12 is 6.12 or
 * any 6.12.N) and whose tarball the mirror really serves: indexes list versions the pool has
 * already dropped, which answer 404, so the next one down is tried, said on stderr.
 */
import {mkdir, readdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {removeStaleTemps} from '../core/cache.js'
import {checksumsSha256, fetchIndex, hostDebianMirror, parseDeb822} from '../core/debian.js'
import {notFound, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {downloadsDir} from '../core/paths.js'
import {download, DownloadError, verifiedDownload} from '../core/download.js'
import {checkVersionSpec} from './fetch.js'
import {sha256} from './key.js'

/**
 * Where versions are looked up, newest kernels first: between them 5.10 (bullseye), 6.1
 * (bookworm), 6.12 (trixie, the backports) and 7.x (forky, sid). All live on the main archive;
 * bookworm-security is on another (debian-security) and is not in the list.
 */
export const DEFAULT_DEBIAN_SUITES = ['sid', 'forky', 'trixie', 'trixie-backports', 'bookworm-backports', 'bookworm', 'bullseye']

/** One orig tarball of the `linux` source package, as the indexes list it. */
export interface DebianOrig {
  /** The upstream version: 6.12.63 (6.1 for linux_6.1.orig.tar.xz). */
  version: string
  /** linux_6.12.63.orig.tar.xz */
  file: string
  /** Its directory in the archive: pool/main/l/linux. */
  directory: string
  sha256: string
  size: number
  /** The suites whose index lists it, in the order they were searched. */
  suites: string[]
}

const RELEASE = /^\d+\.\d+(?:\.\d+)?$/

/** Numeric order of dotted versions: 6.12.9 < 6.12.10 < 6.13; 6.1 counts as 6.1.0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/**
 * The orig tarballs of the `linux` package in one suite's Sources text. Release candidates
 * (7.2~rc3) and stanzas without a sha256 for their orig tarball are left out: neither can be
 * built as a release nor verified.
 */
export function linuxOrigs(suite: string, sourcesText: string): DebianOrig[] {
  const origs: DebianOrig[] = []
  // A full index has tens of thousands of stanzas: parse only the linux ones.
  for (const chunk of sourcesText.split(/\n[ \t]*\n/)) {
    if (!/^Package:[ \t]*linux[ \t]*$/m.test(chunk)) continue
    for (const stanza of parseDeb822(chunk)) {
      if (stanza.get('package') !== 'linux') continue
      // epoch:upstream-revision
      const upstream = (stanza.get('version') ?? '').replace(/^\d+:/, '').replace(/-[^-]*$/, '')
      if (!RELEASE.test(upstream)) continue
      const file = `linux_${upstream}.orig.tar.xz`
      const sum = checksumsSha256(stanza.get('checksums-sha256')).get(file)
      const directory = stanza.get('directory')
      if (!sum || !directory) continue
      origs.push({version: upstream, file, directory, sha256: sum.sha256, size: sum.size, suites: [suite]})
    }
  }
  return origs
}

/**
 * All suites' origs, one per version (the pool holds one file per name; the first suite
 * searched gives the checksum, the others are added to `suites`), newest first.
 */
export function mergeOrigs(perSuite: DebianOrig[][]): DebianOrig[] {
  const byVersion = new Map<string, DebianOrig>()
  for (const origs of perSuite) {
    for (const orig of origs) {
      const known = byVersion.get(orig.version)
      if (!known) byVersion.set(orig.version, {...orig, suites: [...orig.suites]})
      else for (const suite of orig.suites) if (!known.suites.includes(suite)) known.suites.push(suite)
    }
  }
  return [...byVersion.values()].sort((a, b) => compareVersions(b.version, a.version))
}

/** The origs a version names, newest first: 6.12.3 is that one; 6.12 is 6.12 and every 6.12.N. */
export function matchingOrigs(version: string, origs: DebianOrig[]): DebianOrig[] {
  const [, major, minor, point] = checkVersionSpec(version)
  return origs
    .filter((orig) => {
      const [m, n, p] = orig.version.split('.')
      if (m !== major || n !== minor) return false
      return point === undefined || Number(p ?? 0) === Number(point)
    })
    .sort((a, b) => compareVersions(b.version, a.version))
}

/** "6.13 is not in Debian's sid, bookworm indexes at URL: they hold 6.1.192, 7.2.8" */
export function unknownVersionMessage(version: string, suites: string[], mirror: string, origs: DebianOrig[]): string {
  const held = [...origs].sort((a, b) => compareVersions(a.version, b.version)).map((orig) => orig.version)
  return `linux ${version} is not in Debian's ${suites.join(', ')} indexes at ${mirror}: ${held.length > 0 ? `they hold ${held.join(', ')}` : 'they list no linux source release'}`
}

/** A suite list (comma or space separated): PMEMLAB_DEBIAN_SUITES, --debian-suites. */
export function parseSuites(text: string, from: string): string[] {
  const suites = text.split(/[\s,]+/).filter(Boolean)
  const bad = suites.find((suite) => !/^[a-z0-9][a-z0-9.+-]*$/.test(suite))
  if (bad !== undefined || suites.length === 0) {
    throw usageError(`${from} ${JSON.stringify(text)}: expected suite names such as trixie,bookworm${bad !== undefined ? ` ("${bad}" is not one)` : ''}`)
  }
  return [...new Set(suites)]
}

/** The sha256 InRelease gives main/source/Sources.xz: it changes exactly when the index does. */
export function sourcesDigest(inRelease: string): string | undefined {
  const section = /^SHA256:[ \t]*\n((?:[ \t]+.*\n?)*)/m.exec(inRelease)?.[1] ?? ''
  return /^[ \t]+([0-9a-f]{64})[ \t]+\d+[ \t]+main\/source\/Sources\.xz[ \t]*$/m.exec(section)?.[1]
}

// ------------------------------------------------------------------------------------------------
// Edges: the archive and downloads/
// ------------------------------------------------------------------------------------------------

export interface DebianRequest {
  /** 6.12 or 6.12.63. */
  version: string
  /** Default: $PMEMLAB_DEBIAN_MIRROR, else the host's apt mirror, else deb.debian.org. */
  mirror?: string
  /** Default: $PMEMLAB_DEBIAN_SUITES, else DEFAULT_DEBIAN_SUITES. */
  suites?: string[]
  /** A tarball already resolved (a built kernel's record): no index is read. */
  pinned?: {url: string; sha256: string}
  signal?: AbortSignal
}

export interface DebianTarball {
  /** The verified tarball in downloads/. */
  file: string
  sha256: string
  /** The upstream version taken: 6.12.63. */
  version: string
  url: string
  /** The suites that list it (empty when taken from downloads/ with the archive out of reach). */
  suites: string[]
  mirror: string
  downloaded: boolean
}

export const debianSuites = (suites?: string[]): string[] =>
  suites ?? (process.env.PMEMLAB_DEBIAN_SUITES ? parseSuites(process.env.PMEMLAB_DEBIAN_SUITES, 'PMEMLAB_DEBIAN_SUITES') : DEFAULT_DEBIAN_SUITES)

/** A verified Debian orig tarball for the version, resolved in the indexes and downloaded when not in downloads/ yet. */
export async function fetchDebianOrig(request: DebianRequest): Promise<DebianTarball> {
  checkVersionSpec(request.version)
  const downloads = downloadsDir()
  await mkdir(downloads, {recursive: true})
  await removeStaleTemps(downloads, /\.part-\d+$/)
  if (request.pinned) return fetchPinned(request.version, request.pinned, request.signal)
  const suites = debianSuites(request.suites)
  const mirror = (request.mirror ?? (await hostDebianMirror(suites[0]))).replace(/\/+$/, '')

  log.info(`looking up linux ${request.version} in Debian's ${suites.join(', ')} indexes at ${mirror}`)
  const settled = await Promise.allSettled(suites.map((suite) => suiteOrigs(mirror, suite, request.signal)))
  if (request.signal?.aborted) throw request.signal.reason
  const failures = settled.flatMap((result, i) => (result.status === 'rejected' ? [{suite: suites[i], error: result.reason as Error}] : []))
  if (failures.length === suites.length) {
    // Offline: a tarball verified earlier will do, as with kernel.org.
    const cached = await cachedOrig(request.version)
    const why = oneLine(failures[0].error)
    if (cached) {
      log.warn(`${why}: using ${cached.file}, verified when it was downloaded`)
      return {...cached, url: `${mirror}/pool/main/l/linux/${cached.name}`, suites: [], mirror, downloaded: false}
    }
    throw failures[0].error
  }
  for (const {suite, error} of failures) log.warn(`skipping Debian suite ${suite}: ${oneLine(error)}`)
  const reachable = suites.filter((_, i) => settled[i].status === 'fulfilled')
  const origs = mergeOrigs(settled.map((result) => (result.status === 'fulfilled' ? result.value : [])))
  const candidates = matchingOrigs(request.version, origs)
  if (candidates.length === 0) {
    throw notFound(unknownVersionMessage(request.version, reachable, mirror, origs), 'ask for one of those, or add suites with --debian-suites')
  }

  const missing: string[] = []
  for (const [i, orig] of candidates.entries()) {
    const file = join(downloads, orig.file)
    const url = `${mirror}/${orig.directory.replace(/^\/+|\/+$/g, '')}/${orig.file}`
    const taken = () => log.info(`Debian linux ${request.version}: taking ${orig.version} (${orig.file}, listed in ${orig.suites.join(', ')})`)
    const recorded = await verifiedDownload(file)
    if (recorded === orig.sha256) {
      taken()
      return {file, sha256: orig.sha256, version: orig.version, url, suites: orig.suites, mirror, downloaded: false}
    }
    if (recorded !== undefined) log.warn(`${orig.file} in the cache does not match Debian's ${orig.suites[0]} index: downloading it again`)
    try {
      await download(url, file, orig.sha256, `Debian's ${orig.suites[0]} index`, request.signal)
    } catch (error) {
      if (!(error instanceof DownloadError) || (error.status !== 404 && error.status !== 410)) throw error
      missing.push(orig.version)
      const next = candidates[i + 1]
      log.warn(`${orig.file} is listed in ${orig.suites.join(', ')} but ${url} answers HTTP ${error.status}${next ? `: trying ${next.version}` : ''}`)
      continue
    }
    taken()
    return {file, sha256: orig.sha256, version: orig.version, url, suites: orig.suites, mirror, downloaded: true}
  }
  const older = origs.filter((orig) => !missing.includes(orig.version)).map((orig) => orig.version)
  throw notFound(
    `linux ${request.version} is listed in Debian's indexes at ${mirror} (${missing.join(', ')}), but none of its orig tarballs is in the pool (HTTP 404)`,
    older.length > 0 ? `the mirror may be catching up; the indexes also hold ${older.join(', ')}` : 'the mirror may be catching up: try again later',
  )
}

async function fetchPinned(version: string, pinned: {url: string; sha256: string}, signal?: AbortSignal): Promise<DebianTarball> {
  const name = pinned.url.slice(pinned.url.lastIndexOf('/') + 1)
  if (!/^linux_[\w.~+-]+\.orig\.tar\.xz$/.test(name)) throw usageError(`${pinned.url} does not name a linux orig tarball`)
  const file = join(downloadsDir(), name)
  const mirror = pinned.url.replace(/\/pool\/.*$/, '')
  const downloaded = (await verifiedDownload(file)) !== pinned.sha256
  if (downloaded) await download(pinned.url, file, pinned.sha256, 'the build record', signal)
  return {file, sha256: pinned.sha256, version, url: pinned.url, suites: [], mirror, downloaded}
}

const oneLine = (error: Error) => (error instanceof PmemlabError ? error.message : error.message.split('\n')[0])

const isHttpAnswer = (error: unknown) => error instanceof PmemlabError && /: HTTP \d+$/.test(error.message)

/**
 * One suite's linux origs. The index (about 10 MB compressed for sid) is read again only when
 * the suite's InRelease says it changed; the linux stanzas of the last read are kept in
 * downloads/debian-indexes/. A mirror without InRelease has its index read every time.
 */
async function suiteOrigs(mirror: string, suite: string, signal?: AbortSignal): Promise<DebianOrig[]> {
  let digest: string | undefined
  try {
    digest = sourcesDigest(await fetchIndex(mirror, suite, 'InRelease', signal))
  } catch (error) {
    // Only an archive that answered (404: no InRelease here) is worth asking for Sources.xz.
    if (!isHttpAnswer(error)) throw error
  }
  const cacheFile = join(downloadsDir(), 'debian-indexes', `${sha256(mirror).slice(0, 16)}-${suite}.json`)
  if (digest) {
    const cached = await readFile(cacheFile, 'utf8').then((text) => JSON.parse(text) as {digest: string; origs: DebianOrig[]}, () => undefined)
    if (cached?.digest === digest && Array.isArray(cached.origs)) return cached.origs
  }
  const origs = linuxOrigs(suite, await fetchIndex(mirror, suite, 'main/source/Sources.xz', signal))
  if (digest) {
    await mkdir(join(downloadsDir(), 'debian-indexes'), {recursive: true})
    const temp = `${cacheFile}.tmp-${process.pid}`
    await writeFile(temp, `${JSON.stringify({mirror, suite, digest, origs})}\n`)
    await rename(temp, cacheFile)
  }
  return origs
}

/** The newest verified linux_V.orig.tar.xz in downloads/ that the version names. */
async function cachedOrig(version: string): Promise<{file: string; name: string; sha256: string; version: string} | undefined> {
  const origs: DebianOrig[] = []
  for (const name of await readdir(downloadsDir()).catch(() => [] as string[])) {
    const match = /^linux_(\d+\.\d+(?:\.\d+)?)\.orig\.tar\.xz$/.exec(name)
    if (!match) continue
    const recorded = await verifiedDownload(join(downloadsDir(), name))
    if (recorded) origs.push({version: match[1], file: name, directory: '', sha256: recorded, size: 0, suites: []})
  }
  const best = matchingOrigs(version, origs)[0]
  return best && {file: join(downloadsDir(), best.file), name: best.file, sha256: best.sha256, version: best.version}
}

/**
 * Debian's archive, the mirror every Debian host's apt already reaches: the host's mirror (from
 * its apt sources, or $PMEMLAB_DEBIAN_MIRROR for air-gapped labs), the archive's indexes
 * (deb822 stanzas: a suite's Sources.xz and Packages.xz), and fetching them. Guest images are
 * built from it; kernel sources and prebuilt kernels come from it too.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {ExitCode, PmemlabError} from './errors.js'
import {run} from './exec.js'
import {loadGot} from './http.js'

export const DEFAULT_DEBIAN_MIRROR = 'http://deb.debian.org/debian'

export interface AptSource {
  types: string[]
  uris: string[]
  suites: string[]
}

/** Parses deb822 .sources files and one-line sources.list files. */
export function parseAptSources(deb822Texts: string[], listTexts: string[]): AptSource[] {
  const sources: AptSource[] = []
  for (const text of deb822Texts) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const fields = new Map<string, string>()
      let last: string | undefined
      for (const line of stanza.split('\n')) {
        if (line.startsWith('#')) continue
        const field = /^([A-Za-z][\w-]*):\s*(.*)$/.exec(line)
        if (field) {
          last = field[1].toLowerCase()
          fields.set(last, field[2].trim())
        } else if (/^\s+\S/.test(line) && last) {
          fields.set(last, `${fields.get(last)} ${line.trim()}`)
        }
      }
      if (fields.get('enabled')?.toLowerCase() === 'no') continue
      const words = (key: string) => (fields.get(key) ?? '').split(/\s+/).filter(Boolean)
      if (fields.has('uris')) sources.push({types: words('types'), uris: words('uris'), suites: words('suites')})
    }
  }
  for (const text of listTexts) {
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim()
      // deb [options] URI SUITE COMPONENTS...
      const match = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line)
      if (match) sources.push({types: [match[1]], uris: [match[2]], suites: [match[3]]})
    }
  }
  return sources
}

/** The host's Debian mirror for SUITE: an http(s) "deb" source that is not the security archive. */
export function pickDebianMirror(sources: AptSource[], suite: string): string | undefined {
  const candidates = sources.filter((source) => source.types.includes('deb'))
  const usable = (uri: string) => /^https?:\/\//.test(uri) && !/security/.test(uri)
  for (const source of candidates) {
    if (source.suites.includes(suite)) {
      const uri = source.uris.find(usable)
      if (uri) return uri
    }
  }
  for (const source of candidates) {
    const uri = source.uris.find(usable)
    if (uri) return uri
  }
  return undefined
}

/** $PMEMLAB_DEBIAN_MIRROR, else the host's mirror on a Debian host, else deb.debian.org. */
export async function hostDebianMirror(suite: string): Promise<string> {
  if (process.env.PMEMLAB_DEBIAN_MIRROR) return process.env.PMEMLAB_DEBIAN_MIRROR
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '')
  if (/^ID="?debian"?$/m.test(osRelease)) {
    const dir = '/etc/apt/sources.list.d'
    const names = await readdir(dir).catch(() => [] as string[])
    const read = (path: string) => readFile(path, 'utf8').catch(() => '')
    const deb822 = await Promise.all(names.filter((n) => n.endsWith('.sources')).map((n) => read(join(dir, n))))
    const lists = await Promise.all([
      read('/etc/apt/sources.list'),
      ...names.filter((n) => n.endsWith('.list')).map((n) => read(join(dir, n))),
    ])
    const mirror = pickDebianMirror(parseAptSources(deb822, lists), suite)
    if (mirror) return mirror
  }
  return DEFAULT_DEBIAN_MIRROR
}

/** One stanza of a deb822 index: field names lower-cased; continuation lines joined by "\n". */
export type Stanza = Map<string, string>

/** Parses a deb822 document (Sources, Packages): stanzas separated by blank lines. */
export function parseDeb822(text: string): Stanza[] {
  const stanzas: Stanza[] = []
  let current: Stanza = new Map()
  let last: string | undefined
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.size > 0) stanzas.push(current)
      current = new Map()
      last = undefined
      continue
    }
    if (line.startsWith('#')) continue
    if (/^\s/.test(line) && last) {
      current.set(last, `${current.get(last)}\n${line.trim()}`)
      continue
    }
    const field = /^([A-Za-z][\w-]*):\s*(.*)$/.exec(line)
    if (field) {
      last = field[1].toLowerCase()
      current.set(last, field[2].trim())
    }
  }
  if (current.size > 0) stanzas.push(current)
  return stanzas
}

/** The "sha256 size name" lines of a Checksums-Sha256 field (Sources), by file name. */
export function checksumsSha256(field: string | undefined): Map<string, {sha256: string; size: number}> {
  const files = new Map<string, {sha256: string; size: number}>()
  for (const line of (field ?? '').split('\n')) {
    const match = /^([0-9a-f]{64})\s+(\d+)\s+(\S+)$/.exec(line.trim())
    if (match) files.set(match[3], {sha256: match[1], size: Number(match[2])})
  }
  return files
}

/**
 * A suite's index, decompressed: e.g. fetchIndex(mirror, 'bookworm', 'main/source/Sources.xz').
 * An archive that cannot be reached, or has no such suite, is one line naming the URL.
 */
export async function fetchIndex(mirror: string, suite: string, path: string, signal?: AbortSignal): Promise<string> {
  const url = `${mirror.replace(/\/+$/, '')}/dists/${suite}/${path}`
  let body: Buffer
  try {
    const got = await loadGot()
    body = await got(url, {timeout: {connect: 20_000, response: 60_000}, retry: {limit: 1}, signal}).buffer()
  } catch (error) {
    if (signal?.aborted) throw signal.reason
    const status = (error as {response?: {statusCode?: number}}).response?.statusCode
    const why = status ? `HTTP ${status}` : (error as Error).message
    throw new PmemlabError(`cannot read Debian's index ${url}: ${why}`, ExitCode.failure, 'check the mirror (PMEMLAB_DEBIAN_MIRROR) and that the suite exists there')
  }
  if (!path.endsWith('.xz')) return body.toString('utf8')
  const result = await run('xz', ['-dc'], {input: body, encoding: 'utf8', maxBuffer: 1024 ** 3, cancelSignal: signal})
  return String(result.stdout)
}

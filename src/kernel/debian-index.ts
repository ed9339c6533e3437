/**
 * Debian's prebuilt kernels as the archive's Packages indexes describe them (pure): which
 * packages make up one kernel (vmlinuz, modules, modules.builtin), which kernels a
 * `--kernel debian:X` spec names, and which is newest by Debian's version ordering.
 */
import {usageError} from '../core/errors.js'
import {parseDeb822, type Stanza} from '../core/debian.js'

/** One .deb as the index gives it. */
export interface DebPackage {
  name: string
  version: string
  /** Path under the mirror (pool/main/l/...). */
  filename: string
  sha256: string
  size: number
}

/** A bootable kernel: the packages that together hold its vmlinuz and its modules. */
export interface KernelCandidate {
  /** `uname -r` of the kernel, e.g. 6.12.117+deb13-amd64 or 5.10.0-32-amd64. */
  abi: string
  /** Debian's package version, e.g. 6.12.117-1 or 6.12.95-1~bpo12+1. */
  version: string
  /** The upstream release in it, e.g. 6.12.117. */
  upstream: string
  /** The linux-image package that names it. */
  image: string
  /** From linux-signed-amd64: its modules carry signatures, so loading them does not taint the kernel. */
  signed: boolean
  packages: DebPackage[]
  suites: string[]
}

export type DebianSpecKind = 'series' | 'upstream' | 'abi' | 'version'

export interface DebianSpec {
  /** What followed "debian:", without the suite. */
  text: string
  kind: DebianSpecKind
  /** Only kernels this suite lists ("debian:7/sid"); any suite searched when undefined. */
  suite?: string
}

export const DEBIAN_SPEC_HINT =
  'write debian:VERSION[/SUITE], e.g. debian:6.12, debian:7/sid, debian:6.12.117, an ABI such as debian:6.12.117+deb13-amd64 or a package version such as debian:6.12.117-1'

/**
 * "debian:6.12" (a series: the newest 6.12.N), "debian:7", "debian:6.12.117" (that release),
 * "debian:6.12.117+deb13-amd64" (an ABI, as uname -r prints it) or "debian:6.12.117-1" (a
 * package version), each optionally followed by "/SUITE" as apt writes it (debian:7/sid).
 * Undefined for a spec without the debian: prefix; a usage error for a malformed one.
 */
export function parseDebianSpec(spec: string): DebianSpec | undefined {
  if (!spec.startsWith('debian:')) return undefined
  const [text, suite, ...rest] = spec.slice('debian:'.length).split('/')
  const bad = () => usageError(`"${spec}" is not a Debian kernel version`, DEBIAN_SPEC_HINT)
  if (rest.length > 0 || (suite !== undefined && !/^[a-z][a-z0-9-]*$/.test(suite))) throw bad()
  const withSuite = (kind: DebianSpecKind): DebianSpec => (suite === undefined ? {text, kind} : {text, kind, suite})
  if (/^\d+(\.\d+)?$/.test(text)) return withSuite('series')
  if (/^\d+\.\d+\.\d+$/.test(text)) return withSuite('upstream')
  if (/^\d[\w.+~-]*-amd64$/.test(text)) return withSuite('abi')
  if (/^(\d+:)?\d[\w.+~]*-[\w.+~]+$/.test(text)) return withSuite('version')
  throw bad()
}

/** The upstream part of a Debian version: no epoch, no Debian revision (6.12.95-1~bpo12+1 -> 6.12.95). */
export function upstreamOf(version: string): string {
  const noEpoch = version.replace(/^\d+:/, '')
  const dash = noEpoch.lastIndexOf('-')
  return dash < 0 ? noEpoch : noEpoch.slice(0, dash)
}

/** Whether a kernel (from the archive or the cache) is one the spec names. */
export function matchesDebianSpec(kernel: {abi: string; version: string; upstream: string; suites: string[]}, spec: DebianSpec): boolean {
  if (spec.suite !== undefined && !kernel.suites.includes(spec.suite)) return false
  switch (spec.kind) {
    case 'series':
      return kernel.upstream === spec.text || kernel.upstream.startsWith(`${spec.text}.`)
    case 'upstream':
      return kernel.upstream === spec.text
    case 'abi':
      return kernel.abi === spec.text
    case 'version':
      return kernel.version === spec.text
  }
}

// ---------------------------------------------------------------------------------------------
// Debian's version ordering (deb-version(7)): epoch, then upstream, then revision, each compared
// as alternating non-digit and digit runs, where "~" sorts before everything, even the end.

function charOrder(c: string | undefined): number {
  if (c === undefined) return 0
  if (c === '~') return -1
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0)
  return c.charCodeAt(0) + 256
}

function compareFragment(a: string, b: string): number {
  let i = 0
  let j = 0
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9'
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const x = charOrder(isDigit(a[i]) ? undefined : a[i])
      const y = charOrder(isDigit(b[j]) ? undefined : b[j])
      if (x !== y) return Math.sign(x - y)
      i++
      j++
    }
    while (a[i] === '0') i++
    while (b[j] === '0') j++
    let firstDiff = 0
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j)
      i++
      j++
    }
    if (isDigit(a[i])) return 1
    if (isDigit(b[j])) return -1
    if (firstDiff !== 0) return Math.sign(firstDiff)
  }
  return 0
}

/** dpkg --compare-versions as a comparator: negative when a is older than b. */
export function compareDebianVersions(a: string, b: string): number {
  const split = (v: string) => {
    const colon = v.indexOf(':')
    const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0
    const rest = colon > 0 ? v.slice(colon + 1) : v
    const dash = rest.lastIndexOf('-')
    return {epoch, upstream: dash < 0 ? rest : rest.slice(0, dash), revision: dash < 0 ? '' : rest.slice(dash + 1)}
  }
  const x = split(a)
  const y = split(b)
  if (x.epoch !== y.epoch) return Math.sign(x.epoch - y.epoch)
  return compareFragment(x.upstream, y.upstream) || compareFragment(x.revision, y.revision)
}

// ---------------------------------------------------------------------------------------------
// Reading a Packages index

/**
 * The stanzas of a Packages index that can belong to a kernel (Package: linux-...), without
 * parsing the other ~60,000: an index is tens of MB of text.
 */
export function kernelStanzas(text: string): Stanza[] {
  const blocks: string[] = []
  const marker = '\nPackage: linux-'
  let found = text.startsWith(marker.slice(1)) ? 0 : text.indexOf(marker)
  while (found >= 0) {
    const start = found === 0 ? 0 : text.lastIndexOf('\n\n', found) + 2 // the stanza's first line, should Package not be it
    const end = text.indexOf('\n\n', found + 1)
    blocks.push(text.slice(start, end < 0 ? text.length : end))
    found = end < 0 ? -1 : text.indexOf(marker, end)
  }
  return parseDeb822(blocks.join('\n\n'))
}

/**
 * The generic amd64 flavour's image packages: linux-image-ABI (signed) and linux-image-ABI-unsigned.
 * The cloud and rt flavours, debug symbols (-dbg) and the linux-image-amd64 metapackage are not kernels to boot here.
 */
const IMAGE_PACKAGE = /^linux-image-(\d[\w.+~-]*?-amd64)(-unsigned)?$/
const OTHER_FLAVOUR = /-(cloud|rt)-amd64$/

/** `name (= version)` entries of a Depends field (first alternative of each). */
function exactDependencies(depends: string | undefined): Array<{name: string; version: string}> {
  const exact: Array<{name: string; version: string}> = []
  for (const entry of (depends ?? '').split(',')) {
    const match = /^\s*([\w.+~-]+)(?::\w+)?\s*\(\s*=\s*([^)\s]+)\s*\)/.exec(entry.split('|')[0])
    if (match) exact.push({name: match[1], version: match[2]})
  }
  return exact
}

const SAFE_FILENAME = /^pool\/[\w.+~/-]+\.deb$/

function debPackage(stanza: Stanza): DebPackage | undefined {
  const name = stanza.get('package')
  const version = stanza.get('version')
  const filename = stanza.get('filename')
  const sha256 = stanza.get('sha256')?.toLowerCase()
  const size = Number(stanza.get('size'))
  if (!name || !version || !filename || !SAFE_FILENAME.test(filename) || filename.includes('..')) return undefined
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256) || !Number.isSafeInteger(size) || size <= 0) return undefined
  return {name, version, filename, sha256, size}
}

/**
 * The kernels one suite's index offers. Up to 6.x a linux-image-ABI package holds the vmlinuz
 * and the modules itself. From 7.x (and in trixie-backports) it is a metapackage: the kernel is
 * in linux-binary-ABI, the modules in linux-modules-ABI and modules.builtin with the config in
 * linux-base-ABI, all required at exactly its version; those are taken instead of it.
 */
export function kernelCandidates(suite: string, stanzas: Stanza[]): KernelCandidate[] {
  const byNameVersion = new Map<string, Stanza>()
  for (const stanza of stanzas) {
    if (stanza.get('architecture') !== undefined && stanza.get('architecture') !== 'amd64') continue
    byNameVersion.set(`${stanza.get('package')}\0${stanza.get('version')}`, stanza)
  }
  const candidates: KernelCandidate[] = []
  for (const stanza of byNameVersion.values()) {
    const name = stanza.get('package') ?? ''
    const match = IMAGE_PACKAGE.exec(name)
    if (!match || OTHER_FLAVOUR.test(match[1])) continue
    const abi = match[1]
    const version = stanza.get('version') ?? ''
    // The exact-version dependencies that are parts of this kernel (they carry its ABI), transitively.
    const parts: Stanza[] = []
    const queue = exactDependencies(stanza.get('depends'))
    const seen = new Set<string>()
    let incomplete = false
    while (queue.length > 0) {
      const dep = queue.shift()!
      if (!dep.name.includes(abi) || seen.has(dep.name)) continue
      seen.add(dep.name)
      const part = byNameVersion.get(`${dep.name}\0${dep.version}`)
      if (!part) {
        incomplete = true // listed in Depends but not in this index: not installable from here
        break
      }
      parts.push(part)
      queue.push(...exactDependencies(part.get('depends')))
    }
    if (incomplete) continue
    const packages = (parts.length > 0 ? parts : [stanza]).map(debPackage)
    if (packages.some((p) => p === undefined)) continue
    candidates.push({
      abi,
      version,
      upstream: upstreamOf(version),
      image: name,
      signed: match[2] === undefined,
      packages: (packages as DebPackage[]).sort((a, b) => a.name.localeCompare(b.name)),
      suites: [suite],
    })
  }
  return candidates
}

/**
 * The candidates of several suites (given in search order), newest first: by package version,
 * the signed package before the unsigned one of the same version, then in search order. The
 * same files listed in several suites become one candidate that names them all.
 */
export function mergeCandidates(lists: KernelCandidate[][]): KernelCandidate[] {
  const byFiles = new Map<string, KernelCandidate>()
  for (const candidate of lists.flat()) {
    const id = candidate.packages.map((p) => p.sha256).join(',')
    const known = byFiles.get(id)
    if (known) {
      for (const suite of candidate.suites) if (!known.suites.includes(suite)) known.suites.push(suite)
    } else {
      byFiles.set(id, {...candidate, suites: [...candidate.suites]})
    }
  }
  // Array.prototype.sort is stable: equal kernels keep the search order.
  return [...byFiles.values()].sort((a, b) => compareDebianVersions(b.version, a.version) || Number(b.signed) - Number(a.signed))
}

/** The candidates a spec names, newest first (candidates as mergeCandidates orders them). */
export function selectCandidates(candidates: KernelCandidate[], spec: DebianSpec): KernelCandidate[] {
  return candidates.filter((candidate) => matchesDebianSpec(candidate, spec))
}

/**
 * The upstream versions the indexes hold, by series, for an error message:
 * "5.10.218, 5.10.223; 6.1.170, 6.1.176; 6.12.43 to 6.12.117 (14 versions); ...".
 */
export function describeVersions(candidates: Array<{upstream: string}>): string {
  const bySeries = new Map<string, string[]>()
  for (const {upstream} of candidates) {
    const series = upstream.split('.').slice(0, 2).join('.')
    const versions = bySeries.get(series) ?? []
    if (!versions.includes(upstream)) versions.push(upstream)
    bySeries.set(series, versions)
  }
  const order = (a: string, b: string) => compareDebianVersions(a, b)
  return [...bySeries.keys()]
    .sort(order)
    .map((series) => {
      const versions = bySeries.get(series)!.sort(order)
      return versions.length <= 3 ? versions.join(', ') : `${versions[0]} to ${versions.at(-1)} (${versions.length} versions)`
    })
    .join('; ')
}

/**
 * What an image build needs from the host when pmemlab is not root. mmdebstrap's unshare mode
 * then runs in a user namespace whose ids come from /etc/subuid and /etc/subgid, mapped by the
 * setuid helpers newuidmap and newgidmap (package uidmap); the unpacked tree is imaged under
 * fakeroot. checkUnprivilegedBuild judges collected facts (pure); probeUnprivilegedBuild collects them.
 */
import {readFile} from 'node:fs/promises'
import {userInfo} from 'node:os'
import {ExitCode, missingDependency, PmemlabError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {which} from '../core/which.js'

/**
 * Ids the namespace must hold: Debian's nobody and nogroup are 65534, and the build sources
 * copied into the image keep the user's own uid and gid (tar as root in the namespace), so the
 * range must also reach those.
 */
export const MIN_SUBORDINATE_IDS = 65536
/** Where usermod and useradd start allocating (SUB_UID_MIN in Debian's login.defs). */
const FIRST_SUBORDINATE_ID = 100000

export interface UnprivilegedFacts {
  uid: number
  gid: number
  /** The name of uid in the user database; undefined when it has none. */
  user?: string
  /** The texts of /etc/subuid and /etc/subgid; undefined when the file does not exist. */
  subuid?: string
  subgid?: string
  programs: {newuidmap: boolean; newgidmap: boolean; fakeroot: boolean}
  /** Whether mmdebstrap could enter its user namespace (undefined: not tried). */
  userns?: {ok: boolean; error?: string}
  /** Kernel settings that refuse unprivileged user namespaces (undefined: the file is absent). */
  sysctls?: {unprivilegedUsernsClone?: number; maxUserNamespaces?: number; apparmorRestrictUnprivilegedUserns?: number}
}

export interface UnprivilegedVerdict {
  root: boolean
  /** The user name the fix refers to. */
  user: string
  /** What is missing, each a short phrase; empty when a build can run. */
  missing: string[]
  /** Shell commands, to run as root, that supply everything missing. */
  fix: string[]
  /** What to do where no command is known (user namespaces refused for an unknown reason). */
  advice?: string
  /** What was found, for doctor. */
  detail: string
}

interface SubordinateRange {
  owner: string
  start: number
  count: number
}

/** Entries of an /etc/subuid or /etc/subgid text ("owner:start:count"; owner a name or a uid). */
export function parseSubordinateIds(text: string): SubordinateRange[] {
  const ranges: SubordinateRange[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const [owner, start, count] = line.split(':')
    if (owner && /^\d+$/.test(start ?? '') && /^\d+$/.test(count ?? '')) ranges.push({owner, start: Number(start), count: Number(count)})
  }
  return ranges
}

/** The lowest COUNT ids from FIRST_SUBORDINATE_ID up that no entry uses. */
export function freeSubordinateRange(taken: SubordinateRange[], count: number): number {
  let start = FIRST_SUBORDINATE_ID
  for (;;) {
    const clash = taken.find((range) => range.start < start + count && start < range.start + range.count)
    if (!clash) return start
    start = clash.start + clash.count
  }
}

const span = (start: number, count: number) => `${start}-${start + count - 1}`

type IdKind = 'uid' | 'gid'

interface KindJudgement {
  kind: IdKind
  file: string
  /** The problem, or undefined when the entry is fine. */
  problem?: string
  /** A first entry too small, to be replaced. */
  replace?: SubordinateRange
  /** What was found, when fine. */
  found?: SubordinateRange
  needed: number
}

/**
 * mmdebstrap (1.3.5 in Debian 12, and later ones alike) reads only the first entry whose owner is
 * the user's NAME: an entry by numeric uid, which newuidmap itself accepts, does not count.
 */
function judgeKind(kind: IdKind, text: string | undefined, user: string, ownId: number, uid: number): KindJudgement {
  const file = kind === 'uid' ? '/etc/subuid' : '/etc/subgid'
  const needed = Math.max(MIN_SUBORDINATE_IDS, ownId + 1)
  if (text === undefined) return {kind, file, needed, problem: `${file} (it does not exist)`}
  const ranges = parseSubordinateIds(text)
  const byName = ranges.find((range) => range.owner === user)
  if (!byName) {
    const numeric = ranges.find((range) => range.owner === String(uid))
    const why = numeric ? ` (the entry ${numeric.owner}:${numeric.start}:${numeric.count} is by uid, which mmdebstrap does not read)` : ''
    return {kind, file, needed, problem: `an entry for ${user} in ${file}${why}`}
  }
  if (byName.count < needed) {
    const reach = needed > MIN_SUBORDINATE_IDS ? `, to reach its own ${kind} ${ownId}` : ''
    return {kind, file, needed, replace: byName, problem: `${needed} ids in ${user}'s first ${file} entry, not ${byName.count}${reach}`}
  }
  return {kind, file, needed, found: byName}
}

/** The sysctl that refuses unprivileged user namespaces, set to allow them; undefined when none does. */
function usernsFix(facts: UnprivilegedFacts): string | undefined {
  const sysctls = facts.sysctls ?? {}
  if (sysctls.unprivilegedUsernsClone === 0) return 'sysctl -w kernel.unprivileged_userns_clone=1'
  if (sysctls.maxUserNamespaces === 0) return 'sysctl -w user.max_user_namespaces=10000'
  if (sysctls.apparmorRestrictUnprivilegedUserns === 1) return 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0'
  return undefined
}

/** What a build as this user lacks, and the commands that supply it. Root needs none of it. */
export function checkUnprivilegedBuild(facts: UnprivilegedFacts): UnprivilegedVerdict {
  // Without a name, useradd gives the uid one (mmdebstrap looks the entries up by name).
  const user = facts.user ?? `pmemlab-${facts.uid}`
  if (facts.uid === 0) return {root: true, user, missing: [], fix: [], detail: 'running as root: user namespaces and subordinate ids are not needed'}

  const missing: string[] = []
  const fix: string[] = []
  const packages: string[] = []
  const helpers = (['newuidmap', 'newgidmap'] as const).filter((program) => !facts.programs[program])
  if (helpers.length > 0) {
    missing.push(`${helpers.join(' and ')} (package uidmap)`)
    packages.push('uidmap')
  }
  if (!facts.programs.fakeroot) {
    missing.push('fakeroot (package fakeroot)')
    packages.push('fakeroot')
  }
  if (packages.length > 0) fix.push(`apt-get install ${packages.join(' ')}`)

  if (facts.user === undefined) {
    missing.push(`a user name for uid ${facts.uid}`)
    fix.push(`useradd --no-create-home --uid ${facts.uid} ${user}`)
  }
  const kinds = [judgeKind('uid', facts.subuid, user, facts.uid, facts.uid), judgeKind('gid', facts.subgid, user, facts.gid, facts.uid)]
  const lacking = kinds.filter((kind) => kind.problem)
  if (lacking.length > 0) {
    missing.push(...lacking.map((kind) => kind.problem!))
    const absent = kinds.filter((kind) => facts[kind.kind === 'uid' ? 'subuid' : 'subgid'] === undefined)
    if (absent.length > 0) fix.push(`touch ${absent.map((kind) => kind.file).join(' ')}`) // usermod refuses to create them
    // One range for both files, free in both, is what useradd would have given.
    const count = Math.max(...lacking.map((kind) => kind.needed))
    const taken = [...parseSubordinateIds(facts.subuid ?? ''), ...parseSubordinateIds(facts.subgid ?? '')]
    const range = span(freeSubordinateRange(taken, count), count)
    const args = lacking.flatMap((kind) => {
      const option = kind.kind === 'uid' ? 'subuids' : 'subgids'
      return [...(kind.replace ? [`--del-${option}`, span(kind.replace.start, kind.replace.count)] : []), `--add-${option}`, range]
    })
    fix.push(['usermod', ...args, user].join(' '))
  }

  let advice: string | undefined
  if (facts.userns && !facts.userns.ok) {
    missing.push(`user namespaces, which this host refuses${facts.userns.error ? ` (${facts.userns.error})` : ''}`)
    const sysctl = usernsFix(facts)
    if (sysctl) fix.push(sysctl)
    else advice = 'no sysctl here refuses them (a container or seccomp policy may): build the image as root instead'
  }

  const found = kinds.map((kind) => (kind.found ? `${kind.found.count} sub${kind.kind}s from ${kind.found.start}` : undefined)).filter(Boolean)
  const detail =
    missing.length > 0
      ? `building an image as ${user} needs ${missing.join(', ')}`
      : `${user} has ${found.join(' and ')}; newuidmap, newgidmap and fakeroot found${facts.userns?.ok ? '; user namespaces work' : ''}`
  return {root: false, user, missing, fix, ...(advice ? {advice} : {}), detail}
}

/** The fix as one line: the commands to run as root, then any advice. */
export function unprivilegedFixLine(verdict: UnprivilegedVerdict): string {
  const commands = verdict.fix.length > 0 ? `as root, run: ${verdict.fix.join(' && ')}` : undefined
  return [commands, verdict.advice].filter(Boolean).join('; ')
}

/** The one-line refusal for a verdict with something missing (exit 3). */
export function unprivilegedBuildError(verdict: UnprivilegedVerdict): PmemlabError {
  return missingDependency(verdict.detail, unprivilegedFixLine(verdict))
}

/**
 * What a failed mmdebstrap run says is missing, from its output: the line naming it, and the
 * fix when the line alone determines it. Undefined when the output names nothing of the kind.
 */
export function mmdebstrapMissing(output: string): {line: string; fix?: string} | undefined {
  const lines = output.split('\n').map((line) => line.trim())
  const find = (pattern: RegExp) => lines.find((line) => pattern.test(line))
  const helper = find(/^E: cannot find new[ug]idmap/)
  if (helper) return {line: helper, fix: 'apt-get install uidmap'}
  const ids =
    find(/^W: (no entry in \/etc\/sub[ug]id for |\/etc\/sub[ug]id (doesn't exist|is not readable|is empty))/) ?? find(/^E: failed to parse \/etc\/subuid and \/etc\/subgid/)
  if (ids) return {line: ids}
  const owner = find(/Cannot change ownership to uid \d+, gid \d+: Invalid argument/)
  if (owner) return {line: owner}
  const userns = find(/^E: (unshare syscall failed|failed to unshare the user namespace|newuidmap .* failed|newgidmap .* failed)/)
  if (userns) return {line: userns}
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Edges

async function readSysctl(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined)
  return text === undefined || !/^\s*\d+\s*$/.test(text) ? undefined : Number(text)
}

/** Collects the facts for the current user. With nothing else missing, tries mmdebstrap's own user namespace. */
export async function probeUnprivilegedBuild(): Promise<UnprivilegedVerdict> {
  const uid = process.getuid?.() ?? 0
  let user: string | undefined
  try {
    user = userInfo().username
  } catch {
    user = undefined // no entry in the user database (a container run with a bare uid)
  }
  const readIds = (path: string) => readFile(path, 'utf8').catch(() => undefined)
  const facts: UnprivilegedFacts = {
    uid,
    gid: process.getgid?.() ?? 0,
    user,
    subuid: await readIds('/etc/subuid'),
    subgid: await readIds('/etc/subgid'),
    programs: {newuidmap: !!(await which('newuidmap')), newgidmap: !!(await which('newgidmap')), fakeroot: !!(await which('fakeroot'))},
    sysctls: {
      unprivilegedUsernsClone: await readSysctl('/proc/sys/kernel/unprivileged_userns_clone'),
      maxUserNamespaces: await readSysctl('/proc/sys/user/max_user_namespaces'),
      apparmorRestrictUnprivilegedUserns: await readSysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
    },
  }
  const verdict = checkUnprivilegedBuild(facts)
  if (verdict.root || verdict.missing.length > 0) return verdict
  // The kernel (a sysctl, AppArmor, a container's seccomp) may still refuse the namespace: let
  // mmdebstrap itself try, under whatever confinement it gets, which takes under a second.
  const mmdebstrap = await which('mmdebstrap')
  if (!mmdebstrap) return verdict
  const tried = await run(mmdebstrap, ['--unshare-helper', 'true'], {reject: false, timeout: 30_000, stdin: 'ignore'})
  const error = String(tried.stderr).trim().split('\n').filter(Boolean).at(-1)?.replace(/^E: /, '')
  return checkUnprivilegedBuild({...facts, userns: tried.exitCode === 0 ? {ok: true} : {ok: false, error}})
}

/** Refuses (exit 3, one line with the fix) when this user cannot build an image. */
export async function requireUnprivilegedBuild(): Promise<void> {
  const verdict = await probeUnprivilegedBuild()
  if (verdict.missing.length > 0) throw unprivilegedBuildError(verdict)
}

/**
 * Turns a failed mmdebstrap run, not as root, into what it lacks (exit 3): the host's current
 * facts when they show something missing, else the line of OUTPUT that names it. Other
 * failures come back unchanged.
 */
export async function explainUnprivilegedFailure(error: unknown, output: string): Promise<unknown> {
  // Only a tool's failure (exit 1) is explained: an interrupt or a full disk stays what it is.
  if (process.getuid?.() === 0 || !(error instanceof PmemlabError) || error.exitCode !== ExitCode.failure) return error
  const said = mmdebstrapMissing(output)
  if (!said) return error
  const verdict = await probeUnprivilegedBuild()
  if (verdict.missing.length > 0) return unprivilegedBuildError(verdict)
  return missingDependency(
    `mmdebstrap cannot build as ${verdict.user}: ${said.line.replace(/^[EW]: /, '')}`,
    said.fix ? `as root, run: ${said.fix}` : 'run pmemlab doctor for what the build needs',
  )
}

/**
 * A full file system, said as such. Builds run out of room deep inside tools (apt, dpkg, tar,
 * make) whose messages name a file or a status, not the cause; this turns ENOSPC, whether thrown
 * by Node or printed in a tool's log, into one line naming the file system and the ways out.
 */
import {open, readFile, realpath, statfs} from 'node:fs/promises'
import {dirname, resolve} from 'node:path'
import {ExitCode, PmemlabError} from './errors.js'
import {humanSize} from './size.js'

const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT'])
/** strerror(ENOSPC) and strerror(EDQUOT), as C tools print them (and Node, in lower case). */
const NO_SPACE_TEXT = /no space left on device|disk quota exceeded/i

/** The error pmemlab raises for a full file system (already said: never wrapped again). */
export class NoSpaceError extends PmemlabError {}

/** Whether error, or an error it was caused by, is a full file system or an exhausted quota. */
export function isNoSpace(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false
  const {code, message, cause} = error as {code?: unknown; message?: unknown; cause?: unknown}
  if (typeof code === 'string' && NO_SPACE_CODES.has(code)) return true
  if (typeof message === 'string' && NO_SPACE_TEXT.test(message)) return true
  return isNoSpace(cause, depth + 1)
}

export const mentionsNoSpace = (text: string): boolean => NO_SPACE_TEXT.test(text)

export interface Mount {
  mountPoint: string
  fsType: string
}

/** The mount that holds path (absolute, symlinks resolved), from the text of /proc/self/mountinfo. */
export function mountOf(mountinfo: string, path: string): Mount | undefined {
  const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))
  let best: Mount | undefined
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root MOUNT-POINT options [optional fields...] - FSTYPE source super-options
    const fields = line.split(' ')
    const separator = fields.indexOf('-', 6)
    if (fields.length < 7 || separator < 0) continue
    const mountPoint = unescape(fields[4])
    const inside = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`)
    // The longest prefix wins; of equal ones the later, which is mounted over the earlier.
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = {mountPoint, fsType: fields[separator + 1]}
  }
  return best
}

/** The one line for a full file system, from the facts about it (pure, for the tests). */
export function noSpaceMessage(facts: {doing: string; dir: string; mount?: Mount; totalBytes?: number; envVar: string}): NoSpaceError {
  const {doing, dir, mount, totalBytes, envVar} = facts
  const size = totalBytes === undefined ? '' : `${humanSize(totalBytes)} `
  const where = mount ? (mount.mountPoint === dir ? ` (a ${size}${mount.fsType})` : ` (on the ${size}${mount.fsType} mounted on ${mount.mountPoint})`) : ''
  return new NoSpaceError(
    `no space left on device while ${doing} in ${dir}${where}`,
    ExitCode.failure,
    `free space there, or point ${envVar} at a larger file system`,
  )
}

/**
 * The NoSpaceError for error when it is a full file system (by its code or message, or because
 * the tool's log says so), else undefined. dirs are where the build writes, each with the
 * variable that moves it (PMEMLAB_CACHE_DIR, TMPDIR); the fullest of them is named.
 */
export async function noSpaceError(
  error: unknown,
  opts: {doing: string; dirs: Array<{dir: string; envVar: string}>; logFile?: string},
): Promise<NoSpaceError | undefined> {
  if (error instanceof NoSpaceError) return error
  if (!isNoSpace(error) && !(opts.logFile && mentionsNoSpace(await readTail(opts.logFile)))) return undefined
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  let fullest: {dir: string; envVar: string; mount?: Mount; totalBytes?: number; freeFraction: number} | undefined
  for (const {dir, envVar} of opts.dirs) {
    const real = await existingRealpath(dir)
    const info = await statfs(real).catch(() => undefined)
    const freeFraction = info && info.blocks > 0 ? info.bavail / info.blocks : 1
    if (!fullest || freeFraction < fullest.freeFraction) {
      fullest = {dir, envVar, mount: mountOf(mountinfo, real), totalBytes: info ? info.blocks * info.bsize : undefined, freeFraction}
    }
  }
  if (!fullest) return noSpaceMessage({doing: opts.doing, dir: '?', envVar: 'PMEMLAB_CACHE_DIR'})
  return noSpaceMessage({doing: opts.doing, dir: fullest.dir, mount: fullest.mount, totalBytes: fullest.totalBytes, envVar: fullest.envVar})
}

/** realpath of dir, or of its nearest existing parent. */
async function existingRealpath(dir: string): Promise<string> {
  let path = resolve(dir)
  for (;;) {
    try {
      return await realpath(path)
    } catch {
      if (dirname(path) === path) return path
      path = dirname(path)
    }
  }
}

/** The last 64 KiB of a log file ('' when it cannot be read). */
async function readTail(path: string, bytes = 64 * 1024): Promise<string> {
  try {
    const handle = await open(path, 'r')
    try {
      const size = (await handle.stat()).size
      const buffer = Buffer.alloc(Math.min(size, bytes))
      await handle.read(buffer, 0, buffer.length, size - buffer.length)
      return buffer.toString('utf8')
    } finally {
      await handle.close()
    }
  } catch {
    return ''
  }
}

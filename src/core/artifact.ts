/**
 * A cheap identity for a cached artifact (a guest image's rootfs.img, a kernel's bzImage): its
 * size and a sha256 of its first and last 64 KiB, recorded when the entry is built and compared
 * whenever the entry is used. Hashing the whole file would add seconds to every boot; this is one
 * stat and two small reads, and still sees a truncated, grown or rewritten-at-either-end file.
 */
import {createHash} from 'node:crypto'
import {open} from 'node:fs/promises'
import {join} from 'node:path'

export interface ArtifactStamp {
  bytes: number
  /** sha256 of the size, the first and the last SAMPLE_BYTES (the whole file when it is smaller). */
  sample: string
}

export const SAMPLE_BYTES = 64 * 1024

/** The sample digest of a file of `bytes` bytes whose first and last bytes are head and tail. */
export function sampleDigest(bytes: number, head: Uint8Array, tail: Uint8Array): string {
  return createHash('sha256').update(`pmemlab-artifact-v1\0${bytes}\0`).update(head).update('\0').update(tail).digest('hex')
}

/** The stamp of the file at path, or undefined when it does not exist. */
export async function stampFile(path: string): Promise<ArtifactStamp | undefined> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const bytes = (await handle.stat()).size
    const read = async (length: number, position: number) => {
      const buffer = Buffer.alloc(length)
      const {bytesRead} = await handle.read(buffer, 0, length, position)
      return buffer.subarray(0, bytesRead)
    }
    const head = await read(Math.min(bytes, SAMPLE_BYTES), 0)
    const tailLength = Math.min(Math.max(bytes - SAMPLE_BYTES, 0), SAMPLE_BYTES)
    const tail = await read(tailLength, bytes - tailLength)
    return {bytes, sample: sampleDigest(bytes, head, tail)}
  } finally {
    await handle.close()
  }
}

/** The stamps of the named files in dir; files that do not exist are left out. */
export async function stampFiles(dir: string, names: string[]): Promise<Record<string, ArtifactStamp>> {
  const stamps: Record<string, ArtifactStamp> = {}
  for (const name of names) {
    const stamp = await stampFile(join(dir, name))
    if (stamp) stamps[name] = stamp
  }
  return stamps
}

/**
 * What is wrong with path, comparing the stamp recorded at build time with the file's stamp now;
 * undefined when they agree. A recorded stamp without sample (an older entry) compares the size.
 */
export function describeDamage(path: string, recorded: {bytes: number; sample?: string}, actual: ArtifactStamp | undefined): string | undefined {
  if (!actual) return `${path} is missing`
  if (actual.bytes < recorded.bytes) return `${path} is truncated (${actual.bytes} of the ${recorded.bytes} bytes it had when built)`
  if (actual.bytes > recorded.bytes) return `${path} has grown since it was built (${actual.bytes} bytes, built as ${recorded.bytes})`
  if (recorded.sample !== undefined && recorded.sample !== actual.sample) return `${path} has changed since it was built (same size, other content)`
  return undefined
}

/** describeDamage() for the file at path as it is now. */
export async function checkArtifact(path: string, recorded: {bytes: number; sample?: string}): Promise<string | undefined> {
  return describeDamage(path, recorded, await stampFile(path))
}

export const isArtifactStamp = (value: unknown): value is ArtifactStamp =>
  typeof value === 'object' && value !== null && typeof (value as ArtifactStamp).bytes === 'number' && typeof (value as ArtifactStamp).sample === 'string'

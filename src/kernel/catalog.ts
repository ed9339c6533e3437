/**
 * Every kernel in the cache, for `kernel ls` and `kernel rm`: the ones pmemlab built (store.ts)
 * and Debian's prebuilt ones (debian-prebuilt.ts). A key prefix may name either kind.
 */
import {notFound, usageError} from '../core/errors.js'
import {entryBytes, findDebianKernels, listDebianKernels, removeDebianKernel, type DebianKernelEntry} from './debian-prebuilt.js'
import {listKernels, removeKernel, type KernelEntry} from './store.js'

export type CachedKernel = {kind: 'built'; entry: KernelEntry} | {kind: 'debian'; entry: DebianKernelEntry; bytes: number}

/** Built kernels (newest first), then Debian's (newest version first). */
export async function listCachedKernels(): Promise<CachedKernel[]> {
  const built = (await listKernels()).map((entry) => ({kind: 'built' as const, entry}))
  const debian = await Promise.all((await listDebianKernels()).map(async (entry) => ({kind: 'debian' as const, entry, bytes: await entryBytes(entry)})))
  return [...built, ...debian]
}

/**
 * Removes the kernel spec names: debian:X (the newest cached match), a key prefix of either kind,
 * or, for built kernels, a version or "latest". Returns its key and what it was.
 */
export async function removeCachedKernel(spec: string): Promise<{key: string; what: string}> {
  const debian = await findDebianKernels(spec)
  if (debian !== undefined && debian.length > 0) {
    const built = spec.startsWith('debian:') ? [] : (await listKernels()).filter((entry) => entry.key.startsWith(spec))
    if (debian.length + built.length > 1) throw usageError(`"${spec}" matches ${debian.length + built.length} kernels`, 'give more digits of the key')
    await removeDebianKernel(debian[0])
    return {key: debian[0].key, what: `Debian ${debian[0].record.abi}, ${debian[0].record.image} ${debian[0].record.version}`}
  }
  if (spec.startsWith('debian:')) throw notFound(`no cached Debian kernel matches ${spec}`, 'see pmemlab kernel ls')
  const entry = await removeKernel(spec)
  return {key: entry.key, what: `linux ${entry.build.kernelVersion}`}
}

import {homedir} from 'node:os'
import {join} from 'node:path'

/**
 * Where pmemlab keeps things. Caches (images, kernels, initramfs) can be rebuilt; state (running VMs)
 * describes live processes. Both can be redirected, which CI does to prove a cold start.
 */
export function cacheDir(): string {
  return process.env.PMEMLAB_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pmemlab')
}

export function stateDir(): string {
  return process.env.PMEMLAB_STATE_DIR ?? join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'pmemlab')
}

/** The checked-in recipes and guest files, found relative to the installed package. */
export const packageRoot = new URL('../../../', import.meta.url).pathname

/** The kernel cache: finished entries, verified downloads, and build trees (see kbuild.ts). */
export const kernelsDir = () => join(cacheDir(), 'kernels')
export const downloadsDir = () => join(cacheDir(), 'downloads')
export const buildDir = () => join(cacheDir(), 'build')

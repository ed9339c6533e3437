import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

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

/**
 * The installed package, with its checked-in recipes, fragments and guest files: the nearest
 * directory above this module that has them. This code runs from tsc's output (dist/src/core/)
 * and from the bundle's chunks (dist/bundle/chunks/), at different depths.
 */
export const packageRoot = findPackageRoot(dirname(fileURLToPath(import.meta.url)))

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'kernel-configs'))) return dir
    if (dir === dirname(dir)) throw new Error(`pmemlab's package (package.json and kernel-configs/) not found above ${from}`)
  }
}

/** The kernel cache: finished entries, verified downloads, and build trees (see kbuild.ts). */
export const kernelsDir = () => join(cacheDir(), 'kernels')
export const downloadsDir = () => join(cacheDir(), 'downloads')
export const buildDir = () => join(cacheDir(), 'build')

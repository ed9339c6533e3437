/**
 * Reusing the configuration of a pinned O= directory. A bisect builds commit after commit in one
 * O= directory, and configuring each (make tinyconfig, the fragments, make olddefconfig) cost
 * 13 to 15 s a step on 6.1 here, for a .config that changes only when what Kconfig reads does:
 * the base, the merged fragments, the compiler, and the files Kconfig reads in the commit (every
 * Kconfig*, scripts/, the configs directories, the top Makefile), named by git's blob hashes.
 * The stamp is written only after a configure whose options were verified, and removed before
 * any other configure starts, so an interrupted one is never trusted; verification still runs
 * on a reused .config.
 */
import {readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {sha256} from './key.js'
import {git} from './source.js'

/** In the O= directory: the digest of the inputs its .config was made from, and the .config's own hash. */
export const CONFIGURED_STAMP = '.pmemlab-configured'

/** Whether a path of the tree (as git ls-tree names it) is read while configuring. */
export function isKconfigInput(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1)
  return name.startsWith('Kconfig') || path === 'Makefile' || path.startsWith('scripts/') || /^arch\/[^/]+\/configs\//.test(path) || path.startsWith('kernel/configs/')
}

export interface ConfigureInputs {
  base: string
  /** The merged fragments as the build key sees them (kernel build --set included). */
  fragment: string
  compiler: string
  /** git ls-tree -r output of the commit. */
  lsTree: string
}

/** One digest over everything a configure's result depends on. */
export function configureDigest(inputs: ConfigureInputs): string {
  const files = inputs.lsTree
    .split('\n')
    .filter((line) => line !== '' && isKconfigInput(line.slice(line.indexOf('\t') + 1)))
    .sort()
  return sha256(JSON.stringify({base: inputs.base, fragment: inputs.fragment, compiler: inputs.compiler, files}))
}

/** The digest for COMMIT of the tree DIR (one git ls-tree, a fraction of a second on a kernel tree). */
export async function configureDigestOf(dir: string, commit: string, inputs: Omit<ConfigureInputs, 'lsTree'>): Promise<string> {
  const lsTree = String((await git(dir, ['ls-tree', '-r', '--full-tree', commit])).stdout)
  return configureDigest({...inputs, lsTree})
}

interface Stamp {
  digest: string
  config: string
}

/** OUTDIR's .config, when it was made from inputs with DIGEST and has not changed since; else undefined. */
export async function reusableConfig(outDir: string, digest: string): Promise<string | undefined> {
  const stamp = await readFile(join(outDir, CONFIGURED_STAMP), 'utf8')
    .then((text) => JSON.parse(text) as Stamp)
    .catch(() => undefined)
  if (stamp?.digest !== digest) return undefined
  const config = await readFile(join(outDir, '.config'), 'utf8').catch(() => undefined)
  return config !== undefined && sha256(config) === stamp.config ? config : undefined
}

export const forgetConfigured = (outDir: string) => rm(join(outDir, CONFIGURED_STAMP), {force: true})

export const markConfigured = (outDir: string, digest: string, config: string) => writeFile(join(outDir, CONFIGURED_STAMP), `${JSON.stringify({digest, config: sha256(config)} satisfies Stamp)}\n`)

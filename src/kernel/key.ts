/**
 * The content address of a kernel build: sha256 over what decides the kernel (source, patches,
 * base config, merged fragment, compiler, architecture), so the same inputs find the same entry.
 * Pure: data in, data out.
 */
import {createHash} from 'node:crypto'

const KEY_FORMAT = 1

export type KernelBase = 'tinyconfig' | 'defconfig'

export const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex')

export interface KeyInputs {
  /** Tarball: {tarball: sha256}. Git tree: {commit, dirty}. */
  source: Record<string, string | null | undefined>
  base: KernelBase
  /** The merged fragment. */
  fragment: string
  /** First line of `gcc --version`. */
  compiler: string
  arch: string
  /** The sha256 of each --patch, in the order applied (patch.ts patchKeyPart). */
  patches?: readonly string[]
}

/** Comments and blank lines dropped, lines trimmed and sorted: the fragment's meaning, not its layout. */
export function normaliseFragmentText(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && (!line.startsWith('#') || / is not set$/.test(line)))
  return [...new Set(lines)].sort().join('\n')
}

/** The content address of a build: sha256 over its inputs. */
export function computeKey(inputs: KeyInputs): string {
  const source = Object.fromEntries(Object.entries(inputs.source).sort(([a], [b]) => a.localeCompare(b)))
  // Only a patched build has the field, so the keys of every unpatched entry stay what they were.
  const patches = inputs.patches && inputs.patches.length > 0 ? {patches: [...inputs.patches]} : {}
  return sha256(
    JSON.stringify({format: KEY_FORMAT, source, base: inputs.base, fragment: normaliseFragmentText(inputs.fragment), compiler: inputs.compiler.trim(), arch: inputs.arch, ...patches}),
  )
}

/** VERSION.PATCHLEVEL.SUBLEVEL(EXTRAVERSION) from a tree's top Makefile. */
export function makefileVersion(makefile: string): string {
  const get = (name: string) => new RegExp(`^${name}[ \\t]*=[ \\t]*(\\S*)`, 'm').exec(makefile)?.[1] ?? ''
  const sub = get('SUBLEVEL')
  return `${get('VERSION')}.${get('PATCHLEVEL')}${sub && sub !== '0' ? `.${sub}` : ''}${get('EXTRAVERSION')}`
}

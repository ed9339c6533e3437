/**
 * A kernel as pmemlab's files name it (a matrix's kernels, a reproducer's kernel): a spec string
 * exactly as --kernel takes it, or a recipe pmemlab builds (what `kernel build` takes). Pure:
 * the shapes, and the checks that point at the line of a mistake.
 */
import {z} from 'zod'
import {list, text, type LocatedYaml, type YamlPath} from '../core/located.js'
import {parseSet} from './kconfig/merge.js'

/** The kinds of --kernel spec: distro, latest, debian:6.12[/suite], 6.1 (built), a key, a path. */
export type SpecKind = 'distro' | 'latest' | 'debian' | 'version' | 'key' | 'path'

export interface KernelBuild {
  from: 'kernel.org' | 'debian'
  version?: string
  source?: string
  tree?: string
  ref?: string
  configs: string[]
  /** CONFIG_NAME=VALUE, as `kernel build --set` takes them. */
  set: string[]
  /** --patch files, in order; absent when there are none (so recipes without patches keep their CI cache keys). */
  patches?: string[]
  base: 'tinyconfig' | 'defconfig'
  debug: boolean
}

export const VERSION = /^(\d+)\.(\d+)(?:\.(\d+))?$/
export const version = z.string().regex(VERSION, 'write a version like 6.1 or 6.12.3')

/**
 * set: a list of CONFIG_NAME=VALUE as --set takes them, or a mapping {CONFIG_NAME: VALUE}, which
 * reads better in YAML; both become the list. A value YAML reads as true, false or nothing
 * becomes text that the check then refuses: Kconfig's values are y, m, n, numbers and strings.
 */
const setShape = z.preprocess(
  (v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v).map(([key, value]) => (value !== null && typeof value === 'object' ? value : `${key}=${String(value)}`)) : v),
  list(text),
)

export const buildShape = z
  .object({
    version: version.optional(),
    from: z.enum(['kernel.org', 'debian']).optional(),
    source: text.optional(),
    tree: text.optional(),
    ref: text.optional(),
    configs: list(text),
    set: setShape,
    patches: list(text),
    base: z.enum(['tinyconfig', 'defconfig']).default('tinyconfig'),
    debug: z.boolean().default(false),
  })
  .strict()

/** The version a kernel spec carries (debian:6.12, 6.1.5), the kind of spec it is, or undefined if it is none. */
export function classifySpec(spec: string): {kind: SpecKind; version?: string} | undefined {
  if (spec === 'distro' || spec === 'latest') return {kind: spec}
  // debian:6.12, debian:7, debian:7/sid, an ABI (debian:6.12.38+deb13-amd64) or a package version
  // (debian:6.12.38-1): the version is its leading X.Y[.Z], if it has one; kernel/ checks the rest.
  const debian = /^debian:(\d[\w.+~:-]*)(?:\/[a-z][a-z0-9-]*)?$/.exec(spec)
  if (debian) {
    const lead = /^\d+\.\d+(?:\.\d+)?(?![\d.])/.exec(debian[1])?.[0]
    return {kind: 'debian', ...(lead ? {version: lead} : {})}
  }
  if (spec.startsWith('debian:')) return undefined
  if (VERSION.test(spec)) return {kind: 'version', version: spec}
  if (/^[0-9a-f]{6,64}$/.test(spec)) return {kind: 'key'}
  if (spec.includes('/')) return {kind: 'path'}
  return undefined
}

export const SPEC_FIX = 'write distro, latest, debian:6.12, debian:7/sid, a built version like 6.1, a key from pmemlab kernel ls, or a path with a slash like ./bzImage'

/** The kind of the spec written at AT, or the error naming its line. */
export function checkSpec(yaml: LocatedYaml, spec: string, at: YamlPath): {kind: SpecKind; version?: string} {
  const form = classifySpec(spec)
  if (!form) throw yaml.error(at, `"${spec}" is not a kernel spec`, SPEC_FIX)
  return form
}

/** Checks across a recipe's fields: one source, from and ref only where they mean something, each set an option. */
export function checkBuild(yaml: LocatedYaml, b: z.infer<typeof buildShape>, at: YamlPath): KernelBuild {
  const given = (['version', 'source', 'tree'] as const).filter((key) => b[key] !== undefined)
  if (given.length !== 1) {
    throw yaml.error(at, given.length === 0 ? 'names no source' : `has ${given.join(' and ')}`, 'give exactly one of version, source (a tarball) or tree (a git checkout)')
  }
  if (b.from !== undefined && b.version === undefined) throw yaml.error(at, 'from goes with version', 'remove from:, or build a version', 'from')
  if (b.ref !== undefined && b.tree === undefined) throw yaml.error(at, 'ref goes with tree', 'remove ref:, or build a tree', 'ref')
  if (b.patches.length > 0 && b.tree !== undefined && b.ref === undefined) {
    throw yaml.error(at, 'cannot be applied to a tree without ref', 'pmemlab builds such a tree in place and never writes to it: add ref: HEAD to patch a snapshot of a commit', 'patches')
  }
  const written = yaml.valueAt([...at, 'set'])
  b.set.forEach((set, j) => {
    try {
      parseSet(set)
    } catch {
      // A list's entries are named by their index, a mapping's by their key.
      if (Array.isArray(written)) throw yaml.error([...at, 'set', j], `"${set}" is not an option setting`, 'write CONFIG_NAME=VALUE, like CONFIG_KASAN=y')
      throw yaml.error([...at, 'set'], `"${set}" is not an option setting`, 'write CONFIG_NAME: VALUE, where VALUE is y, m, n, a number or a string in both quote kinds (YAML drops one pair), like \'"-lab"\'', Object.keys(written as object)[j])
    }
  })
  return {from: b.from ?? 'kernel.org', version: b.version, source: b.source, tree: b.tree, ref: b.ref, configs: b.configs, set: b.set, ...(b.patches.length > 0 ? {patches: b.patches} : {}), base: b.base, debug: b.debug}
}

/**
 * The kernels axis of a matrix file: each entry a --kernel spec string (distro, latest,
 * debian:6.12, a built version, a key, ./PATH) or a recipe pmemlab builds ({build: {...}}, what
 * `kernel build` takes), with an optional name. Pure: checked entries in, MatrixKernel out.
 */
import {basename} from 'node:path'
import {z} from 'zod'
import {parseSet} from '../kernel/kconfig/merge.js'
import type {LocatedYaml, YamlPath} from './located.js'

export type KernelKind = 'distro' | 'latest' | 'debian' | 'version' | 'key' | 'path' | 'build'

export interface KernelBuild {
  from: 'kernel.org' | 'debian'
  version?: string
  source?: string
  tree?: string
  ref?: string
  configs: string[]
  set: string[]
  /** --patch files, in order; absent when there are none (so recipes without patches keep their CI cache keys). */
  patches?: string[]
  base: 'tinyconfig' | 'defconfig'
  debug: boolean
}

export interface MatrixKernel {
  /** Unique in the plan, safe in a file name; the first part of a cell ID. */
  name: string
  kind: KernelKind
  /** The --kernel spec, for every kind but build. */
  spec?: string
  build?: KernelBuild
  /** What the plan knows of its version: "6.12" (some 6.12.N), "6.12.3", or undefined until resolved. */
  version?: string
  /** FILE:LINE:COLUMN of its entry. */
  where: string
}

// ---------------------------------------------------------------------------------------------
// Shapes shared by the file's schema

export const VERSION = /^(\d+)\.(\d+)(?:\.(\d+))?$/
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/
export const NAME_FIX = 'use up to 40 letters, digits, ".", "_" and "-", starting with a letter or digit'
export const text = z.string().min(1, 'is empty')
export const version = z.string().regex(VERSION, 'write a version like 6.1 or 6.12.3')
export const name = z.string().regex(NAME, NAME_FIX)
export const list = <T extends z.ZodTypeAny>(item: T) => z.array(item).nullish().transform((v) => v ?? [])
export const oneOrMore = <T extends z.ZodTypeAny>(item: T) => z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(item).min(1)).optional()

export const buildShape = z
  .object({
    version: version.optional(),
    from: z.enum(['kernel.org', 'debian']).optional(),
    source: text.optional(),
    tree: text.optional(),
    ref: text.optional(),
    configs: list(text),
    set: list(text),
    patches: list(text),
    base: z.enum(['tinyconfig', 'defconfig']).default('tinyconfig'),
    debug: z.boolean().default(false),
  })
  .strict()

export const kernelShape = z.object({name: name.optional(), spec: text.optional(), build: buildShape.optional()}).strict()
export const kernelEntry = z.preprocess((v) => (typeof v === 'string' ? {spec: v} : v), kernelShape)

/** How a kernel reads in tables and logs: its spec, or what it is built from. */
export function kernelLabel(kernel: MatrixKernel): string {
  if (kernel.spec !== undefined) return kernel.spec
  const b = kernel.build!
  const what = b.version !== undefined ? `${b.version} from ${b.from}` : b.source !== undefined ? b.source : `${b.tree}${b.ref ? `@${b.ref}` : ''}`
  return `build ${what}`
}

/** A name safe in IDs and file names: runs of anything but letters, digits, ".", "_" and "-" become "-". */
export function safeName(text: string): string {
  const safe = text.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '').slice(0, 40)
  return safe || 'x'
}

/** The version a kernel spec carries (debian:6.12, 6.1.5), the kind of spec it is, or undefined if it is none. */
export function classifySpec(spec: string): {kind: Exclude<KernelKind, 'build'>; version?: string} | undefined {
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

export function checkKernel(yaml: LocatedYaml, entry: z.infer<typeof kernelShape>, i: number): MatrixKernel {
  const at: YamlPath = ['kernels', i]
  const where = yaml.whereIs(at)
  if ((entry.spec === undefined) === (entry.build === undefined)) {
    throw yaml.error(at, entry.spec === undefined ? 'names no kernel' : 'has both spec and build', 'give a spec string like debian:6.12, or build: {version: 6.12}')
  }
  if (entry.spec !== undefined) {
    const form = classifySpec(entry.spec)
    if (!form) {
      throw yaml.error(
        [...at, 'spec'],
        `"${entry.spec}" is not a kernel spec`,
        'write distro, latest, debian:6.12, debian:7/sid, a built version like 6.1, a key from pmemlab kernel ls, or a path with a slash like ./bzImage',
      )
    }
    const derived = form.kind === 'debian' ? entry.spec.replace(':', '-') : form.kind === 'key' ? entry.spec.slice(0, 12) : form.kind === 'path' ? basename(entry.spec) : entry.spec
    return {name: entry.name ?? safeName(derived), kind: form.kind, spec: entry.spec, version: form.version, where}
  }
  const build = checkBuild(yaml, entry.build!, [...at, 'build'])
  const derived = build.version ?? (build.source ? basename(build.source).replace(/\.tar(\.\w+)?$/, '') : `${basename(build.tree!)}${build.ref ? `-${build.ref}` : ''}`)
  return {name: entry.name ?? safeName(derived), kind: 'build', build, version: build.version, where}
}

function checkBuild(yaml: LocatedYaml, b: z.infer<typeof buildShape>, at: YamlPath): KernelBuild {
  const given = (['version', 'source', 'tree'] as const).filter((key) => b[key] !== undefined)
  if (given.length !== 1) {
    throw yaml.error(at, given.length === 0 ? 'names no source' : `has ${given.join(' and ')}`, 'give exactly one of version, source (a tarball) or tree (a git checkout)')
  }
  if (b.from !== undefined && b.version === undefined) throw yaml.error(at, 'from goes with version', 'remove from:, or build a version', 'from')
  if (b.ref !== undefined && b.tree === undefined) throw yaml.error(at, 'ref goes with tree', 'remove ref:, or build a tree', 'ref')
  if (b.patches.length > 0 && b.tree !== undefined && b.ref === undefined) {
    throw yaml.error(at, 'cannot be applied to a tree without ref', 'pmemlab builds such a tree in place and never writes to it: add ref: HEAD to patch a snapshot of a commit', 'patches')
  }
  b.set.forEach((set, j) => {
    try {
      parseSet(set)
    } catch (error) {
      throw yaml.error([...at, 'set', j], `"${set}" is not an option setting`, 'write CONFIG_NAME=VALUE, like CONFIG_KASAN=y')
    }
  })
  return {from: b.from ?? 'kernel.org', version: b.version, source: b.source, tree: b.tree, ref: b.ref, configs: b.configs, set: b.set, ...(b.patches.length > 0 ? {patches: b.patches} : {}), base: b.base, debug: b.debug}
}


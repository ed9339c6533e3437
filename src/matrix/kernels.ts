/**
 * The kernels axis of a matrix file: each entry a --kernel spec string (distro, latest,
 * debian:6.12, a built version, a key, ./PATH) or a recipe pmemlab builds ({build: {...}}, what
 * `kernel build` takes), with an optional name. Pure: checked entries in, MatrixKernel out.
 */
import {basename} from 'node:path'
import {z} from 'zod'
import {text, type LocatedYaml, type YamlPath} from '../core/located.js'
import {buildShape, checkBuild, checkSpec, type KernelBuild, type SpecKind} from '../kernel/spec.js'

export type KernelKind = SpecKind | 'build'

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

export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/
export const NAME_FIX = 'use up to 40 letters, digits, ".", "_" and "-", starting with a letter or digit'
export const name = z.string().regex(NAME, NAME_FIX)
export const oneOrMore = <T extends z.ZodTypeAny>(item: T) => z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(item).min(1)).optional()

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

export function checkKernel(yaml: LocatedYaml, entry: z.infer<typeof kernelShape>, i: number): MatrixKernel {
  const at: YamlPath = ['kernels', i]
  const where = yaml.whereIs(at)
  if ((entry.spec === undefined) === (entry.build === undefined)) {
    throw yaml.error(at, entry.spec === undefined ? 'names no kernel' : 'has both spec and build', 'give a spec string like debian:6.12, or build: {version: 6.12}')
  }
  if (entry.spec !== undefined) {
    const form = checkSpec(yaml, entry.spec, [...at, 'spec'])
    const derived = form.kind === 'debian' ? entry.spec.replace(':', '-') : form.kind === 'key' ? entry.spec.slice(0, 12) : form.kind === 'path' ? basename(entry.spec) : entry.spec
    return {name: entry.name ?? safeName(derived), kind: form.kind, spec: entry.spec, version: form.version, where}
  }
  const build = checkBuild(yaml, entry.build!, [...at, 'build'])
  const derived = build.version ?? (build.source ? basename(build.source).replace(/\.tar(\.\w+)?$/, '') : `${basename(build.tree!)}${build.ref ? `-${build.ref}` : ''}`)
  return {name: entry.name ?? safeName(derived), kind: 'build', build, version: build.version, where}
}

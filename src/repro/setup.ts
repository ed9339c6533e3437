/**
 * What the runs of a reproducer share, made once before the first: the kernel (--kernel, else the
 * file's spec, else distro; or the file's recipe, built by kernel/build.ts as `kernel build` builds
 * it), the guest image, and the lab request every run boots. The choices are pure; resolving and
 * building are the edges.
 */
import {dirname} from 'node:path'
import type {ImageSpec} from '../image/spec.js'
import {DEFAULT_IMAGE} from '../image/store.js'
import {userImageName, type UserRecipe} from '../image/user-recipe.js'
import {resolveKernel} from '../kernel/boot.js'
import {buildKernel, type BuildRequest} from '../kernel/build.js'
import type {KernelSource} from '../kernel/source.js'
import {classifySpec, type KernelBuild} from '../kernel/spec.js'
import {resolveBuiltKernel} from '../kernel/store.js'
import type {LabRequest} from '../lab/vm.js'
import type {SeriesKernel} from './document.js'
import type {ReproLab, ReproPlan} from './schema.js'

/** The image `up` boots when none is named. */
export {DEFAULT_IMAGE}
/** As `up --boot-timeout` defaults it. */
export const BOOT_TIMEOUT_MS = 180_000

export type KernelChoice = {kind: 'spec'; spec: string; from: SeriesKernel['from']} | {kind: 'build'; build: KernelBuild; from: 'file'}

/** --kernel overrides the file (a bisect boots each commit's kernel with the same file); without either, distro. */
export function kernelChoice(plan: Pick<ReproPlan, 'kernel'>, flag?: string): KernelChoice {
  if (flag !== undefined) return {kind: 'spec', spec: flag, from: 'flag'}
  if (!plan.kernel) return {kind: 'spec', spec: 'distro', from: 'default'}
  if (plan.kernel.kind === 'build') return {kind: 'build', build: plan.kernel.build, from: 'file'}
  return {kind: 'spec', spec: plan.kernel.spec, from: 'file'}
}

/** What buildKernel takes for a file's recipe; the plan holds its paths resolved already. */
export function buildRequestOf(build: KernelBuild): BuildRequest {
  return {
    source: sourceOf(build),
    configs: build.configs,
    sets: build.set,
    ...(build.patches ? {patches: build.patches} : {}),
    debug: build.debug,
    base: build.base,
  }
}

function sourceOf(build: KernelBuild): KernelSource {
  if (build.version !== undefined) return build.from === 'debian' ? {kind: 'debian', version: build.version} : {kind: 'version', version: build.version}
  if (build.source !== undefined) return {kind: 'source', file: build.source}
  return {kind: 'tree', dir: build.tree!, ref: build.ref}
}

/**
 * The image the file names: a pmemlab image by name, a recipe file of the reproducer's own (its
 * path, resolved from the file's directory), or the default (or another base) with more packages
 * and files, a user recipe written inline whose sources are relative to the file's directory.
 * The image is built on first use and cached by its content (image/user-recipe.ts), like `up`'s.
 */
export function imageChoice(plan: Pick<ReproPlan, 'image' | 'file' | 'baseDir'>): ImageSpec {
  const image = plan.image
  if (!image) return DEFAULT_IMAGE
  if (image.kind === 'name') return image.name
  if (image.kind === 'recipe') return image.path
  if (image.packages.length === 0 && image.files.length === 0) return image.base === 'default' ? DEFAULT_IMAGE : image.base
  const recipe: UserRecipe = {
    file: image.where,
    baseDir: plan.baseDir,
    // Cached and listed as repro-STEM, apart from pmemlab's images and the user's recipe files.
    name: `repro-${userImageName({file: plan.file})}`,
    extends: image.base,
    packages: image.packages,
    files: image.files.map((file) => ({...file, where: image.where})),
  }
  return {kind: 'inline', recipe, path: `${plan.file} (image:)`}
}

/** The lab each run boots: the file's topology, as the up flags would give it. */
export function labRequestOf(lab: ReproLab, kernel: string, image: ImageSpec): LabRequest {
  return {
    kernel,
    image,
    topology: {machine: lab.machine, mem: lab.mem, memmap: lab.memmap, nvdimm: lab.nvdimm, virtioPmem: lab.virtioPmem},
    cpus: lab.cpus,
    accel: 'auto',
    append: lab.append,
    bootTimeoutMs: BOOT_TIMEOUT_MS,
  }
}

/** Kinds of spec that name a kernel pmemlab built, which may change meaning while runs go on ("latest"). */
const BUILT_SPECS = new Set(['latest', 'version', 'key'])

/**
 * The kernel, made ready once: built from the recipe, pulled (debian:X), or found. A built kernel
 * named by "latest" or a version is pinned to its key, so that every run boots the same kernel
 * even when another build finishes meanwhile. ENTRYDIR: the cache entry of a kernel built here.
 */
export async function prepareKernel(choice: KernelChoice): Promise<{kernel: SeriesKernel; entryDir?: string}> {
  if (choice.kind === 'build') {
    const result = await buildKernel(buildRequestOf(choice.build))
    return {kernel: {asked: 'the recipe', spec: result.key, from: 'file', version: result.build.kernelVersion, build: {key: result.key, cacheHit: result.cacheHit}}, entryDir: result.dir}
  }
  const asked = {asked: choice.spec, from: choice.from}
  const kind = classifySpec(choice.spec)?.kind
  if (kind !== undefined && BUILT_SPECS.has(kind)) {
    const built = await resolveBuiltKernel(choice.spec)
    // Its entry's files (config, build log, a debug build's vmlinux) go into the output as a recipe's do.
    if (built) return {kernel: {...asked, spec: built.key, version: built.version}, entryDir: dirname(built.buildJson)}
  }
  const boot = await resolveKernel(choice.spec)
  return {kernel: {...asked, spec: choice.spec, ...(boot.version ? {version: boot.version} : {})}}
}

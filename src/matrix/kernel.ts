/**
 * The kernels of a matrix on the kernel side: the build request of a kernel pmemlab builds (one
 * small function, buildRequest(), maps the matrix recipe onto what buildKernel takes), the spec a
 * cell boots, the options report kept with each cell, and the digests that make CI cache keys
 * change when the fragments do.
 */
import {createHash} from 'node:crypto'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {packageRoot} from '../core/paths.js'
import type {BuildRequest} from '../kernel/build.js'
import {parseDotConfig} from '../kernel/kconfig/merge.js'
import type {KernelSource} from '../kernel/source.js'
import type {BuildJson} from '../kernel/store.js'
import type {KernelBuild} from '../kernel/spec.js'
import type {MatrixKernel} from './kernels.js'
import {planPath, type MatrixPlan} from './schema.js'

/** The request buildKernel takes for a matrix recipe; relative paths are relative to the matrix file. */
export function buildRequest(build: KernelBuild, plan: Pick<MatrixPlan, 'baseDir'>): BuildRequest {
  return {
    source: buildSource(build, plan),
    configs: build.configs.map((config) => planPath(plan, config)),
    sets: build.set,
    ...(build.patches ? {patches: build.patches.map((patch) => planPath(plan, patch))} : {}),
    debug: build.debug,
    base: build.base,
  }
}

function buildSource(build: KernelBuild, plan: Pick<MatrixPlan, 'baseDir'>): KernelSource {
  if (build.version !== undefined) return build.from === 'debian' ? {kind: 'debian', version: build.version} : {kind: 'version', version: build.version}
  if (build.source !== undefined) return {kind: 'source', file: planPath(plan, build.source)}
  return {kind: 'tree', dir: planPath(plan, build.tree!), ref: build.ref}
}

/** What `--kernel` a cell of KERNEL boots: the built key, a path resolved against the matrix file, or the spec as written. */
export function bootSpec(kernel: MatrixKernel, plan: Pick<MatrixPlan, 'baseDir'>, builtKey?: string): string {
  if (kernel.kind === 'build') return builtKey!
  if (kernel.kind === 'path') return planPath(plan, kernel.spec!)
  return kernel.spec!
}

/**
 * The options report of a built kernel: every option the fragments asked for beside its value in
 * the final .config, and the options left out as not in this version.
 */
export function optionsReport(build: BuildJson, dotConfig: string, label: string): string {
  const config = parseDotConfig(dotConfig)
  const rows = Object.entries(build.requested)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([option, wanted]) => {
      const actual = config.get(option.replace(/^CONFIG_/, '')) ?? 'n'
      return `${actual === wanted ? 'ok  ' : 'DIFF'}  ${option}=${wanted}${actual === wanted ? '' : ` (the .config has ${actual})`}`
    })
  const notIn = ((build as {notInThisVersion?: Array<{option: string; value: string; when: string; from: string}>}).notInThisVersion ?? []).map(
    (o) => `not in this version  ${o.option}=${o.value} (${o.from} asks for it in ${o.when})`,
  )
  const fragments = build.fragments.map((f) => `${f.name} ${f.sha256.slice(0, 12)}${f.user ? ' (yours)' : ''}`)
  const patches = (build.patches ?? []).map((p) => `${p.name} ${p.sha256.slice(0, 12)}`)
  return [
    `kernel ${label}: linux ${build.kernelVersion}, key ${build.key}`,
    `base ${build.base}; fragments: ${fragments.join(', ')}${build.sets.length > 0 ? `; set: ${build.sets.join(' ')}` : ''}${patches.length > 0 ? `; patches: ${patches.join(', ')}` : ''}`,
    `${rows.length} options requested, ${rows.filter((r) => r.startsWith('ok')).length} as asked in the final .config`,
    '',
    ...rows,
    ...(notIn.length > 0 ? ['', ...notIn] : []),
    '',
  ].join('\n')
}

/** sha256 over the checked-in fragments (kernel-configs/*.config), by name and content. */
export async function fragmentsDigest(dir = join(packageRoot, 'kernel-configs')): Promise<string> {
  const hash = createHash('sha256')
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.config')).sort()) {
    hash.update(`${name}\0`)
    hash.update(await readFile(join(dir, name)))
    hash.update('\0')
  }
  return hash.digest('hex')
}

/**
 * The salt of each kernel's CI cache key (list.ts kernelCacheKey): for a kernel pmemlab builds,
 * the checked-in fragments, the user's own and the patches, in order (a changed one is another kernel); nothing for
 * prebuilt and distro kernels, whose spec says it all.
 */
export async function cacheSalts(plan: Pick<MatrixPlan, 'baseDir' | 'kernels'>): Promise<Map<string, string>> {
  const shared = await fragmentsDigest()
  const salts = new Map<string, string>()
  for (const kernel of plan.kernels) {
    if (kernel.kind !== 'build') continue
    const hash = createHash('sha256').update(shared)
    // A fragment is tagged by its name as written, a patch by "patch" (its name is not its content).
    const files = [...kernel.build!.configs.map((config) => [config, config]), ...(kernel.build!.patches ?? []).map((patch) => ['patch', patch])]
    for (const [tag, file] of files) {
      const path = planPath(plan, file)
      hash.update(`\0${tag}\0`)
      hash.update(await readFile(path).catch(() => Buffer.from(`missing ${path}`)))
    }
    salts.set(kernel.name, hash.digest('hex').slice(0, 16))
  }
  return salts
}

/**
 * The configure stage of a kernel build: the base (tinyconfig or defconfig), the checked-in
 * kernel-configs/ fragments merged with the user's --config files and --set options, make
 * olddefconfig, then the proof that every requested option survived: a dropped one is reported
 * with the dependency it lacks, and the build stops before anything is compiled. An option scoped
 * to other kernel versions (`# pmemlab-when: linux < 5.19`) is left out and reported as "not in
 * this version"; it never reaches the .config, the check or the cache key.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {packageRoot} from '../core/paths.js'
import {forgetConfigured, markConfigured, reusableConfig} from './configure-reuse.js'
import {explainDrop} from './kconfig/explain.js'
import {applyFragment, mergeFragments, origin, parseDotConfig, parseFragment, parseSet, renderAssignment, renderFragment, type FragmentInput, type MergeResult} from './kconfig/merge.js'
import {verifyConfig} from './kconfig/verify.js'
import {makefileVersion, sha256, type KernelBase} from './key.js'
import {samePatches} from './patch.js'
import {runMake, type Interrupt, type MakeContext} from './make.js'
import {readKconfigTree, sourceDir, type PreparedSource} from './source.js'
import {listKernels} from './store.js'

export const fragmentsDir = () => join(packageRoot, 'kernel-configs')

export interface FragmentRecord {
  name: string
  path: string
  sha256: string
  user: boolean
}

/** The fragments, read and checked (every line, every `# pmemlab-when:` range), not yet merged. */
export interface LoadedFragments {
  records: FragmentRecord[]
  inputs: FragmentInput[]
}

/** An option left out of this build by its range, as build.json and --json report it. */
export interface NotInThisVersion {
  option: string
  value: string
  /** The range it is requested for: "linux < 5.19". */
  when: string
  /** Where: "kernel-configs/pmem.config:33". */
  from: string
}

/** The fragments merged for one kernel version. */
export interface VersionedFragments extends LoadedFragments {
  kernelVersion: string
  merged: MergeResult
  /** The merged fragment, sorted: what goes into .config and into the key. */
  text: string
  notInThisVersion: NotInThisVersion[]
}

/**
 * The checked-in fragments (qemu-base, pmem, debug when asked), then --config files, then --set.
 * Every line is checked here, before anything is fetched or built: a malformed line or range
 * is a usage error naming the file and line.
 */
export async function loadFragments(request: {configs?: string[]; sets?: string[]; debug?: boolean}): Promise<LoadedFragments> {
  const records: FragmentRecord[] = []
  const inputs: FragmentInput[] = []
  const builtin = ['qemu-base.config', 'pmem.config', ...(request.debug ? ['debug.config'] : [])]
  for (const name of builtin) {
    const path = join(fragmentsDir(), name)
    const text = await readFile(path, 'utf8')
    records.push({name: `kernel-configs/${name}`, path, sha256: sha256(text), user: false})
    inputs.push({name: `kernel-configs/${name}`, text})
  }
  for (const file of request.configs ?? []) {
    const named = await namedFragment(file)
    if (named) {
      records.push({name: `kernel-configs/${file}.config`, path: named.path, sha256: sha256(named.text), user: false})
      inputs.push({name: `kernel-configs/${file}.config`, text: named.text})
      continue
    }
    const path = resolve(file)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (error) {
      throw usageError(`cannot read the fragment ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
    records.push({name: file, path, sha256: sha256(text), user: true})
    inputs.push({name: file, text, user: true})
  }
  if (request.sets && request.sets.length > 0) {
    const text = request.sets.map((set) => {
      const {symbol, value} = parseSet(set)
      return renderAssignment(symbol, value)
    })
    inputs.push({name: '--set', text: text.join('\n'), user: true})
  }
  for (const input of inputs) parseFragment(input.text, input.name)
  return {records, inputs}
}

/** Fragments always applied: --config cannot name them again. */
const ALWAYS = new Set(['qemu-base', 'pmem'])

/**
 * A checked-in fragment named by --config NAME (kernel-configs/NAME.config: ndctl, debug), or
 * nothing when NAME is a path. A file of the same name in the current directory is ./NAME.
 */
async function namedFragment(name: string): Promise<{path: string; text: string} | undefined> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || ALWAYS.has(name)) return undefined
  const path = join(fragmentsDir(), `${name}.config`)
  const text = await readFile(path, 'utf8').catch(() => undefined)
  return text === undefined ? undefined : {path, text}
}

/** The fragments merged for one kernel version, with the overrides and the options not in this version logged. */
export function fragmentsForVersion(loaded: LoadedFragments, kernelVersion: string): VersionedFragments {
  const merged = mergeFragments(loaded.inputs, kernelVersion)
  for (const override of merged.overrides) {
    const to = override.to.file === '--set' ? origin(override.to) : `CONFIG_${override.symbol}=${override.to.value} in ${origin(override.to)}`
    log.info(`${to} overrides CONFIG_${override.symbol}=${override.from.value} from ${origin(override.from)}`)
  }
  const notInThisVersion = merged.notInVersion.map((option) => ({
    option: `CONFIG_${option.symbol}`,
    value: option.value,
    when: `linux ${option.range.text}`,
    from: origin(option),
  }))
  for (const option of notInThisVersion) {
    log.info(`${option.option}=${option.value}: not in this version (linux ${kernelVersion}; ${option.from} asks for it in ${option.when})`)
  }
  return {...loaded, kernelVersion, merged, text: renderFragment(merged.options), notInThisVersion}
}

/**
 * The fragments as they apply to the source's kernel version. The version is wanted before the
 * cache key (the key holds the options that apply, not their ranges), so it is read without
 * extracting when it can be: from a tree built in place, or from a built entry of the same
 * source and patches (a patch may change the Makefile's version). A source that has no entry
 * cannot be a cache hit: it is extracted (and patched) now instead of later.
 */
export async function fragmentsForSource(loaded: LoadedFragments, prepared: PreparedSource, interrupt?: Interrupt): Promise<VersionedFragments & {extractMs: number}> {
  const key = prepared.keySource
  const sameSource = (record: object) => {
    const fields = record as {sha256?: string; commit?: string; dirty?: string | null}
    if (key.tarball) return fields.sha256 === key.tarball
    return key.commit !== undefined && key.commit !== null && fields.commit === key.commit && (fields.dirty ?? null) === (key.dirty ?? null)
  }
  const sameBuild = (build: {source: object; patches?: {sha256: string}[]}) => sameSource(build.source) && samePatches(build.patches, prepared.patches)
  let kernelVersion = prepared.srcDir ? undefined : (await listKernels()).find((entry) => sameBuild(entry.build))?.build.kernelVersion
  let extractMs = 0
  if (kernelVersion === undefined) {
    const extracted = await sourceDir(prepared, interrupt)
    extractMs = extracted.extractMs
    kernelVersion = makefileVersion(await readFile(join(extracted.dir, 'Makefile'), 'utf8'))
  }
  return {...fragmentsForVersion(loaded, kernelVersion), extractMs}
}

export interface ConfigureRequest {
  base: KernelBase
  fragments: VersionedFragments
  /** The --set options, counted in the log line. */
  sets?: string[]
  kernelVersion: string
  srcDir: string
  /** make's O= directory, where the .config is written. */
  outDir: string
  /** A pinned O= directory's configure digest (configure-reuse.ts): its .config is reused when made from the same inputs. */
  reuseDigest?: string
}

/** Configures outDir and returns its final .config; throws, before anything is compiled, when a requested option was dropped. */
export async function configureKernel(request: ConfigureRequest, make: MakeContext): Promise<{configPath: string; finalConfig: string}> {
  const {base, fragments, kernelVersion, srcDir} = request
  const {makeBase, logFile, pidFile, interrupt} = make
  if (fragments.kernelVersion !== kernelVersion) {
    throw new PmemlabError(`internal error: the fragments were merged for linux ${fragments.kernelVersion}, the source is linux ${kernelVersion}`, ExitCode.failure)
  }
  const configPath = join(request.outDir, '.config')
  const {reuseDigest, outDir} = request
  let finalConfig = reuseDigest === undefined ? undefined : await reusableConfig(outDir, reuseDigest)
  if (finalConfig !== undefined) {
    log.info(`configuration of linux ${kernelVersion} reused: ${outDir} was configured from the same base, fragments, compiler and Kconfig files`)
  } else {
    if (reuseDigest !== undefined) await forgetConfigured(outDir)
    log.info(`configuring linux ${kernelVersion}: ${base} + ${fragments.records.map((r) => r.name.replace(/^kernel-configs\//, '')).join(' + ')}${request.sets?.length ? ` + ${request.sets.length} --set` : ''}`)
    await runMake(base, [...makeBase, base], logFile, pidFile, interrupt)
    await writeFile(configPath, applyFragment(await readFile(configPath, 'utf8'), fragments.merged.options))
    await runMake('olddefconfig', [...makeBase, 'olddefconfig'], logFile, pidFile, interrupt)
    finalConfig = await readFile(configPath, 'utf8')
  }
  const drops = verifyConfig(fragments.merged.options, finalConfig)
  if (drops.length > 0) {
    const tree = readKconfigTree(srcDir)
    const final = parseDotConfig(finalConfig)
    for (const drop of drops) log.error(`${explainDrop(tree, drop, final, fragments.merged.options)} [requested in ${origin(drop.option)}]`)
    throw new PmemlabError(
      `${drops.length} requested option${drops.length === 1 ? '' : 's'} did not survive make olddefconfig: nothing was compiled`,
      ExitCode.failure,
      'fix the fragment or --set named above (pmemlab kernel config --explain CONFIG_X shows the dependencies)',
    )
  }
  if (reuseDigest !== undefined) await markConfigured(outDir, reuseDigest, finalConfig)
  return {configPath, finalConfig}
}

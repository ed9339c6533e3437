/**
 * The configure stage of a kernel build: the base (tinyconfig or defconfig), the checked-in
 * kernel-configs/ fragments merged with the user's --config files and --set options, make
 * olddefconfig, then the proof that every requested option survived: a dropped one is reported
 * with the dependency it lacks, and the build stops before anything is compiled.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {packageRoot} from '../core/paths.js'
import {explainDrop} from './kconfig/explain.js'
import {applyFragment, mergeFragments, origin, parseDotConfig, parseSet, renderAssignment, renderFragment, type FragmentInput} from './kconfig/merge.js'
import {verifyConfig} from './kconfig/verify.js'
import {sha256, type KernelBase} from './key.js'
import {runMake, type MakeContext} from './make.js'
import {readKconfigTree} from './source.js'

export const fragmentsDir = () => join(packageRoot, 'kernel-configs')

export interface FragmentRecord {
  name: string
  path: string
  sha256: string
  user: boolean
}

export interface LoadedFragments {
  records: FragmentRecord[]
  inputs: FragmentInput[]
  merged: ReturnType<typeof mergeFragments>
  /** The merged fragment, sorted: what goes into .config and into the key. */
  text: string
}

/** The checked-in fragments (qemu-base, pmem, debug when asked), then --config files, then --set. */
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
  const merged = mergeFragments(inputs)
  for (const override of merged.overrides) {
    const to = override.to.file === '--set' ? origin(override.to) : `CONFIG_${override.symbol}=${override.to.value} in ${origin(override.to)}`
    log.info(`${to} overrides CONFIG_${override.symbol}=${override.from.value} from ${origin(override.from)}`)
  }
  return {records, inputs, merged, text: renderFragment(merged.options)}
}

export interface ConfigureRequest {
  base: KernelBase
  fragments: LoadedFragments
  /** The --set options, counted in the log line. */
  sets?: string[]
  kernelVersion: string
  srcDir: string
  /** make's O= directory, where the .config is written. */
  outDir: string
}

/** Configures outDir and returns its final .config; throws, before anything is compiled, when a requested option was dropped. */
export async function configureKernel(request: ConfigureRequest, make: MakeContext): Promise<{configPath: string; finalConfig: string}> {
  const {base, fragments, kernelVersion, srcDir} = request
  const {makeBase, logFile, pidFile, interrupt} = make
  log.info(`configuring linux ${kernelVersion}: ${base} + ${fragments.records.map((r) => r.name.replace(/^kernel-configs\//, '')).join(' + ')}${request.sets?.length ? ` + ${request.sets.length} --set` : ''}`)
  await runMake(base, [...makeBase, base], logFile, pidFile, interrupt)
  const configPath = join(request.outDir, '.config')
  await writeFile(configPath, applyFragment(await readFile(configPath, 'utf8'), fragments.merged.options))
  await runMake('olddefconfig', [...makeBase, 'olddefconfig'], logFile, pidFile, interrupt)
  const finalConfig = await readFile(configPath, 'utf8')
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
  return {configPath, finalConfig}
}

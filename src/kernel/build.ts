/**
 * src/kernel/ owns the guest kernels: the kernel a VM boots (boot.ts, initramfs.ts), kernel builds
 * from fragments (this module, with source.ts, patch.ts, configure.ts, make.ts and key.ts), downloads
 * (fetch.ts), the built-kernel cache (store.ts) and the Kconfig core (kconfig/).
 *
 * This module runs a build end to end: fetch and extract the source (source.ts), patch a copy of
 * it with --patch (patch-tree.ts), configure (tinyconfig + fragments + olddefconfig, then prove
 * that nothing requested was dropped: configure.ts), build (make, ccache, progress on stderr: make.ts) and store the entry
 * (store.ts) under its content address (key.ts). It also explains one Kconfig symbol.
 *
 * Layout under cacheDir():
 *   downloads/linux-X.tar.xz (+ .sha256)   verified tarballs; written under a temp name, renamed when the sum matches
 *   build/src-<sha>/                        extracted sources, one per tarball (or git commit); reused
 *   build/src-<sha>-patched-<id>/           a patched copy of one, per ordered --patch set (patch-tree.ts); reused
 *   build/src-<sha>/.out-<key>-<pid>/       make's O= directory while a build runs, inside the source pmemlab
 *                                           owns: kbuild then names every path relative to it (srctree ".."), so
 *                                           ccache hits across copies of one source (a patched copy, a snapshot)
 *   build/out-<key>-<pid>/                  make's O= directory when building a user's working tree in place
 *   <BuildRequest.buildDir>/                make's O= directory when the caller pins one (pmemlab bisect: <tree>/.pmemlab-bisect/,
 *                                           kept between builds); build/pinned-<id>.lock while a build uses it
 *   build/failed-<key>.log                  the make output of the last failed build of a key
 *   kernels/<key>/                          finished entries: build.json, .config, build.log, bzImage, System.map (patches/ when patched,
 *                                           vmlinux when built with debug info: see keepsVmlinux)
 *   kernels/<key>.lock                      held (pid inside) while a key is being built
 */
import {copyFile, mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {dirname, join, relative, resolve} from 'node:path'
import {stampFiles} from '../core/artifact.js'
import {acquireLock, removeStaleTemps} from '../core/cache.js'
import {notFound, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {noSpaceError} from '../core/nospace.js'
import {buildDir, cacheDir, kernelsDir} from '../core/paths.js'
import {canAccess as exists} from '../core/which.js'
import {configureKernel, fragmentsForSource, loadFragments} from './configure.js'
import {configureDigestOf} from './configure-reuse.js'
import {hasPvhNote} from './pvh.js'
import {explain, explainDrop, type Explanation} from './kconfig/explain.js'
import {parseDotConfig} from './kconfig/merge.js'
import {computeKey, makefileVersion, sha256, type KernelBase} from './key.js'
import {compileKernel, formatDuration, Interrupt, toolchain, type MakeContext} from './make.js'
import {patchKeyPart, patchRecords} from './patch.js'
import {readPatches} from './patch-tree.js'
import {prepareSource, readKconfigTree, sourceDir, sourceOfRecord, type KernelSource} from './source.js'
import {findOne, readEntry, type BuildJson} from './store.js'

export interface BuildRequest {
  source: KernelSource
  /** User fragments (--config FILE), applied after the checked-in ones. */
  configs?: string[]
  /** --set CONFIG_X=VALUE, applied last. */
  sets?: string[]
  /** --patch FILE, applied in this order to pmemlab's copy of the source before configuring. */
  patches?: string[]
  /** Add kernel-configs/debug.config. */
  debug?: boolean
  base?: KernelBase
  jobs?: number
  /**
   * make's O= directory, pinned and kept between builds, so that building one commit after
   * another in a tree is incremental (pmemlab bisect). Absolute; outside the source tree or a
   * direct child of it (see pinnedBuildDirProblem). A build keeps its .config while nothing
   * Kconfig reads changed (configure-reuse.ts), else configures it afresh, and holds
   * build/pinned-<id>.lock meanwhile.
   * A build that fails or is interrupted leaves the directory as make left it: kbuild rebuilds
   * any object whose command record (.cmd) is missing or differs, and only a finished build's
   * files are copied into the entry, which is still published with one rename.
   */
  buildDir?: string
  /**
   * Pin what kbuild stamps into the image (time, build number, user, host): two commits that
   * change nothing the kernel runs then give byte-identical bzImages (a bisect's culprit check).
   */
  reproducible?: boolean
}

/** make variables that make a build reproducible (Documentation/kbuild/reproducible-builds.rst). */
export const REPRODUCIBLE_MAKE_VARS = ['KBUILD_BUILD_TIMESTAMP=Thu Jan  1 00:00:00 UTC 1970', 'KBUILD_BUILD_VERSION=1', 'KBUILD_BUILD_USER=pmemlab', 'KBUILD_BUILD_HOST=pmemlab']

/**
 * Why BUILDDIR cannot be make's O= directory for SRCDIR, in one line; undefined when it can. It
 * may be a direct child of the tree: kbuild then names every path relative to it (srctree ".."),
 * so ccache hits objects built from any other copy of the same source, and the .gitignore kbuild
 * (and pmemlab, first) writes into it keeps it out of git status. Deeper inside, or a tree inside
 * the build directory, it would be built into its own source.
 */
export function pinnedBuildDirProblem(buildDir: string, srcDir: string): string | undefined {
  if (!buildDir.startsWith('/')) return `the build directory ${buildDir} is not an absolute path`
  const inside = (dir: string, parent: string) => {
    const path = relative(resolve(parent), resolve(dir))
    return path === '' || (!path.startsWith('..') && !path.startsWith('/'))
  }
  if (inside(buildDir, srcDir) && dirname(resolve(buildDir)) !== resolve(srcDir)) return `the build directory ${buildDir} is inside the kernel tree ${srcDir} but not directly under its top`
  if (inside(srcDir, buildDir)) return `the kernel tree ${srcDir} is inside the build directory ${buildDir}`
  return undefined
}

/** The lock a build holds on a pinned O= directory: in pmemlab's build directory, never in a tree. */
export const pinnedBuildDirLock = (dir: string) => join(buildDir(), `pinned-${sha256(resolve(dir)).slice(0, 16)}.lock`)

export interface BuildResult {
  cacheHit: boolean
  key: string
  /** The entry's directory. */
  dir: string
  /** The bzImage. */
  kernel: string
  build: BuildJson
}

export function hostArch(): string {
  if (process.arch !== 'x64') throw usageError(`pmemlab builds x86_64 guest kernels, on x86_64 hosts only (this host is ${process.arch})`)
  return 'x86_64'
}

// ------------------------------------------------------------------------------------------------
// Build
// ------------------------------------------------------------------------------------------------

/**
 * Whether the entry keeps the vmlinux: a debug build, or any build whose final .config has debug
 * info (a recipe's `set: {CONFIG_DEBUG_INFO_DWARF5: y}`), since only its DWARF decodes an Oops
 * trace to lines (repro --with-vmlinux). Without debug info it is only a bigger bzImage. It costs
 * room in the cache: a vmlinux with DWARF is often a few hundred MB.
 */
export function keepsVmlinux(debug: boolean, finalConfig: string): boolean {
  return debug || parseDotConfig(finalConfig).get('DEBUG_INFO') === 'y'
}

/** The entry's copy of the kernel's PVH vmlinux, which QEMU boots without decompressing (see pvh.ts). */
export const PVH_FILE = 'vmlinux.pvh'

/**
 * Copies the stripped vmlinux make packed into the bzImage (arch/x86/boot/compressed/vmlinux.bin)
 * into the entry when it has a PVH entry point, so that booting a new build does not decompress
 * its bzImage on the host first (about 1 s per bisect step under load). False when there is none.
 */
export async function keepPvhVmlinux(outDir: string, entryDir: string): Promise<boolean> {
  const made = join(outDir, 'arch', 'x86', 'boot', 'compressed', 'vmlinux.bin')
  let elf: Buffer
  try {
    elf = await readFile(made)
  } catch {
    return false // a kernel tree that lays the build out otherwise: the bzImage is taken apart at boot instead
  }
  if (!hasPvhNote(elf)) return false
  await writeFile(join(entryDir, PVH_FILE), elf)
  return true
}

/** Where a kernel build writes (sources, make's O= tree, the entry): all in the cache. */
const cacheDirs = () => [{dir: cacheDir(), envVar: 'PMEMLAB_CACHE_DIR'}]

function hitResult(key: string, build: BuildJson): BuildResult {
  const dir = join(kernelsDir(), key)
  return {cacheHit: true, key, dir, kernel: join(dir, build.files.kernel), build}
}

/**
 * `pmemlab kernel build`: a cache hit returns at once; otherwise fetch, extract, configure,
 * verify (a dropped option fails here, before compiling), build and store the entry atomically.
 */
export async function buildKernel(request: BuildRequest): Promise<BuildResult> {
  const started = Date.now()
  const base = request.base ?? 'tinyconfig'
  const arch = hostArch()
  const interrupt = new Interrupt()
  interrupt.install()
  try {
    const loaded = await loadFragments(request)
    // Read before anything is downloaded: a missing patch fails at once, and what is hashed is what is applied.
    const patches = await readPatches(request.patches ?? [])
    const [prepared, tools] = await Promise.all([prepareSource(request.source, interrupt.aborted, patches), toolchain()])
    // Options scoped to other kernel versions leave the set here, so the key never sees a range.
    const {extractMs: versionExtractMs, ...fragments} = await fragmentsForSource(loaded, prepared, interrupt)
    const key = computeKey({source: prepared.keySource, base, fragment: fragments.text, compiler: tools.compiler, arch, patches: patchKeyPart(patches)})
    const entryDir = join(kernelsDir(), key)
    const cached = await readEntry(entryDir)
    if (cached) {
      log.info(`cache hit: ${key.slice(0, 12)} (linux ${cached.kernelVersion}, built ${cached.createdAt})`)
      // Same options, maybe other ranges around them: report what this request leaves out.
      return hitResult(key, {...cached, notInThisVersion: fragments.notInThisVersion})
    }

    await mkdir(kernelsDir(), {recursive: true})
    const release = await acquireLock(`${entryDir}.lock`, 'kernel', interrupt.aborted)
    const tempEntry = join(kernelsDir(), `.tmp-${key}-${process.pid}`)
    const outName = `${key.slice(0, 16)}-${process.pid}`
    let outDir: string | undefined
    let releasePinned: (() => Promise<void>) | undefined
    try {
      const again = await readEntry(entryDir)
      if (again) {
        log.info(`cache hit: ${key.slice(0, 12)} (built meanwhile by another pmemlab)`)
        return hitResult(key, {...again, notInThisVersion: fragments.notInThisVersion})
      }
      await removeStaleTemps(kernelsDir(), new RegExp(`^\\.tmp-${key}-\\d+$`))
      await removeStaleTemps(buildDir(), new RegExp(`^out-${key.slice(0, 16)}-\\d+$`))
      await rm(entryDir, {recursive: true, force: true}) // an incomplete leftover (no build.json or no bzImage)
      await mkdir(tempEntry, {recursive: true})
      const logFile = join(tempEntry, 'build.log')
      const pidFile = join(buildDir(), `make-${key.slice(0, 16)}.pid`)

      const {dir: srcDir, extractMs} = await sourceDir(prepared, interrupt)
      // In a source pmemlab owns, O= is a direct child of it: kbuild's srctree is then ".." and no
      // compile command names the source's own directory, which ccache would otherwise hash. A
      // user's working tree (prepared.srcDir) is never written.
      const owned = prepared.srcDir === undefined
      if (request.buildDir !== undefined) {
        const problem = pinnedBuildDirProblem(request.buildDir, srcDir)
        if (problem) throw usageError(problem)
        await mkdir(buildDir(), {recursive: true})
        releasePinned = await acquireLock(pinnedBuildDirLock(request.buildDir), 'kernel build directory', interrupt.aborted)
        // Inside a git tree, an O= directory that ignores itself stays out of git status (kbuild writes the same file).
        await mkdir(request.buildDir, {recursive: true})
        await writeFile(join(request.buildDir, '.gitignore'), '# this is build directory, ignore it\n*\n', {flag: 'wx'}).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error
        })
        outDir = request.buildDir
      } else {
        if (owned) await removeStaleTemps(srcDir, new RegExp(`^\\.out-${key.slice(0, 16)}-\\d+$`))
        outDir = owned ? join(srcDir, `.out-${outName}`) : join(buildDir(), `out-${outName}`)
      }
      await mkdir(outDir, {recursive: true})
      const kernelVersion = makefileVersion(await readFile(join(srcDir, 'Makefile'), 'utf8'))
      const stamps = request.reproducible ? REPRODUCIBLE_MAKE_VARS : []
      const make: MakeContext = {makeBase: ['-C', srcDir, `O=${outDir}`, ...tools.makeVars, ...stamps], logFile, pidFile, interrupt}

      // Configure, then prove that every requested option survived.
      const configureStarted = Date.now()
      // A pinned O= directory of a clean commit may keep its configuration from the last build.
      const {commit, dirty} = prepared.keySource
      const reuseDigest = request.buildDir !== undefined && patches.length === 0 && typeof commit === 'string' && dirty === null ? await configureDigestOf(srcDir, commit, {base, fragment: fragments.text, compiler: tools.compiler}) : undefined
      const {configPath, finalConfig} = await configureKernel({base, fragments, sets: request.sets, kernelVersion, srcDir, outDir, reuseDigest}, make)
      const configureMs = Date.now() - configureStarted

      // Build.
      const {modules, jobs, objects, buildMs} = await compileKernel({finalConfig, base, debug: request.debug === true, jobs: request.jobs, ccache: tools.ccache, entryDir: tempEntry}, make)

      // Assemble the entry and publish it with one rename.
      await copyFile(join(outDir, 'arch', 'x86', 'boot', 'bzImage'), join(tempEntry, 'bzImage'))
      await copyFile(configPath, join(tempEntry, '.config'))
      await copyFile(join(outDir, 'System.map'), join(tempEntry, 'System.map')).catch(() => undefined)
      const vmlinux = keepsVmlinux(request.debug === true, finalConfig)
      if (vmlinux) await copyFile(join(outDir, 'vmlinux'), join(tempEntry, 'vmlinux'))
      const pvh = await keepPvhVmlinux(outDir, tempEntry)
      // The entry keeps the patches it was built with, to explain the kernel and build it again.
      const patchList = patchRecords(patches)
      if (patchList.length > 0) await mkdir(join(tempEntry, 'patches'))
      for (const [i, record] of patchList.entries()) await writeFile(join(tempEntry, record.file), patches[i].bytes)
      const build: BuildJson = {
        key,
        version: prepared.record.kind === 'version' ? prepared.record.version : kernelVersion,
        kernelVersion,
        source: prepared.record,
        base,
        debug: request.debug === true,
        fragments: fragments.records,
        sets: request.sets ?? [],
        patches: patchList,
        requested: Object.fromEntries([...fragments.merged.options].map(([symbol, option]) => [`CONFIG_${symbol}`, option.value])),
        notInThisVersion: fragments.notInThisVersion,
        compiler: tools.compiler,
        ccache: tools.ccache,
        arch,
        jobs,
        modules,
        objects,
        timings: {fetchMs: prepared.fetchMs, extractMs: versionExtractMs + extractMs, configureMs, buildMs, totalMs: Date.now() - started},
        createdAt: new Date().toISOString(),
        files: {kernel: 'bzImage', config: '.config', log: 'build.log', systemMap: 'System.map', ...(vmlinux ? {vmlinux: 'vmlinux'} : {}), ...(pvh ? {pvh: PVH_FILE} : {})},
        // Checked whenever the entry is used: a truncated bzImage is refused, never booted.
        artifacts: await stampFiles(tempEntry, ['bzImage', '.config', 'System.map', ...(vmlinux ? ['vmlinux'] : []), ...(pvh ? [PVH_FILE] : [])]),
      }
      await writeFile(join(tempEntry, 'build.json'), `${JSON.stringify(build, null, 2)}\n`)
      interrupt.check()
      await rename(tempEntry, entryDir)
      log.info(`built linux ${kernelVersion} in ${formatDuration(build.timings.totalMs)} (${objects} objects): ${key.slice(0, 12)}`)
      return {cacheHit: false, key, dir: entryDir, kernel: join(entryDir, 'bzImage'), build}
    } catch (error) {
      // Keep the make output of a failed build where the user can read it.
      if (!interrupt.signal && (await exists(join(tempEntry, 'build.log')))) {
        const failedLog = join(buildDir(), `failed-${key.slice(0, 16)}.log`)
        await rename(join(tempEntry, 'build.log'), failedLog).catch(() => undefined)
        // make says "No space left on device" in its output only.
        const noSpace = await noSpaceError(error, {doing: 'building a kernel', dirs: cacheDirs(), logFile: failedLog})
        if (noSpace) throw noSpace
        if (error instanceof PmemlabError && error.message.startsWith('make ')) {
          throw new PmemlabError(error.message, error.exitCode, `the make output is in ${failedLog}`)
        }
      }
      throw interrupt.signal ? interrupt.controller.signal.reason : error
    } finally {
      interrupt.killAll('SIGKILL')
      await rm(tempEntry, {recursive: true, force: true})
      // A pinned directory is the next build's head start; only a per-build one goes.
      if (outDir && !releasePinned) await rm(outDir, {recursive: true, force: true})
      await releasePinned?.()
      await release()
    }
  } catch (error) {
    if (interrupt.signal) throw interrupt.controller.signal.reason
    throw (await noSpaceError(error, {doing: 'building a kernel', dirs: cacheDirs()})) ?? error
  } finally {
    interrupt.uninstall()
  }
}

// ------------------------------------------------------------------------------------------------
// Explain (pmemlab kernel config --explain)
// ------------------------------------------------------------------------------------------------

export interface ExplainRequest {
  symbol: string
  source?: KernelSource
  /** A .config to evaluate the dependencies against. */
  dotConfig?: string
  /** A built kernel (key, version, latest): its .config, and its source when none is given. */
  kernel?: string
}

export interface ExplainResult {
  kernelVersion: string
  explanation: Explanation
  /** With a .config where the symbol is off: why, in one line. */
  reason?: string
}

/** The Kconfig facts about one symbol, from the given source (or a built kernel's source). */
export async function explainSymbol(request: ExplainRequest): Promise<ExplainResult> {
  const symbol = request.symbol.replace(/^CONFIG_/, '')
  if (!/^[A-Za-z0-9_]+$/.test(symbol)) throw usageError(`--explain ${request.symbol}: expected a symbol such as CONFIG_DEV_DAX`)
  let configText: string | undefined
  let source = request.source
  let patches: string[] = []
  if (request.kernel) {
    const entry = await findOne(request.kernel)
    if (!entry) throw usageError(`--kernel ${request.kernel}: expected a kernel key, version or "latest"`)
    configText = await readFile(join(entry.dir, entry.build.files.config), 'utf8')
    if (!source) {
      source = sourceOfRecord(entry.build.source)
      // A patched kernel's Kconfig is the patched one: the entry kept the patches.
      patches = (entry.build.patches ?? []).map((patch) => join(entry.dir, patch.file))
    }
  }
  if (request.dotConfig) {
    try {
      configText = await readFile(request.dotConfig, 'utf8')
    } catch (error) {
      throw usageError(`cannot read ${request.dotConfig}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  if (!source) throw usageError('which kernel source? give --source FILE, --tree DIR, --version V or --kernel SPEC')
  const prepared = await prepareSource(source, undefined, await readPatches(patches))
  const {dir} = await sourceDir(prepared)
  const kernelVersion = makefileVersion(await readFile(join(dir, 'Makefile'), 'utf8'))
  const tree = readKconfigTree(dir)
  const config = configText === undefined ? undefined : parseDotConfig(configText)
  const explanation = explain(tree, symbol, config)
  if (!explanation.exists) throw notFound(`CONFIG_${symbol} does not exist in this kernel's Kconfig (linux ${kernelVersion})`)
  const result: ExplainResult = {kernelVersion, explanation}
  if (config && (explanation.value === 'n' || explanation.value === undefined)) {
    result.reason = explainDrop(tree, {symbol, requested: 'y', actual: config.get(symbol)}, config).replace(' was dropped', ' is off')
  }
  return result
}

/**
 * Guest kernels built from checked-in fragments: fetch and extract the source (fetch.ts),
 * configure (tinyconfig + fragments + olddefconfig, then prove that nothing requested was
 * dropped), build (make, ccache, progress on stderr) and store the entry (kcache.ts) under a
 * content address.
 *
 * Layout under cacheDir():
 *   downloads/linux-X.tar.xz (+ .sha256)   verified tarballs; written under a temp name, renamed when the sum matches
 *   build/src-<sha>/                        extracted sources, one per tarball (or git commit); reused
 *   build/out-<key>-<pid>/                  make's O= directory while a build runs
 *   build/failed-<key>.log                  the make output of the last failed build of a key
 *   kernels/<key>/                          finished entries: build.json, .config, build.log, bzImage, System.map
 *   kernels/<key>.lock                      held (pid inside) while a key is being built
 */
import {createHash} from 'node:crypto'
import {createWriteStream, readFileSync, rmSync} from 'node:fs'
import {copyFile, mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import {join, posix, resolve} from 'node:path'
import {PassThrough} from 'node:stream'
import {acquireLock, hashFileCached, removeStaleTemps} from '../core/cache.js'
import {ExitCode, notFound, PmemlabError, usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {extractTarball, extractTarStream, fetchKernelTarball, resolveMirror} from './fetch.js'
import {findOne, listKernels, readEntry, type BuildJson, type SourceRecord} from './store.js'
import {explain, explainDrop, type Explanation} from './kconfig/explain.js'
import {applyFragment, mergeFragments, origin, parseDotConfig, parseSet, renderAssignment, renderFragment, type FragmentInput} from './kconfig/merge.js'
import {parseKconfig, type KconfigTree} from './kconfig/parse.js'
import {verifyConfig} from './kconfig/verify.js'
import {isVerbose, log, Progress, shellQuote} from '../core/log.js'
import {buildDir, kernelsDir, packageRoot} from '../core/paths.js'
import {canAccess as exists, requireProgram, which} from '../core/which.js'

const KEY_FORMAT = 1

export type KernelSource =
  | {kind: 'version'; version: string; mirror?: string}
  | {kind: 'source'; file: string}
  | {kind: 'tree'; dir: string; ref?: string}

export type KernelBase = 'tinyconfig' | 'defconfig'

export interface BuildRequest {
  source: KernelSource
  /** User fragments (--config FILE), applied after the checked-in ones. */
  configs?: string[]
  /** --set CONFIG_X=VALUE, applied last. */
  sets?: string[]
  /** Add kernel-configs/debug.config. */
  debug?: boolean
  base?: KernelBase
  jobs?: number
}

export interface BuildResult {
  cacheHit: boolean
  key: string
  /** The entry's directory. */
  dir: string
  /** The bzImage. */
  kernel: string
  build: BuildJson
}

// ------------------------------------------------------------------------------------------------
// Keys, small helpers
// ------------------------------------------------------------------------------------------------

export const fragmentsDir = () => join(packageRoot, 'kernel-configs')

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex')

export function hostArch(): string {
  if (process.arch !== 'x64') throw usageError(`pmemlab builds x86_64 guest kernels, on x86_64 hosts only (this host is ${process.arch})`)
  return 'x86_64'
}

export interface KeyInputs {
  /** Tarball: {tarball: sha256}. Git tree: {commit, dirty}. */
  source: Record<string, string | null | undefined>
  base: KernelBase
  /** The merged fragment. */
  fragment: string
  /** First line of `gcc --version`. */
  compiler: string
  arch: string
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
  return sha256(
    JSON.stringify({format: KEY_FORMAT, source, base: inputs.base, fragment: normaliseFragmentText(inputs.fragment), compiler: inputs.compiler.trim(), arch: inputs.arch}),
  )
}
function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000)
  return seconds < 60 ? `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`
}
// ------------------------------------------------------------------------------------------------
// Interrupts: Ctrl-C stops make (its whole process group) and every temp file goes
// ------------------------------------------------------------------------------------------------

class Interrupt {
  readonly controller = new AbortController()
  /** Files holding the pids of running makes (each leads its own process group). */
  readonly pidFiles = new Set<string>()
  signal?: NodeJS.Signals
  private readonly handler = (signal: NodeJS.Signals) => this.fire(signal)

  get aborted() {
    return this.controller.signal
  }

  install(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, this.handler)
  }

  uninstall(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, this.handler)
  }

  private fire(signal: NodeJS.Signals): void {
    if (this.signal) {
      // A second Ctrl-C: stop now.
      this.killAll('SIGKILL')
      process.exit(ExitCode.interrupted)
    }
    this.signal = signal
    log.warn(`${signal}: stopping the kernel build`)
    this.killAll('SIGTERM')
    setTimeout(() => this.killAll('SIGKILL'), 5000).unref()
    this.controller.abort(new PmemlabError(`interrupted by ${signal}: nothing was cached`, ExitCode.interrupted))
  }

  killAll(signal: NodeJS.Signals): void {
    for (const file of this.pidFiles) {
      try {
        const pid = Number(readFileSync(file, 'utf8').trim())
        if (pid > 0) killGroup(pid, signal)
      } catch {
        // not started yet, or gone
      }
    }
  }

  /** Throws the interrupt error if a signal came in. */
  check(): void {
    if (this.signal) throw this.controller.signal.reason as PmemlabError
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // gone
  }
}

// ------------------------------------------------------------------------------------------------
// Fragments
// ------------------------------------------------------------------------------------------------

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
export async function loadFragments(request: Pick<BuildRequest, 'configs' | 'sets' | 'debug'>): Promise<LoadedFragments> {
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

// ------------------------------------------------------------------------------------------------
// Sources
// ------------------------------------------------------------------------------------------------

interface PreparedSource {
  record: SourceRecord
  /** What the key uses. */
  keySource: Record<string, string | null>
  /** Where the kernel source is, or how to get it. */
  srcDir?: string
  tarball?: string
  gitArchive?: {dir: string; commit: string}
  fetchMs: number
}

async function git(dir: string, args: string[], options: {encoding?: 'buffer'} = {}) {
  const gitPath = await requireProgram('git', 'git')
  try {
    return await run(gitPath, ['-C', dir, ...args], {stdin: 'ignore', encoding: options.encoding === 'buffer' ? 'buffer' : 'utf8', maxBuffer: 1024 * 1024 * 1024})
  } catch (error) {
    const stderr = String((error as {stderr?: unknown}).stderr ?? '').trim().split('\n')[0]
    throw usageError(`git ${args.join(' ')} in ${dir} failed${stderr ? `: ${stderr}` : ''}`)
  }
}

async function prepareSource(source: KernelSource, signal?: AbortSignal): Promise<PreparedSource> {
  const started = Date.now()
  switch (source.kind) {
    case 'version': {
      const tarball = await fetchKernelTarball({version: source.version, mirror: resolveMirror(source.mirror), signal})
      return {
        record: {kind: 'version', requested: source.version, version: tarball.version, file: posix.basename(tarball.file), url: tarball.url, sha256: tarball.sha256},
        keySource: {tarball: tarball.sha256},
        tarball: tarball.file,
        fetchMs: Date.now() - started,
      }
    }
    case 'source': {
      const file = resolve(source.file)
      if (!/\.tar(\.xz|\.gz)?$|\.tgz$/.test(file)) throw usageError(`--source ${source.file}: expected a .tar.xz, .tar.gz or .tar file`)
      if (!(await exists(file))) throw notFound(`--source ${source.file}: no such file`)
      const digest = await hashFileCached(file, join(buildDir(), 'file-hashes.json'))
      return {record: {kind: 'source', file, sha256: digest}, keySource: {tarball: digest}, tarball: file, fetchMs: 0}
    }
    case 'tree': {
      const dir = resolve(source.dir)
      if (!(await exists(join(dir, 'Kconfig'))) || !(await exists(join(dir, 'Makefile')))) throw usageError(`--tree ${source.dir}: not a kernel source tree (no Kconfig or Makefile)`)
      const rev = source.ref ?? 'HEAD'
      const commit = String((await git(dir, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`])).stdout).trim()
      if (source.ref) {
        return {record: {kind: 'tree', dir, ref: source.ref, commit, dirty: null}, keySource: {commit, dirty: null}, gitArchive: {dir, commit}, fetchMs: 0}
      }
      if ((await exists(join(dir, '.config'))) || (await exists(join(dir, 'include', 'config', 'auto.conf')))) {
        throw usageError(
          `${dir} has an in-tree build (.config): the kernel refuses out-of-tree (O=) builds of such a tree`,
          `run "make mrproper" there (it deletes that build), or build a clean snapshot with --ref HEAD`,
        )
      }
      const dirty = await dirtyHash(dir)
      if (dirty) log.info(`${dir} has uncommitted changes: they are part of the build (diff ${dirty.slice(0, 12)})`)
      return {record: {kind: 'tree', dir, commit, dirty}, keySource: {commit, dirty}, srcDir: dir, fetchMs: 0}
    }
  }
}

/** null for a clean tree; else sha256 over `git diff HEAD` and the untracked files (names and contents). */
async function dirtyHash(dir: string): Promise<string | null> {
  const status = String((await git(dir, ['status', '--porcelain', '--untracked-files=normal'])).stdout)
  if (status.trim() === '') return null
  const hash = createHash('sha256')
  hash.update((await git(dir, ['diff', 'HEAD', '--binary'], {encoding: 'buffer'})).stdout as Uint8Array)
  const untracked = String((await git(dir, ['ls-files', '-z', '--others', '--exclude-standard'])).stdout).split('\0').filter(Boolean).sort()
  for (const file of untracked) {
    hash.update(`\0untracked\0${file}\0`)
    hash.update(await readFile(join(dir, file)).catch(() => Buffer.alloc(0)))
  }
  return hash.digest('hex')
}

/** The extracted source of a tarball or git commit, shared by every build of it. */
async function sourceDir(prepared: PreparedSource, interrupt?: Interrupt): Promise<{dir: string; extractMs: number}> {
  if (prepared.srcDir) return {dir: prepared.srcDir, extractMs: 0}
  const id = prepared.tarball ? (prepared.keySource.tarball as string) : `git-${prepared.gitArchive!.commit}`
  const dir = join(buildDir(), `src-${id.slice(0, 24)}`)
  const marker = join(dir, '.pmemlab-source')
  if (await exists(marker)) return {dir, extractMs: 0}
  await mkdir(buildDir(), {recursive: true})
  const release = await acquireLock(`${dir}.lock`, 'kernel source', interrupt?.aborted)
  const temp = `${dir}.tmp-${process.pid}`
  try {
    if (await exists(marker)) return {dir, extractMs: 0}
    await removeStaleTemps(buildDir(), new RegExp(`^src-${id.slice(0, 24)}\\.tmp-\\d+$`))
    await rm(dir, {recursive: true, force: true})
    const started = Date.now()
    const label = prepared.tarball ? posix.basename(prepared.tarball) : `${prepared.gitArchive!.dir} at ${prepared.gitArchive!.commit.slice(0, 12)}`
    log.info(`extracting ${label}`)
    if (prepared.tarball) {
      await extractTarball(prepared.tarball, temp, interrupt?.aborted)
    } else {
      const {dir: repo, commit} = prepared.gitArchive!
      const gitPath = await requireProgram('git', 'git')
      const pass = new PassThrough()
      const extraction = extractTarStream(pass, temp, `git archive ${commit}`, interrupt?.aborted)
      const child = run(gitPath, ['-C', repo, 'archive', '--format=tar', '--prefix=linux/', commit], {stdin: 'ignore', stdout: ['pipe', pass], buffer: false, cancelSignal: interrupt?.aborted})
      await Promise.all([extraction, child])
    }
    interrupt?.check()
    if (!(await exists(join(temp, 'Kconfig')))) throw new PmemlabError(`${label} does not hold a kernel source tree (no Kconfig at its top)`, ExitCode.failure)
    await writeFile(join(temp, '.pmemlab-source'), `${JSON.stringify(prepared.record)}\n`)
    await rename(temp, dir)
    const extractMs = Date.now() - started
    log.info(`extracted in ${formatDuration(extractMs)}`)
    return {dir, extractMs}
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    throw interrupt?.signal ? interrupt.controller.signal.reason : error
  } finally {
    await release()
  }
}

/** VERSION.PATCHLEVEL.SUBLEVEL(EXTRAVERSION) from a tree's top Makefile. */
export function makefileVersion(makefile: string): string {
  const get = (name: string) => new RegExp(`^${name}[ \\t]*=[ \\t]*(\\S*)`, 'm').exec(makefile)?.[1] ?? ''
  const sub = get('SUBLEVEL')
  return `${get('VERSION')}.${get('PATCHLEVEL')}${sub && sub !== '0' ? `.${sub}` : ''}${get('EXTRAVERSION')}`
}

export function readKconfigTree(srcDir: string): KconfigTree {
  return parseKconfig((path) => {
    try {
      return readFileSync(join(srcDir, path), 'utf8')
    } catch {
      return undefined
    }
  })
}

// ------------------------------------------------------------------------------------------------
// make
// ------------------------------------------------------------------------------------------------

interface Toolchain {
  compiler: string
  ccache: boolean
  /** CC=... HOSTCC=... for make. */
  makeVars: string[]
}

async function toolchain(): Promise<Toolchain> {
  const gcc = await requireProgram('gcc', 'build-essential')
  await requireProgram('make', 'build-essential')
  const compiler = String((await run(gcc, ['--version'], {stdin: 'ignore'})).stdout).split('\n')[0].trim()
  const ccache = (await which('ccache')) !== undefined && process.env.PMEMLAB_CCACHE !== '0'
  return {compiler, ccache, makeVars: ccache ? ['CC=ccache gcc', 'HOSTCC=ccache gcc'] : []}
}

const OBJECT_LINE = /^\s+(CC|LD|AS)\s/

/**
 * Runs make in its own process group (so that Ctrl-C can stop all of it: a small sh records
 * make's pid, which is also its group id, then execs make), all output into the log.
 * onLine sees every line (progress counting).
 */
async function runMake(what: string, args: string[], logFile: string, pidFile: string, interrupt: Interrupt, onLine?: (line: string) => void): Promise<void> {
  interrupt.check()
  const logStream = createWriteStream(logFile, {flags: 'a'})
  logStream.write(`$ ${shellQuote(['make', ...args])}\n`)
  log.debug(`$ ${shellQuote(['make', ...args])}`)
  const tail: string[] = []
  const onOutput = function* (line: unknown) {
    const text = String(line)
    logStream.write(`${text}\n`)
    tail.push(text)
    if (tail.length > 40) tail.shift()
    if (isVerbose()) process.stderr.write(`  ${text}\n`)
    onLine?.(text)
  }
  interrupt.pidFiles.add(pidFile)
  let result
  try {
    result = await run('sh', ['-c', 'echo $$ >"$0" && exec "$@"', pidFile, 'make', ...args], {
      stdin: 'ignore',
      stdout: onOutput,
      stderr: onOutput,
      buffer: false,
      reject: false,
      detached: true,
      env: {LC_ALL: 'C'},
      cancelSignal: interrupt.aborted,
    })
  } finally {
    interrupt.pidFiles.delete(pidFile)
    rmSync(pidFile, {force: true})
    await new Promise<void>((done) => logStream.end(done))
  }
  interrupt.check()
  if (result.exitCode !== 0) {
    const errors = tail.filter((line) => /error|Error \d|\*\*\*/.test(line)).slice(-8)
    for (const line of errors.length > 0 ? errors : tail.slice(-8)) process.stderr.write(`  ${line}\n`)
    throw new PmemlabError(`make ${what} failed (${result.exitCode === undefined ? result.signal ?? 'killed' : `exit code ${result.exitCode}`})`, ExitCode.failure)
  }
}

/** The object count of the newest earlier build like this one, for the progress estimate. */
async function estimateObjects(base: KernelBase, debug: boolean): Promise<number> {
  const similar = (await listKernels()).find((entry) => entry.build.base === base && entry.build.debug === debug && entry.build.objects > 0)
  if (similar) return similar.build.objects
  const estimate = base === 'tinyconfig' ? 1500 : 3200
  return debug ? Math.round(estimate * 1.15) : estimate
}

// ------------------------------------------------------------------------------------------------
// Build
// ------------------------------------------------------------------------------------------------

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
    const fragments = await loadFragments(request)
    const [prepared, tools] = await Promise.all([prepareSource(request.source, interrupt.aborted), toolchain()])
    const key = computeKey({source: prepared.keySource, base, fragment: fragments.text, compiler: tools.compiler, arch})
    const entryDir = join(kernelsDir(), key)
    const cached = await readEntry(entryDir)
    if (cached) {
      log.info(`cache hit: ${key.slice(0, 12)} (linux ${cached.kernelVersion}, built ${cached.createdAt})`)
      return hitResult(key, cached)
    }

    await mkdir(kernelsDir(), {recursive: true})
    const release = await acquireLock(`${entryDir}.lock`, 'kernel', interrupt.aborted)
    const tempEntry = join(kernelsDir(), `.tmp-${key}-${process.pid}`)
    const outDir = join(buildDir(), `out-${key.slice(0, 16)}-${process.pid}`)
    try {
      const again = await readEntry(entryDir)
      if (again) {
        log.info(`cache hit: ${key.slice(0, 12)} (built meanwhile by another pmemlab)`)
        return hitResult(key, again)
      }
      await removeStaleTemps(kernelsDir(), new RegExp(`^\\.tmp-${key}-\\d+$`))
      await removeStaleTemps(buildDir(), new RegExp(`^out-${key.slice(0, 16)}-\\d+$`))
      await rm(entryDir, {recursive: true, force: true}) // an incomplete leftover (no build.json or no bzImage)
      await mkdir(tempEntry, {recursive: true})
      await mkdir(outDir, {recursive: true})
      const logFile = join(tempEntry, 'build.log')
      const pidFile = join(buildDir(), `make-${key.slice(0, 16)}.pid`)

      const {dir: srcDir, extractMs} = await sourceDir(prepared, interrupt)
      const kernelVersion = makefileVersion(await readFile(join(srcDir, 'Makefile'), 'utf8'))
      const makeBase = ['-C', srcDir, `O=${outDir}`, ...tools.makeVars]

      // Configure, then prove that every requested option survived.
      const configureStarted = Date.now()
      log.info(`configuring linux ${kernelVersion}: ${base} + ${fragments.records.map((r) => r.name.replace(/^kernel-configs\//, '')).join(' + ')}${request.sets?.length ? ` + ${request.sets.length} --set` : ''}`)
      await runMake(base, [...makeBase, base], logFile, pidFile, interrupt)
      const configPath = join(outDir, '.config')
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
      const configureMs = Date.now() - configureStarted

      // Build.
      const modules = /^CONFIG_[A-Za-z0-9_]+=m$/m.test(finalConfig)
      const jobs = request.jobs ?? availableParallelism()
      const estimate = await estimateObjects(base, request.debug === true)
      const progress = new Progress('building')
      let objects = 0
      const buildStarted = Date.now()
      log.info(`building bzImage${modules ? ' and modules' : ''} with ${jobs} job${jobs === 1 ? '' : 's'}${tools.ccache ? ' and ccache' : ''} (make output, until it moves into the entry: ${logFile})`)
      try {
        await runMake(modules ? 'bzImage modules' : 'bzImage', [...makeBase, `-j${jobs}`, 'bzImage', ...(modules ? ['modules'] : [])], logFile, pidFile, interrupt, (line) => {
          if (!OBJECT_LINE.test(line)) return
          objects++
          const shown = Math.min(objects, estimate)
          const fraction = Math.min(0.99, objects / estimate)
          progress.update(objects > estimate ? `${objects} objects (more than the ${estimate} expected)` : `${shown}/${estimate} objects (${Math.floor(fraction * 100)}%)`, fraction)
        })
      } finally {
        progress.done()
      }
      if (modules) await runMake('modules_install', [...makeBase, `INSTALL_MOD_PATH=${join(tempEntry, 'modules')}`, 'INSTALL_MOD_STRIP=1', 'modules_install'], logFile, pidFile, interrupt)
      const buildMs = Date.now() - buildStarted

      // Assemble the entry and publish it with one rename.
      await copyFile(join(outDir, 'arch', 'x86', 'boot', 'bzImage'), join(tempEntry, 'bzImage'))
      await copyFile(configPath, join(tempEntry, '.config'))
      await copyFile(join(outDir, 'System.map'), join(tempEntry, 'System.map')).catch(() => undefined)
      if (request.debug) await copyFile(join(outDir, 'vmlinux'), join(tempEntry, 'vmlinux'))
      const build: BuildJson = {
        key,
        version: prepared.record.kind === 'version' ? prepared.record.version : kernelVersion,
        kernelVersion,
        source: prepared.record,
        base,
        debug: request.debug === true,
        fragments: fragments.records,
        sets: request.sets ?? [],
        requested: Object.fromEntries([...fragments.merged.options].map(([symbol, option]) => [`CONFIG_${symbol}`, option.value])),
        compiler: tools.compiler,
        ccache: tools.ccache,
        arch,
        jobs,
        modules,
        objects,
        timings: {fetchMs: prepared.fetchMs, extractMs, configureMs, buildMs, totalMs: Date.now() - started},
        createdAt: new Date().toISOString(),
        files: {kernel: 'bzImage', config: '.config', log: 'build.log', systemMap: 'System.map', ...(request.debug ? {vmlinux: 'vmlinux'} : {})},
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
        if (error instanceof PmemlabError && error.message.startsWith('make ')) {
          throw new PmemlabError(error.message, error.exitCode, `the make output is in ${failedLog}`)
        }
      }
      throw interrupt.signal ? interrupt.controller.signal.reason : error
    } finally {
      interrupt.killAll('SIGKILL')
      await rm(tempEntry, {recursive: true, force: true})
      await rm(outDir, {recursive: true, force: true})
      await release()
    }
  } catch (error) {
    if (interrupt.signal) throw interrupt.controller.signal.reason
    throw error
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
  if (request.kernel) {
    const entry = await findOne(request.kernel)
    if (!entry) throw usageError(`--kernel ${request.kernel}: expected a kernel key, version or "latest"`)
    configText = await readFile(join(entry.dir, entry.build.files.config), 'utf8')
    source ??= sourceOfEntry(entry.build)
  }
  if (request.dotConfig) {
    try {
      configText = await readFile(request.dotConfig, 'utf8')
    } catch (error) {
      throw usageError(`cannot read ${request.dotConfig}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  if (!source) throw usageError('which kernel source? give --source FILE, --tree DIR, --version V or --kernel SPEC')
  const prepared = await prepareSource(source)
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

function sourceOfEntry(build: BuildJson): KernelSource {
  const source = build.source
  if (source.kind === 'version') return {kind: 'version', version: source.version, mirror: source.url.replace(/\/v\d+\.x\/[^/]+$/, '')}
  if (source.kind === 'source') return {kind: 'source', file: source.file}
  return {kind: 'tree', dir: source.dir, ref: source.dirty ? undefined : source.commit}
}
/**
 * The bundle's edges: copying the reproducer's files into the output directory when a series
 * starts, packing the finished directory into OUTPUT/bundle.tar.gz (bundle-files.ts says what goes
 * in), and opening a bundle to rerun it: extracted into a temporary directory, every file checked
 * against SHA256SUMS before anything in it is read.
 */
import {rmSync} from 'node:fs'
import {copyFile, mkdir, open, readFile, readdir, rename, rm, stat, writeFile} from 'node:fs/promises'
import {release} from 'node:os'
import {dirname, join, relative, resolve, sep} from 'node:path'
import * as tar from 'tar'
import {withDir} from 'tmp-promise'
import {hashFile, writeFileAtomic} from '../core/cache.js'
import {usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {packageRoot} from '../core/paths.js'
import {qemuBinaryName} from '../core/which.js'
import {BUNDLE_FORMAT, BUNDLE_NAME, bundleFileList, cpuFlags, entryProblem, INPUT_DIR, inputLayout, isGzip, METADATA_NAME, parseSha256sums, referencedFiles, reproduceScript, rerunArgv, SCRIPT_NAME, sha256sumsText, SUMS_NAME, sumsProblem, type FileSum} from './bundle-files.js'
import type {ReproDocument} from './document.js'
import type {ReproPlan} from './schema.js'

/** What the series copied under input/: the reproducer's place there, and the files left out. */
export interface BundleInputs {
  reproducer: string
  notBundled: string[]
}

/** Copies the reproducer and the files it references under OUTPUT/input/ (a referenced file that is not there is left to the series to report). */
export async function copyInputs(plan: Pick<ReproPlan, 'file' | 'kernel' | 'image'>, output: string): Promise<BundleInputs> {
  const {files, notBundled} = referencedFiles(plan)
  const layout = inputLayout(resolve(plan.file), files)
  for (const {source, path} of layout.entries) {
    await mkdir(dirname(join(output, path)), {recursive: true})
    await copyFile(source, join(output, path)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT' && error.code !== 'EISDIR') throw error
    })
  }
  return {reproducer: layout.reproducer, notBundled}
}

export interface BundleRequest {
  output: string
  document: ReproDocument
  inputs: BundleInputs
  flags: {runs?: number; untilReproduced?: boolean; kernel?: string}
}

/**
 * Writes reproduce.sh, metadata.json and SHA256SUMS into OUTPUT, then OUTPUT/bundle.tar.gz: packed
 * under a temporary name and renamed, so an interrupted packing never leaves a bundle that looks
 * whole. Returns the bundle's path.
 */
export async function writeBundle(request: BundleRequest): Promise<string> {
  const {output} = request
  await writeFile(join(output, SCRIPT_NAME), reproduceScript(rerunArgv(request.flags)), {mode: 0o755})
  await writeFileAtomic(join(output, METADATA_NAME), `${JSON.stringify(await metadata(request), null, 2)}\n`)
  const files = bundleFileList(await filesUnder(output))
  const sums = await Promise.all(files.map(async (path) => ({path, sha256: await hashFile(join(output, path))})))
  await writeFileAtomic(join(output, SUMS_NAME), sha256sumsText(sums))
  const bundle = join(output, BUNDLE_NAME)
  const partial = join(output, `.${BUNDLE_NAME}.partial-${process.pid}`)
  try {
    await tar.c({gzip: true, portable: true, noDirRecurse: true, cwd: output, file: partial}, [SUMS_NAME, ...files])
    await rename(partial, bundle)
  } finally {
    await rm(partial, {force: true})
  }
  return bundle
}

/** What a bug report wants to know about where the series ran. */
async function metadata({document, inputs, flags}: BundleRequest): Promise<Record<string, unknown>> {
  const pkg = JSON.parse(await readFile(join(packageRoot, 'package.json'), 'utf8')) as {version?: string}
  return {
    format: BUNDLE_FORMAT,
    version: 1,
    createdAt: new Date().toISOString(),
    reproducer: inputs.reproducer,
    command: rerunArgv(flags),
    ...(inputs.notBundled.length > 0 ? {notBundled: inputs.notBundled} : {}),
    pmemlab: pkg.version,
    host: {kernel: release(), cpuFlags: cpuFlags(await readFile('/proc/cpuinfo', 'utf8').catch(() => ''))},
    qemu: await qemuVersion(),
    accel: [...new Set(document.results.flatMap((r) => (r.lab ? [r.lab.accel] : [])))],
    durationMs: document.durationMs,
    runs: document.results.map((r) => ({run: r.run, outcome: r.outcome, durationMs: r.durationMs})),
  }
}

/**
 * QEMU's first --version line; undefined when it does not answer in 5 s. Asked once per process,
 * and a series asks at its start (run.ts), so the answer is ready when the bundle is written.
 */
export function qemuVersion(): Promise<string | undefined> {
  askedQemuVersion ??= run(qemuBinaryName(), ['--version'], {reject: false, timeout: 5000, stdin: 'ignore'}).then(
    (result) => (result.exitCode === 0 ? String(result.stdout).split('\n')[0].trim() || undefined : undefined),
    () => undefined,
  )
  return askedQemuVersion
}
let askedQemuVersion: Promise<string | undefined> | undefined

/** Every file under DIR, relative and '/' separated. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)).split(sep).join('/'))
}

// Opening a bundle

/** Whether FILE is a bundle rather than a reproducer file: by its name, else by gzip's magic number. */
export async function isBundle(file: string): Promise<boolean> {
  if (file.endsWith('.tar.gz') || file.endsWith('.tgz')) return true
  const handle = await open(file, 'r').catch(() => undefined)
  if (!handle) return false
  try {
    const head = Buffer.alloc(2)
    await handle.read(head, 0, 2, 0)
    return isGzip(head)
  } finally {
    await handle.close()
  }
}

/**
 * Extracts BUNDLE into a temporary directory, checks every file against SHA256SUMS, and calls USE
 * with the path of its reproducer there; the directory goes when USE is done. A damaged, changed
 * or unsafe bundle is refused in one line naming the file (exit 2) before anything is used.
 */
export async function withBundle<T>(bundle: string, use: (reproducer: string) => Promise<T>): Promise<T> {
  const refuse = (problem: string) => usageError(`bundle ${bundle} refused: ${problem}`, 'the bundle was changed or damaged since pmemlab wrote it; get the original again')
  if (!(await stat(bundle).catch(() => undefined))?.isFile()) throw usageError(`cannot read bundle ${bundle}: no such file`, 'give the path of a bundle.tar.gz that pmemlab repro wrote')
  return withDir(
    async ({path: dir}) => {
      // Ctrl-C ends the process from a signal handler (exit 130), past withDir's own removal.
      const removeOnExit = () => rmSync(dir, {recursive: true, force: true})
      process.on('exit', removeOnExit)
      try {
        return await openChecked(bundle, dir, refuse, use)
      } finally {
        process.off('exit', removeOnExit)
      }
    },
    {unsafeCleanup: true, prefix: 'pmemlab-bundle-'},
  )
}

/** Extracts BUNDLE into DIR, checks it whole, and hands its reproducer to USE. */
async function openChecked<T>(bundle: string, dir: string, refuse: (problem: string) => Error, use: (reproducer: string) => Promise<T>): Promise<T> {
  await extractChecked(bundle, dir, refuse)
  const sumsText = await readFile(join(dir, SUMS_NAME), 'utf8').catch(() => undefined)
  if (sumsText === undefined) throw refuse(`${SUMS_NAME} is missing`)
  const parsed = parseSha256sums(sumsText)
  if ('problem' in parsed) throw refuse(parsed.problem)
  const found: FileSum[] = []
  for (const path of await filesUnder(dir)) if (path !== SUMS_NAME) found.push({path, sha256: await hashFile(join(dir, path))})
  const problem = sumsProblem(parsed.sums, found)
  if (problem !== undefined) throw refuse(problem)
  const reproducer = await reproducerOf(dir)
  if (reproducer === undefined) throw refuse(`${METADATA_NAME} names no reproducer under ${INPUT_DIR}/`)
  return use(join(dir, reproducer))
}

/** Lists the archive first (an unsafe entry refuses it whole), then extracts it. */
async function extractChecked(bundle: string, dir: string, refuse: (problem: string) => Error): Promise<void> {
  let unsafe: string | undefined
  try {
    await tar.t({file: bundle, strict: true, onReadEntry: (entry) => (unsafe ??= entryProblem(entry.path, entry.type))})
  } catch (error) {
    throw refuse(`not a readable .tar.gz (${(error as Error).message})`)
  }
  if (unsafe !== undefined) throw refuse(unsafe)
  await tar.x({file: bundle, cwd: dir, strict: true, filter: (path, entry) => entryProblem(path, 'type' in entry ? entry.type : 'File') === undefined})
}

async function reproducerOf(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, METADATA_NAME), 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  try {
    const reproducer = (JSON.parse(text) as {reproducer?: unknown}).reproducer
    return typeof reproducer === 'string' && reproducer.startsWith(`${INPUT_DIR}/`) && !reproducer.split('/').includes('..') ? reproducer : undefined
  } catch {
    return undefined
  }
}

/**
 * Kernel patches, the edge: reads the --patch files (before anything is downloaded), and makes a
 * patched copy of an extracted source, build/src-<id>-patched-<patch set>/, with GNU patch. The
 * extracted source (shared by every build of it) and a user's git tree are never written to:
 * only pmemlab's own copy is patched. What patch says is read by patch.ts.
 */
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {acquireLock, removeStaleTemps} from '../core/cache.js'
import {usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {log} from '../core/log.js'
import {canAccess as exists, requireProgram} from '../core/which.js'
import {sha256} from './key.js'
import type {Interrupt} from './make.js'
import {looksLikePatch, onlyMissingFiles, parsePatchOutput, patchFailureMessage, patchRecords, patchSetId, type PatchInput, type PatchReport} from './patch.js'

/** In a patched tree: the copies of the patches that were applied, and the record that the tree is complete. */
const PATCHES_IN_TREE = '.pmemlab-patches'
const PATCHED_MARKER = '.pmemlab-patched'

/**
 * The --patch files, read and checked in order. A file that cannot be read or is no patch at all
 * is a usage error here, before any download or extraction. Their bytes are kept: what is hashed
 * into the key is exactly what is applied and kept in the entry, even if the file changes meanwhile.
 */
export async function readPatches(files: readonly string[]): Promise<PatchInput[]> {
  const patches: PatchInput[] = []
  for (const file of files) {
    const path = resolve(file)
    let bytes: Buffer
    try {
      bytes = await readFile(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const what = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable' : code === 'EISDIR' ? 'a directory, not a patch file' : (error as Error).message
      throw usageError(`--patch ${file}: ${what}`, 'check the path: it is relative to the current directory (to the file, in a matrix or reproducer file)')
    }
    if (!looksLikePatch(bytes.toString('utf8'))) {
      throw usageError(`--patch ${file} is not a patch: it has no "---"/"+++" file headers`, 'give a unified diff, as git format-patch, git diff or diff -u write')
    }
    patches.push({name: basename(path), path, sha256: sha256(bytes), bytes})
  }
  return patches
}

interface PatchRun {
  exit: number
  report: PatchReport
}

async function runPatch(program: string, tree: string, file: string, strip: number, dryRun: boolean, signal?: AbortSignal): Promise<PatchRun> {
  // --directory comes first in patch's processing, so -i must be absolute; LC_ALL=C and a literal
  // quoting style keep the output in the shape patch.ts parses.
  const args = [`-p${strip}`, '--forward', '--batch', '--no-backup-if-mismatch', '--quoting-style=literal', ...(dryRun ? ['--dry-run'] : []), '--directory', tree, '-i', file]
  const result = await run(program, args, {reject: false, all: true, stdin: 'ignore', env: {LC_ALL: 'C'}, cancelSignal: signal})
  signal?.throwIfAborted()
  const exit = typeof result.exitCode === 'number' ? result.exitCode : 2
  return {exit, report: parsePatchOutput(String(result.all ?? ''), strip, exit)}
}

/**
 * Applies the patches, in order, to TREE, which must be pmemlab's own copy: the first patch that
 * does not apply throws (a usage error naming the patch, file and hunks) and the caller discards
 * the tree. Returns the -p level each patch was applied with.
 *
 * Why dry-run each patch in the copy rather than all of them up front on the original: patch N
 * may depend on patches 1..N-1, so its dry run means something only on a tree that has them. In a
 * copy that is thrown away on failure, "dry-run N, then apply N" for each N in turn is exact for
 * everything patch does (git renames, copies, deletions, mode changes), and the dry run keeps a
 * failing patch from leaving half its hunks and .rej files behind. A scratch copy of only the
 * touched files would save copying the tree, but would have to follow those renames exactly as
 * patch does.
 */
export async function applyPatches(tree: string, patches: readonly PatchInput[], files: readonly string[], signal?: AbortSignal): Promise<number[]> {
  const program = await requireProgram('patch', 'patch')
  const refusal = (i: number, report: PatchReport) => usageError(patchFailureMessage(patches, i, report), 'refresh it against this kernel source, or leave it out: nothing was built')
  const strips: number[] = []
  for (const [i, patch] of patches.entries()) {
    let strip = 1
    let check = await runPatch(program, tree, files[i], strip, true, signal)
    // A -p0 patch (diff without a/ and b/) read as -p1 finds none of its files: try it as -p0.
    if (check.exit !== 0 && onlyMissingFiles(check.report)) {
      const p0 = await runPatch(program, tree, files[i], 0, true, signal)
      if (p0.exit === 0) {
        strip = 0
        check = p0
        log.info(`${patch.name}: its paths have no a/ and b/ prefix: applying it with -p0`)
      }
    }
    if (check.exit !== 0) throw refusal(i, check.report)
    const applied = await runPatch(program, tree, files[i], strip, false, signal)
    if (applied.exit !== 0) throw refusal(i, applied.report)
    for (const f of applied.report.fuzz) log.warn(`${patch.name}: ${f.file}: hunk #${f.hunk} applied with fuzz ${f.fuzz} (some context lines did not match): check that it landed where it should`)
    strips.push(strip)
  }
  return strips
}

/**
 * The patched copy of PRISTINE (an extracted source under build/), made once per source and
 * ordered patch set and shared like the extracted source: copied (reflinked where the file
 * system can), patched, and renamed into place only when every patch applied.
 */
export async function patchedSourceDir(pristine: string, patches: readonly PatchInput[], interrupt?: Interrupt): Promise<{dir: string; patchMs: number}> {
  const dir = `${pristine}-patched-${patchSetId(patches).slice(0, 16)}`
  if (await exists(join(dir, PATCHED_MARKER))) return {dir, patchMs: 0}
  const release = await acquireLock(`${dir}.lock`, 'patched kernel source', interrupt?.aborted)
  const temp = `${dir}.tmp-${process.pid}`
  try {
    if (await exists(join(dir, PATCHED_MARKER))) return {dir, patchMs: 0}
    await removeStaleTemps(dirname(dir), new RegExp(`^${basename(dir)}\\.tmp-\\d+$`))
    await rm(dir, {recursive: true, force: true})
    const started = Date.now()
    log.info(`patching a copy of the source: ${patches.map((p) => p.name).join(', ')}`)
    const cp = await requireProgram('cp', 'coreutils')
    await run(cp, ['-a', '--reflink=auto', '--', pristine, temp], {stdin: 'ignore', cancelSignal: interrupt?.aborted})
    // The copies applied are the bytes that were hashed; they stay with the tree, which says what it holds.
    const records = patchRecords(patches)
    await mkdir(join(temp, PATCHES_IN_TREE), {recursive: true})
    const files = records.map((record) => join(temp, PATCHES_IN_TREE, basename(record.file)))
    for (const [i, patch] of patches.entries()) await writeFile(files[i], patch.bytes)
    const strips = await applyPatches(temp, patches, files, interrupt?.aborted)
    interrupt?.check()
    await writeFile(join(temp, PATCHED_MARKER), `${JSON.stringify({source: pristine, patches: records.map((r, i) => ({...r, strip: strips[i]}))})}\n`)
    await rename(temp, dir)
    return {dir, patchMs: Date.now() - started}
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    if (interrupt?.signal) throw interrupt.controller.signal.reason
    throw error
  } finally {
    await release()
  }
}

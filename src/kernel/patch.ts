/**
 * Kernel patches (`kernel build --patch FILE`), the pure part: what the patches add to a build's
 * cache key, where the entry keeps its copies, whether a file looks like a patch at all, and what
 * GNU patch's output says went wrong, turned into the one line the user sees. The edge that reads
 * the files and runs patch on pmemlab's own copy of the source is patch-tree.ts.
 */
import {basename} from 'node:path'
import {sha256} from './key.js'

/** A patch as the user gave it, read once: its bytes are what is hashed, applied and kept. */
export interface PatchInput {
  /** The file name, without its directory: what logs, errors and `kernel ls` show. */
  name: string
  /** The absolute path it was read from. */
  path: string
  sha256: string
  bytes: Uint8Array
}

/** A patch as build.json records it: the entry keeps a copy under `file`. */
export interface PatchRecord {
  name: string
  /** Relative to the entry: patches/01-name. */
  file: string
  sha256: string
}

/** The key's share of the patches: their contents in order (paths and names do not matter). */
export const patchKeyPart = (patches: readonly {sha256: string}[]): string[] => patches.map((patch) => patch.sha256)

/** One id for an ordered patch set: names the patched copy of a source tree. */
export const patchSetId = (patches: readonly {sha256: string}[]): string => sha256(JSON.stringify(patchKeyPart(patches)))

/** Whether two patch lists are the same patches in the same order (an entry without patches has none). */
export function samePatches(a: readonly {sha256: string}[] | undefined, b: readonly {sha256: string}[] | undefined): boolean {
  const left = patchKeyPart(a ?? [])
  const right = patchKeyPart(b ?? [])
  return left.length === right.length && left.every((digest, i) => digest === right[i])
}

/** Where the entry keeps the Nth patch (0-based): numbered, so that two files of one name stay apart and in order. */
export function entryPatchFile(index: number, name: string): string {
  const safe = basename(name).replace(/[^A-Za-z0-9._+-]+/g, '_') || 'patch'
  return `patches/${String(index + 1).padStart(2, '0')}-${safe}`
}

export function patchRecords(patches: readonly PatchInput[]): PatchRecord[] {
  return patches.map((patch, i) => ({name: patch.name, file: entryPatchFile(i, patch.name), sha256: patch.sha256}))
}

/** A unified diff has ---/+++ headers; a git diff of renames or mode changes only has "diff --git" lines. */
export function looksLikePatch(text: string): boolean {
  return (/^--- \S/m.test(text) && /^\+\+\+ \S/m.test(text)) || /^diff --git \S/m.test(text)
}

// ------------------------------------------------------------------------------------------------
// GNU patch's output (run with LC_ALL=C and --quoting-style=literal, so it is English and unquoted)
// ------------------------------------------------------------------------------------------------

export type PatchProblem =
  /** "Hunk #2 FAILED at 120.": the hunks of one file that found no place to go. */
  | {kind: 'hunks'; file: string; hunks: Array<{hunk: number; line: number}>}
  /** "can't find file to patch": the file is not in the tree (or the strip level is wrong). */
  | {kind: 'missing'; file: string}
  /** "Reversed (or previously applied) patch detected!" */
  | {kind: 'reversed'; file: string}
  /** "The next patch would create the file X, which already exists!" */
  | {kind: 'exists'; file: string}
  /** "The next patch would delete the file X, which does not exist!" */
  | {kind: 'absent'; file: string}
  /** "patch: **** malformed patch at line 12: ...", "Only garbage was found in the patch input." */
  | {kind: 'malformed'; message: string}
  /** Anything else patch complained about. */
  | {kind: 'other'; message: string}

export interface PatchReport {
  problems: PatchProblem[]
  /** Hunks that applied only by ignoring context lines: they may have landed in the wrong place. */
  fuzz: Array<{file: string; hunk: number; fuzz: number}>
}

/** The path a "---"/"+++" header names, without its timestamp, quotes and first STRIP components. */
function headerPath(line: string, strip: number): string {
  let path = line.slice(4).split('\t')[0].trim()
  if (path.startsWith('"') && path.endsWith('"')) path = path.slice(1, -1)
  return path.split('/').slice(strip).join('/') || path
}

/** The file a "can't find file to patch" block is about: its "+++" header, else its "---" one, else its "diff --git" line. */
function missingFile(block: string[], strip: number): string {
  const lines = block.map((line) => line.slice(1))
  const plus = lines.find((line) => line.startsWith('+++ ') && !line.startsWith('+++ /dev/null'))
  if (plus) return headerPath(plus, strip)
  const minus = lines.find((line) => line.startsWith('--- ') && !line.startsWith('--- /dev/null'))
  if (minus) return headerPath(minus, strip)
  const git = lines.find((line) => line.startsWith('diff --git '))
  if (git) return headerPath(`xxx ${git.split(' ')[2]}`, strip)
  return '(unknown file)'
}

/**
 * What one run of patch says went wrong, file by file, with the failed hunks' numbers. STRIP is
 * the -p level it ran with (the file of a "can't find file" is read from the patch's headers).
 * EXIT is patch's status: 0 applied, 1 some hunks failed, 2 trouble (a malformed patch).
 */
export function parsePatchOutput(output: string, strip: number, exit: number): PatchReport {
  const problems: PatchProblem[] = []
  const fuzz: PatchReport['fuzz'] = []
  const lines = output.split('\n')
  let file = '(unknown file)'
  const failedHunks = new Map<string, Array<{hunk: number; line: number}>>()
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trimEnd()
    let match: RegExpExecArray | null
    if ((match = /^(?:checking|patching) file (.+?)(?: \((?:renamed|copied|read) from .+\))?$/.exec(line))) {
      file = match[1]
    } else if ((match = /^Hunk #(\d+) FAILED at (\d+)/.exec(line))) {
      const hunks = failedHunks.get(file) ?? []
      if (hunks.length === 0) {
        failedHunks.set(file, hunks)
        problems.push({kind: 'hunks', file, hunks})
      }
      hunks.push({hunk: Number(match[1]), line: Number(match[2])})
    } else if ((match = /^Hunk #(\d+) succeeded at \d+ with fuzz (\d+)/.exec(line))) {
      fuzz.push({file, hunk: Number(match[1]), fuzz: Number(match[2])})
    } else if (line.startsWith("can't find file to patch")) {
      const block: string[] = []
      for (let j = i + 1; j < lines.length && !/^(No file to patch|File to patch:)/.test(lines[j]); j++) if (lines[j].startsWith('|')) block.push(lines[j])
      problems.push({kind: 'missing', file: missingFile(block, strip)})
    } else if (line.startsWith('Reversed (or previously applied) patch detected')) {
      problems.push({kind: 'reversed', file})
    } else if ((match = /^The next patch would (create|delete) the file (.+),$/.exec(line))) {
      problems.push({kind: match[1] === 'create' ? 'exists' : 'absent', file: match[2]})
    } else if ((match = /^(?:\S*patch): \*\*\*\* (.+)$/.exec(line))) {
      problems.push({kind: 'malformed', message: match[1].replace(/\.$/, '')})
    }
  }
  if (exit !== 0 && problems.length === 0) {
    const first = lines.map((line) => line.trim()).find((line) => line !== '' && !/^(checking|patching) file /.test(line))
    problems.push({kind: 'other', message: first ?? `patch exited with status ${exit}`})
  }
  return {problems, fuzz}
}

/** Every problem is a file that is not there: the sign of a -p0 patch read as -p1. */
export const onlyMissingFiles = (report: PatchReport): boolean => report.problems.length > 0 && report.problems.every((p) => p.kind === 'missing')

function describeProblem(problem: PatchProblem): string {
  switch (problem.kind) {
    case 'hunks': {
      const numbers = problem.hunks.map((h) => `#${h.hunk}`).join(', ')
      const at = problem.hunks.map((h) => h.line).join(', ')
      return `${problem.file}: hunk${problem.hunks.length === 1 ? '' : 's'} ${numbers} failed (at line${problem.hunks.length === 1 ? '' : 's'} ${at})`
    }
    case 'missing':
      return `${problem.file}: no such file in the source`
    case 'reversed':
      return `${problem.file}: reversed or already applied`
    case 'exists':
      return `${problem.file}: would be created, but already exists`
    case 'absent':
      return `${problem.file}: would be deleted, but does not exist`
    case 'malformed':
      return problem.message
    case 'other':
      return problem.message
  }
}

/** "fs/dax.c: hunk #2 failed (at line 120); mm/memory.c: reversed or already applied". */
export const describeProblems = (report: PatchReport): string => report.problems.map(describeProblem).join('; ')

/**
 * The one line for a patch that does not apply: the file, where it stands in the series (a patch
 * may need the ones before it), and what failed, file and hunk.
 */
export function patchFailureMessage(patches: readonly {name: string}[], index: number, report: PatchReport): string {
  const position = patches.length > 1 ? ` (patch ${index + 1} of ${patches.length}${index > 0 ? `, on top of ${patches.slice(0, index).map((p) => p.name).join(', ')}` : ''})` : ''
  return `--patch ${patches[index].name} does not apply${position}: ${describeProblems(report)}`
}

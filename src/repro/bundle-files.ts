/**
 * The bundle of a reproducer series (`OUTPUT/bundle.tar.gz`), as data: which files of a finished
 * output directory go in, where the reproducer and the files it references sit, the SHA256SUMS
 * text (written and checked), reproduce.sh, and what an archive entry may be. Pure: the edge that
 * reads, hashes and packs is bundle.ts.
 *
 * The archive, flat (extract it into an empty directory):
 *
 *   SHA256SUMS            first: sha256sum(1) lines over every other file
 *   reproduce.sh          the one command that reruns the series from the bundle
 *   metadata.json         host, accelerator, durations, pmemlab's and QEMU's versions
 *   repro.json, junit.xml, reproducer.yaml, kernel/, runs/N/   the output directory's own files
 *                         (kernel/vmlinux and runs/N/decoded-trace.txt with --with-vmlinux)
 *   input/...             the reproducer and every file it references, at their relative places
 */
import {posix} from 'node:path'
import {shellQuote} from '../core/log.js'
import type {ReproPlan} from './schema.js'

export const BUNDLE_NAME = 'bundle.tar.gz'
export const SUMS_NAME = 'SHA256SUMS'
export const SCRIPT_NAME = 'reproduce.sh'
export const METADATA_NAME = 'metadata.json'
export const INPUT_DIR = 'input'
export const BUNDLE_FORMAT = 'pmemlab-repro-bundle'

/** The end of a built kernel's build.log, kept in OUTPUT/kernel/ (the whole log stays in the cache). */
export const BUILD_LOG_TAIL = 'build.log.tail'
export const BUILD_LOG_TAIL_LINES = 200

/** The last N lines of TEXT (a last line without its newline counts). */
export function logTail(text: string, n: number): string {
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  return lines.length === 0 ? '' : `${lines.slice(-n).join('\n')}\n`
}

/** What a series writes into OUTPUT for its bundle, removed when the next series starts there. */
export const BUNDLE_OUTPUTS = [BUNDLE_NAME, SUMS_NAME, SCRIPT_NAME, METADATA_NAME, INPUT_DIR]

/** What a bundle holds besides SHA256SUMS: the output directory's own files, and what bundle.ts writes there. */
const TOP_FILES = new Set(['repro.json', 'junit.xml', 'reproducer.yaml', SCRIPT_NAME, METADATA_NAME])
const TOP_DIRS = ['kernel/', 'runs/', `${INPUT_DIR}/`]

/**
 * The files of a finished output directory that go into its bundle (paths relative to it, '/'
 * separated), sorted. Anything else there (files of the user's, the bundle itself, a temporary
 * archive) stays out.
 */
export function bundleFileList(paths: readonly string[]): string[] {
  return paths.filter((path) => TOP_FILES.has(path) || TOP_DIRS.some((dir) => path.startsWith(dir) && path.length > dir.length)).sort()
}

// SHA256SUMS

export interface FileSum {
  path: string
  sha256: string
}

/** sha256sum(1)'s text format (binary mode marker '*' not used: two spaces), one line per file, sorted by path. */
export function sha256sumsText(sums: readonly FileSum[]): string {
  return [...sums]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map(({path, sha256}) => {
      if (/[\n\\]/.test(path)) throw new Error(`a bundle cannot name ${JSON.stringify(path)} in ${SUMS_NAME}`)
      return `${sha256}  ${path}\n`
    })
    .join('')
}

/** The lines of a SHA256SUMS file; a line that is not one is the problem returned. */
export function parseSha256sums(text: string): {sums: FileSum[]} | {problem: string} {
  const sums: FileSum[] = []
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line)
    if (!match) return {problem: `${SUMS_NAME} line ${i + 1} is not "SHA256  PATH"`}
    sums.push({path: match[2], sha256: match[1]})
  }
  return {sums}
}

/**
 * The first thing wrong between what SHA256SUMS lists and the files the archive held (SHA256SUMS
 * itself aside), named by its file; undefined when every file is there, unchanged, and no other.
 */
export function sumsProblem(listed: readonly FileSum[], found: readonly FileSum[]): string | undefined {
  const foundBy = new Map(found.map((f) => [f.path, f.sha256]))
  const listedPaths = new Set(listed.map((f) => f.path))
  for (const {path, sha256} of [...listed].sort(byPath)) {
    const actual = foundBy.get(path)
    if (actual === undefined) return `${path} is missing`
    if (actual !== sha256) return `${path} does not match its SHA256 (changed)`
  }
  const extra = [...found].sort(byPath).find((f) => !listedPaths.has(f.path))
  return extra ? `${extra.path} is not listed in ${SUMS_NAME} (added)` : undefined
}

const byPath = (a: FileSum, b: FileSum) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)

// reproduce.sh

/** reproduce.sh: the command that reruns the series from the bundle, run where the bundle is; more flags pass on. */
export function reproduceScript(argv: readonly string[]): string {
  return [
    '#!/bin/sh',
    '# Reruns this reproducer from its bundle: run it in the directory that holds the bundle.',
    '# Flags given to this script are passed on (for example --runs 5 or --output DIR).',
    `exec ${shellQuote(argv)} "$@"`,
    '',
  ].join('\n')
}

/** The rerun's argv: the flags of this series that shape the runs, not where its output went. */
export function rerunArgv(flags: {runs?: number; untilReproduced?: boolean; kernel?: string}): string[] {
  return [
    'pmemlab',
    'repro',
    BUNDLE_NAME,
    ...(flags.runs === undefined ? [] : ['--runs', String(flags.runs)]),
    ...(flags.untilReproduced ? ['--until-reproduced'] : []),
    ...(flags.kernel === undefined ? [] : ['--kernel', flags.kernel]),
  ]
}

// The reproducer's own files

/**
 * The files a reproducer references and the bundle carries, absolute: the kernel's bzImage path,
 * a recipe's config fragments and patches, the image's recipe and files. Left out, and named by
 * `notBundled`: a kernel source tarball or tree (large, and fetched again by version when the
 * recipe names one), and the lab's backing files (device contents).
 */
export function referencedFiles(plan: Pick<ReproPlan, 'kernel' | 'image'>): {files: string[]; notBundled: string[]} {
  const files: string[] = []
  const notBundled: string[] = []
  const kernel = plan.kernel
  if (kernel?.kind === 'path') files.push(kernel.spec)
  if (kernel?.kind === 'build') {
    files.push(...kernel.build.configs, ...(kernel.build.patches ?? []))
    if (kernel.build.source !== undefined) notBundled.push(kernel.build.source)
    if (kernel.build.tree !== undefined) notBundled.push(kernel.build.tree)
  }
  if (plan.image?.kind === 'recipe') files.push(plan.image.path)
  if (plan.image?.kind === 'extends') files.push(...plan.image.files.map((f) => f.source))
  return {files: [...new Set(files)], notBundled}
}

/**
 * Where the reproducer FILE and the files it references go under input/: each at its path relative
 * to their deepest common directory, so that the file's relative paths find them once extracted.
 * All paths are absolute ('/' separated).
 */
export function inputLayout(file: string, referenced: readonly string[]): {reproducer: string; entries: Array<{source: string; path: string}>} {
  const all = [file, ...referenced.filter((r) => r !== file)]
  let root = posix.dirname(file)
  for (const path of all) while (!isWithin(path, root)) root = posix.dirname(root)
  const place = (path: string) => posix.join(INPUT_DIR, posix.relative(root, path))
  return {reproducer: place(file), entries: all.map((source) => ({source, path: place(source)}))}
}

const isWithin = (path: string, dir: string) => dir === '/' || path.startsWith(`${dir}/`)

// Extraction

/**
 * Why an archive entry may not be extracted (undefined: it may): only plain files and
 * directories, at relative paths that stay inside the directory.
 */
export function entryProblem(path: string, type: string): string | undefined {
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return `${path}: an absolute path`
  if (path.split(/[/\\]/).includes('..')) return `${path}: a path with '..'`
  if (type !== 'File' && type !== 'OldFile' && type !== 'Directory') return `${path}: a ${type} entry (only files and directories)`
  return undefined
}

/** Whether a file's first bytes are gzip's magic number. */
export const isGzip = (head: Uint8Array) => head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b

/** The CPU flags of /proc/cpuinfo's first processor (empty when it names none). */
export function cpuFlags(cpuinfo: string): string[] {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo)
  return line ? line[1].trim().split(/\s+/).filter(Boolean) : []
}

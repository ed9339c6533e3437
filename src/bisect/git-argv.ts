/**
 * What a bisect tells git, as argv arrays for core/exec.ts run('git', argv, {env: GIT_ENV}).
 * Pure: the commands are built here and run by the bisect's edge; git-output.ts reads what they
 * print.
 *
 * Every command names the tree with -C, and every mark names its commit in full: a HEAD that
 * moved (a user's checkout, a resumed bisect) can then never be marked by mistake. `git bisect
 * start` is given full hashes too, never the refs the user typed, because `git bisect replay`
 * repeats the start line verbatim and a branch may have moved by the time a log is replayed.
 */
import type {Terms} from './step-verdict.js'

/**
 * The environment of every git command of a bisect: git's own English (git-output.ts reads its
 * messages, which a translated git words differently), no pager, no credential prompt.
 */
export const GIT_ENV: Readonly<Record<string, string>> = {LC_ALL: 'C', LANGUAGE: 'C', GIT_PAGER: 'cat', GIT_TERMINAL_PROMPT: '0'}

/** A full commit hash (SHA-1 or SHA-256). */
export const FULL_HASH = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/

const tree = (dir: string) => ['-C', dir]

/** Resolves REF to the full hash of a commit (prints it; exits 1, printing nothing, when REF names none). */
export function resolveCommitArgv(dir: string, ref: string): string[] {
  return [...tree(dir), 'rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`]
}

/** The arguments of `git bisect start` after "start": the terms, the new endpoint, the old one. */
export function startArgs(terms: Terms, newCommit: string, oldCommit: string): string[] {
  return [`--term-old=${terms.old}`, `--term-new=${terms.new}`, newCommit, oldCommit, '--']
}

/** Starts a bisect between two full hashes; git checks out the first commit to test (or names the culprit at once). */
export function bisectStartArgv(dir: string, terms: Terms, newCommit: string, oldCommit: string): string[] {
  for (const commit of [newCommit, oldCommit]) if (!FULL_HASH.test(commit)) throw new Error(`bisect start takes full commit hashes, not ${commit}`)
  return [...tree(dir), 'bisect', 'start', ...startArgs(terms, newCommit, oldCommit)]
}

/** Marks COMMIT with TERM (one of the bisect's terms, or skip); git checks out the next commit to test. */
export function bisectMarkArgv(dir: string, term: string, commit: string): string[] {
  if (!FULL_HASH.test(commit)) throw new Error(`bisect marks take a full commit hash, not ${commit}`)
  // A term that looked like an option would be read as one.
  if (!/^[a-z][a-z0-9_-]*$/.test(term)) throw new Error(`"${term}" is no bisect term`)
  return [...tree(dir), 'bisect', term, commit]
}

/** A bisect with neither terms nor endpoints yet: git remembers the branch to return to while pmemlab checks the endpoints. */
export const bareStartArgv = (dir: string) => [...tree(dir), 'bisect', 'start']

/** Checks out COMMIT, detached: an endpoint to check, or the culprit's parent to build. */
export function checkoutArgv(dir: string, commit: string): string[] {
  if (!FULL_HASH.test(commit)) throw new Error(`checkout takes a full commit hash, not ${commit}`)
  return [...tree(dir), 'checkout', '-q', '--detach', commit, '--']
}

/** Exits 0 when ANCESTOR is an ancestor of COMMIT (or the same commit), 1 when it is not. */
export const isAncestorArgv = (dir: string, ancestor: string, commit: string) => [...tree(dir), 'merge-base', '--is-ancestor', ancestor, commit]

export const bisectLogArgv = (dir: string) => [...tree(dir), 'bisect', 'log']
export const bisectReplayArgv = (dir: string, logFile: string) => [...tree(dir), 'bisect', 'replay', logFile]
/** Ends the bisect and checks out the branch it began on. */
export const bisectResetArgv = (dir: string) => [...tree(dir), 'bisect', 'reset']
/** Checks out the commit to test now (again), or names the result again. */
export const bisectNextArgv = (dir: string) => [...tree(dir), 'bisect', 'next']

/** Fields of COMMIT_FORMAT, separated by US (0x1f), one commit per RS (0x1e). */
export const COMMIT_FORMAT = '%H%x1f%P%x1f%an <%ae>%x1f%s%x1e'

/** Hash, parents, author and subject of COMMITS (git-output.ts parseCommits reads it). */
export function showCommitsArgv(dir: string, commits: readonly string[]): string[] {
  return [...tree(dir), 'show', '--no-patch', '--no-color', `--format=${COMMIT_FORMAT}`, '--end-of-options', ...commits]
}

/** Changes to tracked files (one line each; none when clean): a bisect checks out commits, so it needs a clean tree. */
export const trackedChangesArgv = (dir: string) => [...tree(dir), 'status', '--porcelain', '--untracked-files=no']

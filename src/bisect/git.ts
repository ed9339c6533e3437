/**
 * git, run for a bisect: git-argv.ts's commands under GIT_ENV, their output read by
 * git-output.ts. The edge between the two; the tree is named in every argv (-C).
 */
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {requireProgram} from '../core/which.js'
import {bisectLogArgv, GIT_ENV, resolveCommitArgv, showCommitsArgv, trackedChangesArgv} from './git-argv.js'
import {notBisecting, parseCommits, type CommitInfo} from './git-output.js'
import type {TreeBisect} from './state.js'

export interface GitResult {
  /** stdout and stderr interleaved: git's bisect messages go to both. */
  all: string
  stdout: string
  exitCode: number
}

let gitPath: string | undefined

/** Runs git with ARGV; its status is the caller's to read. */
export async function git(argv: readonly string[]): Promise<GitResult> {
  gitPath ??= await requireProgram('git', 'git')
  const result = await run(gitPath, argv, {env: GIT_ENV, extendEnv: true, reject: false, all: true, stdin: 'ignore'})
  return {all: String(result.all ?? ''), stdout: String(result.stdout ?? ''), exitCode: result.exitCode ?? -1}
}

/** Runs git with ARGV and returns its stdout; a failure is an error naming WHAT and git's own first error line. */
export async function gitOk(argv: readonly string[], what: string): Promise<string> {
  const result = await git(argv)
  if (result.exitCode !== 0) {
    const said = result.all.split('\n').find((l) => /^(?:error|fatal): /.test(l)) ?? result.all.trim().split('\n').at(-1) ?? ''
    throw new PmemlabError(`git could not ${what}${said ? `: ${said.replace(/^(?:error|fatal): /, '')}` : ''}`, ExitCode.failure)
  }
  return result.stdout
}

/** The full hash of the commit REF names in DIR; FLAG names it in the one line when it names none. */
export async function resolveCommit(dir: string, ref: string, flag: string): Promise<string> {
  const result = await git(resolveCommitArgv(dir, ref))
  const commit = result.stdout.trim()
  if (result.exitCode !== 0 || commit === '') throw usageError(`${flag} ${ref} names no commit in ${dir}`, 'give a branch, a tag or a commit hash of that tree')
  return commit
}

/** Refuses DIR when it is no git work tree, or has changes to tracked files (git checks out commits there). */
export async function requireCleanTree(dir: string): Promise<void> {
  const inside = await git(['-C', dir, 'rev-parse', '--is-inside-work-tree'])
  if (inside.exitCode !== 0 || inside.stdout.trim() !== 'true') throw usageError(`--tree ${dir} is not a git checkout`, 'give the directory of a kernel git tree')
  const changes = (await gitOk(trackedChangesArgv(dir), `read the status of ${dir}`)).split('\n').filter((l) => l.trim() !== '')
  if (changes.length > 0) {
    throw usageError(`${dir} has changes to ${changes.length} tracked file${changes.length === 1 ? '' : 's'} (${changes[0].slice(3)}${changes.length > 1 ? ', ...' : ''}): a bisect checks out other commits there`, 'commit or stash them first (git stash)')
  }
}

/** The tree's bisect: not in one, or its log. */
export async function treeBisect(dir: string): Promise<TreeBisect> {
  const result = await git(bisectLogArgv(dir))
  if (result.exitCode === 0) return {bisecting: true, log: result.stdout}
  if (notBisecting(result.all)) return {bisecting: false}
  throw new PmemlabError(`git bisect log failed in ${dir}: ${result.all.trim().split('\n')[0]}`, ExitCode.failure)
}

export const headOf = async (dir: string) => (await gitOk(['-C', dir, 'rev-parse', '--verify', 'HEAD'], `read HEAD in ${dir}`)).trim()

/** Hash, parents, author and subject of COMMITS. */
export async function showCommits(dir: string, commits: readonly string[]): Promise<CommitInfo[]> {
  if (commits.length === 0) return []
  return parseCommits(await gitOk(showCommitsArgv(dir, commits), `show ${commits.length} commit${commits.length === 1 ? '' : 's'}`))
}

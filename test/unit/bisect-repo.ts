/**
 * A throwaway git repository for the bisect tests: real commits, real `git bisect`, so the
 * parsers are checked against this machine's git and its exact wording. git runs with the
 * bisect's GIT_ENV and without the user's or the system's configuration.
 */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {GIT_ENV} from '../../src/bisect/git-argv.js'
import {newState, type BisectState} from '../../src/bisect/state.js'

export interface GitResult {
  /** stdout and stderr interleaved, as the bisect's edge reads them. */
  all: string
  stdout: string
  exitCode: number
}

export class Repo {
  /** Commits in order, oldest first. */
  readonly commits: string[] = []
  readonly subjects = new Map<string, string>()

  constructor(readonly dir: string) {}

  private env(home: string) {
    return {...GIT_ENV, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_DATE: '2024-01-02T03:04:05Z', GIT_COMMITTER_DATE: '2024-01-02T03:04:05Z'}
  }

  /** Runs git with ARGV (which names the tree itself, with -C, as the bisect's argv do). */
  async run(argv: readonly string[]): Promise<GitResult> {
    const result = await execa('git', argv, {env: this.env(this.dir), extendEnv: true, reject: false, all: true, stdin: 'ignore'})
    return {all: result.all ?? '', stdout: result.stdout, exitCode: result.exitCode ?? -1}
  }

  /** Runs `git -C DIR ARGS...`, failing the test when git fails. */
  async git(...args: string[]): Promise<string> {
    const result = await this.run(['-C', this.dir, ...args])
    if (result.exitCode !== 0) throw new Error(`git ${args.join(' ')} failed (${result.exitCode}): ${result.all}`)
    return result.stdout
  }

  async init(): Promise<void> {
    await this.git('init', '-q', '-b', 'main')
    await this.git('config', 'user.name', 'Ada Tester')
    await this.git('config', 'user.email', 'ada@example.org')
  }

  /** A commit that writes FILE; returns its hash. */
  async commit(subject: string, file = 'f', content = subject): Promise<string> {
    await writeFile(join(this.dir, file), `${content}\n`)
    await this.git('add', file)
    await this.git('commit', '-q', '-m', subject)
    const hash = (await this.git('rev-parse', 'HEAD')).trim()
    this.commits.push(hash)
    this.subjects.set(hash, subject)
    return hash
  }

  head = async () => (await this.git('rev-parse', 'HEAD')).trim()
}

/** Runs BODY in a fresh repository with COUNT linear commits "commit 1".."commit COUNT". */
export async function withRepo<T>(count: number, body: (repo: Repo) => Promise<T>): Promise<T> {
  return withDir(
    async ({path}) => {
      const repo = new Repo(path)
      await repo.init()
      for (let i = 1; i <= count; i++) await repo.commit(`commit ${i}: change ${i}`)
      return body(repo)
    },
    {unsafeCleanup: true, prefix: 'pmemlab-bisect-git-'},
  )
}

/** A fake 40-hex commit made of one character. */
export const H = (c: string) => c.repeat(40)

/** A bisect's state as `pmemlab bisect` starts it, with the fields a test cares about changed. */
export function sampleState(over: Partial<Parameters<typeof newState>[0]> = {}): BisectState {
  return newState({
    tree: '/src/linux',
    good: {ref: 'v6.1', commit: H('a')},
    bad: {ref: 'dax-next', commit: H('f')},
    reverse: false,
    type: 'test',
    runs: 3,
    badThreshold: 1,
    maxErrors: 0,
    test: {kind: 'repro', file: '/work/bug.yaml'},
    startedAt: '2024-01-02T03:04:05.000Z',
    ...over,
  })
}

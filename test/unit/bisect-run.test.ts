import assert from 'node:assert/strict'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {describe, test} from 'node:test'
import {withDir} from 'tmp-promise'
import {bisectStartArgv, bisectResetArgv} from '../../src/bisect/git-argv.js'
import type {BisectAsk, StepSetup} from '../../src/bisect/options.js'
import {REPORT_JSON, REPORT_MARKDOWN, type BisectReport} from '../../src/bisect/report.js'
import {resultLine, runBisect} from '../../src/bisect/run.js'
import {parseState, STATE_FILE, type BisectState} from '../../src/bisect/state.js'
import {bisectPaths, stepLine, type BuildOutcome, type StepContext, type StepRunner, type TestOutcome} from '../../src/bisect/step.js'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import type {Outcome} from '../../src/repro/verdict.js'
import {withRepo, type Repo} from './bisect-repo.js'
import {withEnv} from './env.js'

/**
 * A bisect's loop against real git, with a fake build and test: the commit "built" is read from
 * the tree as it is checked out (so what git checked out is what is tested), builds and tests
 * are counted, and any of them can be made to fail or to stop the bisect as Ctrl-C would.
 */
class FakeRunner implements StepRunner {
  readonly built: number[] = []
  readonly tested: number[] = []
  constructor(
    private readonly repo: Repo,
    private readonly fake: {bug: (i: number) => boolean; noBuild?: number[]; image?: (i: number) => string; stopAtTest?: number},
  ) {}

  /** The index (0-based) of the commit checked out, from its file. */
  private async checkedOut(step: StepContext): Promise<number> {
    const content = await readFile(join(this.repo.dir, 'f'), 'utf8')
    const i = Number(/^commit (\d+):/.exec(content)?.[1]) - 1
    assert.equal(this.repo.commits[i], step.commit, `the tree holds commit ${i + 1}, but ${step.commit.slice(0, 7)} was to be built`)
    return i
  }

  async build(step: StepContext): Promise<BuildOutcome> {
    const i = await this.checkedOut(step)
    this.built.push(i)
    if (this.fake.noBuild?.includes(i)) return {ok: false, reason: 'make bzImage failed (exit code 2)', durationMs: 5}
    return {ok: true, kernel: {key: `key-${i}`, imageHash: this.fake.image?.(i) ?? `image-${i}`, cached: false, durationMs: 10}}
  }

  async test(step: StepContext, _kernel: unknown, again: (outcomes: readonly Outcome[]) => boolean): Promise<TestOutcome> {
    const i = await this.checkedOut(step)
    if (this.tested.length === this.fake.stopAtTest) throw new PmemlabError('', ExitCode.interrupted)
    this.tested.push(i)
    const runs: TestOutcome['runs'] = []
    while (again(runs.map((r) => r.outcome))) runs.push({outcome: this.fake.bug(i) ? 'reproduced' : 'not reproduced', reason: 'fake', durationMs: 1})
    return {runs}
  }
}

const branch = async (repo: Repo) => (await repo.git('branch', '--show-current')).trim()
const bisecting = async (repo: Repo) => (await repo.run(['-C', repo.dir, 'bisect', 'log'])).exitCode === 0

function setupOf(repo: Repo, output: string, reverse = false): StepSetup {
  return {
    tree: repo.dir,
    test: {kind: 'command', argv: ['true'], timeoutSec: 60},
    options: {type: 'test', runs: 1, badThreshold: 1, maxErrors: 0, reverse},
    recipe: {configs: [], sets: [], base: 'tinyconfig', debug: false},
    output,
  }
}

/** Runs BODY with a repository of COUNT commits, an output directory outside it, and a cache of its own. */
async function withBisect(count: number, body: (repo: Repo, output: string) => Promise<void>): Promise<void> {
  await withDir(
    async ({path}) => {
      await withEnv({PMEMLAB_CACHE_DIR: join(path, 'cache')}, () => withRepo(count, (repo) => body(repo, join(path, 'out'))))
    },
    {unsafeCleanup: true, prefix: 'pmemlab-bisect-run-'},
  )
}

const readJson = async <T>(file: string) => JSON.parse(await readFile(file, 'utf8')) as T
const stateIn = async (output: string): Promise<BisectState> => parseState(await readFile(join(output, STATE_FILE), 'utf8'), STATE_FILE)

async function refusedWith(promise: Promise<unknown>): Promise<PmemlabError> {
  const error = await promise.then(
    () => assert.fail('the bisect ran'),
    (e: unknown) => e,
  )
  assert.ok(error instanceof PmemlabError, String(error))
  return error
}

describe('the bisect loop, real git, fake builds and tests', () => {
  test('names the breaking commit, skips the one that does not build, checks the endpoints first, resets the tree', () =>
    withBisect(10, async (repo, output) => {
      const c = repo.commits
      const runner = new FakeRunner(repo, {bug: (i) => i >= 6, noBuild: [4]})
      const steps: string[] = []
      const ask: BisectAsk = {kind: 'start', setup: setupOf(repo, output), good: 'HEAD~9', bad: 'main'}
      const {state, report} = await runBisect(ask, {makeRunner: async () => runner, onStep: (r) => steps.push(stepLine(r))})
      assert.equal(report.status, 'culprit')
      assert.equal(report.culprit?.commit, c[6])
      assert.equal(resultLine(report), `${c[6]} commit 7: change 7`)
      assert.equal(report.fixes, `Fixes: ${c[6].slice(0, 12)} ("commit 7: change 7")`)
      assert.deepEqual(report.skipped, [c[4]], 'git chose the commit that does not build, and it was skipped')
      assert.deepEqual(runner.built.slice(0, 2), [9, 0], 'bad endpoint, then good, before any step')
      assert.deepEqual(state.steps.slice(0, 2).map((s) => s.role), ['bad endpoint', 'good endpoint'])
      assert.deepEqual(state.good, {ref: 'HEAD~9', commit: c[0]})
      assert.ok(!runner.tested.includes(4), 'a commit that did not build was not tested')
      assert.equal(new Set(runner.built).size, runner.built.length, 'no commit was built twice')
      assert.match(steps[2], new RegExp(`^step ${c[4].slice(0, 12)} \\(commit 5: change 5\\): build failed in 0\\.0 s: skip \\(the build failed: make bzImage failed \\(exit code 2\\)\\)$`))

      // What is on disk: the state with its result, the report in both forms, git's log with the skip.
      const onDisk = await stateIn(output)
      assert.deepEqual(onDisk.result, {kind: 'culprit', commit: c[6]})
      assert.deepEqual(onDisk, state)
      assert.match(onDisk.log, new RegExp(`^git bisect skip ${c[4]}$`, 'm'))
      assert.deepEqual((await readJson<BisectReport>(join(output, REPORT_JSON))).culprit, report.culprit)
      assert.match(await readFile(join(output, REPORT_MARKDOWN), 'utf8'), /^### pmemlab bisect: first bad commit /)
      assert.equal(await branch(repo), 'main', 'git bisect reset took the tree back to its branch')
      assert.equal(await bisecting(repo), false)
      assert.deepEqual(report.warnings, [], "the culprit's parent was a step, with its image")
    }))

  test('--reverse names the commit that fixed it', () =>
    withBisect(10, async (repo, output) => {
      const c = repo.commits
      const runner = new FakeRunner(repo, {bug: (i) => i < 7, noBuild: [4]})
      const ask: BisectAsk = {kind: 'start', setup: setupOf(repo, output, true), good: c[9], bad: c[0]}
      const {report} = await runBisect(ask, {makeRunner: async () => runner})
      assert.equal(report.culprit?.commit, c[7])
      assert.equal(report.headline.startsWith(`first fixed commit: ${c[7].slice(0, 12)}`), true, report.headline)
      assert.equal(report.fixes, undefined)
      assert.deepEqual(report.skipped, [c[4]])
      assert.equal(await branch(repo), 'main')
    }))

  test('a good endpoint that reproduces is refused in one line, before any step; the tree is back on its branch', () =>
    withBisect(10, async (repo, output) => {
      const c = repo.commits
      const runner = new FakeRunner(repo, {bug: (i) => i >= 6})
      const error = await refusedWith(runBisect({kind: 'start', setup: setupOf(repo, output), good: c[7], bad: c[9]}, {makeRunner: async () => runner}))
      assert.equal(error.exitCode, ExitCode.usage)
      assert.equal(error.oneLine(), `the good endpoint ${c[7].slice(0, 12)} reproduces the bug (reproduced 1/1): give --good a commit that does not`)
      assert.deepEqual(runner.built, [9, 7], 'the bad endpoint, the good one, nothing else')
      const state = await stateIn(output)
      assert.deepEqual(state.result, {kind: 'refused', endpoint: 'good', commit: c[7], reason: error.message})
      assert.equal(state.steps.filter((s) => s.role === 'step').length, 0)
      assert.equal(state.log, '', 'git bisect start was never run')
      assert.equal((await readJson<BisectReport>(join(output, REPORT_JSON))).status, 'refused')
      assert.equal(await branch(repo), 'main')
      assert.equal(await bisecting(repo), false)
    }))

  test('a bad endpoint that does not reproduce is refused before the good one is built', () =>
    withBisect(6, async (repo, output) => {
      const runner = new FakeRunner(repo, {bug: () => false})
      const error = await refusedWith(runBisect({kind: 'start', setup: setupOf(repo, output), good: 'HEAD~5', bad: 'HEAD'}, {makeRunner: async () => runner}))
      assert.match(error.oneLine(), /^the bad endpoint [0-9a-f]{12} does not reproduce the bug \(reproduced 0\/1\): give --bad a commit that does$/)
      assert.deepEqual(runner.built, [5])
    }))

  test('stopped in the middle, it resumes from its state and finds the same commit; a tree reset meanwhile is replayed', () =>
    withBisect(16, async (repo, output) => {
      const c = repo.commits
      const bug = (i: number) => i >= 11
      const first = new FakeRunner(repo, {bug, noBuild: [7], stopAtTest: 4})
      const stopped = await refusedWith(runBisect({kind: 'start', setup: setupOf(repo, output), good: c[0], bad: c[15]}, {makeRunner: async () => first}))
      assert.equal(stopped.exitCode, ExitCode.interrupted)
      const half = await stateIn(output)
      assert.equal(half.result, undefined)
      const recorded = half.steps.map((s) => c.indexOf(s.commit))
      assert.ok(half.steps.filter((s) => s.role === 'step').length >= 2, `steps: ${recorded.join(' ')}`)
      assert.equal(await bisecting(repo), true, 'the tree is still bisecting, as after Ctrl-C')

      // Another bisect is refused while this one is unfinished in the same output.
      assert.match((await refusedWith(runBisect({kind: 'start', setup: setupOf(repo, output), good: c[0], bad: c[15]}, {makeRunner: async () => first}))).oneLine(), /holds an unfinished bisect: go on with: pmemlab bisect --resume --output /)

      const second = new FakeRunner(repo, {bug, noBuild: [7]})
      const {report} = await runBisect({kind: 'resume', output}, {makeRunner: async () => second})
      assert.equal(report.culprit?.commit, c[11])
      assert.deepEqual(second.built.filter((i) => recorded.includes(i)), [], 'no recorded commit was built again')
      assert.equal(await branch(repo), 'main')

      // The same bisect again, stopped at the same place; this time the user ends git's bisect before resuming.
      const output2 = `${output}-2`
      await refusedWith(runBisect({kind: 'start', setup: setupOf(repo, output2), good: c[0], bad: c[15]}, {makeRunner: async () => new FakeRunner(repo, {bug, noBuild: [7], stopAtTest: 4})}))
      await repo.run(bisectResetArgv(repo.dir))
      const third = new FakeRunner(repo, {bug, noBuild: [7]})
      const again = await runBisect({kind: 'resume', output: output2}, {makeRunner: async () => third})
      assert.equal(again.report.culprit?.commit, c[11])
      assert.equal(await readFile(join(output2, 'replay.log'), 'utf8').then((t) => t.startsWith('# bad: [') || t.startsWith('git bisect start')), true, 'the recorded log was replayed')
    }))

  test('a finished bisect resumed only writes its report again', () =>
    withBisect(6, async (repo, output) => {
      const runner = new FakeRunner(repo, {bug: (i) => i >= 3})
      const done = await runBisect({kind: 'start', setup: setupOf(repo, output), good: 'HEAD~5', bad: 'HEAD'}, {makeRunner: async () => runner})
      const again = new FakeRunner(repo, {bug: () => true})
      const resumed = await runBisect({kind: 'resume', output}, {makeRunner: async () => again})
      assert.deepEqual(again.built, [])
      assert.deepEqual(resumed.report, done.report)
    }))

  test('skipped commits that leave the range open give the candidates', () =>
    withBisect(8, async (repo, output) => {
      const c = repo.commits
      const runner = new FakeRunner(repo, {bug: (i) => i >= 4, noBuild: [3, 4]})
      const {report} = await runBisect({kind: 'start', setup: setupOf(repo, output), good: c[0], bad: c[7]}, {makeRunner: async () => runner})
      assert.equal(report.status, 'candidates')
      // commit 6 is bad, but with 4 and 5 unknown it may be the first bad one as well as they.
      assert.deepEqual(report.candidates?.map((x) => x.commit), [c[3], c[4], c[5]])
      assert.equal(resultLine(report), `the first bad commit is one of: ${c[3]} ${c[4]} ${c[5]}`)
      assert.deepEqual([...report.skipped].sort(), [c[3], c[4]].sort(), 'both commits that do not build were skipped')
      assert.equal(await branch(repo), 'main')
    }))

  test("the culprit's parent, outside the tested range, is built for the image check; an equal image is a warning", () =>
    withBisect(2, async (repo, output) => {
      // main: commit 1 - commit 2 (good); a side branch from commit 1 brings the bug; the merge is bad.
      const c = repo.commits
      await repo.git('checkout', '-q', '-b', 'side', c[0])
      const side = await repo.commit('commit 3: side', 'g', 'side')
      await repo.git('checkout', '-q', 'main')
      await repo.git('merge', '-q', '--no-edit', 'side')
      const bad = await repo.head()
      const runner: StepRunner = {
        build: async (step) => ({ok: true, kernel: {key: step.commit, imageHash: step.commit === side || step.commit === c[0] ? 'same-image' : `image-${step.commit}`, cached: true, durationMs: 1}}),
        test: async (step, _k, again) => {
          const runs: TestOutcome['runs'] = []
          while (again(runs.map((r) => r.outcome))) runs.push({outcome: step.commit === side || step.commit === bad ? 'reproduced' : 'not reproduced', reason: 'fake', durationMs: 1})
          return {runs}
        },
      }
      const {state, report} = await runBisect({kind: 'start', setup: setupOf(repo, output), good: c[1], bad}, {makeRunner: async () => runner})
      assert.equal(report.culprit?.commit, side)
      assert.deepEqual(state.parentBuild, {commit: c[0], key: c[0], imageHash: 'same-image'})
      assert.match(report.warnings.join('\n'), new RegExp(`^the kernel image of ${side.slice(0, 12)} is identical to its parent ${c[0].slice(0, 12)}'s`, 'm'))
      assert.equal(await branch(repo), 'main')
    }))

  test('refused before anything starts: a dirty tree, a tree in a bisect of its own, refs that name nothing, endpoints swapped', () =>
    withBisect(4, async (repo, output) => {
      const c = repo.commits
      const runner = new FakeRunner(repo, {bug: () => true})
      const start = (good: string, bad: string, reverse = false) => runBisect({kind: 'start', setup: setupOf(repo, output, reverse), good, bad}, {makeRunner: async () => runner})
      assert.equal((await refusedWith(start('HEAD~3', 'nope'))).oneLine(), `--bad nope names no commit in ${repo.dir}: give a branch, a tag or a commit hash of that tree`)
      assert.equal((await refusedWith(start('HEAD', 'HEAD~3'))).oneLine(), '--bad HEAD~3 is older than --good HEAD: add --reverse to find the commit that fixed it')
      assert.equal((await refusedWith(start('HEAD~3', 'HEAD', true))).oneLine(), '--good HEAD~3 is older than --bad HEAD, and --reverse looks for a fix: drop --reverse to find the commit that broke it')
      await writeFile(join(repo.dir, 'f'), 'changed\n')
      assert.match((await refusedWith(start('HEAD~3', 'HEAD'))).oneLine(), /has changes to 1 tracked file \(f\): a bisect checks out other commits there: commit or stash them first/)
      await repo.git('checkout', '--', 'f')
      await repo.run(bisectStartArgv(repo.dir, {old: 'good', new: 'bad'}, c[3], c[0]))
      const foreign = await refusedWith(start('HEAD~3', 'HEAD'))
      assert.equal(foreign.oneLine(), `${repo.dir} is already bisecting: finish or end it first (git -C ${repo.dir} bisect reset)`)
      assert.deepEqual(runner.built, [], 'nothing was built')
      await assert.rejects(readFile(join(output, STATE_FILE)), 'no state was written')
    }))

  test('a second bisect of the same tree is refused while one runs', () =>
    withBisect(4, async (repo, output) => {
      const lock = bisectPaths(repo.dir).treeLock
      await mkdir(dirname(lock), {recursive: true})
      await writeFile(lock, `${process.ppid}\n`)
      const error = await refusedWith(runBisect({kind: 'start', setup: setupOf(repo, output), good: 'HEAD~3', bad: 'HEAD'}, {makeRunner: async () => new FakeRunner(repo, {bug: () => true})}))
      assert.equal(error.exitCode, ExitCode.conflict)
      assert.equal(error.message, `another pmemlab (pid ${process.ppid}) is bisecting ${repo.dir}`)
    }))
})

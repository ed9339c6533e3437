import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {bisectLogArgv, bisectMarkArgv, bisectReplayArgv, bisectResetArgv, bisectStartArgv} from '../../src/bisect/git-argv.js'
import {loggedBisect, parseBisectLog, parseBisectOutput} from '../../src/bisect/git-output.js'
import {
  expectedMarks,
  expectedStart,
  foreignBisectProblem,
  gitEndpoints,
  logFromSteps,
  parseState,
  resumeAction,
  serializeState,
  stateTerms,
  stepOf,
  uncheckedEndpoint,
  withLog,
  withResult,
  withStep,
  type StepRecord,
  type TreeBisect,
} from '../../src/bisect/state.js'
import {REVERSE_TERMS} from '../../src/bisect/step-verdict.js'
import {H, sampleState, withRepo, type Repo} from './bisect-repo.js'

/** Here the bad endpoint is HEAD. */
const stateOf = (over: Parameters<typeof sampleState>[0] = {}) => sampleState({bad: {ref: 'HEAD', commit: H('b')}, ...over})

function step(commit: string, role: StepRecord['role'], term: string, over: Partial<StepRecord> = {}): StepRecord {
  const side = term === 'skip' ? 'skip' : term === 'good' || term === 'broken' ? 'old' : 'new'
  const observation = side === 'skip' ? 'skip' : (term === 'bad' || term === 'broken') ? 'reproduced' : 'clean'
  return {
    commit,
    role,
    build: {state: 'built', durationMs: 1000},
    runs: [{outcome: observation === 'reproduced' ? 'reproduced' : 'not reproduced', reason: 'x', durationMs: 500}],
    observation,
    side,
    term,
    reason: 'reproduced 1/1',
    startedAt: '2024-01-02T03:04:05.000Z',
    durationMs: 1500,
    ...over,
  }
}

const notBisecting: TreeBisect = {bisecting: false}

describe('the state file', () => {
  test('round-trips through JSON, versioned', () => {
    let state = withStep(stateOf(), step(H('b'), 'bad endpoint', 'bad', {bundle: '/out/steps/1/bundle.tar.gz'}))
    state = withResult(withLog(state, 'git bisect start\n'), {kind: 'culprit', commit: H('c')})
    const text = serializeState(state)
    assert.ok(text.endsWith('}\n'))
    const back = parseState(text, 'bisect-state.json')
    assert.deepEqual(back, state)
    assert.equal(JSON.parse(text).format, 'pmemlab-bisect-state')
    assert.equal(JSON.parse(text).version, 1)
  })

  test('a file that is not one, of another version, or damaged is one line with exit 2', () => {
    const refused = (text: string) => {
      try {
        parseState(text, 'st.json')
      } catch (error) {
        assert.ok(error instanceof PmemlabError)
        assert.equal(error.exitCode, ExitCode.usage)
        return error.message
      }
      assert.fail('accepted')
    }
    assert.match(refused('{'), /^st\.json is not JSON: /)
    assert.equal(refused('{"format": "pmemlab-matrix-cell"}'), 'st.json is not a pmemlab bisect state file')
    const good = JSON.parse(serializeState(stateOf()))
    assert.equal(refused(JSON.stringify({...good, version: 2})), 'st.json is a bisect state of version 2; this pmemlab reads 1')
    assert.equal(refused(JSON.stringify({...good, bad: {ref: 'HEAD', commit: 'HEAD'}})), 'st.json is a damaged bisect state: bad.commit: is not a full commit hash')
    assert.match(refused(JSON.stringify({...good, extra: 1})), /^st\.json is a damaged bisect state: \(top level\): Unrecognized key/)
  })

  test('a step that does not fit is caught before it is written', () => {
    assert.throws(() => withStep(stateOf(), step('HEAD', 'step', 'bad')))
    assert.throws(() => withResult(stateOf(), {kind: 'candidates', commits: []}))
  })

  test('git endpoints and start: the new side is bad, or good with --reverse; terms explicit', () => {
    const normal = stateOf()
    assert.deepEqual(gitEndpoints(normal), {newCommit: H('b'), oldCommit: H('a')})
    assert.deepEqual(expectedStart(normal), ['--term-old=good', '--term-new=bad', H('b'), H('a'), '--'])
    const reverse = stateOf({reverse: true, good: {ref: 'main', commit: H('d')}, bad: {ref: 'v6.1', commit: H('e')}})
    assert.deepEqual(gitEndpoints(reverse), {newCommit: H('d'), oldCommit: H('e')})
    assert.deepEqual(expectedStart(reverse), [`--term-old=${REVERSE_TERMS.old}`, `--term-new=${REVERSE_TERMS.new}`, H('d'), H('e'), '--'])
  })

  test('the marks are the steps git chose, not the endpoint checks; the last record of a commit counts', () => {
    let state = withStep(stateOf(), step(H('b'), 'bad endpoint', 'bad'))
    state = withStep(state, step(H('a'), 'good endpoint', 'good'))
    state = withStep(state, step(H('c'), 'step', 'skip'))
    state = withStep(state, step(H('d'), 'step', 'good', {reason: 'first'}))
    assert.deepEqual(expectedMarks(state), [
      {term: 'skip', commit: H('c')},
      {term: 'good', commit: H('d')},
    ])
    state = withStep(state, step(H('d'), 'step', 'bad', {reason: 'again'}))
    assert.equal(stepOf(state, H('d'))?.reason, 'again')
    assert.equal(stepOf(state, H('f')), undefined)
  })
})

describe('what --resume does', () => {
  test('the endpoints are checked first, bad then good; then git is started', () => {
    let state = stateOf()
    assert.deepEqual(resumeAction(state, notBisecting), {kind: 'check', endpoint: 'bad', commit: H('b')})
    state = withStep(state, step(H('b'), 'bad endpoint', 'bad'))
    assert.equal(uncheckedEndpoint(state), 'good')
    assert.deepEqual(resumeAction(state, notBisecting), {kind: 'check', endpoint: 'good', commit: H('a')})
    state = withStep(state, step(H('a'), 'good endpoint', 'good'))
    assert.deepEqual(resumeAction(state, notBisecting), {kind: 'start', reset: false})
    assert.deepEqual(resumeAction(state, {bisecting: true, log: 'git bisect start\n'}), {kind: 'start', reset: true}, "someone else's bisect is reset first")
  })

  test('a finished or refused bisect is only reported again', () => {
    const refused = withResult(stateOf(), {kind: 'refused', endpoint: 'good', commit: H('a'), reason: 'the good endpoint aaaaaaaaaaaa reproduces the bug'})
    assert.deepEqual(resumeAction(refused, notBisecting), {kind: 'finished'})
  })

  test('against real git: continue, a step git missed, a reset tree, another bisect, marks not ours, a log that does not match', async () => {
    await withRepo(16, async (repo) => {
      const c = repo.commits
      let state = stateOf({tree: repo.dir, good: {ref: 'main~15', commit: c[0]}, bad: {ref: 'main', commit: c[15]}})
      state = withStep(withStep(state, step(c[15], 'bad endpoint', 'bad')), step(c[0], 'good endpoint', 'good'))
      const bad = (commit: string) => c.indexOf(commit) >= 11
      const treeOf = async (r: Repo): Promise<TreeBisect> => {
        const log = await r.run(bisectLogArgv(r.dir))
        return log.exitCode === 0 ? {bisecting: true, log: log.stdout} : {bisecting: false}
      }
      const treeLog = async () => {
        const tree = await treeOf(repo)
        assert.ok(tree.bisecting, 'the tree is bisecting')
        return tree.log
      }
      const logFile = join(repo.dir, '.git', 'pmemlab-replay.log')
      const replay = async (log: string) => {
        await writeFile(logFile, log)
        await repo.run(bisectResetArgv(repo.dir))
        const result = await repo.run(bisectReplayArgv(repo.dir, logFile))
        assert.equal(result.exitCode, 0, result.all)
        return parseBisectOutput(result.all)
      }

      // Started and two steps made, in the edge's order: the step recorded, then git told, then its log recorded.
      let next = parseBisectOutput((await repo.run(bisectStartArgv(repo.dir, {old: 'good', new: 'bad'}, c[15], c[0]))).all)
      state = withLog(state, await treeLog())
      for (let i = 0; i < 2; i++) {
        assert.ok(next.kind === 'next')
        const term = bad(next.commit) ? 'bad' : 'good'
        state = withStep(state, step(next.commit, 'step', term))
        next = parseBisectOutput((await repo.run(bisectMarkArgv(repo.dir, term, next.commit))).all)
        state = withLog(state, await treeLog())
      }
      assert.deepEqual(resumeAction(state, await treeOf(repo)), {kind: 'continue'})
      assert.deepEqual(resumeAction(withLog(state, ''), await treeOf(repo)), {kind: 'continue'}, 'the tree is this bisect even when the log was not recorded')

      // A crash after the step was recorded, before git heard of it.
      assert.ok(next.kind === 'next')
      const pending = next.commit
      state = withStep(state, step(pending, 'step', bad(pending) ? 'bad' : 'good'))
      const missed = resumeAction(state, await treeOf(repo))
      assert.equal(missed.kind, 'replay')
      assert.ok(missed.kind === 'replay')
      assert.equal(missed.why, 'git has not heard of the last 1 step')
      assert.ok(missed.log.startsWith(state.log.trimEnd()))
      next = await replay(missed.log)
      assert.ok(next.kind === 'next' || next.kind === 'first')
      assert.deepEqual(loggedBisect(parseBisectLog(await treeLog())).marks, expectedMarks(state))
      state = withLog(state, await treeLog())
      assert.deepEqual(resumeAction(state, await treeOf(repo)), {kind: 'continue'})

      // The user reset the tree.
      await repo.run(bisectResetArgv(repo.dir))
      const reset = resumeAction(state, await treeOf(repo))
      assert.deepEqual(reset, {kind: 'replay', log: `${state.log.trimEnd()}\n`, why: `${repo.dir} is not bisecting any more`})
      await replay(reset.kind === 'replay' ? reset.log : '')
      assert.deepEqual(resumeAction(state, await treeOf(repo)), {kind: 'continue'})

      // Another bisect in the tree.
      await repo.run(bisectResetArgv(repo.dir))
      await repo.run(bisectStartArgv(repo.dir, {old: 'good', new: 'bad'}, c[10], c[2]))
      assert.deepEqual(resumeAction(state, await treeOf(repo)), {kind: 'replay', log: `${state.log.trimEnd()}\n`, why: `${repo.dir} is in another bisect`})

      // Marks pmemlab did not make.
      await replay(state.log)
      await repo.run(bisectMarkArgv(repo.dir, 'skip', await repo.head()))
      const foreign = resumeAction(state, await treeOf(repo))
      assert.equal(foreign.kind === 'replay' && foreign.why, `${repo.dir}'s bisect has marks pmemlab did not make`)

      // A recorded log that does not match the steps: the log is written from the steps alone, and git takes it.
      const damaged = withLog(state, 'git bisect start --term-old=good --term-new=bad 1111111111111111111111111111111111111111 --\n')
      const rebuilt = resumeAction(damaged, {bisecting: false})
      assert.ok(rebuilt.kind === 'replay')
      assert.equal(rebuilt.log, logFromSteps(state))
      assert.equal(rebuilt.why, `${repo.dir} is not bisecting any more, and the recorded log does not match the steps`)
      await replay(rebuilt.log)
      assert.deepEqual(resumeAction(state, await treeOf(repo)), {kind: 'continue'})
    })
  })

  test("a tree's bisect pmemlab did not start is refused; its own bare start and its own start are not", async () => {
    await withRepo(6, async (repo) => {
      const c = repo.commits
      const state = stateOf({tree: repo.dir, good: {ref: 'v', commit: c[0]}, bad: {ref: 'HEAD', commit: c[5]}})
      const tree = async () => {
        const log = await repo.run(bisectLogArgv(repo.dir))
        return log.exitCode === 0 ? {bisecting: true as const, log: log.stdout} : {bisecting: false as const}
      }
      assert.equal(foreignBisectProblem(undefined, await tree(), repo.dir), undefined, 'no bisect at all')
      assert.equal(foreignBisectProblem(state, await tree(), repo.dir), undefined)
      await repo.run(['-C', repo.dir, 'bisect', 'start'])
      assert.equal(foreignBisectProblem(state, await tree(), repo.dir), undefined, 'the bare start made while the endpoints are checked')
      assert.equal(foreignBisectProblem(undefined, await tree(), repo.dir), `${repo.dir} is already bisecting: finish or end it first (git -C ${repo.dir} bisect reset)`, 'a new bisect takes a tree in none')
      await repo.run(bisectResetArgv(repo.dir))
      await repo.run(bisectStartArgv(repo.dir, stateTerms(state), c[5], c[0]))
      assert.equal(foreignBisectProblem(state, await tree(), repo.dir), undefined, 'its own start')
      await repo.run(bisectResetArgv(repo.dir))
      await repo.run(bisectStartArgv(repo.dir, stateTerms(state), c[4], c[1]))
      assert.equal(
        foreignBisectProblem(state, await tree(), repo.dir),
        `${repo.dir} is in a bisect pmemlab did not start (git bisect start --term-old=good --term-new=bad ${c[4]} ${c[1]} --): finish or end it first (git -C ${repo.dir} bisect reset), then --resume`,
      )
    })
  })
})

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {bisectLogArgv, bisectMarkArgv, bisectStartArgv, showCommitsArgv} from '../../src/bisect/git-argv.js'
import {parseBisectOutput, parseCommits, type CommitInfo} from '../../src/bisect/git-output.js'
import {bisectReport, fixesLine, renderReport, REPORT_FORMAT} from '../../src/bisect/report.js'
import {expectedStart, gitEndpoints, newState, stateTerms, withLog, withResult, withStep, type BisectState, type StepRecord} from '../../src/bisect/state.js'
import {endpointProblem, runAgain, stepVerdict, type StepFacts, type StepOptions} from '../../src/bisect/step-verdict.js'
import type {Outcome} from '../../src/repro/verdict.js'
import {H, sampleState, withRepo} from './bisect-repo.js'

const stateOf = sampleState

const R: Outcome = 'reproduced'
const N: Outcome = 'not reproduced'

function step(commit: string, role: StepRecord['role'], runs: Outcome[], over: Partial<StepRecord> = {}): StepRecord {
  const reproduced = runs.includes(R)
  const reverse = over.term === 'broken' || over.term === 'fixed'
  return {
    commit,
    role,
    build: {state: 'built', durationMs: 125_000, imageHash: `image-of-${commit.slice(0, 4)}`},
    runs: runs.map((outcome) => ({outcome, reason: outcome, durationMs: 20_000})),
    observation: reproduced ? 'reproduced' : 'clean',
    side: reproduced !== reverse ? 'new' : 'old',
    term: reproduced ? 'bad' : 'good',
    reason: `reproduced ${runs.filter((o) => o === R).length}/${runs.length}`,
    startedAt: '2024-01-02T03:04:05.000Z',
    durationMs: 185_000,
    bundle: `/out/bisect/${commit.slice(0, 12)}/bundle.tar.gz`,
    ...over,
  }
}

/** a (good) - b - c (skipped: no build) - d (the culprit) - e - f (bad). */
function culpritState(over: Partial<Parameters<typeof newState>[0]> = {}): BisectState {
  let state = stateOf(over)
  state = withStep(state, step(H('f'), 'bad endpoint', [R, N, R]))
  state = withStep(state, step(H('a'), 'good endpoint', [N, N, N]))
  state = withStep(state, step(H('c'), 'step', [], {build: {state: 'failed', reason: 'fs/dax.c:42: error: expected ;', durationMs: 30_000}, observation: 'skip', side: 'skip', term: 'skip', reason: 'the build failed'}))
  state = withStep(state, step(H('d'), 'step', [N, R, R], {subject: 'dax: refuse -o dax on | ext4'}))
  state = withStep(state, step(H('b'), 'step', [N, N, N], {subject: 'mm: tidy'}))
  state = withLog(state, '# bad: [ffff] x\ngit bisect start x\n')
  return withResult(state, {kind: 'culprit', commit: H('d')})
}

const commits: CommitInfo[] = [
  {commit: H('d'), parents: [H('c')], author: 'Ada Tester <ada@example.org>', subject: 'dax: refuse -o dax on | ext4'},
  {commit: H('c'), parents: [H('b')], author: 'Bob <bob@example.org>', subject: 'ext4: broken build'},
]

describe('the report', () => {
  test('a culprit: headline, Fixes line, steps, bundles, confidence, log', () => {
    const parentBuild = {commit: H('c'), imageHash: 'image-of-parent', bundle: '/out/parent/bundle.tar.gz'}
    const report = bisectReport({state: culpritState(), commits, parentBuild})
    assert.equal(report.format, REPORT_FORMAT)
    assert.equal(report.status, 'culprit')
    assert.equal(report.headline, 'first bad commit: dddddddddddd ("dax: refuse -o dax on | ext4") by Ada Tester <ada@example.org>')
    assert.equal(report.fixes, 'Fixes: dddddddddddd ("dax: refuse -o dax on | ext4")')
    assert.deepEqual(report.culprit, {commit: H('d'), author: 'Ada Tester <ada@example.org>', subject: 'dax: refuse -o dax on | ext4', parents: [H('c')], bundle: '/out/bisect/dddddddddddd/bundle.tar.gz', imageHash: 'image-of-dddd'})
    assert.deepEqual(report.parent, {commit: H('c'), author: 'Bob <bob@example.org>', subject: 'ext4: broken build', bundle: '/out/parent/bundle.tar.gz', imageHash: 'image-of-parent'}, 'the parent did not build as a step: it was built for the image check')
    assert.deepEqual(report.warnings, [])
    assert.deepEqual(report.skipped, [H('c')])
    assert.equal(report.steps.length, 5)
    assert.deepEqual(
      report.steps.map((s) => [s.commit.slice(0, 1), s.role, s.build, s.verdict, s.runs]),
      [
        ['f', 'bad endpoint', 'built, 2 min 5 s', 'bad', 'reproduced 2/3'],
        ['a', 'good endpoint', 'built, 2 min 5 s', 'good', 'reproduced 0/3'],
        ['c', 'step', 'failed, 30 s: fs/dax.c:42: error: expected ;', 'skip', ''],
        ['d', 'step', 'built, 2 min 5 s', 'bad', 'reproduced 2/3'],
        ['b', 'step', 'built, 2 min 5 s', 'good', 'reproduced 0/3'],
      ],
    )
    assert.equal(report.durationMs, 5 * 185_000)
    // p = 4/6 from the reproducing commits; two clean commits of 3 runs each.
    assert.ok(Math.abs(report.confidence!.value! - (1 - (1 / 3) ** 3) ** 2) < 1e-12)

    const md = renderReport(report)
    assert.match(md, /^### pmemlab bisect: first bad commit dddddddddddd\n/)
    assert.ok(md.includes('```\nFixes: dddddddddddd ("dax: refuse -o dax on | ext4")\n```'))
    assert.ok(md.includes('| `dddddddddddd` dax: refuse -o dax on \\| ext4 | step | built, 2 min 5 s | **bad** | reproduced 2/3 | 3 min 5 s |'), md)
    assert.ok(md.includes('| `cccccccccccc`  | step | failed, 30 s: fs/dax.c:42: error: expected ; | skip |  | 3 min 5 s |'), md)
    assert.ok(md.includes('- culprit dddddddddddd: `/out/bisect/dddddddddddd/bundle.tar.gz`'))
    assert.ok(md.includes('- parent cccccccccccc: `/out/parent/bundle.tar.gz`'))
    assert.ok(md.includes('<details><summary>git bisect log</summary>\n\n```\n# bad: [ffff] x\ngit bisect start x\n```\n</details>'))
    assert.match(md, /Confidence: 92\.7% that none of the 2 clean commits missed a reproduction/)
    assert.match(md, /Tree `\/src\/linux`, good `v6\.1` \(aaaaaaaaaaaa\), bad `dax-next` \(ffffffffffff\), --type test, 3 runs a commit, reproduced at 1 or more; 15 min 25 s in all\./)
    assert.doesNotMatch(md, /Warning/)
  })

  test('the culprit image equal to its parent: it cannot be the cause', () => {
    const parentBuild = {commit: H('c'), imageHash: 'image-of-dddd'}
    const report = bisectReport({state: culpritState(), commits, parentBuild})
    assert.deepEqual(report.warnings, [
      "the kernel image of dddddddddddd is identical to its parent cccccccccccc's (sha256 image-of-dddd): the commit changes nothing the kernel runs, so it cannot be the cause; a flaky step misled the bisect",
    ])
    assert.match(renderReport(report), /> \*\*Warning:\*\* the kernel image of dddddddddddd is identical/)
  })

  test("the parent's image from its own step; no image check without both hashes", () => {
    let state = culpritState()
    state = withStep(state, step(H('c'), 'step', [N], {build: {state: 'built', imageHash: 'image-of-dddd'}}))
    assert.ok(bisectReport({state, commits}).warnings.some((w) => /^the kernel image of dddddddddddd is identical to its parent/.test(w)))
    const unbuilt = bisectReport({state: culpritState(), commits})
    assert.deepEqual(unbuilt.warnings, ['the image check was not made: cccccccccccc has no recorded kernel image hash'])
    assert.equal(unbuilt.parent?.bundle, undefined)
  })

  test('--reverse: the first fixed commit, no Fixes line, "cannot be the fix"', () => {
    const base = culpritState({reverse: true, good: {ref: 'main', commit: H('f')}, bad: {ref: 'v6.1', commit: H('a')}})
    const report = bisectReport({state: base, commits, parentBuild: {commit: H('c'), imageHash: 'image-of-dddd'}})
    assert.equal(report.headline, 'first fixed commit: dddddddddddd ("dax: refuse -o dax on | ext4") by Ada Tester <ada@example.org>')
    assert.equal(report.fixes, undefined)
    assert.match(report.warnings[0], /so it cannot be the fix;/)
    const md = renderReport(report)
    assert.match(md, /^### pmemlab bisect --reverse: first fixed commit dddddddddddd/)
    assert.doesNotMatch(md, /Fixes:/)
  })

  test('a merge culprit is named as one; no image check against two parents', () => {
    const merge = [{...commits[0], parents: [H('c'), H('e')]}, commits[1]]
    const report = bisectReport({state: culpritState(), commits: merge})
    assert.deepEqual(report.warnings, ['dddddddddddd is a merge: each side was good alone, so the cause is in how they meet; bisect the merged branch to go further'])
    assert.equal(report.parent, undefined)
  })

  test('candidates, a refusal, an unfinished bisect', () => {
    const open = withResult(culpritState(), {kind: 'candidates', commits: [H('c'), H('d')]})
    const candidates = bisectReport({state: {...open}, commits})
    assert.equal(candidates.status, 'candidates')
    assert.equal(candidates.headline, 'the first bad commit is one of 2 that could not be told apart (skipped): cccccccccccc, dddddddddddd')
    assert.deepEqual(candidates.candidates, [
      {commit: H('c'), author: 'Bob <bob@example.org>', subject: 'ext4: broken build'},
      {commit: H('d'), author: 'Ada Tester <ada@example.org>', subject: 'dax: refuse -o dax on | ext4'},
    ])
    assert.ok(renderReport(candidates).includes('- `dddddddddddd` dax: refuse -o dax on \\| ext4 (Ada Tester &lt;ada@example.org>)'))

    const verdict = stepVerdict({build: {ok: true}, runs: [N, R, R]}, {type: 'test', runs: 3, badThreshold: 1, maxErrors: 0, reverse: false})
    const line = endpointProblem('good', H('a'), verdict)!
    let refusedState = withStep(stateOf(), step(H('f'), 'bad endpoint', [R, R, R]))
    refusedState = withResult(withStep(refusedState, step(H('a'), 'good endpoint', [N, R, R])), {kind: 'refused', endpoint: 'good', commit: H('a'), reason: line})
    const refused = bisectReport({state: refusedState, commits: []})
    assert.equal(refused.headline, 'the good endpoint aaaaaaaaaaaa reproduces the bug (reproduced 2/3): give --good a commit that does not')
    assert.equal(refused.confidence, undefined)
    assert.ok(renderReport(refused).includes('**the good endpoint aaaaaaaaaaaa reproduces the bug (reproduced 2/3): give --good a commit that does not**'))

    const unfinished = bisectReport({state: withStep(stateOf(), step(H('f'), 'bad endpoint', [R])), commits: []})
    assert.equal(unfinished.headline, 'unfinished after 1 tested commit between aaaaaaaaaaaa and ffffffffffff: pmemlab bisect --resume goes on')
  })

  test('low confidence is a warning', () => {
    let state = stateOf({runs: 1})
    state = withStep(state, step(H('f'), 'bad endpoint', [R, N, N, N]))
    state = withStep(state, step(H('a'), 'good endpoint', [N]))
    state = withStep(state, step(H('d'), 'step', [R]))
    state = withResult(state, {kind: 'culprit', commit: H('d')})
    const report = bisectReport({state, commits: [{...commits[0], parents: []}]})
    assert.match(report.warnings[0], /^confidence is 40\.0%: a clean step may have missed a reproduction; bisect again with more --runs$/)
  })

  test('the Fixes line is the kernel trailer', () => {
    assert.equal(fixesLine('0123456789abcdef0123456789abcdef01234567', 'x: y'), 'Fixes: 0123456789ab ("x: y")')
  })
})

describe('a whole bisect: these modules deciding, real git choosing', () => {
  /**
   * Ten commits; "commit 7" brings a flaky bug (it reproduces in two runs of three), or with
   * --reverse the bug is there from the start and "commit 8" fixes it; "commit 5", git's first
   * pick, does not build. Each step is decided by stepVerdict, recorded in the state, told to git, and
   * the end is reported.
   */
  async function bisect(reverse: boolean) {
    return withRepo(10, async (repo) => {
      const c = repo.commits
      const options: StepOptions = {type: 'test', runs: 3, badThreshold: 1, maxErrors: 0, reverse}
      const hasBug = (commit: string) => (reverse ? c.indexOf(commit) < 7 : c.indexOf(commit) >= 6)
      const facts = (commit: string): StepFacts => {
        if (c.indexOf(commit) === 4) return {build: {ok: false, reason: 'make exited 2'}, runs: []}
        const runs: Outcome[] = []
        let i = 0
        while (runAgain(runs, options)) runs.push(hasBug(commit) && i++ % 3 !== 0 ? R : N)
        return {build: {ok: true}, runs}
      }
      const record = (commit: string, role: StepRecord['role']): StepRecord => {
        const f = facts(commit)
        const v = stepVerdict(f, options)
        const build = f.build.ok ? {state: 'built' as const, imageHash: `img-${commit}`} : {state: 'failed' as const, reason: f.build.reason}
        return {commit, role, build, runs: f.runs.map((outcome) => ({outcome, reason: outcome, durationMs: 1})), ...v, startedAt: '', durationMs: 10, subject: repo.subjects.get(commit)}
      }
      const [good, bad] = reverse ? [c[9], c[0]] : [c[0], c[9]]
      let state = stateOf({tree: repo.dir, reverse, good: {ref: 'g', commit: good}, bad: {ref: 'b', commit: bad}})
      for (const [endpoint, commit] of [['bad', bad], ['good', good]] as const) {
        const checked = record(commit, `${endpoint} endpoint`)
        assert.equal(endpointProblem(endpoint, commit, checked), undefined)
        state = withStep(state, checked)
      }
      const {newCommit, oldCommit} = gitEndpoints(state)
      let output = parseBisectOutput((await repo.run(bisectStartArgv(repo.dir, stateTerms(state), newCommit, oldCommit))).all)
      while (output.kind === 'next') {
        const tested = record(output.commit, 'step')
        state = withStep(state, tested)
        output = parseBisectOutput((await repo.run(bisectMarkArgv(repo.dir, tested.term, tested.commit))).all)
        state = withLog(state, (await repo.run(bisectLogArgv(repo.dir))).stdout)
      }
      assert.equal(output.kind, 'first')
      assert.ok(output.kind === 'first')
      state = withResult(state, {kind: 'culprit', commit: output.commit})
      const shown = parseCommits((await repo.run(showCommitsArgv(repo.dir, [output.commit]))).stdout)
      return {report: bisectReport({state, commits: shown}), c, state}
    })
  }

  test('names the commit that brought the bug, and the one that does not build as skipped', async () => {
    const {report, c, state} = await bisect(false)
    assert.equal(report.culprit?.commit, c[6])
    assert.equal(report.fixes, `Fixes: ${c[6].slice(0, 12)} ("commit 7: change 7")`)
    assert.deepEqual(report.skipped, [c[4]], 'the bisect went through the commit that does not build')
    // Every reproducing commit stopped at its first reproduction, in its second run: p = 1/2, and each clean commit (3 runs) missed with 1/8.
    const clean = report.steps.filter((s) => s.runs === 'reproduced 0/3').length
    assert.ok(clean >= 2)
    assert.deepEqual(report.confidence!.rate, {reproduced: report.steps.filter((s) => s.runs === 'reproduced 1/2').length, runs: 2 * report.steps.filter((s) => s.runs === 'reproduced 1/2').length, p: 0.5})
    assert.ok(Math.abs(report.confidence!.value! - (7 / 8) ** clean) < 1e-12)
    assert.equal(report.warnings.some((w) => w.startsWith('confidence is')), (7 / 8) ** clean < 0.9)
    assert.deepEqual(expectedStart(state).slice(0, 2), ['--term-old=good', '--term-new=bad'])
    assert.match(renderReport(report), /\| skip \|/)
  })

  test('--reverse names the commit that fixed it', async () => {
    const {report, c} = await bisect(true)
    assert.equal(report.headline.startsWith(`first fixed commit: ${c[7].slice(0, 12)} ("commit 8: change 8")`), true, report.headline)
    assert.deepEqual(report.skipped, [c[4]])
    assert.equal(report.fixes, undefined)
  })
})

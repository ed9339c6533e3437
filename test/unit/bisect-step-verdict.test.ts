import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode} from '../../src/core/errors.js'
import {
  bisectConfidence,
  DEFAULT_STEP_OPTIONS,
  endpointProblem,
  observe,
  runAgain,
  runsText,
  sideOf,
  stepExitCode,
  stepOptionsProblem,
  stepVerdict,
  type StepFacts,
  type StepOptions,
} from '../../src/bisect/step-verdict.js'
import type {Outcome} from '../../src/repro/verdict.js'

const R: Outcome = 'reproduced'
const N: Outcome = 'not reproduced'
const E: Outcome = 'error'

const built = (runs: Outcome[], over: Partial<StepFacts> = {}): StepFacts => ({build: {ok: true}, runs, ...over})
const opts = (over: Partial<StepOptions> = {}): StepOptions => ({...DEFAULT_STEP_OPTIONS, ...over})

describe('one step', () => {
  test('a single run: reproduced is bad, not reproduced is good, an error is skipped', () => {
    assert.deepEqual(stepVerdict(built([R]), opts()), {observation: 'reproduced', side: 'new', term: 'bad', reason: 'reproduced 1/1'})
    assert.deepEqual(stepVerdict(built([N]), opts()), {observation: 'clean', side: 'old', term: 'good', reason: 'reproduced 0/1'})
    const error = stepVerdict(built([E]), opts())
    assert.equal(error.term, 'skip')
    assert.match(error.reason, /reproduced 0\/1 \(1 error\): 1 run broke \(--max-errors 0\)/)
  })

  test('--reverse flips the terms: reproduced is broken (old), clean is fixed (new)', () => {
    assert.deepEqual(stepVerdict(built([R]), opts({reverse: true})), {observation: 'reproduced', side: 'old', term: 'broken', reason: 'reproduced 1/1'})
    assert.deepEqual(stepVerdict(built([N]), opts({reverse: true})), {observation: 'clean', side: 'new', term: 'fixed', reason: 'reproduced 0/1'})
    assert.equal(stepVerdict(built([E]), opts({reverse: true})).term, 'skip')
    assert.equal(sideOf('skip', true), 'skip')
  })

  test('a failed build is skipped, and so is a lab that could not start; with --type build the build is the test', () => {
    const failed: StepFacts = {build: {ok: false, reason: 'fs/dax.c:12: error: expected ;'}, runs: []}
    assert.deepEqual(stepVerdict(failed, opts()), {observation: 'skip', side: 'skip', term: 'skip', reason: 'the build failed: fs/dax.c:12: error: expected ;'})
    assert.equal(stepVerdict(failed, opts({type: 'boot'})).term, 'skip')
    assert.deepEqual(stepVerdict(failed, opts({type: 'build'})), {observation: 'reproduced', side: 'new', term: 'bad', reason: 'the build failed: fs/dax.c:12: error: expected ;'})
    assert.equal(stepVerdict(failed, opts({type: 'build', reverse: true})).term, 'broken')
    assert.equal(stepVerdict({build: {ok: true}, runs: []}, opts({type: 'build'})).term, 'good')
    const lab = stepVerdict(built([], {labError: 'QEMU was killed by SIGKILL'}), opts())
    assert.deepEqual(lab, {observation: 'skip', side: 'skip', term: 'skip', reason: 'the lab could not start: QEMU was killed by SIGKILL'})
    assert.equal(stepVerdict(built([]), opts()).reason, 'no run was made')
  })

  test('--runs N: bad from the threshold, good only with no reproduction, skip in between', () => {
    const three = opts({runs: 3})
    assert.equal(stepVerdict(built([N, R, N]), three).term, 'bad', 'one reproduction of three is bad at the default threshold')
    assert.equal(stepVerdict(built([N, N, N]), three).term, 'good')
    const twoNeeded = opts({runs: 5, badThreshold: 2})
    assert.equal(stepVerdict(built([N, R, N, R, N]), twoNeeded).reason, 'reproduced 2/5, at least the 2 --bad-threshold asks')
    const between = stepVerdict(built([N, R, N, N, N]), twoNeeded)
    assert.equal(between.term, 'skip')
    assert.equal(between.reason, 'reproduced 1/5: reproduced in fewer runs than the 2 --bad-threshold asks, so neither verdict holds')
    assert.match(stepVerdict(built([N, R, N, N, N]), {...twoNeeded, type: 'boot'}).reason, /boot failed in fewer runs/)
  })

  test('errors: good needs no more than --max-errors of them and enough clean runs', () => {
    assert.equal(stepVerdict(built([N, E, N]), opts({runs: 3})).term, 'skip')
    assert.equal(stepVerdict(built([N, E, N]), opts({runs: 3, maxErrors: 1})).term, 'good')
    assert.equal(stepVerdict(built([N, E, E]), opts({runs: 3, maxErrors: 1})).term, 'skip')
    assert.equal(stepVerdict(built([R, E, E]), opts({runs: 3})).term, 'bad', 'a reproduction counts whatever else broke')
    const short = observe(built([N]), opts({runs: 3}))
    assert.deepEqual(short, {observation: 'skip', reason: 'reproduced 0/1: only 1 clean run, 3 needed'})
  })

  test('exit codes for git bisect run: 0 old, 1 new, 125 skip, whatever the terms', () => {
    assert.equal(stepExitCode(stepVerdict(built([N]), opts()).side), ExitCode.ok)
    assert.equal(stepExitCode(stepVerdict(built([R]), opts()).side), ExitCode.failure)
    assert.equal(stepExitCode(stepVerdict(built([R]), opts({reverse: true})).side), ExitCode.ok, 'a reproduction is old (broken) when the fix is sought')
    assert.equal(stepExitCode(stepVerdict(built([E]), opts()).side), ExitCode.noVerdict)
    assert.equal(ExitCode.noVerdict, 125)
  })

  test('runs text', () => {
    assert.equal(runsText([R, N, R]), 'reproduced 2/3')
    assert.equal(runsText([N, E, E]), 'reproduced 0/3 (2 errors)')
  })

  test('options that do not hold together are named', () => {
    assert.equal(stepOptionsProblem(opts({runs: 3, badThreshold: 2, maxErrors: 2})), undefined)
    assert.match(stepOptionsProblem(opts({runs: 0}))!, /^--runs 0/)
    assert.match(stepOptionsProblem(opts({runs: 3, badThreshold: 4}))!, /^--bad-threshold 4: .* from 1 to --runs \(3\)/)
    assert.match(stepOptionsProblem(opts({runs: 3, maxErrors: 3}))!, /^--max-errors 3/)
    assert.match(stepOptionsProblem(opts({type: 'build', runs: 2}))!, /^--runs goes with --type boot or test/)
  })
})

describe('when a step stops running', () => {
  const five = opts({runs: 5, badThreshold: 2, maxErrors: 1})
  test('at the threshold, at N runs, or when neither verdict can be reached', () => {
    assert.equal(runAgain([], five), true)
    assert.equal(runAgain([R], five), true, 'one more reproduction makes it bad')
    assert.equal(runAgain([R, R], five), false, 'bad whatever comes')
    assert.equal(runAgain([N, N, N, N, N], five), false, 'all runs made')
    assert.equal(runAgain([N, N, N, R], five), true, 'the last run could still make it bad')
    assert.equal(runAgain([N, N, N, N, R], five), false)
    assert.equal(runAgain([N, E, N], five), true, 'one error is allowed')
    assert.equal(runAgain([N, R, N, N], five), true, 'one run left can give the second reproduction')
    assert.equal(runAgain([N, R, N, N], {...five, badThreshold: 3}), false, 'skip whatever comes: a reproduction rules out good, and one run left cannot make three')
    assert.equal(runAgain([E, E, N], five), true, 'two errors rule out good, but bad is still reachable')
    assert.equal(runAgain([E, E, E], five), false, 'the lab broke three times running')
    assert.equal(runAgain([N], opts()), false, 'a single run')
  })
})

describe('endpoint checks', () => {
  const good = '1111111111112222222222223333333333334444'
  test('a good endpoint that reproduces is refused, with the commit and the rate', () => {
    const verdict = stepVerdict(built([N, R, R]), opts({runs: 3}))
    assert.equal(endpointProblem('good', good, verdict), 'the good endpoint 111111111111 reproduces the bug (reproduced 2/3): give --good a commit that does not')
    assert.equal(endpointProblem('bad', good, verdict), undefined)
  })
  test('a bad endpoint that does not reproduce, or one that cannot be tested, is refused', () => {
    assert.equal(endpointProblem('bad', good, stepVerdict(built([N]), opts())), 'the bad endpoint 111111111111 does not reproduce the bug (reproduced 0/1): give --bad a commit that does')
    assert.equal(endpointProblem('good', good, stepVerdict(built([N]), opts())), undefined)
    const failed = stepVerdict({build: {ok: false, reason: 'make exited 2'}, runs: []}, opts())
    assert.equal(endpointProblem('good', good, failed), 'the good endpoint 111111111111 could not be tested (the build failed: make exited 2): give --good a commit that builds and runs')
  })
  test('the check is the same with --reverse: good does not reproduce, bad does', () => {
    assert.equal(endpointProblem('good', good, stepVerdict(built([N]), opts({reverse: true}))), undefined)
    assert.match(endpointProblem('good', good, stepVerdict(built([R]), opts({reverse: true})))!, /reproduces the bug/)
  })
})

describe('confidence', () => {
  const step = (observation: 'reproduced' | 'clean' | 'skip', runs: Outcome[]) => ({observation, runs})

  test('a flaky bug: each clean step may have missed with (1-p)^n, p pooled from the reproducing commits', () => {
    // Reproducing commits: 2 of 4 and 1 of 4 judged runs (the error is left out): p = 3/8.
    const steps = [step('reproduced', [R, N, R, N]), step('clean', [N, N, N, N]), step('reproduced', [N, R, N, E, N]), step('clean', [N, N, N, N]), step('skip', [N, R])]
    const c = bisectConfidence(steps, 'test')
    const miss = (5 / 8) ** 4
    assert.deepEqual(c.rate, {reproduced: 3, runs: 8, p: 3 / 8})
    assert.deepEqual(c.misses, [miss, miss])
    assert.ok(Math.abs(c.value! - (1 - miss) ** 2) < 1e-12)
    assert.match(c.text, /^71\.8% that none of the 2 clean commits missed a reproduction, at a reproduction rate of 37\.5% per run \(3 of 8 runs on commits that reproduced; a small sample/)
  })

  test('more clean runs, more confidence; a deterministic bug gives 100%', () => {
    const one = bisectConfidence([step('reproduced', [R, N]), step('clean', [N])], 'test')
    assert.equal(one.text, '50.0% that the one clean commit did not miss a reproduction, at a reproduction rate of 50.0% per run (1 of 2 runs on commits that reproduced; a small sample, more --runs give a firmer figure)')
    const few = one.value!
    const many = bisectConfidence([step('reproduced', [R, N]), step('clean', [N, N, N, N, N, N])], 'test').value!
    assert.equal(few, 0.5)
    assert.ok(many > few && many < 1)
    const always = bisectConfidence([step('reproduced', Array(10).fill(R)), step('clean', [N])], 'test')
    assert.equal(always.value, 1)
    assert.doesNotMatch(always.text, /small sample/)
  })

  test('no clean step: nothing can have been missed; no reproducing run: unknown', () => {
    assert.equal(bisectConfidence([step('reproduced', [R]), step('skip', [E])], 'test').value, 1)
    const unknown = bisectConfidence([step('clean', [N]), step('skip', [E])], 'boot')
    assert.equal(unknown.value, undefined)
    assert.match(unknown.text, /^unknown/)
    assert.equal(bisectConfidence([step('clean', []), step('reproduced', [])], 'build').value, 1)
  })
})

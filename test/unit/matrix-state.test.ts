import assert from 'node:assert/strict'
import {test} from 'node:test'
import {attemptVerdict, decideCell, wantsRetry, type AttemptFact, type CellFacts} from '../../src/matrix/state.js'
import type {Counts} from '../../src/suite/results.js'

const counts = (c: Partial<Counts>): Counts => {
  const base = {passed: 0, failed: 0, timedOut: 0, errors: 0, skipped: 0, todo: 0, ...c}
  return {total: base.passed + base.failed + base.timedOut + base.errors + base.skipped + base.todo, ...base}
}
const passed: AttemptFact = {outcome: 'ran', counts: counts({passed: 12, skipped: 1}), fatalFindings: 0, durationMs: 60_000}
const failed: AttemptFact = {
  outcome: 'ran',
  counts: counts({passed: 11, failed: 2}),
  fatalFindings: 0,
  failures: ['builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused', 'builtin/nvdimm0/xfs/map-sync: MAP_SYNC refused'],
  durationMs: 50_000,
}
const labError: AttemptFact = {outcome: 'error', reason: 'QEMU was killed by signal 9 (the host ran out of memory)', durationMs: 3_000}
const died: AttemptFact = {outcome: 'died', reason: 'the guest kernel panicked: Kernel panic - not syncing: Fatal exception', excerpt: ['BUG: unable to handle page fault', 'Kernel panic - not syncing: Fatal exception'], durationMs: 20_000}

const facts = (f: Partial<CellFacts>): CellFacts => ({deviceKinds: ['memmap', 'nvdimm'], gate: {outcome: 'booted'}, attempts: [passed], ...f})

test('a cell whose first attempt passes passes, decided by that attempt', () => {
  assert.deepEqual(decideCell(facts({})), {state: 'pass', reason: '12 passed, 1 skipped', decidedBy: {phase: 'suite', attempt: 1}})
})

test('a kernel that did not build skips its cells (not fail), with the build\'s reason', () => {
  const decision = decideCell(facts({build: {ok: false, reason: 'CONFIG_ND_BLK was dropped: it depends on BLK_DEV'}, gate: undefined, attempts: []}))
  assert.deepEqual(decision, {state: 'skip', reason: 'the kernel did not build: CONFIG_ND_BLK was dropped: it depends on BLK_DEV', decidedBy: {phase: 'build'}})
  assert.equal(decideCell(facts({build: {ok: true}})).state, 'pass', 'a build that worked decides nothing')
})

test('a recipe that cannot be built as written (a patch that does not apply) is an error, not a skip', () => {
  const reason = '--patch fix.patch does not apply (patch 1 of 1): fs/dax.c: hunk #2 failed (at line 15): refresh it against this kernel source, or leave it out: nothing was built'
  const decision = decideCell(facts({build: {ok: false, reason, badInput: true}, gate: undefined, attempts: []}))
  assert.deepEqual(decision, {state: 'error', reason: `the kernel's recipe cannot be built as written: ${reason}`, decidedBy: {phase: 'build'}})
})

test('a cell a version rule excluded after resolution is a skip with the rule', () => {
  const decision = decideCell(facts({excluded: 'excluded by the rule at m.yaml:8:5: kernel 5.2.21 is up to 5.2', attempts: []}))
  assert.deepEqual(decision, {state: 'skip', reason: 'excluded by the rule at m.yaml:8:5: kernel 5.2.21 is up to 5.2', decidedBy: {phase: 'plan'}})
})

test('the sanity gate: a panic or hang at boot is the kernel\'s fail with the excerpt; a broken lab is an error', () => {
  const panic = decideCell(facts({gate: {outcome: 'failed', reason: 'the guest kernel panicked during boot: VFS: Unable to mount root fs', excerpt: ['Kernel panic - not syncing: VFS: Unable to mount root fs']}, attempts: []}))
  assert.deepEqual(panic, {
    state: 'fail',
    reason: 'the kernel failed its sanity gate: the guest kernel panicked during boot: VFS: Unable to mount root fs',
    details: ['Kernel panic - not syncing: VFS: Unable to mount root fs'],
    decidedBy: {phase: 'gate'},
  })
  const lab = decideCell(facts({gate: {outcome: 'error', reason: 'QEMU exited with status 1 during boot: cannot allocate memory'}, attempts: []}))
  assert.deepEqual(lab, {state: 'error', reason: 'the sanity gate could not run: QEMU exited with status 1 during boot: cannot allocate memory', decidedBy: {phase: 'gate'}})
})

test('devices missing at the gate fail the cells that need them, and only those', () => {
  const gate = {outcome: 'booted' as const, missing: ['virtio-pmem' as const]}
  const needs = decideCell(facts({gate, deviceKinds: ['memmap', 'virtio-pmem'], attempts: []}))
  assert.deepEqual(needs, {state: 'fail', reason: 'no virtio-pmem device appeared in the guest at the sanity gate', decidedBy: {phase: 'gate'}})
  assert.equal(decideCell(facts({gate, deviceKinds: ['memmap', 'nvdimm']})).state, 'pass')
})

test('failing tests and fatal console findings fail the cell, naming the first failure', () => {
  assert.deepEqual(decideCell(facts({attempts: [failed]})), {
    state: 'fail',
    reason: '2 of 13 tests failed: builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused (and 1 more)',
    decidedBy: {phase: 'suite', attempt: 1},
  })
  const oops: AttemptFact = {outcome: 'ran', counts: counts({passed: 13}), fatalFindings: 1, failures: ['WARNING during builtin/memmap0/ext4/dax: at fs/dax.c:1234'], durationMs: 1}
  assert.equal(decideCell(facts({attempts: [oops]})).reason, '1 kernel finding: WARNING during builtin/memmap0/ext4/dax: at fs/dax.c:1234')
  const both: AttemptFact = {outcome: 'ran', counts: counts({passed: 1, timedOut: 1, errors: 1}), fatalFindings: 2, durationMs: 1}
  assert.equal(decideCell(facts({attempts: [both]})).reason, '2 of 3 tests failed and 2 kernel findings')
})

test('a guest that dies under the suite or a cell past its timeout is a fail; the excerpt is kept', () => {
  assert.deepEqual(decideCell(facts({attempts: [died]})), {
    state: 'fail',
    reason: 'the guest kernel panicked: Kernel panic - not syncing: Fatal exception',
    details: ['BUG: unable to handle page fault', 'Kernel panic - not syncing: Fatal exception'],
    decidedBy: {phase: 'suite', attempt: 1},
  })
  assert.equal(decideCell(facts({attempts: [{outcome: 'timeout', afterSec: 900, durationMs: 900_000}]})).reason, 'ran past the cell timeout of 900 s and was stopped')
})

test('a lab error is an error, not the kernel\'s fail', () => {
  assert.deepEqual(decideCell(facts({attempts: [labError]})), {state: 'error', reason: labError.reason, decidedBy: {phase: 'suite', attempt: 1}})
})

test('retries: failed then passed is flaky, decided by the passing attempt, with the failure named', () => {
  assert.deepEqual(decideCell(facts({attempts: [failed, passed]})), {
    state: 'flaky',
    reason: 'passed on attempt 2 after failing on attempt 1: 2 of 13 tests failed: builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused (and 1 more)',
    decidedBy: {phase: 'suite', attempt: 2},
  })
  assert.equal(decideCell(facts({attempts: [died, labError, passed]})).state, 'flaky')
})

test('retries: a lab error then a pass is a pass that says so', () => {
  assert.deepEqual(decideCell(facts({attempts: [labError, passed]})), {
    state: 'pass',
    reason: `12 passed, 1 skipped (after a lab error on attempt 1: ${labError.reason})`,
    decidedBy: {phase: 'suite', attempt: 2},
  })
})

test('retries: a kernel that failed and never passed failed, whatever the lab did; only lab errors are an error', () => {
  assert.deepEqual(decideCell(facts({attempts: [failed, labError]})), {
    state: 'fail',
    reason: 'attempt 1 of 2: 2 of 13 tests failed: builtin/nvdimm0/ext4/map-sync: MAP_SYNC refused (and 1 more)',
    decidedBy: {phase: 'suite', attempt: 1},
  })
  const twice = decideCell(facts({attempts: [died, failed]}))
  assert.equal(twice.state, 'fail')
  assert.deepEqual(twice.decidedBy, {phase: 'suite', attempt: 2}, 'the last failure decides')
  assert.equal(twice.details, undefined, 'the excerpt belongs to the attempt that decided')
  assert.deepEqual(decideCell(facts({attempts: [labError, labError]})), {state: 'error', reason: `attempt 2 of 2: ${labError.reason}`, decidedBy: {phase: 'suite', attempt: 2}})
})

test('tests that all skipped themselves, or no test at all, make a skip', () => {
  const skipped: AttemptFact = {outcome: 'ran', counts: counts({skipped: 4}), fatalFindings: 0, skipReason: 'needs a virtio-pmem device; this lab has memmap', durationMs: 1}
  assert.deepEqual(decideCell(facts({attempts: [skipped]})), {state: 'skip', reason: 'all 4 tests skipped: needs a virtio-pmem device; this lab has memmap', decidedBy: {phase: 'suite', attempt: 1}})
  const none: AttemptFact = {outcome: 'ran', counts: counts({}), fatalFindings: 0, durationMs: 1}
  assert.equal(decideCell(facts({attempts: [none]})).reason, 'the suite ran no test here')
  assert.equal(decideCell(facts({attempts: [labError, skipped]})).state, 'skip', 'the attempt that ran says it, not the lab error before it')
})

test('a cell with no attempt is an error, never a pass', () => {
  assert.deepEqual(decideCell(facts({attempts: []})), {state: 'error', reason: 'the cell never ran', decidedBy: {phase: 'suite'}})
})

test('attempt verdicts on their own', () => {
  assert.equal(attemptVerdict(passed).verdict, 'pass')
  assert.equal(attemptVerdict(failed).verdict, 'fail')
  assert.equal(attemptVerdict(died).verdict, 'fail')
  assert.equal(attemptVerdict(labError).verdict, 'error')
  assert.equal(attemptVerdict({outcome: 'ran', counts: counts({passed: 3, todo: 1}), fatalFindings: 0, durationMs: 1}).reason, '3 passed, 1 todo')
})

test('the runner retries a failure or a lab error while retries remain, never a pass or a skip', () => {
  assert.equal(wantsRetry([], 2), false, 'the first attempt is not a retry')
  assert.equal(wantsRetry([failed], 0), false)
  assert.equal(wantsRetry([failed], 1), true)
  assert.equal(wantsRetry([labError], 1), true)
  assert.equal(wantsRetry([failed, failed], 1), false)
  assert.equal(wantsRetry([failed, died], 2), true)
  assert.equal(wantsRetry([passed], 3), false)
  assert.equal(wantsRetry([{outcome: 'ran', counts: counts({skipped: 2}), fatalFindings: 0, durationMs: 1}], 3), false)
})

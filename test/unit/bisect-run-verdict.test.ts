import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {CANNOT_TEST, judgeBoot, judgeCommandRun} from '../../src/bisect/run-verdict.js'
import {explainEnd} from '../../src/lab/postmortem.js'
import type {RunFacts} from '../../src/repro/verdict.js'

const ran = (over: Partial<RunFacts>): RunFacts => ({timedOut: false, console: '', ...over})

const QUIET = ['[   40.000000] EXT4-fs (pmem0): mounted filesystem with ordered data mode', '[   40.100000] pmemlab: running the command']
const OOPS = ['[   42.000000] BUG: unable to handle page fault for address: ffffc90000a00000', '[   42.000002] Oops: 0002 [#1] PREEMPT SMP NOPTI', '[   42.000003] RIP: 0010:memcpy_flushcache+0x1/0x2']
const WARNING = ['[   41.000001] WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40']
const PANIC = ['[   47.000000] Kernel panic - not syncing: Fatal exception', '[   47.000001] Kernel Offset: disabled']

/** How the lab tells a guest's end from its console (and QEMU's exit). */
const died = (lines: string[], phase: 'boot' | 'run' = 'run') => explainEnd({console: lines.join('\n'), qemuLog: '', phase})

describe('a command run (-- COMMAND)', () => {
  test('its status decides when nothing else happened: 0 good, other bad, 125 cannot test', () => {
    assert.deepEqual(judgeCommandRun(ran({exit: 0, console: QUIET.join('\n')})), {outcome: 'not reproduced', reason: 'the command exited 0', excerpt: []})
    assert.equal(judgeCommandRun(ran({exit: 1})).outcome, 'reproduced')
    assert.equal(judgeCommandRun(ran({exit: 255})).reason, 'the command exited 255')
    assert.deepEqual(judgeCommandRun(ran({exit: CANNOT_TEST})), {outcome: 'error', reason: 'the command exited 125: it cannot test this commit', excerpt: []})
    assert.equal(judgeCommandRun(ran({})).outcome, 'error')
  })

  test('a panic, an Oops or a hang under the kernel is bad, not an abort', () => {
    const panic = judgeCommandRun(ran({guestEnd: died([...QUIET, ...PANIC]), console: [...QUIET, ...PANIC].join('\n')}))
    assert.equal(panic.outcome, 'reproduced')
    assert.match(panic.reason, /panicked/)
    assert.ok(panic.excerpt.some((l) => l.includes('Kernel panic')))
    const hang = judgeCommandRun(ran({guestEnd: explainEnd({console: QUIET.join('\n'), qemuLog: '', phase: 'run', hungAfterMs: 60_000}), console: QUIET.join('\n')}))
    assert.equal(hang.outcome, 'reproduced')
    assert.equal(judgeCommandRun(ran({timedOut: true, console: QUIET.join('\n')})).reason, 'the command ran past its timeout')
    const survived = judgeCommandRun(ran({exit: 0, console: [...QUIET, ...OOPS].join('\n')}))
    assert.equal(survived.outcome, 'reproduced', 'an Oops the guest lived through still counts, whatever the status')
    assert.equal(survived.reason, 'BUG: unable to handle page fault for address: ffffc90000a00000 (the command exited 0)')
  })

  test('a WARNING alone decides nothing; a broken lab is an error', () => {
    assert.equal(judgeCommandRun(ran({exit: 0, console: [...QUIET, ...WARNING].join('\n')})).outcome, 'not reproduced')
    const killed = explainEnd({console: QUIET.join('\n'), qemuLog: 'qemu-system-x86_64: terminating on signal 9 from pid 1234 (kill)', exit: {code: null, signal: 'SIGKILL'}, phase: 'run'})
    assert.equal(killed.guestFault, false)
    assert.equal(judgeCommandRun(ran({guestEnd: killed, console: QUIET.join('\n')})).outcome, 'error')
    assert.deepEqual(judgeCommandRun(ran({labError: 'the host ran out of memory'})), {outcome: 'error', reason: 'the lab broke: the host ran out of memory', excerpt: []})
  })
})

describe('a boot (--type boot)', () => {
  test('a panic at boot is bad; a clean boot is good; a crash report the guest survived is bad', () => {
    assert.equal(judgeBoot({end: died(PANIC, 'boot'), console: PANIC.join('\n')}).outcome, 'reproduced')
    assert.deepEqual(judgeBoot({console: QUIET.join('\n')}), {outcome: 'not reproduced', reason: 'the guest booted', excerpt: []})
    assert.match(judgeBoot({console: [...QUIET, ...OOPS].join('\n')}).reason, /^the guest booted, but: BUG: unable to handle page fault/)
    assert.equal(judgeBoot({labError: 'qemu-system-x86_64 is not installed', console: ''}).outcome, 'error')
  })
})

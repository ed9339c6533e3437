import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {deathError, VmDeathError, type DeathRecord} from '../../src/lab/deaths.js'
import {explainEnd} from '../../src/lab/postmortem.js'
import {bootFailed, labBroke, preparationProblem, scriptFacts, type GuestStep} from '../../src/repro/facts.js'
import {parseRepro} from '../../src/repro/schema.js'
import {judgeRun} from '../../src/repro/verdict.js'

const step = (over: Partial<GuestStep>): GuestStep => ({exitCode: 0, timedOut: false, stdout: '', stderr: '', ...over})
const expectOf = (block: string) => parseRepro(`version: 1\nrun: ./trigger\nexpect: ${block}\n`, 'r.yaml').expect

const WARNING = ['[   41.000000] ------------[ cut here ]------------', '[   41.000001] WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40']
const PANIC_ON_WARN = ['[   41.100000] Kernel panic - not syncing: kernel: panic_on_warn set ...', '[   41.100001] Kernel Offset: disabled']

/** The lab's account of a guest that ended with this console (and QEMU's log, and how it exited). */
const ended = (console: string[], exit?: {code: number | null; signal: string | null}, hungAfterMs?: number) =>
  explainEnd({console: console.join('\n'), qemuLog: '', phase: 'run', exit, hungAfterMs})

describe('the facts of the script', () => {
  test('a script that ended: its status', () => {
    assert.deepEqual(scriptFacts(step({exitCode: 3}), undefined, 'text'), {exit: 3, timedOut: false, console: 'text'})
  })

  test('a script past its timeout: no status, timed out', () => {
    assert.deepEqual(scriptFacts(step({exitCode: 124, timedOut: true}), undefined, ''), {timedOut: true, console: ''})
  })

  test('a guest that died under it: the lab\'s account, and no status', () => {
    const end = ended([...WARNING, ...PANIC_ON_WARN])
    const facts = scriptFacts(step({exitCode: -1, lost: 'VM "r" died: ...'}), end, [...WARNING, ...PANIC_ON_WARN].join('\n'))
    assert.equal(facts.exit, undefined)
    assert.deepEqual(facts.guestEnd, {kind: 'panic', reason: end.reason, excerpt: end.excerpt, guestFault: true})
    assert.equal(facts.labError, undefined)
    // As verdict.ts reads it: the expected WARNING under panic_on_warn reproduces; without it in must, no verdict.
    assert.equal(judgeRun(expectOf('{must: [warning]}'), facts).outcome, 'reproduced')
    assert.equal(judgeRun(expectOf('{must: [lockdep]}'), facts).outcome, 'error')
  })

  test('a death after the script ended with a status is still the run\'s: the death decides', () => {
    const facts = scriptFacts(step({exitCode: 0}), ended(PANIC_ON_WARN), PANIC_ON_WARN.join('\n'))
    assert.equal(facts.exit, undefined)
    assert.equal(facts.guestEnd?.kind, 'panic')
  })

  test('QEMU killed under the script: the lab broke, whatever the console shows', () => {
    const killed = ended(['[ 1.0] booted'], {code: null, signal: 'SIGKILL'})
    const facts = scriptFacts(step({exitCode: -1, lost: 'x'}), killed, '')
    assert.deepEqual(judgeRun(expectOf('{must: [warning]}'), facts), {outcome: 'error', reason: 'the lab broke: QEMU was killed by SIGKILL', excerpt: killed.excerpt})
  })

  test('a hang the lab named: a hang for the verdict', () => {
    const hung = ended(['[ 1.0] booted'], undefined, 30_000)
    const facts = scriptFacts(step({exitCode: -1, lost: 'hung'}), hung, '')
    assert.equal(judgeRun(expectOf('{must: [hang]}'), facts).outcome, 'reproduced')
    assert.match(judgeRun(expectOf('{must: [warning]}'), facts).reason, /^the run hung: the guest stopped answering for 30 s, and expect does not name hang$/)
  })

  test('a guest lost without the lab naming why, or the guest agent failing: the lab broke', () => {
    assert.deepEqual(scriptFacts(step({exitCode: -1, lost: 'the guest stopped answering while running /bin/bash'}), undefined, 'c'), {
      timedOut: false,
      console: 'c',
      labError: 'the guest was lost while the script ran: the guest stopped answering while running /bin/bash',
    })
    assert.equal(scriptFacts(step({exitCode: -1, error: 'guest-exec failed'}), undefined, '').labError, 'pmemlab could not run the script: guest-exec failed')
  })
})

describe('a lab that broke before the script', () => {
  test('a boot that failed', () => {
    const facts = bootFailed('VM "repro-1" failed to boot: the guest agent did not answer within 180 s of boot: console log kept in /x')
    assert.equal(judgeRun(expectOf('{must: [panic]}'), facts).outcome, 'error')
    assert.equal(facts.labError, 'the lab could not start: VM "repro-1" failed to boot: the guest agent did not answer within 180 s of boot: console log kept in /x')
    assert.deepEqual(labBroke('x'), {timedOut: false, console: '', labError: 'x'})
  })

  test('a device that was prepared is no problem', () => {
    assert.equal(preparationProblem('nvdimm0', step({stdout: 'ok 1 - namespace in fsdax mode\n'})), undefined)
  })

  test('a preparation that failed names its failing check, else its last words on stderr', () => {
    const tap = 'ok 1 - namespace in fsdax mode\nnot ok 2 - mount -t ext4 -o dax\n# mount: wrong fs type\n'
    assert.equal(preparationProblem('nvdimm0', step({exitCode: 1, stdout: tap})), 'nvdimm0 could not be prepared: mount -t ext4 -o dax (exit 1)')
    assert.equal(preparationProblem('memmap0', step({exitCode: 2, stderr: 'usage: pmemlab-suite prepare\nno such device memmap0\n'})), 'memmap0 could not be prepared: no such device memmap0 (exit 2)')
    assert.equal(preparationProblem('memmap0', step({exitCode: 127})), 'memmap0 could not be prepared: pmemlab-suite exited 127')
    assert.equal(preparationProblem('nvdimm1', step({exitCode: 124, timedOut: true})), 'nvdimm1 could not be prepared: pmemlab-suite ran past 300 s')
    assert.equal(preparationProblem('nvdimm1', step({exitCode: -1, error: 'EPIPE'})), 'nvdimm1 could not be prepared: EPIPE')
  })

  test('a guest that died or was lost while a device was prepared', () => {
    const end = ended(['[ 9.0] Kernel panic - not syncing: Fatal exception'])
    assert.equal(preparationProblem('nvdimm0', step({exitCode: -1, lost: 'VM died'}), end), `the guest died while nvdimm0 was prepared: ${end.reason}`)
    assert.equal(preparationProblem('nvdimm0', step({exitCode: -1, lost: 'the guest stopped answering'})), 'the guest was lost while nvdimm0 was prepared: the guest stopped answering')
  })
})

describe('a VM\'s death as an error', () => {
  test('keeps the one line and exit code, and carries the lab\'s account of the end', () => {
    const end = ended([...WARNING, ...PANIC_ON_WARN])
    const death: DeathRecord = {...end, name: 'repro-1', diedAt: '2025-01-01T00:00:00.000Z', dir: '/s/failed/x', consoleLog: '/s/failed/x/console.log', mode: 'foreground', reported: false}
    const error = deathError(death)
    assert.ok(error instanceof VmDeathError && error instanceof PmemlabError)
    assert.equal(error.exitCode, ExitCode.guestDied)
    assert.equal(error.oneLine(), `VM "repro-1" died: ${end.reason}: console log kept in /s/failed/x/console.log`)
    assert.deepEqual(error.details, end.excerpt)
    assert.deepEqual(error.end, {kind: 'panic', reason: end.reason, excerpt: end.excerpt, exitCode: ExitCode.guestDied, guestFault: true})
  })
})

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode} from '../../src/core/errors.js'
import {explainEnd} from '../../src/lab/postmortem.js'
import {parseRepro} from '../../src/repro/schema.js'
import {ERRORS_IN_A_ROW, judgeRun, nextRun, outcomeExitCode, runLimit, summarize, UNTIL_REPRODUCED_RUNS, type Outcome, type RunFacts} from '../../src/repro/verdict.js'

/** The expect block of a file, read as `pmemlab repro` reads it. */
const expectOf = (block: string) => parseRepro(`version: 1\nrun: ./trigger\nexpect: ${block}\n`, 'r.yaml').expect

const console = (...blocks: string[][]) => blocks.flat().join('\n')
const ran = (over: Partial<RunFacts>): RunFacts => ({timedOut: false, console: '', ...over})

const QUIET = ['[   40.000000] EXT4-fs (pmem0): mounted filesystem with ordered data mode', '[   40.100000] pmemlab: running the reproducer']
const WARNING = [
  '[   41.000000] ------------[ cut here ]------------',
  '[   41.000001] WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40',
  '[   41.000002] Modules linked in: nd_pmem dax_pmem',
  '[   41.000003] ---[ end trace 0000000000000000 ]---',
]
const OOPS_IN_BUG = [
  '[   42.000000] BUG: unable to handle page fault for address: ffffc90000a00000',
  '[   42.000001] #PF: supervisor write access in kernel mode',
  '[   42.000002] Oops: 0002 [#1] PREEMPT SMP NOPTI',
  '[   42.000003] RIP: 0010:memcpy_flushcache+0x1/0x2',
  '[   42.000004] ---[ end trace 0000000000000001 ]---',
]
const GPF = ['[   43.000000] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP']
const KERNEL_BUG = ['[   44.000000] kernel BUG at fs/dax.c:567!', '[   44.000001] invalid opcode: 0000 [#1] SMP']
const KASAN = ['[   45.000000] BUG: KASAN: use-after-free in dax_iomap_rw+0x7a/0x90', '[   45.000001] Read of size 8 at addr ffff888004f3a000']
const LOCKDEP = ['[   46.000000] ======================================================', '[   46.000001] WARNING: possible circular locking dependency detected', '[   46.000002] 6.12.0 #1 Not tainted']
const PANIC = ['[   47.000000] Kernel panic - not syncing: Fatal exception', '[   47.000001] Kernel Offset: disabled']
const PANIC_ON_WARN = ['[   48.000000] Kernel panic - not syncing: kernel: panic_on_warn set ...']

/** How explainEnd (the account every command gives of a dead guest) tells this console's end. */
const died = (text: string) => explainEnd({console: text, qemuLog: '', phase: 'run'})

describe('one run', () => {
  test('exit: a status, nonzero, or a mismatch', () => {
    assert.equal(judgeRun(expectOf('{exit: 1}'), ran({exit: 1})).outcome, 'reproduced')
    assert.deepEqual(judgeRun(expectOf('{exit: 1}'), ran({exit: 1})), {outcome: 'reproduced', reason: 'the script exited 1', excerpt: []})
    assert.equal(judgeRun(expectOf('{exit: nonzero}'), ran({exit: 135})).outcome, 'reproduced')
    assert.deepEqual(judgeRun(expectOf('{exit: nonzero}'), ran({exit: 0})), {outcome: 'not reproduced', reason: 'the script exited 0, not with a nonzero status', excerpt: []})
    assert.deepEqual(judgeRun(expectOf('{exit: 0}'), ran({exit: 2})), {outcome: 'not reproduced', reason: 'the script exited 2, not with status 0', excerpt: []})
    assert.equal(judgeRun(expectOf('{exit: 0}'), ran({})).outcome, 'error', 'a script that ended without a status gives no verdict')
    assert.equal(judgeRun(expectOf('{must: [warning]}'), ran({exit: 3, console: console(WARNING)})).outcome, 'reproduced', 'without exit: the status does not count')
  })

  test('must: every pattern has to show; the excerpt is what matched', () => {
    const verdict = judgeRun(expectOf('{must: [warning], exit: 0}'), ran({exit: 0, console: console(QUIET, WARNING)}))
    assert.equal(verdict.outcome, 'reproduced')
    assert.equal(verdict.reason, 'warning: WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40; the script exited 0')
    assert.deepEqual(verdict.excerpt, WARNING.slice(1))
    assert.deepEqual(judgeRun(expectOf('{must: [warning]}'), ran({exit: 0, console: console(QUIET)})), {outcome: 'not reproduced', reason: 'no warning on the console (the script exited 0)', excerpt: []})
    const partly = judgeRun(expectOf('{must: [warning, lockdep]}'), ran({exit: 0, console: console(WARNING)}))
    assert.deepEqual([partly.outcome, partly.reason], ['not reproduced', 'no lockdep on the console (the script exited 0)'])
  })

  test('a regex is matched against each line without its timestamp', () => {
    const verdict = judgeRun(expectOf('{must: ["/^EXT4-fs \\\\(pmem\\\\d\\\\): mounted/"]}'), ran({exit: 0, console: console(QUIET)}))
    assert.equal(verdict.outcome, 'reproduced')
    assert.equal(verdict.reason, '/^EXT4-fs \\(pmem\\d\\): mounted/ matched "EXT4-fs (pmem0): mounted filesystem with ordered data mode"')
    assert.deepEqual(verdict.excerpt, [QUIET[0]])
    assert.equal(judgeRun(expectOf('{must: [/ext4-FS/i]}'), ran({exit: 0, console: console(QUIET)})).outcome, 'reproduced', 'flag i')
    assert.equal(judgeRun(expectOf('{must: [/ext4-FS/]}'), ran({exit: 0, console: console(QUIET)})).outcome, 'not reproduced')
    assert.equal(judgeRun(expectOf('{must: ["/^\\\\[/"]}'), ran({exit: 0, console: console(QUIET)})).outcome, 'not reproduced', 'the timestamp is not part of the line')
  })

  test('each console class takes in its reports, and no others', () => {
    const cases: Array<[string, string[], boolean]> = [
      ['oops', OOPS_IN_BUG, true],
      ['oops', GPF, true],
      ['oops', WARNING, false],
      ['bug', OOPS_IN_BUG, true],
      ['bug', KERNEL_BUG, true],
      ['bug', KASAN, true],
      ['bug', WARNING, false],
      ['warning', WARNING, true],
      ['warning', LOCKDEP, false],
      ['warning', OOPS_IN_BUG, false],
      ['lockdep', LOCKDEP, true],
      ['lockdep', WARNING, false],
      ['panic', PANIC, true],
      ['panic', OOPS_IN_BUG, false],
    ]
    for (const [cls, lines, shows] of cases) {
      const verdict = judgeRun(expectOf(`{must: [${cls}]}`), ran({exit: 0, console: console(QUIET, lines)}))
      assert.equal(verdict.outcome, shows ? 'reproduced' : 'not reproduced', `${cls} in ${lines[0]}`)
      if (shows) assert.ok(lines.includes(verdict.excerpt[0]), `${cls}: the excerpt starts at the matched line: ${verdict.excerpt[0]}`)
    }
    const oops = judgeRun(expectOf('{must: [oops]}'), ran({exit: 0, console: console(OOPS_IN_BUG)}))
    assert.equal(oops.reason, 'oops: Oops: 0002 [#1] PREEMPT SMP NOPTI', 'an Oops inside a BUG report is found on its own line')
    assert.deepEqual(oops.excerpt, OOPS_IN_BUG.slice(2))
  })

  test('must_not: what it names makes the run not reproduced, before anything else', () => {
    const verdict = judgeRun(expectOf('{must: [warning], must_not: [oops]}'), ran({exit: 0, console: console(WARNING, OOPS_IN_BUG)}))
    assert.equal(verdict.outcome, 'not reproduced')
    assert.equal(verdict.reason, 'oops: Oops: 0002 [#1] PREEMPT SMP NOPTI, which must_not names')
    assert.deepEqual(verdict.excerpt, OOPS_IN_BUG.slice(2))
    assert.equal(judgeRun(expectOf('{must: [warning], must_not: [/dax_insert/]}'), ran({exit: 0, console: console(WARNING)})).outcome, 'not reproduced')
    assert.equal(judgeRun(expectOf('{must: [warning], must_not: [oops]}'), ran({exit: 0, console: console(WARNING)})).outcome, 'reproduced', 'nothing it names showed')
    const hung = judgeRun(expectOf('{must: [warning], must_not: [hang]}'), ran({timedOut: true, console: console(WARNING)}))
    assert.deepEqual([hung.outcome, hung.reason], ['not reproduced', 'hang: the script ran past its 300 s timeout, which must_not names'])
    const panicked = judgeRun(expectOf('{must: [warning], must_not: [panic]}'), ran({guestEnd: died(console(PANIC)), console: console(PANIC)}))
    assert.equal(panicked.outcome, 'not reproduced', 'a death must_not names')
  })

  test('a hang is reproduced only when must names hang; otherwise it is an error with the timeout', () => {
    const timedOut = ran({timedOut: true, console: console(QUIET)})
    assert.deepEqual(judgeRun(expectOf('{must: [hang], timeout: 60}'), timedOut), {outcome: 'reproduced', reason: 'hang: the script ran past its 60 s timeout', excerpt: QUIET})
    const unexpected = judgeRun(expectOf('{exit: 0, timeout: 60}'), timedOut)
    assert.deepEqual([unexpected.outcome, unexpected.reason], ['error', 'the run hung: the script ran past its 60 s timeout, and expect does not name hang'])
    assert.equal(judgeRun(expectOf('{must: [warning]}'), ran({timedOut: true, console: console(WARNING)})).outcome, 'error', 'even after what must names')
    // The guest stopped answering: the lab's own account of the hang.
    const stopped = explainEnd({console: console(QUIET), qemuLog: '', phase: 'run', hungAfterMs: 90_000})
    const guestHang = judgeRun(expectOf('{must: [hang]}'), ran({guestEnd: stopped, console: console(QUIET)}))
    assert.deepEqual([guestHang.outcome, guestHang.reason], ['reproduced', 'hang: the guest stopped answering for 90 s'])
    assert.equal(judgeRun(expectOf('{exit: 0}'), ran({guestEnd: stopped, console: console(QUIET)})).outcome, 'error')
    const hangAndLockdep = expectOf('{must: [hang, lockdep]}')
    assert.equal(judgeRun(hangAndLockdep, ran({timedOut: true, console: console(LOCKDEP)})).outcome, 'reproduced')
    assert.deepEqual(judgeRun(hangAndLockdep, ran({timedOut: true, console: console(QUIET)})).reason, 'no lockdep on the console')
    assert.deepEqual(judgeRun(expectOf('{must: [hang]}'), ran({exit: 0})).reason, 'the run did not hang (the script exited 0)')
  })

  test('a guest that died: reproduced when must names what killed it, an error when the console shows none of it', () => {
    const panic = console(OOPS_IN_BUG, PANIC)
    assert.equal(judgeRun(expectOf('{must: [panic]}'), ran({guestEnd: died(panic), console: panic})).outcome, 'reproduced')
    assert.equal(judgeRun(expectOf('{must: [oops]}'), ran({guestEnd: died(panic), console: panic})).outcome, 'reproduced', 'panic_on_oops')
    // panic_on_warn: the WARNING is the bug, the panic its consequence; the script has no status to check.
    const onWarn = console(WARNING, PANIC_ON_WARN)
    const warned = judgeRun(expectOf('{must: [warning], exit: nonzero}'), ran({guestEnd: died(onWarn), console: onWarn}))
    assert.deepEqual([warned.outcome, warned.reason], ['reproduced', 'warning: WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40'])
    const bare = console(PANIC)
    const other = judgeRun(expectOf('{must: [warning]}'), ran({guestEnd: died(bare), console: bare}))
    assert.equal(other.outcome, 'error')
    assert.equal(other.reason, 'the guest died: the guest kernel panicked: Kernel panic - not syncing: Fatal exception, and the console shows none of warning')
    assert.deepEqual(other.excerpt, died(bare).excerpt)
    assert.equal(judgeRun(expectOf('{exit: 1}'), ran({guestEnd: died(bare), console: bare})).reason, 'the guest died: the guest kernel panicked: Kernel panic - not syncing: Fatal exception, and expect names only an exit status')
    const partly = judgeRun(expectOf('{must: [oops, lockdep]}'), ran({guestEnd: died(panic), console: panic}))
    assert.deepEqual([partly.outcome, partly.reason], ['not reproduced', 'no lockdep on the console (the guest died: the guest kernel panicked: Kernel panic - not syncing: Fatal exception (after bug: BUG: unable to handle page fault for address: ffffc90000a00000))'])
    // A panic whose line the console lost still counts through the death's own account.
    const lost = {...died(bare), excerpt: ['(lost)']}
    assert.deepEqual(judgeRun(expectOf('{must: [panic]}'), ran({guestEnd: lost, console: console(QUIET)})).excerpt, ['(lost)'])
    // A death comes before a timeout that ran out while the guest was dead.
    assert.equal(judgeRun(expectOf('{must: [panic]}'), ran({guestEnd: died(bare), timedOut: true, console: bare})).outcome, 'reproduced')
  })

  test('a lab that broke is always an error, whatever the console shows', () => {
    const warned = console(WARNING)
    assert.deepEqual(judgeRun(expectOf('{must: [warning]}'), ran({labError: 'the host ran out of memory: QEMU was killed by the OOM killer', console: warned})), {
      outcome: 'error',
      reason: 'the lab broke: the host ran out of memory: QEMU was killed by the OOM killer',
      excerpt: [],
    })
    const killed = explainEnd({console: console(QUIET), qemuLog: 'qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)', phase: 'run'})
    assert.equal(killed.guestFault, false)
    const verdict = judgeRun(expectOf('{must: [warning]}'), ran({guestEnd: killed, console: warned}))
    assert.deepEqual([verdict.outcome, verdict.reason], ['error', 'the lab broke: QEMU was killed by signal 15 from pid 4242 (kill)'])
    assert.equal(judgeRun(expectOf('{must: [warning], must_not: [oops]}'), ran({labError: 'x', console: console(OOPS_IN_BUG)})).outcome, 'error', 'before must_not')
  })
})

describe('runs together', () => {
  const policy = (runs: number, untilReproduced = false) => ({runs, untilReproduced})
  const times = (n: number, o: Outcome) => Array.from({length: n}, () => o)

  test('the rate: reproduced 3/10, errors named, the outcome over all runs', () => {
    const mixed: Outcome[] = ['not reproduced', 'reproduced', 'not reproduced', 'reproduced', 'error', 'not reproduced', 'reproduced', 'not reproduced', 'not reproduced', 'not reproduced']
    assert.deepEqual(summarize(mixed, policy(10)), {outcome: 'reproduced', runs: 10, reproduced: 3, errors: 1, rate: 'reproduced 3/10 (1 error)', exitCode: 1})
    assert.equal(summarize(times(10, 'not reproduced'), policy(10)).rate, 'not reproduced 0/10')
    assert.equal(summarize(times(1, 'reproduced'), policy(1)).rate, 'reproduced 1/1')
    const broken = summarize([...times(8, 'not reproduced'), 'error', 'error'], policy(10))
    assert.deepEqual([broken.outcome, broken.rate, broken.exitCode], ['error', 'error 0/10 (2 errors)', 125], 'an error might have been the reproduction')
    assert.equal(summarize([], policy(3)).outcome, 'error')
  })

  test('--until-reproduced stops at the first reproduction; without it every run is made', () => {
    assert.deepEqual(nextRun([], policy(5, true)), {again: true})
    assert.deepEqual(nextRun(['not reproduced', 'error'], policy(5, true)), {again: true})
    assert.deepEqual(nextRun(['not reproduced', 'reproduced'], policy(5, true)), {again: false, why: 'reproduced'})
    assert.deepEqual(nextRun(['reproduced'], policy(5)), {again: true})
    assert.deepEqual(nextRun(times(5, 'not reproduced'), policy(5, true)), {again: false, why: 'done'})
    assert.deepEqual(nextRun(times(5, 'reproduced'), policy(5)), {again: false, why: 'done'})
    assert.equal(summarize(['not reproduced', 'not reproduced', 'reproduced'], policy(10, true)).rate, 'reproduced 1/3 (stopped at the first reproduction, of up to 10 runs)')
    assert.equal(summarize(['not reproduced', 'reproduced'], policy(2, true)).rate, 'reproduced 1/2', 'the last run: nothing was cut short')
    assert.equal(summarize(times(10, 'not reproduced'), policy(10, true)).rate, 'not reproduced 0/10')
  })

  test(`${ERRORS_IN_A_ROW} errors in a row end the runs: the lab will not mend`, () => {
    assert.deepEqual(nextRun(['error', 'error'], policy(10)), {again: true})
    assert.deepEqual(nextRun(['error', 'error', 'not reproduced', 'error', 'error'], policy(10)), {again: true})
    assert.deepEqual(nextRun(['not reproduced', 'error', 'error', 'error'], policy(10)), {again: false, why: 'errors'})
    assert.equal(summarize(times(3, 'error'), policy(10)).rate, 'error 0/3 (3 errors; stopped after 3 errors in a row, of up to 10 runs)')
  })

  test('how many runs: --runs, else the file, else one (or several with --until-reproduced)', () => {
    assert.equal(runLimit(7, 3, false), 7)
    assert.equal(runLimit(undefined, 3, true), 3)
    assert.equal(runLimit(undefined, undefined, false), 1)
    assert.equal(runLimit(undefined, undefined, true), UNTIL_REPRODUCED_RUNS)
  })

  test('exit codes: 0 not reproduced, 1 reproduced, 125 no verdict (what git bisect run reads as good, bad, skip)', () => {
    assert.equal(outcomeExitCode('not reproduced'), ExitCode.ok)
    assert.equal(outcomeExitCode('reproduced'), 1)
    assert.equal(outcomeExitCode('error'), 125)
    assert.equal(ExitCode.noVerdict, 125)
    assert.equal(summarize(['not reproduced'], policy(1)).exitCode, 0)
    assert.equal(summarize(['error', 'reproduced'], policy(2)).exitCode, 1, 'a reproduction counts even beside errors')
  })
})

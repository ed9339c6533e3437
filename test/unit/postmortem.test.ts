import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode} from '../../src/core/errors.js'
import {consoleExcerpt} from '../../src/lab/oops.js'
import {explainEnd, type EndFacts} from '../../src/lab/postmortem.js'

const BOOT = ['[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)', '[    1.200000] Run /init as init process', 'pmemlab-init: guest agent started']

// What a sysrq crash under panic=-1 leaves on the console: the kernel reboots before it could
// print "---[ end Kernel panic".
const SYSRQ_PANIC = [
  '[    3.933000] sysrq: Trigger a crash',
  '[    3.933511] Kernel panic - not syncing: sysrq triggered crash',
  '[    3.933817] CPU: 1 PID: 150 Comm: sh Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3',
  '[    3.934500] Call Trace:',
  '[    3.934500]  <TASK>',
  '[    3.934500]  panic+0x118/0x2f4',
  ...Array.from({length: 20}, (_, i) => `[    3.934500]  frame_${i}+0x10/0x20`),
  '[    3.934500]  </TASK>',
  '[    3.934500] Kernel Offset: disabled',
]

const WARNING = [
  '[   10.000000] ------------[ cut here ]------------',
  '[   10.000001] WARNING: CPU: 0 PID: 312 at fs/dax.c:1234 dax_iomap_pte_fault+0x10/0x20',
  '[   10.000002] Modules linked in: nd_pmem',
  '[   10.000003] ---[ end trace 0000000000000000 ]---',
]

const OOPS = [
  '[   20.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008',
  '[   20.000001] #PF: supervisor read access in kernel mode',
  '[   20.000002] Oops: 0000 [#1] PREEMPT SMP NOPTI',
  '[   20.000003] RIP: 0010:dax_writeback_mapping_range+0x1/0x2',
  '[   20.000004] ---[ end trace 0000000000000001 ]---',
]

const facts = (over: Partial<EndFacts>): EndFacts => ({console: BOOT.join('\n'), qemuLog: '', phase: 'run', ...over})

describe('explaining how a guest ended', () => {
  test('a panic is named with its message, and the excerpt runs from it to the console end', () => {
    const end = explainEnd(facts({console: [...BOOT, ...SYSRQ_PANIC].join('\n')}))
    assert.equal(end.kind, 'panic')
    assert.equal(end.exitCode, ExitCode.guestDied)
    assert.equal(end.reason, 'the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash')
    assert.equal(end.excerpt[0], SYSRQ_PANIC[1])
    assert.equal(end.excerpt.at(-1), '[    3.934500] Kernel Offset: disabled')
    assert.equal(end.excerpt.length, SYSRQ_PANIC.length - 1)
    assert.ok(end.guestFault)
  })

  test('a panic after a WARNING names both and starts the excerpt at "cut here"', () => {
    const end = explainEnd(facts({console: [...BOOT, ...WARNING, ...SYSRQ_PANIC].join('\n'), phase: 'boot'}))
    assert.equal(end.kind, 'panic')
    assert.match(end.reason, /^the guest kernel panicked during boot: Kernel panic - not syncing: sysrq triggered crash \(after warning: WARNING: CPU: 0 PID: 312 at fs\/dax\.c:1234/)
    assert.equal(end.excerpt[0], WARNING[0])
  })

  test('an Oops that killed the guest without a panic is an Oops, with its report', () => {
    const end = explainEnd(facts({console: [...BOOT, ...OOPS].join('\n')}))
    assert.equal(end.kind, 'oops')
    assert.equal(end.exitCode, ExitCode.guestDied)
    assert.match(end.reason, /^the guest died after bug: BUG: kernel NULL pointer dereference/)
    assert.deepEqual(end.excerpt, OOPS)
  })

  test('a reboot and a power-off end the VM under -no-reboot and are named as such', () => {
    const reboot = explainEnd(facts({console: [...BOOT, '[   30.0] reboot: Restarting system'].join('\n')}))
    assert.equal(reboot.kind, 'reboot')
    assert.equal(reboot.exitCode, ExitCode.guestDied)
    assert.match(reboot.reason, /rebooted.*-no-reboot/)
    assert.equal(reboot.excerpt.at(-1), '[   30.0] reboot: Restarting system')
    const off = explainEnd(facts({console: [...BOOT, '[   30.0] reboot: Power down'].join('\n')}))
    assert.equal(off.kind, 'poweroff')
  })

  test('a guest that never answers at boot is a boot failure with the console tail', () => {
    const lines = Array.from({length: 30}, (_, i) => `line ${i}`)
    const end = explainEnd(facts({console: lines.join('\n'), phase: 'boot', hungAfterMs: 20_000}))
    assert.equal(end.kind, 'hang')
    assert.equal(end.exitCode, ExitCode.bootFailed)
    assert.equal(end.reason, 'the guest agent did not answer within 20 s of boot')
    assert.deepEqual(end.excerpt, lines.slice(-20))
    const running = explainEnd(facts({hungAfterMs: 30_000}))
    assert.equal(running.exitCode, ExitCode.guestDied)
    assert.equal(running.reason, 'the guest stopped answering for 30 s')
  })

  test('a killed QEMU is the lab, not the kernel: another exit code, and the signal named', () => {
    const killed = explainEnd(facts({exit: {code: null, signal: 'SIGKILL'}}))
    assert.equal(killed.kind, 'qemu-killed')
    assert.equal(killed.reason, 'QEMU was killed by SIGKILL')
    assert.equal(killed.exitCode, ExitCode.qemuDied)
    assert.equal(killed.guestFault, false)
    const termed = explainEnd(facts({qemuLog: 'qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)\n'}))
    assert.equal(termed.reason, 'QEMU was killed by signal 15 from pid 4242 (kill)')
    assert.equal(explainEnd(facts({exit: {code: null, signal: 'SIGKILL'}, phase: 'boot'})).exitCode, ExitCode.bootFailed)
  })

  test("QEMU's own last words, or their absence, explain a QEMU exit", () => {
    const said = explainEnd(facts({qemuLog: 'qemu-system-x86_64: -device nvdimm: memory size is not aligned\n', exit: {code: 1, signal: null}, phase: 'boot'}))
    assert.equal(said.kind, 'qemu-exited')
    assert.equal(said.reason, 'QEMU exited with status 1 during boot: -device nvdimm: memory size is not aligned')
    assert.equal(said.exitCode, ExitCode.bootFailed)
    const silent = explainEnd(facts({}))
    assert.match(silent.reason, /^QEMU exited without a word from QEMU or the guest/)
    assert.equal(silent.exitCode, ExitCode.qemuDied)
  })
})

describe('the console excerpt', () => {
  test('is empty without a failing report, and capped with a note', () => {
    assert.deepEqual(consoleExcerpt(BOOT.join('\n')), [])
    const excerpt = consoleExcerpt([...BOOT, ...SYSRQ_PANIC].join('\n'), 10)
    assert.equal(excerpt.length, 10)
    assert.equal(excerpt[0], SYSRQ_PANIC[1])
    assert.match(excerpt[9], /^\[\.\.\. \d+ more lines in the console log\]$/)
  })

  test('keeps the first report and the panic that ended the guest when the span is too long', () => {
    const filler = Array.from({length: 100}, (_, i) => `[   11.${i}] test output ${i}`)
    const excerpt = consoleExcerpt([...BOOT, ...WARNING, ...filler, ...SYSRQ_PANIC].join('\n'), 60)
    assert.ok(excerpt.length <= 60, `${excerpt.length} lines`)
    assert.equal(excerpt[0], WARNING[0])
    assert.ok(excerpt.some((l) => /^\[\.\.\. \d+ lines between\]$/.test(l)), excerpt.join('\n'))
    assert.ok(excerpt.includes(SYSRQ_PANIC[1]), 'the panic line is kept')
    assert.ok(excerpt.includes('[    3.934500]  panic+0x118/0x2f4'), 'with its call trace')
  })
})

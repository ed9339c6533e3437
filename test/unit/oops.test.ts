import assert from 'node:assert/strict'
import {test} from 'node:test'
import {classify, describeFinding, messageOf, scanConsole} from '../../src/lab/oops.js'

/** Console text as QEMU's serial log has it: CRLF line ends, kernel timestamps. */
const console = (...lines: string[]) => lines.map((l) => `${l}\r`).join('\n') + '\n'

const BOOT = [
  '[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)',
  '[    0.412345] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!',
  '[    0.500000] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!',
  '[    4.780385] nd_pmem namespace1.0: unable to guarantee persistence of writes',
  '[   29.920269] XFS (pmem0): DAX enabled. Warning: EXPERIMENTAL, use at your own risk',
  '[   30.000000] XFS (pmem0): DAX unsupported by block device. Turning off DAX.',
  'pmemlab-init: warning: cannot mount 9p on /mnt/host',
  'pmemlab-init: ready',
  'root@lab:~# echo BUG: not from the kernel',
]

test('a clean boot, with mitigation notices and DAX messages, has no findings', () => {
  assert.deepEqual(scanConsole(console(...BOOT)), [])
})

test('the sysrq crash: one panic finding with its first lines', () => {
  const text = console(
    ...BOOT,
    '[   42.100000] sysrq: Trigger a crash',
    '[   42.100100] Kernel panic - not syncing: sysrq triggered crash',
    '[   42.100200] CPU: 0 PID: 312 Comm: sh Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2',
    '[   42.100300] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014',
    '[   42.100400] Call Trace:',
    '[   42.100500]  <TASK>',
    '[   42.100600]  dump_stack_lvl+0x44/0x5c',
    '[   42.100700]  panic+0x118/0x2ed',
    '[   42.100800] Kernel Offset: 0x2a000000 from 0xffffffff81000000',
    '[   42.100900] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---',
    '[   42.101000] some later line',
  )
  const findings = scanConsole(text)
  assert.equal(findings.length, 1)
  const [panic] = findings
  assert.equal(panic.kind, 'panic')
  assert.equal(panic.title, 'Kernel panic - not syncing: sysrq triggered crash')
  assert.equal(panic.line, BOOT.length + 2)
  assert.equal(panic.fails, true)
  assert.equal(panic.lines[0], '[   42.100100] Kernel panic - not syncing: sysrq triggered crash')
  assert.equal(panic.lines.at(-1), '[   42.100900] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---', 'stops at the end marker')
  assert.ok(panic.lines.every((l) => !l.includes('\r')))
  assert.equal(describeFinding(panic), 'panic: Kernel panic - not syncing: sysrq triggered crash')
})

test('a NULL dereference: BUG, #PF and Oops lines are one report; the panic that follows much later is another', () => {
  const trace = Array.from({length: 20}, (_, i) => `[   50.2${String(i).padStart(5, '0')}]  frame_${i}+0x1/0x2`)
  const text = console(
    '[   50.100000] BUG: kernel NULL pointer dereference, address: 0000000000000008',
    '[   50.100001] #PF: supervisor read access in kernel mode',
    '[   50.100002] #PF: error_code(0x0000) - not-present page',
    '[   50.100003] PGD 0 P4D 0 ',
    '[   50.100004] Oops: 0000 [#1] PREEMPT SMP NOPTI',
    '[   50.100005] CPU: 1 PID: 77 Comm: pmemlab-pmemob Not tainted 6.1.0 #1',
    '[   50.100006] RIP: 0010:dax_iomap_rw+0x30/0x100',
    ...trace,
    '[   50.300000] Kernel panic - not syncing: Fatal exception',
  )
  const findings = scanConsole(text)
  assert.deepEqual(
    findings.map((f) => [f.kind, f.title, f.line]),
    [
      ['bug', 'BUG: kernel NULL pointer dereference, address: 0000000000000008', 1],
      ['panic', 'Kernel panic - not syncing: Fatal exception', 28],
    ],
  )
  assert.equal(findings[0].lines.length, 12, 'the first twelve lines by default')
  assert.ok(findings[0].lines.some((l) => l.includes('Oops: 0000')))
  assert.equal(scanConsole(text, {contextLines: 3})[0].lines.length, 3)
})

test('a WARN splat, lockdep reports, a GPF, KASAN and UBSAN are each recognised', () => {
  const cases: Array<[string, string]> = [
    ['[   10.000000] WARNING: CPU: 1 PID: 230 at fs/dax.c:1234 dax_insert_entry+0x2c5/0x300', 'warning'],
    ['[   10.000000] WARNING: at mm/page_alloc.c:100 foo+0x1/0x2()', 'warning'],
    ['[   10.000000] WARNING: possible circular locking dependency detected', 'lockdep'],
    ['[   10.000000] INFO: possible recursive locking detected', 'lockdep'],
    ['[   10.000000] WARNING: possible recursive locking detected', 'lockdep'],
    ['[   10.000000] WARNING: inconsistent lock state', 'lockdep'],
    ['[   10.000000] WARNING: suspicious RCU usage', 'lockdep'],
    ['[   10.000000] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP', 'gpf'],
    ['[   10.000000] BUG: KASAN: use-after-free in pmem_submit_bio+0x10/0x20', 'kasan'],
    ['[   10.000000] UBSAN: shift-out-of-bounds in drivers/nvdimm/pfn_devs.c:100:10', 'ubsan'],
    ['[   10.000000] kernel BUG at fs/xfs/xfs_iomap.c:42!', 'bug'],
    ['[   10.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:12]', 'bug'],
    ['[   10.000000] BUG: sleeping function called from invalid context at mm/memory.c:10', 'bug'],
    ['[   10.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI', 'oops'],
  ]
  for (const [line, kind] of cases) {
    const findings = scanConsole(console(...BOOT, line))
    assert.equal(findings.length, 1, line)
    assert.equal(findings[0].kind, kind, line)
    assert.equal(findings[0].fails, true, line)
  }
})

test('hung-task and RCU-stall notices are reported but do not fail a run', () => {
  const findings = scanConsole(
    console(
      '[  242.000000] INFO: task pmemlab-pmemob:310 blocked for more than 120 seconds.',
      '[  242.000001]       Not tainted 6.1.0-56-amd64 #1 Debian 6.1.192-2',
      '',
      '[  300.000000] rcu: INFO: rcu_sched self-detected stall on CPU',
    ),
  )
  assert.deepEqual(
    findings.map((f) => [f.kind, f.fails]),
    [
      ['hung-task', false],
      ['rcu-stall', false],
    ],
  )
  assert.deepEqual(findings[0].lines, ['[  242.000000] INFO: task pmemlab-pmemob:310 blocked for more than 120 seconds.', '[  242.000001]       Not tainted 6.1.0-56-amd64 #1 Debian 6.1.192-2'], 'stops at a blank line')
})

test('timestamps, caller ids, log levels and colour codes are stripped before matching', () => {
  assert.equal(messageOf('[   12.345678] [  T123] Kernel panic - not syncing: x\r'), 'Kernel panic - not syncing: x')
  assert.equal(messageOf('<0>[    1.000000] Oops: 0000 [#1]'), 'Oops: 0000 [#1]')
  assert.equal(messageOf('\u001b[31m[    1.0] BUG: x\u001b[0m'), 'BUG: x')
  // The console shell's prompt has no newline, so the kernel's next message shares its line.
  const prompted = '\u001b[?2004hroot@p1:~# [    4.023953] Kernel panic - not syncing: sysrq triggered crash\r'
  assert.equal(messageOf(prompted), 'Kernel panic - not syncing: sysrq triggered crash')
  assert.deepEqual(
    scanConsole(console(...BOOT, prompted, '[    4.1] Call Trace:')).map((f) => [f.kind, f.title]),
    [['panic', 'Kernel panic - not syncing: sysrq triggered crash']],
  )
  assert.equal(classify('Kernel panic - not syncing: VFS: Unable to mount root fs')?.kind, 'panic')
  assert.equal(classify('[    1.0] something about a BUG: in the middle'), undefined)
})

test('rescanning a console that grows finds the same reports at the same lines', () => {
  const first = console(...BOOT, '[   10.0] WARNING: CPU: 0 PID: 1 at fs/dax.c:1 f+0x1/0x2', '[   10.1] Modules linked in: nd_pmem')
  const grown = first + console('[   10.2] CPU: 0 PID: 1 Comm: sh', '[   20.0] Kernel panic - not syncing: sysrq triggered crash')
  const before = scanConsole(first)
  const after = scanConsole(grown)
  assert.equal(before.length, 1)
  assert.equal(after[0].line, before[0].line)
  assert.equal(after[0].title, before[0].title)
  assert.ok(after[0].lines.length >= before[0].lines.length)
  assert.deepEqual(
    after.map((f) => f.kind),
    ['warning', 'panic'],
    'a panic is its own report even right after another',
  )
})

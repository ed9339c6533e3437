import assert from 'node:assert/strict'
import {chmod, mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {parseFrame, renderDecoded, sourcePath, traceFrames, type FrameDecoding} from '../../src/kernel/stacktrace.js'
import {symbolTools, TraceDecoder} from '../../src/kernel/symbolize.js'
import {decodeFrames, frameAddress, parseAddr2line, parseNm} from '../../src/kernel/symbols.js'
import {callReturns, compile, frameLine, functions, lineOf, OUT_DIR, STAMP, withFixture} from '../helpers/elf.js'
import {withEnv} from './env.js'

/** A sysrq crash on Debian's 6.1 kernel, from this project's machine (the serial log's CRs kept). */
const SYSRQ_PANIC = `pmemlab-init: ready\r
[    4.706285] sysrq: Trigger a crash\r
[    4.706694] Kernel panic - not syncing: sysrq triggered crash\r
[    4.707004] CPU: 1 PID: 149 Comm: sh Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3\r
[    4.707354] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014\r
[    4.707987] Call Trace:\r
[    4.708687]  <TASK>\r
[    4.708906]  dump_stack_lvl+0x44/0x5c\r
[    4.709288]  panic+0x118/0x2f4\r
[    4.709288]  ? _printk+0x68/0x83\r
[    4.709288]  sysrq_handle_crash+0x16/0x20\r
[    4.709288]  __handle_sysrq.cold+0x44/0x11c\r
[    4.709288]  write_sysrq_trigger+0x24/0x40\r
[    4.709288]  proc_reg_write+0x56/0xa0\r
[    4.709288]  vfs_write+0xc7/0x3f0\r
[    4.709288]  ? __mod_memcg_lruvec_state+0x41/0x90\r
[    4.709288]  ? __mod_lruvec_page_state+0x93/0x140\r
[    4.709288]  ksys_write+0x6b/0xf0\r
[    4.709288]  do_syscall_64+0x5d/0xb0\r
[    4.709288]  ? handle_mm_fault+0xdb/0x2d0\r
[    4.709288]  ? do_user_addr_fault+0x1b0/0x570\r
[    4.709288]  ? exit_to_user_mode_prepare+0x44/0x240\r
[    4.709288]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8\r
[    4.709288] RIP: 0033:0x7f255e2c8350\r
[    4.709288] Code: 40 00 48 8b 15 b1 aa 0d 00 f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d 91 32 0e 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3\r
[    4.709288] RSP: 002b:00007ffe7bdf3d48 EFLAGS: 00000202 ORIG_RAX: 0000000000000001\r
[    4.709288] RAX: ffffffffffffffda RBX: 0000000000000002 RCX: 00007f255e2c8350\r
[    4.709288]  </TASK>\r
[    4.714719] Kernel Offset: disabled\r
`.split('\n')

describe('kernel trace lines', () => {
  test('the frames of a real sysrq panic: reliable and "?" ones, a .cold part, no frame for a user-space RIP', () => {
    const frames = traceFrames(SYSRQ_PANIC)
    assert.equal(frames.length, 16)
    assert.deepEqual(frames[0], {line: 7, symbol: 'dump_stack_lvl', offset: 0x44, length: 0x5c, reliable: true, rip: false, stamp: '[    4.708906]'})
    assert.deepEqual(
      frames.filter((f) => !f.reliable).map((f) => f.symbol),
      ['_printk', '__mod_memcg_lruvec_state', '__mod_lruvec_page_state', 'handle_mm_fault', 'do_user_addr_fault', 'exit_to_user_mode_prepare'],
    )
    assert.deepEqual(frames.find((f) => f.symbol.endsWith('.cold')), {line: 11, symbol: '__handle_sysrq.cold', offset: 0x44, length: 0x11c, reliable: true, rip: false, stamp: '[    4.709288]'})
    assert.equal(frames.at(-1)!.symbol, 'entry_SYSCALL_64_after_hwframe')
    assert.ok(frames.every((f) => !f.rip && f.module === undefined))
  })

  test('a kernel RIP, a module, a caller id, a build id, a prompt before the timestamp, no timestamp', () => {
    assert.deepEqual(parseFrame('[   41.000100] RIP: 0010:dax_iomap_rw+0x3a2/0x3d0', 3), {line: 3, symbol: 'dax_iomap_rw', offset: 0x3a2, length: 0x3d0, reliable: true, rip: true, stamp: '[   41.000100]'})
    assert.deepEqual(parseFrame('[   41.000100] RIP: 0010:pmem_submit_bio+0x1d/0x90 [nd_pmem]'), {line: 0, symbol: 'pmem_submit_bio', offset: 0x1d, length: 0x90, module: 'nd_pmem', reliable: true, rip: true, stamp: '[   41.000100]'})
    assert.deepEqual(parseFrame('[   41.000200][  T149]  ? nd_pmem_probe+0x4c/0x90 [nd_pmem 5a1b2c3d4e5f]'), {line: 0, symbol: 'nd_pmem_probe', offset: 0x4c, length: 0x90, module: 'nd_pmem', reliable: false, rip: false, stamp: '[   41.000200][  T149]'})
    assert.equal(parseFrame('root@lab:~# [   41.000300]  sysrq_handle_crash+0x16/0x20')?.stamp, 'root@lab:~# [   41.000300]')
    assert.equal(parseFrame(' vfs_write+0xc7/0x3f0')?.symbol, 'vfs_write')
    for (const line of [
      '[   41.000001] WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40',
      '[   41.000001] BUG: KASAN: use-after-free in dax_iomap_rw+0x3a2/0x3d0',
      '[   41.000001] RIP: 0033:0x7f255e2c8350',
      '[   41.000001]  <TASK>',
      'vfs_write+0xc7/0x3f0',
      '[   41.000001]  vfs_write+0xc7/0x3f0 (fs/read_write.c:584)',
    ]) {
      assert.equal(parseFrame(line), undefined, line)
    }
  })

  test('paths relative to the kernel tree: a pmemlab O= directory, a source root, a relative path', () => {
    assert.equal(sourcePath('/c/build/src-abc/.out-0123456789abcdef-4242/../fs/dax.c'), 'fs/dax.c')
    assert.equal(sourcePath('/c/build/src-abc/.out-0123456789abcdef-4242/include/generated/autoconf.h'), 'include/generated/autoconf.h')
    assert.equal(sourcePath('/c/build/out-0123456789abcdef-4242/include/generated/autoconf.h'), 'include/generated/autoconf.h')
    assert.equal(sourcePath('/home/me/linux/fs/dax.c', ['/home/me/linux']), 'fs/dax.c')
    assert.equal(sourcePath('/home/me/linux/./fs/../fs/dax.c', ['/home/me/linux/']), 'fs/dax.c')
    assert.equal(sourcePath('../include/linux/fs.h'), 'include/linux/fs.h')
    assert.equal(sourcePath('/usr/include/stdio.h', ['/home/me/linux']), '/usr/include/stdio.h')
  })

  test('rendered: the place after each frame, inlined functions above it, undecoded frames saying why', () => {
    const lines = [
      '[   41.000100] RIP: 0010:dax_iomap_rw+0x3a2/0x3d0',
      '[   41.000200] Call Trace:',
      'root@lab:~# [   41.000300]  ? dax_iomap_iter+0x1c/0x80',
      '[   41.000300]  pmem_submit_bio+0x1d/0x90 [nd_pmem]',
      '[   41.000300]  xfs_file_write_iter+0x10/0x20',
      '[   41.000300]  ext4_file_write_iter+0x10/0x20',
      '[   41.000300]  vfs_write+0xc7/0x3f0',
      '[   41.000300]  gone_away+0x1/0x2',
    ]
    const frames = traceFrames(lines)
    const decodings: FrameDecoding[] = [
      {kind: 'decoded', at: 'fs/dax.c:1234', inlined: []},
      {kind: 'decoded', at: 'fs/dax.c:1300', inlined: [{function: 'dax_entry_waitqueue', at: 'fs/dax.c:150'}, {function: 'wait_entry_unlocked', at: 'fs/dax.c:210'}]},
      {kind: 'module', module: 'nd_pmem'},
      {kind: 'ambiguous', count: 2},
      {kind: 'no line'},
      {kind: 'as printed'},
      {kind: 'not in vmlinux'},
    ]
    assert.deepEqual(renderDecoded(lines, frames, decodings), [
      '[   41.000100] RIP: 0010:dax_iomap_rw+0x3a2/0x3d0 (fs/dax.c:1234)',
      '[   41.000200] Call Trace:',
      '[   41.000300]  ? dax_entry_waitqueue (fs/dax.c:150) inlined',
      '[   41.000300]  ? wait_entry_unlocked (fs/dax.c:210) inlined',
      'root@lab:~# [   41.000300]  ? dax_iomap_iter+0x1c/0x80 (fs/dax.c:1300)',
      '[   41.000300]  pmem_submit_bio+0x1d/0x90 [nd_pmem] (module nd_pmem: not decoded)',
      '[   41.000300]  xfs_file_write_iter+0x10/0x20 (2 functions named xfs_file_write_iter in vmlinux: not decoded)',
      '[   41.000300]  ext4_file_write_iter+0x10/0x20 (no line information)',
      '[   41.000300]  vfs_write+0xc7/0x3f0',
      '[   41.000300]  gone_away+0x1/0x2 (not in vmlinux)',
    ])
  })
})

describe('symbols and addr2line answers', () => {
  const NM = ['ffffffff81234560 0000000000000020 T sysrq_handle_crash', 'ffffffff81300000 0000000000000010 t show_one', 'ffffffff81400000 0000000000000030 t show_one', 'ffffffff81500000 D some_data', 'ffffffff81600000 W weak_fn', '                 U undefined_fn'].join('\n')
  const table = parseNm(NM)
  const frame = (line: string) => parseFrame(line)!

  test('nm: functions only, kernel addresses past 2^53 kept exactly, several locals of one name', () => {
    assert.deepEqual([...table.keys()], ['sysrq_handle_crash', 'show_one', 'weak_fn'])
    assert.deepEqual(table.get('sysrq_handle_crash'), [{address: 0xffffffff81234560n, size: 0x20}])
    assert.equal(table.get('show_one')!.length, 2)
    assert.deepEqual(table.get('weak_fn'), [{address: 0xffffffff81600000n}])
  })

  test('a return address is one byte back, the RIP and an offset of 0 are not; the length picks among same names', () => {
    assert.deepEqual(frameAddress(frame(' sysrq_handle_crash+0x16/0x20'), table), {address: 0xffffffff81234575n})
    assert.deepEqual(frameAddress(frame(' RIP: 0010:sysrq_handle_crash+0x16/0x20'), table), {address: 0xffffffff81234576n})
    assert.deepEqual(frameAddress(frame(' sysrq_handle_crash+0x0/0x20'), table), {address: 0xffffffff81234560n})
    assert.deepEqual(frameAddress(frame(' show_one+0x5/0x30'), table), {address: 0xffffffff81400004n})
    assert.deepEqual(frameAddress(frame(' show_one+0x5/0x40'), table), {kind: 'ambiguous', count: 2})
    assert.deepEqual(frameAddress(frame(' pmem_submit_bio+0x1d/0x90 [nd_pmem]'), table), {kind: 'module', module: 'nd_pmem'})
    assert.deepEqual(frameAddress(frame(' nowhere+0x1/0x2'), table), {kind: 'not in vmlinux'})
  })

  test('addr2line -a -f -i: a place per address, inlined ones first, discriminators dropped', () => {
    const answers = parseAddr2line(
      ['0xffffffff81234575', 'sysrq_handle_crash', '/k/src/.out-0123456789abcdef-1/../drivers/tty/sysrq.c:155 (discriminator 1)', '0xffffffff81400004', 'inner', '/k/src/.out-0123456789abcdef-1/../fs/dax.c:10', 'show_one', '/k/src/.out-0123456789abcdef-1/../fs/dax.c:99', '0x0000000000000010', '??', '??:0', ''].join('\n'),
    )
    assert.deepEqual(answers.get(0xffffffff81234575n), [{function: 'sysrq_handle_crash', file: '/k/src/.out-0123456789abcdef-1/../drivers/tty/sysrq.c', line: '155'}])
    assert.equal(answers.get(0xffffffff81400004n)!.length, 2)
    assert.deepEqual(answers.get(0x10n), [{function: '??', file: '??', line: '0'}])
    const frames = [frame(' sysrq_handle_crash+0x16/0x20'), frame(' show_one+0x5/0x30')]
    assert.deepEqual(decodeFrames(frames, table, answers), {
      decodings: [
        {kind: 'decoded', at: 'drivers/tty/sysrq.c:155', inlined: []},
        {kind: 'decoded', at: 'fs/dax.c:99', inlined: [{function: 'inner', at: 'fs/dax.c:10'}]},
      ],
    })
  })

  test('no place for any address: one note, the frames as printed; an empty symbol table says so too', () => {
    const answers = parseAddr2line('0xffffffff81234575\nsysrq_handle_crash\n??:?\n')
    const frames = [frame(' sysrq_handle_crash+0x16/0x20'), frame(' nowhere+0x1/0x2')]
    assert.deepEqual(decodeFrames(frames, table, answers), {decodings: [{kind: 'as printed'}, {kind: 'not in vmlinux'}], note: 'no debug info in vmlinux'})
    assert.equal(decodeFrames(frames, new Map(), answers).note, 'no symbols in vmlinux')
  })
})

// ------------------------------------------------------------------------------------------------
// Against a real ELF: gcc compiles a small program, nm and objdump give the true return addresses
// of its calls, and the decoder must name the line each call is on.

describe('decoding against an ELF', () => {
  test('-O1 -fno-inline, built as pmemlab builds kernels (O= inside the tree): every call on its marked line', async () => {
    await withFixture(async (dir) => {
      const elf = await compile(join(dir, OUT_DIR), '../trace.c', ['-g', '-O1', '-fno-inline'], 'vmlinux')
      const fns = await functions(elf)
      const middle = await callReturns(elf, 'middle')
      assert.equal(middle.length, 3, 'middle makes three calls at -O1 -fno-inline')
      const [helperCall] = await callReturns(elf, 'helper')
      const [mainCall] = await callReturns(elf, 'main')
      const lines = [
        `${STAMP} RIP: 0010:sink+0x0/0x${fns.get('sink')!.size.toString(16)}`,
        `${STAMP} Call Trace:`,
        frameLine(fns, 'helper', helperCall),
        ...middle.map((offset) => frameLine(fns, 'middle', offset)),
        frameLine(fns, 'main', mainCall, '? '),
        `${STAMP}  nd_pmem_probe+0x4c/0x90 [nd_pmem]`,
        `${STAMP}  not_in_this_elf+0x1/0x2`,
      ]
      const {traces, note} = await new TraceDecoder(elf).decode([lines])
      assert.equal(note, undefined)
      const at = (mark: string) => `(trace.c:${lineOf(mark)})`
      assert.deepEqual(traces[0].lines, [
        `${lines[0]} ${at('SINK')}`,
        lines[1],
        `${lines[2]} ${at('HELPER-CALLS-SINK')}`,
        `${lines[3]} ${at('MIDDLE-CALLS-SINK')}`,
        `${lines[4]} ${at('MIDDLE-CALLS-HELPER')}`,
        `${lines[5]} ${at('MIDDLE-CALLS-SINK-AGAIN')}`,
        `${lines[6]} ${at('MAIN-CALLS-MIDDLE')}`,
        `${lines[7]} (module nd_pmem: not decoded)`,
        `${lines[8]} (not in vmlinux)`,
      ])
      assert.deepEqual({frames: traces[0].frames, decoded: traces[0].decoded}, {frames: 8, decoded: 6})
    })
  })

  test('-O2: a call inside an inlined function names both, the inlined one above; two traces, one addr2line run', async () => {
    await withFixture(async (dir) => {
      const elf = await compile(dir, 'trace.c', ['-g', '-O2'], 'vmlinux')
      const fns = await functions(elf)
      assert.equal(fns.has('helper'), false, 'helper is inlined at -O2')
      const calls = await callReturns(elf, 'middle')
      const lines = calls.map((offset) => frameLine(fns, 'middle', offset))
      // A stand-in addr2line that logs each run and hands on to the real one.
      const bin = join(dir, 'bin')
      await mkdir(bin)
      const log = join(dir, 'addr2line.log')
      const real = (await execa('sh', ['-c', 'command -v addr2line'])).stdout
      await writeFile(join(bin, 'addr2line'), `#!/bin/sh\necho run >> '${log}'\nexec '${real}' "$@"\n`)
      await chmod(join(bin, 'addr2line'), 0o755)
      const {traces} = await withEnv({PATH: `${bin}:${process.env.PATH}`}, () => new TraceDecoder(elf, [dir]).decode([lines, lines.slice(0, 1)]))
      assert.equal((await readFile(log, 'utf8')).trim(), 'run')
      const inlinedAt = traces[0].lines.findIndex((l) => l.endsWith(' inlined'))
      assert.ok(inlinedAt >= 0, traces[0].lines.join('\n'))
      assert.deepEqual(traces[0].lines.slice(inlinedAt, inlinedAt + 2), [`${STAMP}  helper (trace.c:${lineOf('HELPER-CALLS-SINK')}) inlined`, `${lines[inlinedAt]} (trace.c:${lineOf('MIDDLE-CALLS-HELPER')})`])
      assert.equal(traces[0].lines[0], `${lines[0]} (trace.c:${lineOf('MIDDLE-CALLS-SINK')})`)
      assert.deepEqual(traces[1].lines, [traces[0].lines[0]])
    })
  })

  test('an ELF without debug info: one note, the frames as printed, a module frame still named', async () => {
    await withFixture(async (dir) => {
      const elf = await compile(dir, 'trace.c', ['-O1', '-fno-inline'], 'vmlinux')
      const fns = await functions(elf)
      const lines = [...(await callReturns(elf, 'middle')).map((offset) => frameLine(fns, 'middle', offset)), `${STAMP}  nd_pmem_probe+0x4c/0x90 [nd_pmem]`]
      const {traces, note} = await new TraceDecoder(elf).decode([lines])
      assert.equal(note, 'no debug info in vmlinux')
      assert.deepEqual(traces[0].lines, [...lines.slice(0, -1), `${lines.at(-1)} (module nd_pmem: not decoded)`])
      assert.equal(traces[0].decoded, 0)
    })
  })

  test('without nm or addr2line: exit 3 naming binutils; text without frames needs neither', async () => {
    await withDir(
      async ({path}) => {
        await withEnv({PATH: path}, async () => {
          await assert.rejects(symbolTools(), (error: unknown) => error instanceof PmemlabError && error.exitCode === ExitCode.missingDependency && /^nm not found: install it with: apt-get install binutils$/.test(error.oneLine()))
          const {traces} = await new TraceDecoder('/nonexistent/vmlinux').decode([['[    1.0] no trace here']])
          assert.deepEqual(traces, [{lines: ['[    1.0] no trace here'], frames: 0, decoded: 0}])
        })
      },
      {unsafeCleanup: true, prefix: 'pmemlab-stacktrace-path-'},
    )
  })
})

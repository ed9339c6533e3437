import assert from 'node:assert/strict'
import {copyFile, mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {keepsVmlinux} from '../../src/kernel/build.js'
import {bundleFileList} from '../../src/repro/bundle-files.js'
import {runFiles, runRecord} from '../../src/repro/document.js'
import {parseRepro} from '../../src/repro/schema.js'
import {decodedTraceText, decodeRun, traceDecoder} from '../../src/repro/trace.js'
import {judgeRun, type RunFacts} from '../../src/repro/verdict.js'
import {callReturns, compile, functions, lineOf, STAMP, withFixture, type Fn} from '../helpers/elf.js'

const expect = parseRepro('version: 1\nrun: ./trigger\nexpect: {must: [warning]}\n', 'bug.yaml').expect

/** A WARNING splat whose frames are the fixture's functions, its trace longer than the 12 lines the detector keeps. */
function warningConsole(fns: Map<string, Fn>, returns: {helper: number; middle: number[]; main: number}): string {
  const hex = (n: number) => `0x${n.toString(16)}`
  const frame = (name: string, offset: number, lead = '') => `${STAMP}  ${lead}${name}+${hex(offset)}/${hex(fns.get(name)!.size)}`
  return [
    `${STAMP} <5>pmemlab-repro: start`,
    `${STAMP} ------------[ cut here ]------------`,
    `${STAMP} WARNING: CPU: 0 PID: 7 at trace.c:3 sink+0x0/${hex(fns.get('sink')!.size)}`,
    `${STAMP} Modules linked in: nd_pmem`,
    `${STAMP} CPU: 0 PID: 7 Comm: trigger Not tainted 6.12.0 #1`,
    `${STAMP} RIP: 0010:sink+0x0/${hex(fns.get('sink')!.size)}`,
    `${STAMP} RSP: 0018:ffffc90000013e58 EFLAGS: 00010246`,
    `${STAMP} Call Trace:`,
    `${STAMP}  <TASK>`,
    frame('helper', returns.helper),
    ...returns.middle.map((offset) => frame('middle', offset)),
    `${STAMP}  nd_pmem_probe+0x4c/0x90 [nd_pmem]`,
    frame('main', returns.main, '? '),
    `${STAMP}  </TASK>`,
    `${STAMP} ---[ end trace 0000000000000000 ]---`,
    '',
  ].join('\n')
}

/** OUTPUT/kernel/ as a series with --with-vmlinux leaves it: the fixture ELF as vmlinux, built in TREE, and build.json when given. */
async function outputWith(dir: string, build?: object): Promise<{output: string; fns: Map<string, Fn>; console: string}> {
  const tree = join(dir, 'linux')
  await mkdir(tree)
  await copyFile(join(dir, 'trace.c'), join(tree, 'trace.c'))
  const elf = await compile(tree, 'trace.c', ['-g', '-O1', '-fno-inline'], 'vmlinux')
  const output = join(dir, 'out')
  await mkdir(join(output, 'kernel'), {recursive: true})
  await copyFile(elf, join(output, 'kernel', 'vmlinux'))
  if (build) await writeFile(join(output, 'kernel', 'build.json'), JSON.stringify(build))
  const fns = await functions(elf)
  const [helper] = await callReturns(elf, 'helper')
  const [main] = await callReturns(elf, 'main')
  return {output, fns, console: warningConsole(fns, {helper, middle: await callReturns(elf, 'middle'), main})}
}

describe('a run\'s traces decoded with --with-vmlinux', () => {
  test('the excerpt the record shows is decoded, and decoded-trace.txt holds the whole report', async () => {
    await withFixture(async (dir) => {
      const {output, fns, console} = await outputWith(dir, {source: {kind: 'tree', dir: join(dir, 'linux'), commit: 'a'.repeat(40), dirty: null}})
      const facts: RunFacts = {exit: 0, timedOut: false, console}
      const verdict = judgeRun(expect, facts)
      assert.equal(verdict.outcome, 'reproduced')
      const trace = await decodeRun(await traceDecoder(output), 1, console, verdict.excerpt)
      assert.ok(trace)
      const at = (mark: string) => `(trace.c:${lineOf(mark)})`
      // The detector keeps a report's first 12 lines: the RIP and the first frames.
      assert.deepEqual(trace.excerpt.slice(3), [
        `${STAMP} RIP: 0010:sink+0x0/0x${fns.get('sink')!.size.toString(16)} ${at('SINK')}`,
        `${STAMP} RSP: 0018:ffffc90000013e58 EFLAGS: 00010246`,
        `${STAMP} Call Trace:`,
        `${STAMP}  <TASK>`,
        `${verdict.excerpt[7]} ${at('HELPER-CALLS-SINK')}`,
        `${verdict.excerpt[8]} ${at('MIDDLE-CALLS-SINK')}`,
        `${verdict.excerpt[9]} ${at('MIDDLE-CALLS-HELPER')}`,
        `${verdict.excerpt[10]} ${at('MIDDLE-CALLS-SINK-AGAIN')}`,
        `${verdict.excerpt[11]} (module nd_pmem: not decoded)`,
      ])
      assert.deepEqual(trace.summary, {vmlinux: 'kernel/vmlinux', frames: 6, decoded: 5})
      const file = trace.file!.split('\n')
      assert.equal(file[0], '# run 1: the failing kernel reports, decoded with kernel/vmlinux (6 of 7 frames placed)')
      assert.equal(file[1], `${STAMP} ------------[ cut here ]------------`)
      assert.ok(file.some((l) => l.startsWith(`${STAMP}  ? main+`) && l.endsWith(at('MAIN-CALLS-MIDDLE'))), trace.file)
      assert.equal(file.at(-2), `${STAMP} ---[ end trace 0000000000000000 ]---`)

      const record = runRecord({run: 1, facts, verdict, startedAt: 't', durationMs: 5, files: {record: runFiles(1).record, decodedTrace: runFiles(1).decodedTrace}, trace})
      assert.deepEqual(record.excerpt, trace.excerpt)
      assert.deepEqual(record.trace, {vmlinux: 'kernel/vmlinux', frames: 6, decoded: 5})
      assert.equal(record.files.decodedTrace, 'runs/1/decoded-trace.txt')
    })
  })

  test('without build.json the place keeps the absolute path of a tree outside pmemlab\'s cache', async () => {
    await withFixture(async (dir) => {
      const {output, console} = await outputWith(dir)
      const rip = console.split('\n')[5]
      assert.match(rip, /RIP: 0010:sink\+0x0\//)
      const trace = await decodeRun(await traceDecoder(output), 2, console, [rip])
      assert.deepEqual(trace?.excerpt, [`${rip} (${join(dir, 'linux', 'trace.c')}:${lineOf('SINK')})`])
    })
  })

  test('a console without a kernel frame gives no decoding and no file', async () => {
    await withFixture(async (dir) => {
      const {output} = await outputWith(dir)
      const console = `${STAMP} pmemlab-repro: quiet run\n`
      assert.equal(await decodeRun(await traceDecoder(output), 1, console, [console.trim()]), undefined)
    })
  })

  test('decoded-trace.txt says "no debug info in vmlinux" once, on its second line', () => {
    assert.equal(decodedTraceText(2, {lines: [' sink+0x0/0x7'], frames: 1, decoded: 0}, 'no debug info in vmlinux'), '# run 2: the failing kernel reports, decoded with kernel/vmlinux (0 of 1 frames placed)\n# no debug info in vmlinux\n sink+0x0/0x7\n')
  })

  test('the bundle carries decoded-trace.txt and the vmlinux', () => {
    assert.deepEqual(bundleFileList(['kernel/vmlinux', 'runs/1/run.json', 'runs/1/decoded-trace.txt', 'bundle.tar.gz']), ['kernel/vmlinux', 'runs/1/decoded-trace.txt', 'runs/1/run.json'])
  })
})

describe('which kernel builds keep their vmlinux', () => {
  test('a debug build, and any build whose final .config has debug info', () => {
    assert.equal(keepsVmlinux(true, '# CONFIG_DEBUG_INFO is not set\n'), true)
    assert.equal(keepsVmlinux(false, 'CONFIG_DEBUG_INFO_DWARF5=y\nCONFIG_DEBUG_INFO=y\n'), true)
    assert.equal(keepsVmlinux(false, '# CONFIG_DEBUG_INFO is not set\nCONFIG_DEBUG_INFO_NONE=y\n'), false)
    assert.equal(keepsVmlinux(false, ''), false)
  })
})

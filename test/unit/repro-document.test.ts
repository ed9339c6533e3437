import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {progressLine, reproDocument, reproJUnit, resultLine, runFiles, runRecord, type RunRecord, type SeriesInput} from '../../src/repro/document.js'
import {parseRepro} from '../../src/repro/schema.js'
import {judgeRun, type Outcome, type RunFacts} from '../../src/repro/verdict.js'
import {decodeXml} from '../helpers/xml.js'

const expect = parseRepro('version: 1\nrun: ./trigger\nexpect: {must: [warning], exit: 0}\n', 'bug.yaml').expect
const WARNING = '[   41.000001] WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40'

/** A run's record made the way the runner makes it: facts, judged. */
function recordOf(run: number, facts: RunFacts): RunRecord {
  return runRecord({run, facts, verdict: judgeRun(expect, facts), startedAt: `2025-01-01T00:00:0${run}.000Z`, durationMs: 1500 * run, files: {record: runFiles(run).record}})
}
const reproduced = (run: number) => recordOf(run, {exit: 0, timedOut: false, console: WARNING})
const notReproduced = (run: number) => recordOf(run, {exit: 0, timedOut: false, console: '[ 1.0] quiet'})
const broken = (run: number) => recordOf(run, {timedOut: false, console: '', labError: 'the lab could not start: QEMU exited'})
const hung = (run: number) => recordOf(run, {timedOut: true, console: ''})

const series = (runs: RunRecord[], over: Partial<SeriesInput> = {}) =>
  reproDocument({file: 'bugs/bug.yaml', policy: {runs: 10, untilReproduced: false}, runs, startedAt: '2025-01-01T00:00:00.000Z', durationMs: 60_000, ...over})

describe('a run\'s record', () => {
  test('its files live under runs/N/', () => {
    assert.deepEqual(runFiles(3), {dir: 'runs/3', record: 'runs/3/run.json', console: 'runs/3/console.log', stdout: 'runs/3/script.out', stderr: 'runs/3/script.err', decodedTrace: 'runs/3/decoded-trace.txt'})
  })

  test('keeps the verdict, the facts that matter and the lab', () => {
    const lab = {vm: 'repro-ab12cd-1', accel: 'kvm', qemuArgv: ['qemu-system-x86_64', '-m', '1G'], kernelCmdline: 'console=ttyS0'}
    const facts: RunFacts = {exit: 0, timedOut: false, console: WARNING}
    const record = runRecord({run: 1, facts, verdict: judgeRun(expect, facts), startedAt: 't', durationMs: 5, lab, files: {record: 'runs/1/run.json'}})
    assert.deepEqual(record, {
      run: 1,
      outcome: 'reproduced',
      reason: 'warning: WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40; the script exited 0',
      excerpt: [WARNING],
      startedAt: 't',
      durationMs: 5,
      exit: 0,
      timedOut: false,
      lab,
      files: {record: 'runs/1/run.json'},
    })
    assert.deepEqual([hung(2).timedOut, hung(2).outcome, 'exit' in hung(2)], [true, 'error', false])
    assert.equal(broken(3).labError, 'the lab could not start: QEMU exited')
  })

  test('its progress line', () => {
    assert.equal(progressLine(reproduced(2), 10), 'run 2/10: reproduced: warning: WARNING: CPU: 1 PID: 345 at fs/dax.c:1234 dax_insert_entry+0x2a/0x40; the script exited 0')
    assert.equal(progressLine(notReproduced(1), 3), 'run 1/3: not reproduced: no warning on the console (the script exited 0)')
  })
})

describe('the series\' document', () => {
  test('reproduced in some runs: the rate, exit 1, every run kept', () => {
    const doc = series([notReproduced(1), reproduced(2), notReproduced(3)], {policy: {runs: 3, untilReproduced: false}})
    assert.deepEqual(
      {outcome: doc.outcome, rate: doc.rate, exitCode: doc.exitCode, runs: doc.runs, reproduced: doc.reproduced, errors: doc.errors, stopped: doc.stopped},
      {outcome: 'reproduced', rate: 'reproduced 1/3', exitCode: 1, runs: 3, reproduced: 1, errors: 0, stopped: 'done'},
    )
    assert.deepEqual(doc.results.map((r) => r.outcome), ['not reproduced', 'reproduced', 'not reproduced'])
    assert.equal(doc.format, 'pmemlab-repro')
    assert.equal(doc.copy, 'reproducer.yaml')
    assert.equal(resultLine(doc), 'reproduced 1/3')
  })

  test('not reproduced in any run: exit 0', () => {
    const doc = series([notReproduced(1), notReproduced(2)], {policy: {runs: 2, untilReproduced: false}})
    assert.deepEqual([doc.outcome, doc.rate, doc.exitCode, doc.stopped], ['not reproduced', 'not reproduced 0/2', 0, 'done'])
  })

  test('an error among runs that did not reproduce: no verdict, exit 125', () => {
    const doc = series([notReproduced(1), hung(2)], {policy: {runs: 2, untilReproduced: false}})
    assert.deepEqual([doc.outcome, doc.exitCode, doc.errors], ['error', 125, 1])
    assert.equal(doc.rate, 'error 0/2 (1 error)')
  })

  test('why the runs stopped: the first reproduction, three errors in a row, an interrupt, a setup that failed', () => {
    assert.equal(series([notReproduced(1), reproduced(2)], {policy: {runs: 20, untilReproduced: true}}).stopped, 'reproduced')
    const errors = series([broken(1), broken(2), broken(3)])
    assert.deepEqual([errors.stopped, errors.exitCode, errors.rate], ['errors', 125, 'error 0/3 (3 errors; stopped after 3 errors in a row, of up to 10 runs)'])
    const interrupted = series([reproduced(1)], {interrupted: true})
    assert.deepEqual([interrupted.stopped, interrupted.exitCode, interrupted.outcome], ['interrupted', 130, 'reproduced'])
    assert.equal(resultLine(interrupted), 'interrupted after 1 run: reproduced 1/1')
    assert.equal(series([notReproduced(1)], {running: true}).stopped, 'running', 'the document written after each run')
    assert.equal(series([broken(1), broken(2), broken(3)], {running: true}).stopped, 'errors')
    const setup = series([], {setupError: 'make failed: the make output is in /c/build/failed-x.log'})
    assert.deepEqual([setup.stopped, setup.exitCode, setup.outcome, setup.runs], ['setup', 125, 'error', 0])
    assert.equal(resultLine(setup), 'error 0/0: make failed: the make output is in /c/build/failed-x.log')
  })

  test('keeps the kernel and image it booted', () => {
    const kernel = {asked: 'latest', spec: 'abcdef', from: 'flag' as const, version: '6.12.3'}
    const doc = series([notReproduced(1)], {kernel, image: {name: 'debian-12', hash: 'f00'}})
    assert.deepEqual([doc.kernel, doc.image], [kernel, {name: 'debian-12', hash: 'f00'}])
    assert.ok(!('kernel' in series([])))
  })
})

describe('the series as JUnit', () => {
  const cases = (xml: string) =>
    [...xml.matchAll(/<testcase name="([^"]*)" classname="([^"]*)" time="([\d.]+)"(?:\/>|>([\s\S]*?)<\/testcase>)/g)].map((m) => {
      const child = /<(failure|error)(?: message="([^"]*)")?(?: type="([^"]*)")?/.exec(m[4] ?? '')
      return {name: m[1], classname: m[2], time: m[3], outcome: (child?.[1] ?? 'pass') as string, message: child?.[2] && decodeXml(child[2]), type: child?.[3]}
    })

  test('one test case per run: a reproduction fails, no verdict is an error, no reproduction passes', () => {
    const doc = series([notReproduced(1), reproduced(2), broken(3)], {kernel: {asked: 'distro', spec: 'distro', from: 'default', version: '6.1.0-30-amd64'}})
    const xml = reproJUnit(doc)
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="pmemlab repro"/)
    assert.match(xml, /<testsuite name="bug" /)
    assert.match(xml, /<property name="rate" value="reproduced 1\/3 \(1 error\)"\/>/)
    assert.match(xml, /<property name="kernel-version" value="6.1.0-30-amd64"\/>/)
    assert.deepEqual(cases(xml), [
      {name: 'run 1', classname: 'repro.bug', time: '1.5', outcome: 'pass', message: undefined, type: undefined},
      {name: 'run 2', classname: 'repro.bug', time: '3', outcome: 'failure', message: reproduced(2).reason, type: 'reproduced'},
      {name: 'run 3', classname: 'repro.bug', time: '4.5', outcome: 'error', message: 'the lab broke: the lab could not start: QEMU exited', type: 'no verdict'},
    ])
    assert.ok(xml.includes(WARNING), 'the excerpt of the reproduction')
  })

  test('a series without runs has no test case, and says why', () => {
    const xml = reproJUnit(series([], {setupError: 'the image could not be built'}))
    assert.deepEqual(cases(xml), [])
    assert.match(xml, /<property name="reason" value="the image could not be built"\/>/)
  })

  test('every outcome maps to one JUnit status', () => {
    const outcomes: Outcome[] = ['reproduced', 'not reproduced', 'error']
    const doc = series([reproduced(1), notReproduced(2), broken(3)])
    assert.deepEqual(cases(reproJUnit(doc)).map((c) => c.outcome), ['failure', 'pass', 'error'])
    assert.deepEqual(doc.results.map((r) => r.outcome), outcomes)
  })
})

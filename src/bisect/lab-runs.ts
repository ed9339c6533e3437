/**
 * The runs of a bisect step without a reproducer file: the command after `--` (`up -- COMMAND`
 * style), or a boot (--type boot), each in a fresh VM of the lab the flags describe, booting the
 * commit's kernel by its key, judged by run-verdict.ts (judgeCommandRun, judgeBoot). The VM goes
 * through the suite's TestRun like a reproducer's runs (the lab session, the console watch, the
 * command under timeout(1), a death named by the lab).
 *
 * STEP/runs/N/ keeps each run's run.json (outcome, reason, excerpt), console.log, and for a
 * command its stdout and stderr.
 */
import {randomBytes} from 'node:crypto'
import {copyFile, mkdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {writeFileAtomic} from '../core/cache.js'
import {PmemlabError} from '../core/errors.js'
import {log} from '../core/log.js'
import {resolveImage} from '../image/resolve.js'
import {VmDeathError} from '../lab/deaths.js'
import {planVm, type LabRequest} from '../lab/vm.js'
import {bootFailed, scriptFacts} from '../repro/facts.js'
import {BOOT_FAILURES, NOT_A_VERDICT} from '../repro/run.js'
import type {Outcome, RunVerdict} from '../repro/verdict.js'
import {TestRun} from '../suite/testrun.js'
import type {BisectInterrupt} from './interrupt.js'
import {judgeBoot, judgeCommandRun} from './run-verdict.js'
import type {BisectLab} from './state.js'
import type {RunOutcome, TestOutcome} from './step.js'

/** Lines of a run's excerpt shown under its progress line; run.json keeps them all. */
const EXCERPT_LINES = 8

/** The lab request of LAB, booting KERNEL. */
export function labRequestOf(lab: BisectLab, kernel: string): LabRequest {
  return {
    kernel,
    image: lab.image,
    topology: {machine: lab.machine, mem: lab.mem, memmap: lab.memmap, nvdimm: lab.nvdimm, virtioPmem: lab.virtioPmem},
    cpus: lab.cpus,
    accel: lab.accel,
    append: lab.append,
    bootTimeoutMs: lab.bootTimeoutSec * 1000,
    force: lab.force,
  }
}

export interface LabSeries {
  lab: BisectLab
  kernel: string
  run: {kind: 'command'; argv: string[]; timeoutSec: number} | {kind: 'boot'}
  /** The step's directory. */
  output: string
  again: (outcomes: readonly Outcome[]) => boolean
  interrupt?: BisectInterrupt
}

/** The step's runs: see the top of this file. */
export async function runLabSeries(series: LabSeries): Promise<TestOutcome> {
  const request = labRequestOf(series.lab, series.kernel)
  try {
    // The image (built on first use) and everything but the boot, once: a lab that cannot start skips the step.
    if (series.interrupt) await series.interrupt.withAbort((signal) => resolveImage(request.image, {build: true, signal}))
    else await resolveImage(request.image, {build: true})
    await planVm({...request, mode: 'command'}, {dryRun: true})
  } catch (error) {
    if (!(error instanceof PmemlabError) || NOT_A_VERDICT.has(error.exitCode)) throw error
    return {labError: error.oneLine(), runs: []}
  }
  await rm(join(series.output, 'runs'), {recursive: true, force: true})
  const token = randomBytes(3).toString('hex')
  const runs: RunOutcome[] = []
  while (series.again(runs.map((r) => r.outcome))) {
    series.interrupt?.check()
    runs.push(await oneRun(series, request, runs.length + 1, token))
  }
  return {runs}
}

async function oneRun(series: LabSeries, request: LabRequest, n: number, token: string): Promise<RunOutcome> {
  const dir = join(series.output, 'runs', String(n))
  await mkdir(dir, {recursive: true})
  const consoleLog = join(dir, 'console.log')
  const started = Date.now()
  const timeoutSec = series.run.kind === 'command' ? series.run.timeoutSec : 60
  const testRun = new TestRun({...request, filesystems: [], suites: [], filters: [], timeoutSec, keep: false, rawNamespaces: false, consoleLog, findingsAre: 'evidence'}, [])
  let verdict: RunVerdict
  try {
    verdict = await judged(series, testRun, n, token, dir)
  } finally {
    const stop = async () => {
      await testRun.finish().catch(() => undefined)
      await testRun.session?.stop(testRun.lost ? 5000 : 20_000).catch(() => undefined)
    }
    await (series.interrupt ? series.interrupt.shield(stop) : stop())
  }
  series.interrupt?.check()
  const durationMs = Date.now() - started
  await writeFileAtomic(join(dir, 'run.json'), `${JSON.stringify({run: n, ...verdict, durationMs}, null, 2)}\n`)
  log.info(`  run ${n}: ${verdict.outcome}: ${verdict.reason}`)
  if (verdict.outcome !== 'not reproduced') for (const line of verdict.excerpt.slice(0, EXCERPT_LINES)) process.stderr.write(`    | ${line}\n`)
  return {outcome: verdict.outcome, reason: verdict.reason, durationMs}
}

/** Boots, runs the command (or only boots), and judges. */
async function judged(series: LabSeries, testRun: TestRun, n: number, token: string, dir: string): Promise<RunVerdict> {
  try {
    await testRun.boot(`bisect-${token}-${n}`)
  } catch (error) {
    if (!(error instanceof PmemlabError) || !BOOT_FAILURES.has(error.exitCode) || series.interrupt?.signal) throw error
    // The VM's directory went with the failed boot; the lab kept its console log elsewhere.
    const kept = /console log kept in (\S+)$/.exec(error.hint ?? '')?.[1]
    const console = kept ? await readFile(kept, 'utf8').catch(() => '') : ''
    if (kept) await copyFile(kept, join(dir, 'console.log')).catch(() => undefined)
    // A kernel that died while booting is what --type boot looks for; under a command it is some other bug (an error run).
    if (series.run.kind === 'boot') return judgeBoot(error instanceof VmDeathError ? {end: error.end, console} : {labError: error.oneLine(), console})
    return judgeCommandRun(bootFailed(error.oneLine()))
  }
  const session = testRun.session!
  if (series.run.kind === 'boot') return judgeBoot({console: await readFile(session.record.consoleLog, 'utf8').catch(() => '')})
  const from = (await stat(session.record.consoleLog).catch(() => undefined))?.size ?? 0
  testRun.current = 'the command'
  const step = await testRun.guest(series.run.argv, {timeoutSec: series.run.timeoutSec, live: false})
  await writeFile(join(dir, 'stdout'), step.stdout)
  await writeFile(join(dir, 'stderr'), step.stderr)
  const consoleText = (await readFile(session.record.consoleLog).catch(() => Buffer.alloc(0))).subarray(from).toString('utf8')
  const death = testRun.death instanceof VmDeathError ? testRun.death.end : undefined
  return judgeCommandRun(scriptFacts(step, death, consoleText))
}

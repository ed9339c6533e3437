/**
 * One attempt at a cell: `pmemlab test` with the cell's kernel, topology, filesystem and suite,
 * its JSON report on stdout, JUnit and the console log in files. Pure: the command line, and what
 * the child's exit status and report say as an AttemptFact (state.ts decides the cell from those).
 */
import {ExitCode} from '../core/errors.js'
import type {ConsoleFinding, RunReport, SuiteResult} from '../suite/results.js'
import type {Cell} from './cells.js'
import {bootFailureIsKernels, childError, topologyFlags} from './gate.js'
import {ranAttempt} from './results.js'
import {planPath, type MatrixPlan} from './schema.js'
import type {AttemptFact} from './state.js'
import {isNamedSuite} from '../suite/names.js'

/** The files of one attempt, relative to the cell's directory. */
export const attemptFiles = (n: number) => ({
  dir: `attempt-${n}`,
  results: `attempt-${n}/results.json`,
  junit: `attempt-${n}/junit.xml`,
  console: `attempt-${n}/console.log`,
  log: `attempt-${n}/pmemlab.log`,
})

/**
 * The `pmemlab test` arguments that decide a cell: what its record keeps, to rerun it by hand.
 * Given the cells of a shared boot (one kernel, topology and suite: share.ts), the one run of them all.
 */
export function cellCommand(plan: Pick<MatrixPlan, 'baseDir'>, cells: readonly Cell[], kernelSpec: string, image: string): string[] {
  const [cell] = cells
  const suite = isNamedSuite(cell.suite.source) ? cell.suite.source : planPath(plan, cell.suite.source)
  return ['test', '--kernel', kernelSpec, '--image', image, ...topologyFlags(cell.topology), '--fs', cells.map((c) => c.filesystem).join(','), '--suite', suite]
}

/** The cell's command as the matrix runs it: its report as JSON, JUnit and the console log in FILES (absolute). */
export function testArgs(command: readonly string[], files: {junit: string; console: string}): string[] {
  return [...command, '--json', '--junit', files.junit, '--console-log', files.console]
}

/** The part of `pmemlab test --json` a cell uses. */
export type TestReport = Pick<RunReport, 'suites' | 'findings' | 'durationMs'> & {exitCode: number; error?: string; errorDetails?: string[]}

/** The report a `pmemlab test --json` printed, or undefined when stdout holds none (it failed before running). */
export function parseTestReport(stdout: string): TestReport | undefined {
  let data: unknown
  try {
    data = JSON.parse(stdout)
  } catch {
    return undefined
  }
  const report = data as Partial<TestReport> | null
  if (!report || !Array.isArray(report.suites) || !Array.isArray(report.findings) || typeof report.durationMs !== 'number' || typeof report.exitCode !== 'number') return undefined
  return {
    suites: report.suites as SuiteResult[],
    findings: report.findings as ConsoleFinding[],
    durationMs: report.durationMs,
    exitCode: report.exitCode,
    ...(typeof report.error === 'string' ? {error: report.error} : {}),
    ...(Array.isArray(report.errorDetails) ? {errorDetails: report.errorDetails as string[]} : {}),
  }
}

/**
 * What an attempt says, from the child's end (exit code as README's table), its report and its
 * stderr. Undefined when the matrix was interrupted: an unfinished attempt says nothing.
 */
export function attemptFact(
  child: {code: number | null; timedOut: boolean; interrupted: boolean; durationMs: number},
  report: TestReport | undefined,
  stderr: string,
  timeoutSec: number,
): AttemptFact | undefined {
  const durationMs = child.durationMs
  if (child.timedOut) return {outcome: 'timeout', afterSec: timeoutSec, durationMs}
  if (child.interrupted) return undefined
  const error = childError(stderr)
  const reason = report?.error ?? error.line ?? `pmemlab test ended ${child.code === null ? 'by a signal' : `with status ${child.code}`} without a report`
  const excerpt = report?.errorDetails ?? error.excerpt
  switch (child.code) {
    case ExitCode.ok:
    case ExitCode.failure:
      // Exit 1 without a report is pmemlab's own failure (an image that would not build...), not the kernel's.
      return report ? ranAttempt(report) : {outcome: 'error', reason, durationMs}
    case ExitCode.guestDied:
      return {outcome: 'died', reason, ...(excerpt.length > 0 ? {excerpt} : {}), durationMs}
    case ExitCode.bootFailed:
      return bootFailureIsKernels(reason) ? {outcome: 'died', atBoot: true, reason, ...(excerpt.length > 0 ? {excerpt} : {}), durationMs} : {outcome: 'error', reason, durationMs}
    default:
      // 8 (QEMU died), 2 (the host cannot fit it), 3 (a tool is missing), 4, 5, a crash: the lab's.
      return {outcome: 'error', reason, durationMs}
  }
}

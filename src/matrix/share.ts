/**
 * Shared boots (`share_boots: true`): the cells of one kernel that differ only in filesystem run
 * in one `pmemlab test --fs A,B` boot, and its report is split back into one report per cell.
 * Pure: cells in, boot groups out; one report in, a report per filesystem out.
 *
 * What a shared boot changes, and so why it is opt-in: the tests that do not depend on the
 * filesystem (the device check, the control tests on the root file system, device DAX) run once
 * and count for every cell of the boot; the power-loss case runs once, on the boot's first
 * filesystem (as `pmemlab test --fs A,B` does), and counts for that filesystem's cell only.
 */
import {POWER_CUT} from '../suite/powerloss.js'
import {allTests, countResults, runFailed, type Filesystem} from '../suite/results.js'
import type {TestReport} from './attempt.js'
import type {Cell} from './cells.js'

/**
 * The cells in boot groups, in plan order: with SHARE, the cells of one topology and suite
 * (a kernel's cells, differing only in filesystem) make one group; without, each cell is its own.
 */
export function bootGroups(cells: readonly Cell[], share: boolean): Cell[][] {
  if (!share) return cells.map((cell) => [cell])
  const groups = new Map<string, Cell[]>()
  for (const cell of cells) {
    const key = JSON.stringify([cell.kernel.name, cell.topology.name, cell.suite.name])
    groups.set(key, [...(groups.get(key) ?? []), cell])
  }
  return [...groups.values()]
}

/**
 * Which of FILESYSTEMS a test or console finding belongs to, from its path (a test's group such
 * as "memmap0/xfs" or "power-loss/nvdimm0", or a finding's "during": a test's ID, "builtin/xfs:
 * prepare nvdimm0", "boot of NAME", "power cut"):
 * a path naming a filesystem is that filesystem's; the power-loss case ran on the first; anything
 * else (boot, devices, control tests, device DAX) belongs to all of them.
 */
export function ownersOf(path: string, filesystems: readonly Filesystem[]): readonly Filesystem[] {
  const words = path.split(/[/:\s]+/)
  const named = filesystems.find((fs) => words.includes(fs))
  if (named) return [named]
  if (words.includes('power-loss') || path === POWER_CUT) return filesystems.slice(0, 1)
  return filesystems
}

/** The report of a shared boot, one per filesystem: each with its own tests and findings, the rest as the boot's. */
export function splitReport(report: TestReport, filesystems: readonly Filesystem[]): Map<Filesystem, TestReport> {
  const split = new Map<Filesystem, TestReport>()
  for (const fs of filesystems) {
    const owns = (path: string) => ownersOf(path, filesystems).includes(fs)
    split.set(fs, {
      ...report,
      suites: report.suites.map((suite) => ({...suite, tests: suite.tests.filter((t) => owns(t.group))})),
      findings: report.findings.filter((f) => owns(f.during)),
    })
  }
  return split
}

/**
 * The results.json of one cell of a shared boot: the boot's report (WHOLE, as `pmemlab test
 * --json` printed it) with the cell's part of the tests and findings, its own ok, exit code and
 * counts, and the boot it shared.
 */
export function partDocument(whole: object, part: TestReport, filesystem: Filesystem, cells: readonly string[]): object {
  const ok = !runFailed(part)
  const exitCode = ok ? 0 : part.error === undefined ? 1 : part.exitCode
  return {...whole, ok, exitCode, summary: countResults(allTests(part)), suites: part.suites, findings: part.findings, sharedBoot: {filesystem, cells}}
}

/** The kernel release a console log's banner names ("Linux version 6.12.57+deb13-amd64 (...)"). */
export function consoleRelease(consoleLog: string): string | undefined {
  return /Linux version (\S+)/.exec(consoleLog)?.[1]
}

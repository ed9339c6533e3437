/**
 * What a matrix run leaves behind, and how cell results come together. Pure: data in, data out.
 *
 * Each cell writes one record (cell.json, CELL_RECORD) in its own directory, whether it ran in a
 * local `pmemlab matrix` or in one GitHub Actions job of many. mergeCells() turns any set of
 * records into the one matrix.json document: the same document whichever process or job
 * produced each record and in whatever order they are given. It refuses records of another
 * matrix file (by hash), a cell given twice, and a cell the plan does not have; a planned cell
 * with no record is an `error` ("no result"). The document holds no time of its own making.
 */
import {z} from 'zod'
import {usageError} from '../core/errors.js'
import {allTests, CONSOLE_CHECK, countResults, type RunReport} from '../suite/results.js'
import type {Cell} from './cells.js'
import {kernelLabel} from './kernels.js'
import type {MatrixPlan} from './schema.js'
import {CELL_STATES, type AttemptFact, type CellDecision, type CellState} from './state.js'

export const CELL_RECORD = 'cell.json'
export const CELL_FORMAT = 'pmemlab-matrix-cell'
export const MATRIX_DOCUMENT_FORMAT = 'pmemlab-matrix'
export const RESULTS_VERSION = 1

const cellTest = z.object({
  /** suite/group/name, as `pmemlab test` names it. */
  id: z.string(),
  suite: z.string(),
  group: z.string(),
  name: z.string(),
  status: z.enum(['pass', 'fail', 'skip', 'todo', 'timeout', 'error']),
  durationMs: z.number(),
  message: z.string().optional(),
  details: z.array(z.string()).optional(),
})

const plannedCell = z.object({id: z.string(), kernel: z.string(), topology: z.string(), filesystem: z.string(), suite: z.string()}).strict()

const attemptRecord = z.object({
  verdict: z.enum(['pass', 'fail', 'skip', 'error']),
  reason: z.string(),
  durationMs: z.number(),
  /** The `pmemlab` arguments that decide the attempt (its output flags left out), to rerun the cell by hand or time it alone. */
  command: z.array(z.string()).optional(),
  /** A boot shared with other cells (share_boots): every cell it ran, and the one command that ran them. */
  boot: z.object({cells: z.array(z.string()), command: z.array(z.string())}).strict().optional(),
})

const cellRecordShape = z
  .object({
    format: z.literal(CELL_FORMAT),
    version: z.literal(RESULTS_VERSION),
    /** The matrix it belongs to: its content hash, and every cell its plan runs (to name the ones with no result). */
    matrix: z.object({hash: z.string(), name: z.string().optional(), cells: z.array(plannedCell)}),
    id: z.string(),
    kernel: z.object({
      name: z.string(),
      label: z.string(),
      /** The version it resolved to (uname -r, or the build's), once known. */
      version: z.string().optional(),
      build: z.object({ok: z.boolean(), reason: z.string().optional(), durationMs: z.number().optional(), cacheHit: z.boolean().optional()}).optional(),
    }),
    topology: z.string(),
    filesystem: z.string(),
    suite: z.string(),
    state: z.enum(CELL_STATES),
    reason: z.string(),
    details: z.array(z.string()).optional(),
    decidedBy: z.object({phase: z.enum(['plan', 'build', 'gate', 'suite']), attempt: z.number().int().positive().optional()}),
    attempts: z.array(attemptRecord),
    startedAt: z.string().optional(),
    /** The cell's own time: its attempts (a kernel's build and gate are its kernel's). */
    durationMs: z.number(),
    /** The tests of the attempt that decided. */
    tests: z.array(cellTest),
    /** Files in the cell's directory: console log, results, the kernel's options report... by role. */
    artifacts: z.record(z.string()),
  })
  .strict()

export type CellTest = z.infer<typeof cellTest>
export type CellRecord = z.infer<typeof cellRecordShape>

// ---------------------------------------------------------------------------------------------
// One cell

/** The record of a finished cell. */
export function cellRecord(input: {
  plan: Pick<MatrixPlan, 'hash' | 'name'>
  /** Every cell the plan runs (expandCells().cells), for finding the ones with no result. */
  planned: readonly Cell[]
  cell: Cell
  decision: CellDecision
  kernelVersion?: string
  build?: NonNullable<CellRecord['kernel']['build']>
  attempts: CellRecord['attempts']
  startedAt?: string
  tests?: CellTest[]
  artifacts?: Record<string, string>
}): CellRecord {
  const {cell, decision} = input
  return {
    format: CELL_FORMAT,
    version: RESULTS_VERSION,
    matrix: {hash: input.plan.hash, ...(input.plan.name ? {name: input.plan.name} : {}), cells: input.planned.map(plannedOf)},
    id: cell.id,
    kernel: {
      name: cell.kernel.name,
      label: kernelLabel(cell.kernel),
      ...(input.kernelVersion ? {version: input.kernelVersion} : {}),
      ...(input.build ? {build: input.build} : {}),
    },
    topology: cell.topology.name,
    filesystem: cell.filesystem,
    suite: cell.suite.name,
    state: decision.state,
    reason: decision.reason,
    ...(decision.details ? {details: decision.details} : {}),
    decidedBy: decision.decidedBy,
    attempts: input.attempts.map((a) => ({...a, durationMs: Math.round(a.durationMs)})),
    ...(input.startedAt ? {startedAt: input.startedAt} : {}),
    durationMs: Math.round(input.attempts.reduce((sum, a) => sum + a.durationMs, 0)),
    tests: input.tests ?? [],
    artifacts: input.artifacts ?? {},
  }
}

/** The tests of a `pmemlab test` run, with the console check as one more test (as its JUnit has it). */
export function cellTests(report: Pick<RunReport, 'suites' | 'findings'>): CellTest[] {
  const tests: CellTest[] = allTests(report).map((t) => ({
    id: t.id,
    suite: t.suite,
    group: t.group,
    name: t.name,
    status: t.status,
    durationMs: Math.round(t.durationMs),
    ...(t.message ? {message: t.message} : {}),
    ...(t.details?.length ? {details: t.details} : {}),
  }))
  const fatal = report.findings.filter((f) => f.fails)
  tests.push({
    id: `kernel/console/${CONSOLE_CHECK}`,
    suite: 'kernel',
    group: 'console',
    name: CONSOLE_CHECK,
    status: fatal.length > 0 ? 'fail' : 'pass',
    durationMs: 0,
    ...(fatal.length > 0 ? {message: fatal.map((f) => `${f.kind} during ${f.during}: ${f.title}`).join('; '), details: fatal.flatMap((f) => f.lines)} : {}),
  })
  return tests
}

/** What a finished `pmemlab test` run says as one attempt of a cell (state.ts decides from it). */
export function ranAttempt(report: Pick<RunReport, 'suites' | 'findings' | 'durationMs'>): AttemptFact {
  const tests = allTests(report)
  const failing = tests.filter((t) => t.status === 'fail' || t.status === 'timeout' || t.status === 'error')
  const fatal = report.findings.filter((f) => f.fails)
  const skipped = tests.find((t) => t.status === 'skip' && t.message)
  return {
    outcome: 'ran',
    counts: countResults(tests),
    fatalFindings: fatal.length,
    failures: [...failing.map((t) => `${t.id}: ${t.message ?? t.status}`), ...fatal.map((f) => `${f.kind} during ${f.during}: ${f.title}`)],
    ...(skipped?.message ? {skipReason: skipped.message} : {}),
    durationMs: report.durationMs,
  }
}

/** A record read back from TEXT; SOURCE (its path) names it in the one-line error. */
export function parseCellRecord(text: string, source: string): CellRecord {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw usageError(`${source} is not JSON: ${(error as Error).message}`, 'pass the directories a matrix run wrote')
  }
  const head = data as {format?: unknown; version?: unknown} | null
  if (head?.format !== CELL_FORMAT) throw usageError(`${source} is not a pmemlab matrix cell result`, 'pass the directories a matrix run wrote')
  if (head.version !== RESULTS_VERSION) {
    throw usageError(`${source} is a cell result of format ${JSON.stringify(head.version)}; this pmemlab reads ${RESULTS_VERSION}`, 'merge with the pmemlab that ran the cells')
  }
  const parsed = cellRecordShape.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw usageError(`${source} is a damaged cell result: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, 'run the cell again')
  }
  return parsed.data
}

// ---------------------------------------------------------------------------------------------
// The matrix

export type Tally = Record<CellState, number> & {cells: number}

export interface MatrixDocument {
  format: typeof MATRIX_DOCUMENT_FORMAT
  version: typeof RESULTS_VERSION
  matrix: {hash: string; name?: string}
  /** No cell failed or errored. */
  ok: boolean
  summary: Tally
  /** Each kernel once: the versions its cells resolved it to (more than one is worth a look), its build. */
  kernels: Array<{name: string; label: string; versions: string[]; build?: NonNullable<CellRecord['kernel']['build']>}>
  /** In plan order, without their matrix field. */
  cells: Array<Omit<CellRecord, 'matrix'>>
}

const plannedOf = (cell: Cell): z.infer<typeof plannedCell> => ({
  id: cell.id,
  kernel: cell.kernel.name,
  topology: cell.topology.name,
  filesystem: cell.filesystem,
  suite: cell.suite.name,
})

export const NO_RESULT = 'no result: the cell did not finish (its job was cancelled or crashed, or the run was stopped)'

/** The record for a planned cell nobody reported: its job was cancelled or crashed, or the run stopped. */
function noResult(cell: z.infer<typeof plannedCell>): Omit<CellRecord, 'matrix'> {
  return {
    format: CELL_FORMAT,
    version: RESULTS_VERSION,
    id: cell.id,
    kernel: {name: cell.kernel, label: cell.kernel},
    topology: cell.topology,
    filesystem: cell.filesystem,
    suite: cell.suite,
    state: 'error',
    reason: NO_RESULT,
    decidedBy: {phase: 'suite'},
    attempts: [],
    durationMs: 0,
    tests: [],
    artifacts: {},
  }
}

/** One matrix.json from cell records, each with where it was read (SOURCE, for errors). */
export function mergeCells(inputs: ReadonlyArray<{source: string; record: CellRecord}>): MatrixDocument {
  if (inputs.length === 0) throw usageError('no cell results to merge', `pass the directories that hold the cells' ${CELL_RECORD} files`)
  // Sorted first, so that which input an error names does not depend on the order given.
  const sorted = [...inputs].sort((a, b) => cmp(a.record.id, b.record.id) || cmp(a.source, b.source))
  const reference = sorted[0]
  const planned = reference.record.matrix.cells
  const byId = new Map<string, {source: string; record: CellRecord}>()
  for (const input of sorted) {
    const {record, source} = input
    if (record.matrix.hash !== reference.record.matrix.hash) {
      throw usageError(
        `${source} is a cell of another matrix file (${short(record.matrix.hash)}, not ${short(reference.record.matrix.hash)} as ${reference.source})`,
        'merge the results of one matrix file only',
      )
    }
    if (canonical(record.matrix.cells) !== canonical(planned)) {
      throw usageError(`${source} plans other cells than ${reference.source} for the same matrix file`, 'merge results written by one pmemlab version')
    }
    if (!planned.some((c) => c.id === record.id)) throw usageError(`${source} is cell "${record.id}", which its matrix does not plan`, 'run the cell again')
    const earlier = byId.get(record.id)
    if (earlier) {
      const same = canonical(earlier.record) === canonical(record)
      throw usageError(`cell "${record.id}" is given twice: ${earlier.source} and ${source}${same ? '' : ', with different results'}`, 'pass each cell result once')
    }
    byId.set(record.id, input)
  }
  const cells = planned.map((plannedCell) => {
    const found = byId.get(plannedCell.id)?.record
    if (!found) return noResult(plannedCell)
    const {matrix: _matrix, ...rest} = found
    return rest
  })
  const summary = tally(cells.map((c) => c.state))
  return {
    format: MATRIX_DOCUMENT_FORMAT,
    version: RESULTS_VERSION,
    matrix: {hash: reference.record.matrix.hash, ...(reference.record.matrix.name ? {name: reference.record.matrix.name} : {})},
    ok: summary.fail === 0 && summary.error === 0,
    summary,
    kernels: kernelSummary(cells),
    cells,
  }
}

export function tally(states: readonly CellState[]): Tally {
  const counts = {cells: states.length, pass: 0, fail: 0, skip: 0, error: 0, flaky: 0}
  for (const state of states) counts[state]++
  return counts
}

function kernelSummary(cells: MatrixDocument['cells']): MatrixDocument['kernels'] {
  const kernels = new Map<string, MatrixDocument['kernels'][number]>()
  // Cells with no result know only their kernel's name: its label comes from a cell that reported.
  const reported = cells.filter((c) => !isNoResult(c))
  for (const cell of [...reported, ...cells.filter(isNoResult)]) {
    const entry = kernels.get(cell.kernel.name) ?? {name: cell.kernel.name, label: cell.kernel.label, versions: []}
    if (cell.kernel.version && !entry.versions.includes(cell.kernel.version)) entry.versions = [...entry.versions, cell.kernel.version].sort()
    // A failed build is the one to report; otherwise the first in plan order.
    if (cell.kernel.build && (!entry.build || (entry.build.ok && !cell.kernel.build.ok))) entry.build = cell.kernel.build
    kernels.set(cell.kernel.name, entry)
  }
  const order = [...new Set(cells.map((c) => c.kernel.name))]
  return order.map((name) => kernels.get(name)!)
}

const isNoResult = (cell: MatrixDocument['cells'][number]) => cell.reason === NO_RESULT

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
const short = (hash: string) => hash.slice(0, 12)

/** JSON with object keys sorted: equal data, equal text. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => cmp(a, b))) : v,
  )
}

/**
 * What a matrix writes, and reads back for `pmemlab matrix report`:
 *
 *   OUTPUT/cells/ID/cell.json        the cell's record (results.ts), written as the cell ends
 *   OUTPUT/cells/ID/junit.xml        the cell as JUnit
 *   OUTPUT/cells/ID/attempt-N/       each attempt: results.json and junit.xml (pmemlab test's),
 *                                    console.log, pmemlab.log (its stderr)
 *   OUTPUT/cells/ID/kernel/          the kernel's options report and .config (when built), the gate's logs
 *   OUTPUT/kernels/NAME/             the same kernel files, once per kernel
 *   OUTPUT/matrix.json               every cell merged (mergeCells), cells with no record marked
 *   OUTPUT/junit.xml                 the matrix as JUnit, one suite per cell
 *   OUTPUT/summary.md                the Markdown summary; appended to $GITHUB_STEP_SUMMARY when set
 */
import {appendFile, mkdir, readdir, readFile, stat} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {writeFileAtomic} from '../core/cache.js'
import {ExitCode, usageError} from '../core/errors.js'
import {renderTable} from '../core/table.js'
import {cellJUnit, countsLine, durationText, matrixJUnit, renderMarkdown} from './report.js'
import {CELL_RECORD, mergeCells, parseCellRecord, type CellRecord, type MatrixDocument, type Tally} from './results.js'

export const MATRIX_JSON = 'matrix.json'
export const MATRIX_JUNIT = 'junit.xml'
export const SUMMARY_MD = 'summary.md'
export const CELL_JUNIT = 'junit.xml'

export const cellDir = (output: string, id: string) => join(output, 'cells', id)
export const kernelDir = (output: string, name: string) => join(output, 'kernels', name)

/**
 * The exit status of a matrix: 1 when a cell failed (the kernel or a test did), else 8 when a cell
 * errored (the lab broke, or a cell has no result), else 0 (pass, flaky and skip all count as fine).
 */
export function matrixExitCode(summary: Pick<Tally, 'fail' | 'error'>): number {
  if (summary.fail > 0) return ExitCode.failure
  if (summary.error > 0) return ExitCode.qemuDied
  return ExitCode.ok
}

/** Writes a finished cell's record and JUnit into DIR (the record last: it marks the cell done). */
export async function writeCell(dir: string, record: CellRecord): Promise<void> {
  await mkdir(dir, {recursive: true})
  await writeFileAtomic(join(dir, CELL_JUNIT), cellJUnit(record))
  await writeFileAtomic(join(dir, CELL_RECORD), `${JSON.stringify(record, null, 2)}\n`)
}

/** Writes matrix.json, the matrix JUnit and summary.md into OUTPUT, and appends the summary to $GITHUB_STEP_SUMMARY. */
export async function writeMatrix(output: string, doc: MatrixDocument): Promise<string[]> {
  await mkdir(output, {recursive: true})
  const markdown = renderMarkdown(doc)
  const files = [join(output, MATRIX_JSON), join(output, MATRIX_JUNIT), join(output, SUMMARY_MD)]
  await writeFileAtomic(files[0], `${JSON.stringify(doc, null, 2)}\n`)
  await writeFileAtomic(files[1], matrixJUnit(doc))
  await writeFileAtomic(files[2], markdown)
  const stepSummary = process.env.GITHUB_STEP_SUMMARY
  if (stepSummary) await appendFile(stepSummary, markdown)
  return files
}

/** The merged document from the records of a run, each read from (or written to) its cell directory. */
export const mergeRecords = (output: string, records: readonly CellRecord[]) =>
  mergeCells(records.map((record) => ({source: join(cellDir(output, record.id), CELL_RECORD), record})))

/**
 * Every cell record under DIRS (cell directories, artifact downloads holding them at any depth up
 * to six levels), in a stable order; a usage error for a DIR that is not there or holds none.
 */
export async function readCellRecords(dirs: readonly string[]): Promise<Array<{source: string; record: CellRecord}>> {
  const found: Array<{source: string; record: CellRecord}> = []
  for (const dir of dirs) {
    const info = await stat(dir).catch(() => undefined)
    if (!info?.isDirectory()) throw usageError(`${dir} is not a directory`, 'pass the directories a matrix run or its CI jobs wrote')
    const files = await findRecords(dir, 6)
    if (files.length === 0) throw usageError(`${dir} holds no ${CELL_RECORD}`, 'pass the directories a matrix run or its CI jobs wrote (the cell directories, or where their artifacts were downloaded)')
    for (const file of files) found.push({source: file, record: parseCellRecord(await readFile(file, 'utf8'), file)})
  }
  return found
}

async function findRecords(dir: string, depth: number): Promise<string[]> {
  const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
  if (entries.some((e) => e.isFile() && e.name === CELL_RECORD)) return [join(dir, CELL_RECORD)]
  if (depth === 0) return []
  const nested: string[] = []
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) nested.push(...(await findRecords(join(dir, entry.name), depth - 1)))
  return nested
}

/** The cells for a terminal: cell, state, time, reason, then the counts. */
export function cellsTable(cells: ReadonlyArray<Pick<CellRecord, 'id' | 'state' | 'durationMs' | 'reason' | 'attempts'>>, summary?: MatrixDocument['summary']): string {
  const rows = cells.map((c) => [c.id, c.state, `${durationText(c.durationMs)}${c.attempts.length > 1 ? ` (${c.attempts.length} attempts)` : ''}`, c.reason.length > 100 ? `${c.reason.slice(0, 99)}…` : c.reason])
  return `${renderTable(['CELL', 'STATE', 'TIME', 'REASON'], rows)}${summary ? `\n${countsLine(summary)}\n` : ''}`
}

/** PATH relative to the directory a user ran pmemlab from, for messages. */
export const shown = (path: string) => relative(process.cwd(), path) || '.'

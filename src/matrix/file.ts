/**
 * A matrix file from disk, and its cells as `--list` shows them: a table for people, or with
 * --json the document GitHub Actions' strategy.matrix reads through fromJSON (list.ts), with
 * each kernel's cache key salted by the fragments it is built from (kernel.ts).
 */
import {readFile} from 'node:fs/promises'
import {usageError} from '../core/errors.js'
import {renderTable} from '../core/table.js'
import {expandCells, exclusionReason} from './cells.js'
import {cacheSalts} from './kernel.js'
import {listDocument, type ListEntry} from './list.js'
import {parseMatrix, type MatrixPlan} from './schema.js'

/** Reads and checks FILE (named in errors as given); a file that cannot be read is bad input (exit 2). */
export async function readMatrixFile(file: string): Promise<MatrixPlan> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw usageError(`cannot read matrix file ${file}: ${error.code ?? error.message}`, 'give the path of a matrix file, like examples/matrix.yaml')
  })
  return parseMatrix(text, file)
}

/** The cells of PLAN for strategy.matrix: {"include": [{cell, kernel, ..., cache_key}]}. */
export async function listCells(plan: MatrixPlan): Promise<{include: ListEntry[]}> {
  const salts = await cacheSalts(plan)
  return listDocument(expandCells(plan).cells, (kernel) => salts.get(kernel.name) ?? '')
}

/** The cells as a table, then the ones the rules leave out, each with its rule. */
export function listText(plan: MatrixPlan, list: {include: ListEntry[]}): string {
  const rows = list.include.map((e) => [e.cell, e.kernel_label, e.topology, e.filesystem, e.suite, e.cache_key])
  let text = renderTable(['CELL', 'KERNEL', 'TOPOLOGY', 'FS', 'SUITE', 'CACHE KEY'], rows)
  for (const out of expandCells(plan).excluded) text += `excluded: ${out.id}: ${exclusionReason(out.rule)}\n`
  return text
}

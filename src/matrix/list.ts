/**
 * `pmemlab matrix FILE --list --json`: the cells as GitHub Actions' strategy.matrix reads them
 * through fromJSON, {"include": [{cell, kernel, ...}]}, one job per cell. Pure.
 */
import {createHash} from 'node:crypto'
import {usageError} from '../core/errors.js'
import type {Cell} from './cells.js'
import {kernelLabel, type MatrixKernel} from './kernels.js'
import {canonical} from './results.js'

/** GitHub Actions runs at most this many jobs from one matrix. */
export const GITHUB_MATRIX_LIMIT = 256

export interface ListEntry {
  cell: string
  kernel: string
  kernel_label: string
  topology: string
  filesystem: string
  suite: string
  /** For actions/cache: equal for every cell of one kernel, different when its spec changes. */
  cache_key: string
}

/**
 * {"include": [...]}, one entry per cell in plan order. SALT adds what the spec alone does not
 * show (the digest of kernel-configs/ and of the user's fragments, for kernels pmemlab builds).
 */
export function listDocument(cells: readonly Cell[], salt: (kernel: MatrixKernel) => string = () => ''): {include: ListEntry[]} {
  if (cells.length > GITHUB_MATRIX_LIMIT) {
    throw usageError(`the matrix has ${cells.length} cells; GitHub Actions runs at most ${GITHUB_MATRIX_LIMIT} jobs from one matrix`, 'exclude some cells, or split the file')
  }
  return {
    include: cells.map((cell) => ({
      cell: cell.id,
      kernel: cell.kernel.name,
      kernel_label: kernelLabel(cell.kernel),
      topology: cell.topology.name,
      filesystem: cell.filesystem,
      suite: cell.suite.name,
      cache_key: kernelCacheKey(cell.kernel, salt(cell.kernel)),
    })),
  }
}

/** pmemlab-kernel-NAME-DIGEST: the digest of the kernel's spec or build recipe (and SALT). */
export function kernelCacheKey(kernel: MatrixKernel, salt = ''): string {
  const recipe = canonical({spec: kernel.spec, build: kernel.build, salt})
  return `pmemlab-kernel-${kernel.name}-${createHash('sha256').update(recipe).digest('hex').slice(0, 16)}`
}

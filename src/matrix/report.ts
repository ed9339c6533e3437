/**
 * A merged matrix for people and CI tools: the Markdown summary (for $GITHUB_STEP_SUMMARY or a
 * terminal) and JUnit XML, per cell and merged, through suite/junit.ts. Pure: documents in,
 * strings out.
 */
import {renderJUnit, type JUnitCase, type JUnitStatus, type JUnitSuite} from '../suite/junit.js'
import type {TestStatus} from '../suite/results.js'
import type {CellRecord, MatrixDocument} from './results.js'
import type {CellState} from './state.js'

type CellResult = MatrixDocument['cells'][number]

/** 0.4 s, 12.3 s, 4m 05s, 1h 02m. */
export function durationText(ms: number): string {
  const s = Math.max(0, ms) / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const minutes = Math.floor(s / 60)
  if (minutes < 60) return `${minutes}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`
}

/** Text for one table cell: no pipes, no line breaks, not endless. */
function cellText(text: string, limit = 240): string {
  const flat = text.replace(/\s*\n\s*/g, ' ').replaceAll('\\', '\\\\').replaceAll('|', '\\|').replaceAll('<', '&lt;')
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat
}

const STATE_ORDER: CellState[] = ['pass', 'flaky', 'fail', 'error', 'skip']

/** One line: "2 pass, 1 flaky, 1 fail, 0 error, 1 skip of 5 cells". */
export function countsLine(summary: MatrixDocument['summary']): string {
  return `${STATE_ORDER.map((state) => `${summary[state]} ${state}`).join(', ')} of ${summary.cells} cell${summary.cells === 1 ? '' : 's'}`
}

/**
 * The summary in GitHub-flavoured Markdown: a verdict line with the counts, the cells (cell,
 * state, time, reason) in plan order, then the kernels with their versions and builds.
 */
export function renderMarkdown(doc: MatrixDocument): string {
  const title = doc.matrix.name ? `pmemlab matrix: ${cellText(doc.matrix.name)}` : 'pmemlab matrix'
  const lines = [`### ${title}`, '', `**${doc.ok ? 'PASSED' : 'FAILED'}**: ${countsLine(doc.summary)} (matrix \`${doc.matrix.hash.slice(0, 12)}\`)`, '']
  lines.push('| cell | state | time | reason |', '|---|---|---:|---|')
  for (const cell of doc.cells) {
    const state = cell.state === 'fail' || cell.state === 'error' ? `**${cell.state}**` : cell.state
    const attempts = cell.attempts.length > 1 ? ` (${cell.attempts.length} attempts)` : ''
    lines.push(`| \`${cell.id}\` | ${state} | ${durationText(cell.durationMs)}${attempts} | ${cellText(cell.reason)} |`)
  }
  if (doc.kernels.length > 0) {
    lines.push('', '| kernel | spec | version | build |', '|---|---|---|---|')
    for (const k of doc.kernels) {
      const versions = k.versions.length > 1 ? `${k.versions.join(', ')} (differs between cells)` : k.versions[0] ?? '?'
      const build = !k.build ? 'none' : k.build.ok ? `ok${k.build.cacheHit ? ' (cached)' : ''}${k.build.durationMs !== undefined ? `, ${durationText(k.build.durationMs)}` : ''}` : `**failed**: ${k.build.reason ?? ''}`
      lines.push(`| ${cellText(k.name)} | ${cellText(k.label)} | ${cellText(versions)} | ${cellText(build)} |`)
    }
  }
  const failing = doc.cells.filter((c) => (c.state === 'fail' || c.state === 'error') && c.details?.length)
  for (const cell of failing) {
    lines.push('', `<details><summary>${cellText(cell.id)}: console</summary>`, '', '```', ...cell.details!.map((l) => l.replaceAll('```', "'''")), '```', '</details>')
  }
  return `${lines.join('\n')}\n`
}

const TEST_STATUS: Record<TestStatus, JUnitStatus> = {pass: 'pass', todo: 'pass', skip: 'skip', fail: 'fail', timeout: 'error', error: 'error'}
const CELL_STATUS: Record<CellState, JUnitStatus> = {pass: 'pass', flaky: 'pass', skip: 'skip', fail: 'fail', error: 'error'}

/**
 * A cell as a JUnit suite: its tests, plus a case named "cell" whenever the tests alone do not
 * tell the cell's state (no tests ran, a retry made it flaky, or it failed outside any test).
 */
export function cellSuite(cell: CellResult | CellRecord): JUnitSuite {
  const cases: JUnitCase[] = cell.tests.map((t) => {
    const status = TEST_STATUS[t.status]
    return {
      name: t.name,
      classname: `${cell.id}.${t.suite}.${t.group.replaceAll('/', '.')}`,
      timeSec: t.durationMs / 1000,
      status,
      message: t.message ?? (t.status === 'timeout' ? 'timed out' : undefined),
      type: t.status === 'timeout' ? 'timeout' : undefined,
      details: status === 'fail' || status === 'error' ? [t.message ?? '', ...(t.details ?? [])].filter(Boolean).join('\n') || undefined : undefined,
    }
  })
  const testsFailed = cases.some((c) => c.status === 'fail' || c.status === 'error')
  const explained = cases.length > 0 && cell.state !== 'flaky' && (cell.state === 'pass' || cell.state === 'skip' || testsFailed)
  if (!explained) {
    const status = CELL_STATUS[cell.state]
    cases.unshift({
      name: 'cell',
      classname: cell.id,
      timeSec: cell.durationMs / 1000,
      status,
      message: cell.reason,
      type: cell.state === 'error' ? 'lab' : cell.state === 'fail' ? cell.decidedBy.phase : undefined,
      details: status === 'fail' || status === 'error' ? [cell.reason, ...(cell.details ?? [])].join('\n') : undefined,
      systemOut: cell.state === 'flaky' ? `flaky: ${cell.reason}\n` : undefined,
    })
  }
  return {
    name: cell.id,
    ...(cell.startedAt ? {timestamp: cell.startedAt.replace(/\.\d+Z$/, '')} : {}),
    timeSec: cell.durationMs / 1000,
    properties: {
      kernel: cell.kernel.label,
      ...(cell.kernel.version ? {'kernel.version': cell.kernel.version} : {}),
      topology: cell.topology,
      filesystem: cell.filesystem,
      suite: cell.suite,
      state: cell.state,
      reason: cell.reason,
    },
    cases,
  }
}

/** JUnit for one cell. */
export const cellJUnit = (cell: CellResult | CellRecord) => renderJUnit([cellSuite(cell)], `pmemlab matrix ${cell.id}`)

/** JUnit for the whole matrix: one suite per cell, in plan order. */
export const matrixJUnit = (doc: MatrixDocument) => renderJUnit(doc.cells.map(cellSuite), doc.matrix.name ? `pmemlab matrix ${doc.matrix.name}` : 'pmemlab matrix')

/**
 * The live view of a matrix run on stderr: one row per kernel (its build and sanity gate) and per
 * cell (waiting, running, then its state). On a terminal the table is redrawn in place, and
 * anything else written to stderr meanwhile (a kernel build's log) is printed above it; in a
 * log (CI, a pipe, TERM=dumb) each change is one line. Colour only on a terminal without NO_COLOR.
 * renderLive() and changeLine() are pure; LiveTable does the writing.
 */
import {durationText} from './report.js'
import type {CellState} from './state.js'

export type Tone = 'idle' | 'active' | 'good' | 'bad' | 'neutral'

export interface LiveRow {
  /** "kernel 6.12" or a cell ID. */
  id: string
  kind: 'kernel' | 'cell'
  /** waiting, building, gate, running, built, booted, or a cell state. */
  status: string
  tone: Tone
  /** One line: the attempt, the reason, the version. */
  note?: string
  /** When the current activity began (ms since the epoch); the time shown counts from it. */
  since?: number
  /** Set once the row is done: the time shown is since..until. */
  until?: number
}

export const CELL_TONE: Record<CellState, Tone> = {pass: 'good', flaky: 'good', skip: 'neutral', fail: 'bad', error: 'bad'}

const COLOR: Record<Tone, string> = {idle: '2', active: '36', good: '32', bad: '31', neutral: '33'}
const paint = (on: boolean, tone: Tone, text: string) => (on ? `\u001B[${COLOR[tone]}m${text}\u001B[0m` : text)

const elapsed = (row: LiveRow, now: number) => (row.since === undefined ? '' : durationText((row.until ?? now) - row.since))

/** The counts line above the table: "3 of 8 cells done: 2 pass, 1 fail; 2 running". */
export function countsText(rows: readonly LiveRow[]): string {
  const cells = rows.filter((r) => r.kind === 'cell')
  const done = cells.filter((r) => r.until !== undefined)
  const byState = new Map<string, number>()
  for (const row of done) byState.set(row.status, (byState.get(row.status) ?? 0) + 1)
  const states = [...byState].map(([state, n]) => `${n} ${state}`).join(', ')
  const running = cells.filter((r) => r.until === undefined && r.status !== 'waiting').length
  return `${done.length} of ${cells.length} cells done${states ? `: ${states}` : ''}${running ? `; ${running} running` : ''}`
}

/**
 * The table as lines, each at most COLUMNS wide and at most MAXLINES of them: when the rows do
 * not fit, kernels and running cells stay, then the latest finished cells, and a last line counts
 * what is left out.
 */
export function renderLive(rows: readonly LiveRow[], now: number, options: {color: boolean; columns: number; maxLines: number}): string[] {
  const room = Math.max(1, options.maxLines - 2)
  let shown = [...rows]
  let hidden = 0
  if (shown.length > room) {
    const rank = (row: LiveRow) => (row.kind === 'kernel' || (row.until === undefined && row.status !== 'waiting') ? 0 : row.until !== undefined ? 1 : 2)
    const keep = new Set(
      [...rows]
        .map((row, index) => ({row, index}))
        .sort((a, b) => rank(a.row) - rank(b.row) || (rank(a.row) === 1 ? (b.row.until ?? 0) - (a.row.until ?? 0) : a.index - b.index))
        .slice(0, room - 1)
        .map((entry) => entry.row),
    )
    shown = rows.filter((row) => keep.has(row))
    hidden = rows.length - shown.length
  }
  const idWidth = Math.max(...shown.map((r) => r.id.length))
  const statusWidth = Math.max(...shown.map((r) => r.status.length))
  const timeWidth = Math.max(...shown.map((r) => elapsed(r, now).length))
  const lines = [countsText(rows).slice(0, options.columns)]
  for (const row of shown) {
    const time = elapsed(row, now).padStart(timeWidth)
    const plain = `  ${row.id.padEnd(idWidth)}  ${row.status.padEnd(statusWidth)}  ${time}${row.note ? `  ${row.note}` : ''}`.trimEnd()
    const clipped = plain.length > options.columns ? `${plain.slice(0, Math.max(0, options.columns - 1))}…` : plain
    // Only the status is painted, after clipping, so that escape codes never count as width.
    const start = 2 + idWidth + 2
    lines.push(clipped.length > start ? `${clipped.slice(0, start)}${paint(options.color, row.tone, clipped.slice(start, start + statusWidth))}${clipped.slice(start + statusWidth)}` : clipped)
  }
  if (hidden > 0) lines.push(`  … ${hidden} more`)
  return lines
}

/** One line for a log: "6.12-memmap-ext4-builtin pass 45.2 s: 127 passed". */
export function changeLine(row: LiveRow, now: number, color = false): string {
  const time = row.until !== undefined ? ` ${elapsed(row, now)}` : ''
  return `${row.kind === 'kernel' ? row.id : `cell ${row.id}`} ${paint(color, row.tone, row.status)}${time}${row.note ? `: ${row.note}` : ''}`
}

/** Whether stderr gets colour: a terminal, no NO_COLOR, not TERM=dumb (as core/log.ts decides). */
export const stderrColor = () => process.stderr.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb'

type Write = typeof process.stderr.write

/** Writes the live view to a stream (stderr); start() before the first row, stop() after the last. */
export class LiveTable {
  private readonly rows = new Map<string, LiveRow>()
  private drawn = 0
  private footer = ''
  private original?: Write
  private timer?: NodeJS.Timeout
  readonly inPlace: boolean

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.inPlace = stream.isTTY === true && process.env.TERM !== 'dumb'
  }

  private get color(): boolean {
    return this.stream.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb'
  }

  /** On a terminal, takes over the stream: other writes go above the table. */
  start(): void {
    if (!this.inPlace || this.original) return
    const original = this.stream.write.bind(this.stream) as Write
    this.original = original
    this.stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      this.foreign(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString())
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined
      callback?.()
      return true
    }) as Write
    this.timer = setInterval(() => this.redraw(), 1000)
    this.timer.unref()
  }

  /** Adds or changes a row; in a log, prints the change when its status or note changed. */
  set(row: LiveRow): void {
    const before = this.rows.get(row.id)
    this.rows.set(row.id, row)
    if (this.inPlace) this.redraw()
    else if (!before || before.status !== row.status || before.note !== row.note) this.stream.write(`pmemlab: matrix: ${changeLine(row, Date.now(), this.color)}\n`)
  }

  get(id: string): LiveRow | undefined {
    return this.rows.get(id)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    if (!this.original) return
    this.footer = ''
    this.redraw()
    this.stream.write = this.original
    this.original = undefined
    this.drawn = 0
  }

  /** Text someone else wrote: complete lines above the table, an unfinished line (a progress bar) below it. */
  private foreign(text: string): void {
    const clean = (line: string) => line.replace(/^.*\r/, '').replaceAll('\u001B[2K', '')
    const cut = text.lastIndexOf('\n')
    const lines = cut >= 0 ? text.slice(0, cut + 1) : ''
    const rest = cut >= 0 ? text.slice(cut + 1) : text
    this.clear()
    if (lines) {
      // An unfinished line goes on with this text, unless the text starts over (\r: a progress bar).
      const head = text.startsWith('\r') ? '' : this.footer
      this.original!(`${head}${lines.split('\n').map(clean).join('\n')}`)
      this.footer = ''
    }
    if (rest) this.footer = clean(lines ? rest : this.footer + rest)
    this.draw()
  }

  private clear(): void {
    if (this.drawn > 0) this.original!(`\u001B[${this.drawn}A\r\u001B[0J`)
    this.drawn = 0
  }

  private draw(): void {
    if (!this.original) return
    const columns = this.stream.columns || 100
    const lines = this.rows.size > 0 ? renderLive([...this.rows.values()], Date.now(), {color: this.color, columns, maxLines: (this.stream.rows || 40) - 2}) : []
    if (this.footer) lines.push(this.footer.slice(0, columns - 1))
    if (lines.length > 0) this.original(`${lines.join('\n')}\n`)
    this.drawn = lines.length
  }

  private redraw(): void {
    if (!this.original) return
    this.clear()
    this.draw()
  }
}

/**
 * Progress and diagnostics go to stderr, results to stdout. Colour only on a TTY and without NO_COLOR.
 */
let verbose = process.env.PMEMLAB_VERBOSE === '1'

export function setVerbose(on: boolean): void {
  verbose = on
}

export const isVerbose = () => verbose

const useColor = () => process.stderr.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb'

const paint = (code: string, text: string) => (useColor() ? `\u001B[${code}m${text}\u001B[0m` : text)

export const log = {
  info(message: string): void {
    process.stderr.write(`${paint('2', 'pmemlab:')} ${message}\n`)
  },
  warn(message: string): void {
    process.stderr.write(`${paint('33', 'pmemlab: warning:')} ${message}\n`)
  },
  error(message: string): void {
    process.stderr.write(`${paint('31', 'pmemlab: error:')} ${message}\n`)
  },
  /**
   * Shown only with --verbose: every external command is echoed here before it runs. Each line
   * carries the seconds since pmemlab started, to show where a slow start spends its time.
   */
  debug(message: string): void {
    if (verbose) process.stderr.write(`${paint('2', `pmemlab: [${(performance.now() / 1000).toFixed(3)} s] ${message}`)}\n`)
  },
}

/** Quote an argv for display so it can be pasted into a POSIX shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ')
}

/**
 * A progress line on stderr: redrawn in place on a terminal; in logs (CI), one line per tenth of
 * the work (or every 30 s when the total is unknown).
 */
export class Progress {
  private last = 0
  private lastStep = -1
  private shown = false
  private readonly tty = process.stderr.isTTY === true

  constructor(private readonly label: string) {}

  update(text: string, fraction: number | undefined, force = false): void {
    const now = Date.now()
    if (!force && now - this.last < 1000) return
    if (this.tty) {
      process.stderr.write(`\r\u001B[2Kpmemlab: ${this.label}: ${text}`)
      this.shown = true
      this.last = now
      return
    }
    // Not a terminal (CI logs): one line per tenth, at most once a second.
    const step = fraction === undefined ? Math.floor(now / 30_000) : Math.floor(fraction * 10)
    if (!force && step === this.lastStep) return
    this.lastStep = step
    this.last = now
    log.info(`${this.label}: ${text}`)
  }

  done(): void {
    if (this.tty && this.shown) process.stderr.write('\r\u001B[2K')
  }
}

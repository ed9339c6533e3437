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
  /** Shown only with --verbose: every external command is echoed here before it runs. */
  debug(message: string): void {
    if (verbose) process.stderr.write(`${paint('2', `pmemlab: ${message}`)}\n`)
  },
}

/** Quote an argv for display so it can be pasted into a POSIX shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ')
}

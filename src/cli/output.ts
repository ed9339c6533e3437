/** What every command does with its results and errors, with or without oclif loaded. */
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log} from '../core/log.js'

/** One JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** A pmemlab error as one line on stderr (and its evidence below it), with its exit code. */
export function reportPmemlabError(error: PmemlabError): void {
  process.exitCode = error.exitCode
  // A lab interrupt was already announced by its signal handler (an empty message): no stray
  // error line after it. Other interrupts (a kernel build's) say what was kept.
  if (error.exitCode === ExitCode.interrupted && error.message === '') return
  log.error(error.oneLine())
  for (const line of error.details) process.stderr.write(`  | ${line}\n`)
}

/** An error nobody meant for the user: its message (and with PMEMLAB_VERBOSE=1 its stack), exit 1. */
export function reportUnexpectedError(error: Error): void {
  log.error(`${error.message}${process.env.PMEMLAB_VERBOSE === '1' ? `\n${error.stack}` : ''}`)
  process.exitCode = ExitCode.failure
}

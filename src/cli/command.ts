import {Command} from '@oclif/core/command'
import * as Errors from '@oclif/core/errors'
import * as Flags from '@oclif/core/flags'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log, setVerbose} from '../core/log.js'
import {printJson, reportPmemlabError, reportUnexpectedError} from './output.js'
import {VERBOSE_FLAG} from './lab-flag-table.js'

/**
 * Shared behaviour of every pmemlab command: --verbose, and errors shown as one line on stderr
 * with the documented exit code instead of a stack trace.
 */
export abstract class PmemlabCommand extends Command {
  static override baseFlags = {
    verbose: Flags.boolean({char: 'v', description: VERBOSE_FLAG.description, helpGroup: 'GLOBAL'}),
  }

  protected override async init(): Promise<void> {
    await super.init()
    if (this.argv.includes('--verbose') || this.argv.includes('-v')) setVerbose(true)
  }

  protected override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<void> {
    if (error instanceof PmemlabError) {
      reportPmemlabError(error)
      return
    }
    if (error instanceof Errors.ExitError) {
      process.exitCode = error.oclif.exit ?? 0
      return
    }
    // oclif's own flag and argument errors are usage errors.
    if (error.oclif?.exit === 2 || /flag|argument|Expected|Missing|Unexpected/i.test(error.message)) {
      log.error(`${error.message.split('\n')[0].replace(/:+\s*$/, '')}: see pmemlab ${this.id?.replaceAll(':', ' ') ?? ''} --help`)
      process.exitCode = ExitCode.usage
      return
    }
    reportUnexpectedError(error)
  }

  /** One JSON document on stdout. */
  protected printJson(value: unknown): void {
    printJson(value)
  }
}

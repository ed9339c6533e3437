import {execa, type Options} from 'execa'
import {log, shellQuote} from './log.js'

/**
 * Every external command goes through here, as an argv array, echoed in verbose mode.
 * Modules on the boot path (kernel.ts, image.ts) import this lazily: execa alone adds ~0.1 s to
 * a command's start-up.
 * Returns execa's subprocess (a promise with .pid and the streams); failures carry the command and its stderr.
 */
export function run<O extends Options = Options>(file: string, args: readonly string[], options?: O) {
  log.debug(`$ ${shellQuote([file, ...args])}`)
  return execa(file, args, options ?? ({} as O))
}

import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {pruneKernels} from '../../kernel/store.js'
import {log} from '../../core/log.js'
import {humanSize} from '../../core/size.js'

export default class KernelPrune extends PmemlabCommand {
  static override summary = 'Remove old kernels and build trees'
  static override description =
    'Keeps the newest --keep kernels and removes the rest, plus extracted sources, failed-build logs and leftovers of interrupted builds (unless a build is running). Downloaded tarballs are kept.'
  static override flags = {
    keep: Flags.integer({description: 'how many of the newest kernels to keep', default: 3, min: 0}),
    json: Flags.boolean({description: 'print one JSON document'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(KernelPrune)
    const result = await pruneKernels({keep: flags.keep})
    log.info(`removed ${result.removed.length} kernel${result.removed.length === 1 ? '' : 's'} and ${result.removedPaths.length} build file${result.removedPaths.length === 1 ? '' : 's'}: ${humanSize(result.freedBytes)} freed`)
    if (flags.json) {
      this.printJson({removed: result.removed.map((e) => e.key), removedPaths: result.removedPaths, freedBytes: result.freedBytes})
      return
    }
    process.stdout.write(result.removed.map((e) => `${e.key}\n`).join(''))
  }
}

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {usageError} from '../../core/errors.js'
import {removeKernel} from '../../kernel/store.js'
import {log} from '../../core/log.js'

export default class KernelRm extends PmemlabCommand {
  static override summary = 'Remove built kernels'
  static override description = 'Each SPEC is a key (6 or more hex digits), a version (the newest entry of it) or "latest".'
  static override examples = ['<%= config.bin %> kernel rm 3fa9c1', '<%= config.bin %> kernel rm 6.1 latest']
  static override strict = false
  static override args = {spec: Args.string({description: 'key prefix, version or latest', required: true})}
  static override flags = {json: Flags.boolean({description: 'print one JSON document: the removed keys'})}

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(KernelRm)
    const specs = argv as string[]
    if (specs.length === 0) throw usageError('name a kernel to remove', 'see pmemlab kernel ls')
    const removed: string[] = []
    for (const spec of specs) {
      const entry = await removeKernel(spec)
      log.info(`removed ${entry.key.slice(0, 12)} (linux ${entry.build.kernelVersion})`)
      removed.push(entry.key)
    }
    if (flags.json) this.printJson({removed})
    else process.stdout.write(removed.map((key) => `${key}\n`).join(''))
  }
}

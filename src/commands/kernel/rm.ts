import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {usageError} from '../../core/errors.js'
import {removeCachedKernel} from '../../kernel/catalog.js'
import {log} from '../../core/log.js'

export default class KernelRm extends PmemlabCommand {
  static override summary = 'Remove cached kernels (built or Debian prebuilt)'
  static override description =
    'Each SPEC is a key (6 or more hex digits), a version (the newest built kernel of it), "latest" (the newest built kernel) or debian:VERSION (the newest cached Debian kernel that matches).'
  static override examples = ['<%= config.bin %> kernel rm 3fa9c1', '<%= config.bin %> kernel rm 6.1 latest', '<%= config.bin %> kernel rm debian:5.10']
  static override strict = false
  static override args = {spec: Args.string({description: 'key prefix, version, latest or debian:VERSION', required: true})}
  static override flags = {json: Flags.boolean({description: 'print one JSON document: the removed keys'})}

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(KernelRm)
    const specs = argv as string[]
    if (specs.length === 0) throw usageError('name a kernel to remove', 'see pmemlab kernel ls')
    const removed: string[] = []
    for (const spec of specs) {
      const {key, what} = await removeCachedKernel(spec)
      log.info(`removed ${key.slice(0, 12)} (${what})`)
      removed.push(key)
    }
    if (flags.json) this.printJson({removed})
    else process.stdout.write(removed.map((key) => `${key}\n`).join(''))
  }
}

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {usageError} from '../core/errors.js'
import {execInVm} from '../lab/guest.js'

export default class Exec extends PmemlabCommand {
  static override summary = 'Run a command in a VM through its guest agent'
  static override description = "Output streams while the command runs; pmemlab exits with the guest command's status."
  static override examples = ['<%= config.bin %> exec lab1 -- ls -l /dev/pmem0', '<%= config.bin %> exec lab1 -- sh -c "ndctl list -N"']
  static override strict = false
  static override args = {name: Args.string({description: 'VM name', required: true})}
  static override flags = {
    timeout: Flags.integer({description: 'kill the guest command after this many seconds'}),
  }

  async run(): Promise<void> {
    const {args, argv, flags} = await this.parse(Exec)
    const command = (argv as string[]).slice(1).filter((a, i) => !(i === 0 && a === '--'))
    if (command.length === 0) throw usageError('no command given', `write it after "--": pmemlab exec ${args.name} -- ls /dev`)
    process.exitCode = await execInVm(args.name, command, flags.timeout ? flags.timeout * 1000 : undefined)
  }
}

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {EXEC_FLAG_TABLE} from '../cli/lab-flag-table.js'
import {runExec} from '../cli/lab-commands.js'

export default class Exec extends PmemlabCommand {
  static override summary = 'Run a command in a VM through its guest agent'
  static override description = "Output streams while the command runs; pmemlab exits with the guest command's status."
  static override examples = ['<%= config.bin %> exec lab1 -- ls -l /dev/pmem0', '<%= config.bin %> exec lab1 -- sh -c "ndctl list -N"']
  static override strict = false
  static override args = {name: Args.string({description: 'VM name', required: true})}
  static override flags = {
    timeout: Flags.integer({description: EXEC_FLAG_TABLE.timeout.description}),
  }

  async run(): Promise<void> {
    const {args, argv, flags} = await this.parse(Exec)
    await runExec(args.name, (argv as string[]).slice(1).filter((a, i) => !(i === 0 && a === '--')), flags.timeout)
  }
}

import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {labFlags, labRequest} from '../cli/flags.js'
import {UP_FLAG_TABLE as up} from '../cli/lab-flag-table.js'
import {runUp} from '../cli/lab-commands.js'

export default class Up extends PmemlabCommand {
  static override summary = 'Boot a disposable VM with persistent memory'
  static override description = `Without --detach the guest console is your terminal: type "exit" in the guest shell (or press Ctrl-A X) to power off; everything disposable is then deleted.
With a command after "--", the VM boots, runs it through the guest agent, powers off, and pmemlab exits with the command's status.
Default topology when no --memmap/--nvdimm/--virtio-pmem is given: one 256M memmap range and one 512M NVDIMM.`

  static override examples = [
    '<%= config.bin %> up',
    '<%= config.bin %> up --detach --name lab1 --memmap 256M --nvdimm 512M:/var/tmp/nv0.img',
    '<%= config.bin %> up --dry-run --machine q35 --memmap 512M --virtio-pmem 1G',
    '<%= config.bin %> up -- pmemlab-check',
  ]

  static override strict = false // everything after "--" is the guest command

  static override flags = {
    ...labFlags,
    name: Flags.string({description: up.name.description}),
    detach: Flags.boolean({description: up.detach.description}),
    'dry-run': Flags.boolean({description: up['dry-run'].description}),
    json: Flags.boolean({description: up.json.description}),
  }

  async run(): Promise<void> {
    const {flags, argv} = await this.parse(Up)
    await runUp(labRequest(flags), {name: flags.name, detach: flags.detach, argv: argv as string[], dryRun: flags['dry-run'], json: flags.json})
  }
}

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {runningRecord} from '../lab/deaths.js'
import {listRecords} from '../lab/state.js'
import {stopVm} from '../lab/vm.js'

export default class Down extends PmemlabCommand {
  static override summary = 'Power off a VM and delete its disposable files'
  static override description = 'A VM with a backing file you named (SIZE:FILE) is asked to power off through its agent, so the file holds what the guest wrote; after --timeout seconds QEMU is told to quit, then killed. Those files are kept. A VM where nothing outlives it (every pmem file disposable, the root disk a snapshot) is told to quit at once.'
  static override examples = ['<%= config.bin %> down lab1', '<%= config.bin %> down --all']
  static override args = {name: Args.string({description: 'VM name'})}
  static override flags = {
    all: Flags.boolean({description: 'stop every VM'}),
    timeout: Flags.integer({description: 'seconds to wait for a graceful power-off (VMs with a backing file you named)', default: 20}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Down)
    if (!args.name && !flags.all) throw usageError('name a VM or pass --all', 'see the running ones with: pmemlab ls')
    if (args.name && flags.all) throw usageError('give either a VM name or --all, not both')
    const records = flags.all ? (await listRecords()).map((r) => r.record) : [await runningRecord(args.name!)]
    await Promise.all(
      records.map(async (record) => {
        const how = await stopVm(record, flags.timeout * 1000)
        log.info(`${record.name}: ${how === 'gone' ? 'was no longer running; cleaned up' : `stopped (${how})`}`)
        process.stdout.write(`${record.name}\n`)
      }),
    )
  }
}

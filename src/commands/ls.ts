import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {formatSize} from '../core/size.js'
import {renderTable} from '../core/table.js'
import {reapStale} from '../lab/state.js'

export default class Ls extends PmemlabCommand {
  static override summary = 'List VMs'
  static override description = 'VMs whose QEMU has exited are cleaned up as they are found.'
  static override flags = {json: Flags.boolean({description: 'print one JSON document'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Ls)
    const running = await reapStale()
    if (flags.json) {
      this.printJson(running)
      return
    }
    if (running.length === 0) return
    const rows = running.map((r) => {
      const pmem = r.devices.map((d) => `${d.kind}:${formatSize(d.size)}${d.persistent ? '*' : ''}`).join(',')
      return [r.name, String(r.pid), r.accel, r.mode, r.createdAt, pmem]
    })
    process.stdout.write(renderTable(['NAME', 'PID', 'ACCEL', 'MODE', 'STARTED', 'PMEM (* = kept file)'], rows))
  }
}

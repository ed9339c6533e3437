import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {formatSize} from '../core/size.js'
import {renderTable} from '../core/table.js'
import {reapStale, takeUnreportedDeaths} from '../lab/deaths.js'

export default class Ls extends PmemlabCommand {
  static override summary = 'List VMs'
  static override description = `Running VMs, and once each, the detached VMs that died since the last listing, with the reason and where their logs are kept.`
  static override flags = {json: Flags.boolean({description: 'print one JSON document'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Ls)
    const running = await reapStale()
    const died = await takeUnreportedDeaths()
    if (flags.json) {
      this.printJson([
        ...running.map((record) => ({...record, state: 'running'})),
        ...died.map((death) => ({name: death.name, state: 'died', diedAt: death.diedAt, kind: death.kind, reason: death.reason, exitCode: death.exitCode, logs: death.dir, consoleLog: death.consoleLog})),
      ])
      return
    }
    if (running.length > 0) {
      const rows = running.map((r) => {
        const pmem = r.devices.map((d) => `${d.kind}:${formatSize(d.size)}${d.persistent ? '*' : ''}`).join(',')
        return [r.name, String(r.pid), r.accel, r.mode, r.createdAt, pmem]
      })
      process.stdout.write(renderTable(['NAME', 'PID', 'ACCEL', 'MODE', 'STARTED', 'PMEM (* = kept file)'], rows))
    }
    if (died.length > 0) {
      if (running.length > 0) process.stdout.write('\n')
      process.stdout.write(renderTable(['DIED', 'AT', 'REASON', 'LOGS'], died.map((d) => [d.name, d.diedAt, d.reason, d.dir])))
    }
  }
}

import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {runDoctor} from '../lab/doctor.js'
import {ExitCode} from '../core/errors.js'
import {renderTable} from '../core/table.js'

export default class Doctor extends PmemlabCommand {
  static override summary = 'Check that this machine can run a lab'
  static override description = 'Exit 0 when a lab can run, 3 when a required dependency is missing. Says whether KVM really works, and why not.'
  static override flags = {json: Flags.boolean({description: 'print one JSON document'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Doctor)
    const report = await runDoctor()
    if (flags.json) {
      this.printJson(report)
    } else {
      const rows = report.checks.map((c) => [c.ok ? 'ok' : c.required ? 'MISSING' : 'warn', c.name, c.fix ? `${c.detail} (fix: ${c.fix})` : c.detail])
      process.stdout.write(renderTable(['STATUS', 'CHECK', 'DETAIL'], rows))
      process.stdout.write(report.ok ? `a lab can run here (accelerator: ${report.accel})\n` : 'a lab cannot run here: install what is MISSING\n')
    }
    if (!report.ok) process.exitCode = ExitCode.missingDependency
  }
}

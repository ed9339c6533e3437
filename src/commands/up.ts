import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {labFlags, labRequest} from '../cli/flags.js'
import {dryRunText, planVm, prepareArgv, up, type UpRequest} from '../lab/vm.js'

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
    name: Flags.string({description: 'VM name (default: lab-XXXX)'}),
    detach: Flags.boolean({description: 'return once the guest agent answers; stop it later with pmemlab down'}),
    'dry-run': Flags.boolean({description: 'print the exact QEMU command and kernel command line; start nothing'}),
    json: Flags.boolean({description: 'print one JSON document (with --detach or --dry-run)'}),
  }

  async run(): Promise<void> {
    const {flags, argv} = await this.parse(Up)
    const command = (argv as string[]).filter((a) => a !== '--')
    const request: UpRequest = {
      ...labRequest(flags),
      name: flags.name,
      mode: flags.detach ? 'detached' : command.length > 0 ? 'command' : 'interactive',
      command,
    }
    if (flags['dry-run']) {
      const plan = await planVm(request, {dryRun: true})
      if (flags.json) this.printJson({name: plan.name, accel: plan.accel, sockets: plan.qemu.sockets, prepare: prepareArgv(plan), argv: [plan.qemu.binary, ...plan.qemu.argv], kernelCmdline: plan.qemu.kernelCmdline, layout: plan.layout, devices: plan.devices})
      else process.stdout.write(dryRunText(plan))
      return
    }
    const {record, exitCode} = await up(request)
    if (request.mode === 'detached') {
      if (flags.json) {
        this.printJson({name: record.name, pid: record.pid, accel: record.accel, sockets: record.sockets, consoleLog: record.consoleLog, devices: record.devices, argv: record.argv, kernelCmdline: record.kernelCmdline})
      } else {
        process.stdout.write(`${record.name}\n`)
      }
    }
    process.exitCode = exitCode
  }
}

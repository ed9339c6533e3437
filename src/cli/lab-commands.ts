/**
 * What `up` and `exec` do once their flags are parsed, shared by their oclif commands and the
 * fast start (fast.ts), which runs them without loading oclif.
 */
import {usageError} from '../core/errors.js'
import {execInVm} from '../lab/guest.js'
import type {LabRequest, UpRequest} from '../lab/vm.js'
import {printJson} from './output.js'

/**
 * `pmemlab up`: a dry run prints the command; otherwise the VM starts (see lab/vm.ts up). Sets
 * the exit code. ARGV is what followed the flags: the guest command, its "--" separators dropped.
 */
export async function runUp(lab: LabRequest, options: {name?: string; detach?: boolean; argv: string[]; dryRun?: boolean; json?: boolean}): Promise<void> {
  const {dryRunText, planVm, prepareArgv, up} = await import('../lab/vm.js')
  const command = options.argv.filter((a) => a !== '--')
  const request: UpRequest = {...lab, name: options.name, mode: options.detach ? 'detached' : command.length > 0 ? 'command' : 'interactive', command}
  if (options.dryRun) {
    const plan = await planVm(request, {dryRun: true})
    if (options.json) printJson({name: plan.name, accel: plan.accel, sockets: plan.qemu.sockets, prepare: prepareArgv(plan), argv: [plan.qemu.binary, ...plan.qemu.argv], kernelCmdline: plan.qemu.kernelCmdline, layout: plan.layout, devices: plan.devices})
    else process.stdout.write(dryRunText(plan))
    return
  }
  const {record, exitCode} = await up(request)
  if (request.mode === 'detached') {
    if (options.json) printJson({name: record.name, pid: record.pid, accel: record.accel, sockets: record.sockets, consoleLog: record.consoleLog, devices: record.devices, argv: record.argv, kernelCmdline: record.kernelCmdline})
    else process.stdout.write(`${record.name}\n`)
  }
  process.exitCode = exitCode
}

/** `pmemlab exec NAME -- COMMAND`: exits with the guest command's status. */
export async function runExec(name: string, command: string[], timeoutSec?: number): Promise<void> {
  if (command.length === 0) throw usageError('no command given', `write it after "--": pmemlab exec ${name} -- ls /dev`)
  process.exitCode = await execInVm(name, command, timeoutSec ? timeoutSec * 1000 : undefined)
}

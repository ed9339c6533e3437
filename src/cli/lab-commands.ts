/**
 * What `up` and `exec` do once their flags are parsed, shared by their oclif commands and the
 * fast start (fast.ts), which runs them without loading oclif.
 */
import {usageError} from '../core/errors.js'
import {execInVm} from '../lab/guest.js'
import type {UpRequest} from '../lab/vm.js'
import {printJson} from './output.js'

/** `pmemlab up`: a dry run prints the command; otherwise the VM starts (see lab/vm.ts up). Sets the exit code. */
export async function runUp(request: UpRequest, output: {dryRun?: boolean; json?: boolean}): Promise<void> {
  const {dryRunText, planVm, prepareArgv, up} = await import('../lab/vm.js')
  if (output.dryRun) {
    const plan = await planVm(request, {dryRun: true})
    if (output.json) printJson({name: plan.name, accel: plan.accel, sockets: plan.qemu.sockets, prepare: prepareArgv(plan), argv: [plan.qemu.binary, ...plan.qemu.argv], kernelCmdline: plan.qemu.kernelCmdline, layout: plan.layout, devices: plan.devices})
    else process.stdout.write(dryRunText(plan))
    return
  }
  const {record, exitCode} = await up(request)
  if (request.mode === 'detached') {
    if (output.json) printJson({name: record.name, pid: record.pid, accel: record.accel, sockets: record.sockets, consoleLog: record.consoleLog, devices: record.devices, argv: record.argv, kernelCmdline: record.kernelCmdline})
    else process.stdout.write(`${record.name}\n`)
  }
  process.exitCode = exitCode
}

/** `pmemlab exec NAME -- COMMAND`: exits with the guest command's status. */
export async function runExec(name: string, command: string[], timeoutSec?: number): Promise<void> {
  if (command.length === 0) throw usageError('no command given', `write it after "--": pmemlab exec ${name} -- ls /dev`)
  process.exitCode = await execInVm(name, command, timeoutSec ? timeoutSec * 1000 : undefined)
}

import * as Args from '@oclif/core/args'
import {connect} from 'node:net'
import {PmemlabCommand} from '../cli/command.js'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log} from '../core/log.js'
import {runningRecord} from '../lab/deaths.js'

const DETACH_KEY = 0x1d // Ctrl-]

export default class Console extends PmemlabCommand {
  static override summary = "Attach to a detached VM's serial console"
  static override description = 'Press Ctrl-] to detach; the VM keeps running. The whole console output is also in the console.log of the VM (see pmemlab ls --json).'
  static override args = {name: Args.string({description: 'VM name', required: true})}

  async run(): Promise<void> {
    const {args} = await this.parse(Console)
    const record = await runningRecord(args.name)
    if (!record.sockets.console) {
      throw new PmemlabError(`VM "${args.name}" runs in the foreground; its console is the terminal that started it`, ExitCode.conflict)
    }
    const socket = connect(record.sockets.console)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', (error) => reject(new PmemlabError(`cannot attach to the console of "${args.name}": ${error.message}`, ExitCode.conflict, 'is another pmemlab console attached?')))
    })
    log.info(`attached to ${args.name}; press Ctrl-] to detach`)
    // The guest's console shell starts on Enter (guest/pmemlab-init), and one already running
    // answers it with a fresh prompt: either way the user sees where to type.
    socket.write('\r')
    const stdin = process.stdin
    const raw = stdin.isTTY === true
    if (raw) stdin.setRawMode(true)
    await new Promise<void>((resolve) => {
      const finish = () => {
        if (raw) stdin.setRawMode(false)
        stdin.pause()
        socket.destroy()
        resolve()
      }
      stdin.on('data', (chunk: Buffer) => {
        const at = raw ? chunk.indexOf(DETACH_KEY) : -1
        if (at >= 0) {
          socket.write(chunk.subarray(0, at))
          finish()
        } else {
          socket.write(chunk)
        }
      })
      stdin.once('end', finish)
      socket.on('data', (chunk) => process.stdout.write(chunk))
      socket.once('close', finish)
    })
    process.stderr.write('\n')
    log.info(`detached from ${args.name}`)
  }
}

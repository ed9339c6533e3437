import {mkdir, readdir, readFile, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {writeFileAtomic} from '../core/cache.js'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {checkVmName} from './request.js'
import {stateDir} from '../core/paths.js'
import {processAlive} from '../core/process.js'

/**
 * One directory per VM under the state directory, mode 0700: its record (vm.json), the QMP, agent
 * and console sockets, the console log and the disposable backing files. Removing the directory
 * removes everything disposable; a user's own NVDIMM file never lives here.
 */
export interface VmDevice {
  kind: 'memmap' | 'nvdimm' | 'virtio-pmem'
  id: string
  size: number
  start?: number // guest-physical start of a memmap range
  file?: string // backing file (nvdimm, virtio-pmem)
  persistent: boolean // true when the user named the file: it outlives the VM
  labelBytes?: number // an NVDIMM's label area, when it has one
}

export interface VmRecord {
  name: string
  pid: number
  mode: 'detached' | 'foreground'
  /** The pmemlab that owns a foreground VM: it, not `ls`, explains the VM's end. */
  owner?: number
  createdAt: string
  accel: 'kvm' | 'tcg'
  machine: string
  kernel: {spec: string; path: string; version?: string}
  image: {name: string; hash: string}
  dir: string
  sockets: {qmp: string; qga: string; console?: string}
  consoleLog: string
  devices: VmDevice[]
  argv: string[]
  kernelCmdline: string
}

export const vmsDir = () => join(stateDir(), 'vms')
export const vmDir = (name: string) => join(vmsDir(), name)

/**
 * Claims a VM name by creating its directory: mkdir is atomic, so two `up --name X` cannot both win.
 * A directory left by a VM that is no longer running is reaped first.
 */
export async function claimVmDir(name: string): Promise<string> {
  checkVmName(name)
  await mkdir(vmsDir(), {recursive: true, mode: 0o700})
  const dir = vmDir(name)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await mkdir(dir, {mode: 0o700})
      return dir
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const record = await readRecord(name)
      if (record && (await processAlive(record.pid, record.sockets.qmp))) break
      if (!record && (await dirAgeMs(dir)) < 60_000) break // another pmemlab is starting it right now
      await rm(dir, {recursive: true, force: true})
    }
  }
  throw nameTaken(name)
}

/** Fails early, before any work, when a running VM has the name; claimVmDir still decides races. */
export async function refuseTakenName(name: string): Promise<void> {
  const record = await readRecord(name)
  if (record && (await processAlive(record.pid, record.sockets.qmp))) throw nameTaken(name)
}

const nameTaken = (name: string) =>
  new PmemlabError(`a VM named "${name}" is already running`, ExitCode.conflict, `pick another --name, or stop it with: pmemlab down ${name}`)

async function dirAgeMs(dir: string): Promise<number> {
  return Date.now() - (await stat(dir)).mtimeMs
}

export async function writeRecord(record: VmRecord): Promise<void> {
  await writeFileAtomic(join(record.dir, 'vm.json'), `${JSON.stringify(record, null, 2)}\n`, 0o600)
}

export async function readRecord(name: string): Promise<VmRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(vmDir(name), 'vm.json'), 'utf8')) as VmRecord
  } catch {
    return undefined
  }
}

/** Every VM with a record, and whether its QEMU is still running. */
export async function listRecords(): Promise<Array<{record: VmRecord; running: boolean}>> {
  let names: string[]
  try {
    names = await readdir(vmsDir())
  } catch {
    return []
  }
  const result = []
  for (const name of names.sort()) {
    const record = await readRecord(name)
    if (record) result.push({record, running: await processAlive(record.pid, record.sockets.qmp)})
  }
  return result
}

export async function removeVmDir(dir: string): Promise<void> {
  await rm(dir, {recursive: true, force: true})
}

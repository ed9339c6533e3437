import {copyFile, mkdir, readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {writeFileAtomic} from '../core/cache.js'
import {notFound, PmemlabError} from '../core/errors.js'
import {stateDir} from '../core/paths.js'
import {processAlive, sleep, waitForExit} from '../core/process.js'
import {ReplyTimeout} from './monitor.js'
import {explainEnd, type EndFacts, type GuestEnd} from './postmortem.js'
import {checkVmName} from './request.js'
import {listRecords, readRecord, removeVmDir, type VmRecord} from './state.js'

/**
 * VMs that died: their console log, QEMU's log and record are kept under the state directory's
 * failed/ folder with the reason (death.json), so the evidence outlives the VM's directory.
 * Kept entries are pruned by count and age. `ls` reports each death once; `exec` and `console`
 * on a dead VM name its death.
 */
export interface DeathRecord extends GuestEnd {
  name: string
  diedAt: string
  /** The folder holding console.log, qemu.log, vm.json and death.json. */
  dir: string
  consoleLog: string
  mode: VmRecord['mode']
  reported: boolean
}

/** How a foreground QEMU child ended, once it has: the signal tells a kill from a crash. */
export interface QemuExit {
  code: number | null
  signal: string | null
}

/** How a watched QEMU child ended: undefined until node has seen its exit. */
export type ExitWatch = () => QemuExit | undefined

/**
 * The exit of a watched child, once node has seen it: /proc shows a zombie before node's exit
 * event runs, and the signal (a kill, not a crash) is only known from that event.
 */
export async function settledExit(exitOf: ExitWatch | undefined): Promise<QemuExit | undefined> {
  for (let waited = 0; exitOf && exitOf() === undefined && waited < 1000; waited += 20) await sleep(20)
  return exitOf?.()
}

const KEEP_AT_MOST = 20
const KEEP_DAYS = 14
const STOPPING = 'stopping'

export const failedDir = () => join(stateDir(), 'failed')

/** Marks a VM as being stopped on purpose: its end is then not a death. */
export async function markStopping(record: VmRecord): Promise<void> {
  await writeFileAtomic(join(record.dir, STOPPING), `${process.pid}\n`).catch(() => undefined)
}

async function isStopping(record: VmRecord): Promise<boolean> {
  return readFile(join(record.dir, STOPPING)).then(
    () => true,
    () => false,
  )
}

/** What the VM's own files say about its end. */
export async function endFacts(record: VmRecord, facts: Omit<EndFacts, 'console' | 'qemuLog'>): Promise<EndFacts> {
  const [consoleText, qemuLog] = await Promise.all([
    readFile(record.consoleLog, 'utf8').catch(() => ''),
    readFile(join(record.dir, 'qemu.log'), 'utf8').catch(() => ''),
  ])
  return {...facts, console: consoleText, qemuLog}
}

/** Explains the VM's end and copies its logs to failed/NAME-TIME/; the VM's own directory stays. */
export async function keepDeadVm(record: VmRecord, facts: Omit<EndFacts, 'console' | 'qemuLog'>): Promise<DeathRecord> {
  const end = explainEnd(await endFacts(record, facts))
  const diedAt = new Date().toISOString()
  const dir = join(failedDir(), `${record.name}-${diedAt.replace(/[:.]/g, '-')}`)
  await mkdir(dir, {recursive: true, mode: 0o700})
  for (const [from, to] of [[record.consoleLog, 'console.log'], [join(record.dir, 'qemu.log'), 'qemu.log'], [join(record.dir, 'vm.json'), 'vm.json']]) {
    await copyFile(from, join(dir, to)).catch(() => undefined)
  }
  const death: DeathRecord = {...end, name: record.name, diedAt, dir, consoleLog: join(dir, 'console.log'), mode: record.mode, reported: false}
  await writeDeath(death)
  await pruneDeaths()
  return death
}

const writeDeath = (death: DeathRecord) => writeFileAtomic(join(death.dir, 'death.json'), `${JSON.stringify(death, null, 2)}\n`, 0o600)

/** Every kept death, newest first. */
export async function listDeaths(): Promise<DeathRecord[]> {
  const entries = await readdir(failedDir()).catch(() => [] as string[])
  const deaths: DeathRecord[] = []
  for (const entry of entries) {
    const death = await readFile(join(failedDir(), entry, 'death.json'), 'utf8').then(
      (text) => JSON.parse(text) as DeathRecord,
      () => undefined,
    )
    if (death) deaths.push({...death, dir: join(failedDir(), entry), consoleLog: join(failedDir(), entry, 'console.log')})
  }
  return deaths.sort((a, b) => b.diedAt.localeCompare(a.diedAt))
}

async function pruneDeaths(): Promise<void> {
  const cutoff = new Date(Date.now() - KEEP_DAYS * 86_400_000).toISOString()
  const deaths = await listDeaths()
  for (const [index, death] of deaths.entries()) {
    if (index >= KEEP_AT_MOST || death.diedAt < cutoff) await rm(death.dir, {recursive: true, force: true})
  }
}

/**
 * A VM's death as an error: the one line a command shows, and the lab's account of the end
 * (postmortem.ts), for a caller that judges the end rather than reporting it (pmemlab repro).
 */
export class VmDeathError extends PmemlabError {
  constructor(
    message: string,
    readonly end: GuestEnd,
    hint: string,
  ) {
    super(message, end.exitCode, hint, end.excerpt)
  }
}

/** The lab's account of a kept death, as VmDeathError carries it. */
export const endOf = (death: DeathRecord): GuestEnd => ({kind: death.kind, reason: death.reason, excerpt: death.excerpt, exitCode: death.exitCode, guestFault: death.guestFault})

/** The error a command gives for a VM that died: the reason, where the logs are, the excerpt. */
export function deathError(death: DeathRecord): VmDeathError {
  return new VmDeathError(`VM "${death.name}" died: ${death.reason}`, endOf(death), `console log kept in ${death.consoleLog}`)
}

/**
 * Removes the directories of VMs whose QEMU is gone and returns the live ones. A detached VM
 * that died on its own has its logs kept first; a foreground VM belongs to the pmemlab that
 * started it, which explains its end itself (it is left alone while that pmemlab lives).
 */
export async function reapStale(): Promise<VmRecord[]> {
  const live = []
  for (const {record, running} of await listRecords()) {
    if (running) live.push(record)
    else if (record.mode === 'foreground' && record.owner !== undefined && (await processAlive(record.owner))) continue
    else await reapDead(record)
  }
  return live
}

async function reapDead(record: VmRecord): Promise<DeathRecord | undefined> {
  const death = record.mode === 'detached' && !(await isStopping(record)) ? await keepDeadVm(record, {phase: 'run'}) : undefined
  await removeVmDir(record.dir)
  return death
}

/** Deaths not yet shown by `ls`, marked as shown. */
export async function takeUnreportedDeaths(): Promise<DeathRecord[]> {
  const fresh = (await listDeaths()).filter((d) => !d.reported)
  for (const death of fresh) await writeDeath({...death, reported: true})
  return fresh
}

/**
 * The record of a running VM. A VM whose QEMU has gone is reaped, and its death named; a name
 * with no VM but a kept death names that death.
 */
export async function runningRecord(name: string): Promise<VmRecord> {
  checkVmName(name)
  const record = await readRecord(name)
  if (record && (await processAlive(record.pid, record.sockets.qmp))) return record
  if (record) {
    const death = await reapDead(record)
    if (death) throw deathError(death)
    throw notFound(`VM "${name}" is no longer running`, 'start a new one with: pmemlab up')
  }
  const earlier = (await listDeaths()).find((d) => d.name === name)
  if (earlier) throw new PmemlabError(`VM "${name}" died at ${earlier.diedAt}: ${earlier.reason}`, earlier.exitCode, `console log kept in ${earlier.consoleLog}`)
  throw notFound(`no VM named "${name}"`, 'see the running ones with: pmemlab ls')
}

/**
 * After a failed exchange with the guest agent: if QEMU has gone (or goes within a few seconds,
 * as after a panic), the VM died, and the error says how. Otherwise undefined: the failure was
 * the exchange's own.
 */
export async function deathOf(record: VmRecord, exitOf: ExitWatch | undefined, error: unknown): Promise<PmemlabError | undefined> {
  if (await waitForExit(record.pid, 3000, record.sockets.qmp)) return deathError(await keepDeadVm(record, {phase: 'run', exit: await settledExit(exitOf)}))
  if (!(error instanceof ReplyTimeout)) return undefined
  // QEMU runs but the guest no longer answers: a hung kernel, named with the console's tail.
  const death = await keepDeadVm(record, {phase: 'run', hungAfterMs: error.waitedMs})
  return new VmDeathError(`VM "${record.name}" hung: ${death.reason}`, endOf(death), `console log kept in ${death.consoleLog}`)
}

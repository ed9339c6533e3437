/**
 * The facts of one run (verdict.ts RunFacts), from what the runner saw: how each guest command
 * ended (TestRun.guest's account), how the guest died when it did (the lab's account,
 * lab/postmortem.ts), and the script's console. Pure.
 *
 * Only the script is evidence. A lab that could not start, a device that could not be prepared,
 * a guest that died or was lost before the script ran: each is a broken lab (an error, no
 * verdict), whatever the console showed then. Once the script runs, a guest death or hang is a
 * fact the verdict weighs, and only QEMU's own death is the lab's.
 */
import type {GuestEnd} from '../lab/postmortem.js'
import type {RunFacts} from './verdict.js'
import {PREPARE_TIMEOUT_SEC} from './guest.js'

/** How a guest command ended, as TestRun.guest tells it. */
export interface GuestStep {
  exitCode: number
  timedOut: boolean
  /** The guest went away under it (with the lab's reason when the lab named its death). */
  lost?: string
  /** Something else went wrong talking to the guest. */
  error?: string
  stdout: string
  stderr: string
}

export type GuestDeath = Pick<GuestEnd, 'kind' | 'reason' | 'excerpt' | 'guestFault'>

/** A run whose lab broke before the script could run, or around it. */
export const labBroke = (why: string): RunFacts => ({timedOut: false, console: '', labError: why})

/** The facts of a lab that could not start (LabSession.start's one line). */
export const bootFailed = (oneLine: string): RunFacts => labBroke(`the lab could not start: ${oneLine}`)

/** Why preparing DEVICE broke the lab, or undefined when it was prepared. DEATH: the lab's account, when the guest died under it. */
export function preparationProblem(device: string, step: GuestStep, death?: GuestDeath): string | undefined {
  if (death) return `the guest died while ${device} was prepared: ${death.reason}`
  if (step.lost) return `the guest was lost while ${device} was prepared: ${step.lost}`
  if (step.error) return `${device} could not be prepared: ${step.error}`
  if (step.timedOut) return `${device} could not be prepared: pmemlab-suite ran past ${PREPARE_TIMEOUT_SEC} s`
  if (step.exitCode === 0) return undefined
  return `${device} could not be prepared: ${failureOf(step)}`
}

/** What a failed pmemlab-suite step said: its first failing TAP test point, else its last line on stderr, with the status. */
function failureOf(step: GuestStep): string {
  const failed = /^not ok\b[ \d]*(?:- )?(.*)$/m.exec(step.stdout)?.[1]?.trim()
  const said = failed || step.stderr.trimEnd().split('\n').filter(Boolean).at(-1)?.trim()
  return said ? `${said} (exit ${step.exitCode})` : `pmemlab-suite exited ${step.exitCode}`
}

/**
 * The facts of the script's run: its status; or that it ran past its timeout; or how the guest
 * died or hung under it; or, when the guest was lost without the lab naming why, a broken lab.
 */
export function scriptFacts(step: GuestStep, death: GuestDeath | undefined, console: string): RunFacts {
  if (death) return {timedOut: false, guestEnd: {kind: death.kind, reason: death.reason, excerpt: [...death.excerpt], guestFault: death.guestFault}, console}
  if (step.lost) return {timedOut: false, console, labError: `the guest was lost while the script ran: ${step.lost}`}
  if (step.error) return {timedOut: false, console, labError: `pmemlab could not run the script: ${step.error}`}
  if (step.timedOut) return {timedOut: true, console}
  return {exit: step.exitCode, timedOut: false, console}
}

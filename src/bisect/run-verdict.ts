/**
 * One run of a bisect step judged when no reproducer file says what counts: a command given after
 * `--` (`pmemlab bisect ... -- COMMAND`), and one boot of --type boot. A reproducer file's runs
 * are judged by repro/verdict.ts judgeRun, by its expect block; these are the rules for the two
 * forms that have none, where the issue asks that a panic, an Oops or a hang under the kernel be
 * bad, not an abort (virtme-ng's exit 255 on a panic makes `git bisect run` give up instead).
 * Pure: repro's RunFacts (or a boot's) in, repro's RunVerdict out, for step-verdict.ts to count.
 *
 * A command's run, the first rule that applies deciding:
 *  1. the lab broke (QEMU died or was killed, the host ran out of something, the guest was lost
 *     without the lab naming why): error
 *  2. the guest died under the command (panic, death after an Oops, reboot, power-off) or hung:
 *     reproduced, with the lab's account of it
 *  3. the command ran past its timeout: reproduced (the guest answered, but the command did not
 *     come back: a process stuck in the kernel, a DAX fault that never completes)
 *  4. the console shows a crash report the guest survived (Oops, BUG, general protection fault,
 *     KASAN/KFENCE/KCSAN, panic, hard lockup): reproduced, whatever the command's status
 *  5. the command exited 125: error (git bisect run's "cannot test this commit")
 *  6. it exited 0: not reproduced; any other status: reproduced
 * A WARNING, a lockdep report or a UBSAN report alone decides nothing here: they are common in
 * kernels under development and may be another bug; a reproducer file with must: [warning]
 * says when one is the bug.
 *
 * A boot (--type boot): the lab broke, error; the guest died or hung while booting (the kernel's
 * fault, as lab/postmortem.ts explainEnd tells it), reproduced; it answered but the console shows
 * a crash report, reproduced; it answered cleanly, not reproduced.
 */
import {consoleExcerpt, scanConsole, type FindingKind} from '../lab/oops.js'
import {consoleTail, type GuestEnd} from '../lab/postmortem.js'
import type {RunFacts, RunVerdict} from '../repro/verdict.js'

const TAIL_LINES = 20

/** Exit status of a command that cannot test this commit, as git bisect run reads it. */
export const CANNOT_TEST = 125

/** Console reports that mean the kernel crashed, even when the guest lived on. */
export const CRASH_KINDS: readonly FindingKind[] = ['panic', 'oops', 'bug', 'gpf', 'kasan', 'lockup']

/** The first crash report on CONSOLE: its title and lines. */
function crashOn(console: string): {title: string; lines: string[]} | undefined {
  const found = scanConsole(console).find((f) => CRASH_KINDS.includes(f.kind))
  return found && {title: found.title, lines: found.lines}
}

/** Judges one run of a bisect's command: see the rules at the top of this file. */
export function judgeCommandRun(facts: RunFacts): RunVerdict {
  if (facts.labError !== undefined) return {outcome: 'error', reason: `the lab broke: ${facts.labError}`, excerpt: []}
  const end = facts.guestEnd
  if (end && !end.guestFault) return {outcome: 'error', reason: `the lab broke: ${end.reason}`, excerpt: end.excerpt}
  if (end) return {outcome: 'reproduced', reason: end.reason, excerpt: end.excerpt}
  if (facts.timedOut) return {outcome: 'reproduced', reason: 'the command ran past its timeout', excerpt: consoleTail(facts.console, TAIL_LINES)}
  const crash = crashOn(facts.console)
  if (crash) return {outcome: 'reproduced', reason: `${crash.title}${facts.exit !== undefined ? ` (the command exited ${facts.exit})` : ''}`, excerpt: crash.lines}
  if (facts.exit === undefined) return {outcome: 'error', reason: 'the command ended without an exit status', excerpt: consoleTail(facts.console, TAIL_LINES)}
  if (facts.exit === CANNOT_TEST) return {outcome: 'error', reason: `the command exited ${CANNOT_TEST}: it cannot test this commit`, excerpt: []}
  if (facts.exit === 0) return {outcome: 'not reproduced', reason: 'the command exited 0', excerpt: []}
  return {outcome: 'reproduced', reason: `the command exited ${facts.exit}`, excerpt: consoleExcerpt(facts.console)}
}

export interface BootFacts {
  /** The lab could not start, for reasons outside the kernel. */
  labError?: string
  /** How the guest ended while booting, when it did (lab/postmortem.ts explainEnd, phase boot). */
  end?: Pick<GuestEnd, 'reason' | 'excerpt' | 'guestFault'>
  /** The console from power-on to the guest's answer (or its end). */
  console: string
}

/** Judges one boot of --type boot: see the top of this file. */
export function judgeBoot(facts: BootFacts): RunVerdict {
  if (facts.labError !== undefined) return {outcome: 'error', reason: `the lab broke: ${facts.labError}`, excerpt: []}
  if (facts.end && !facts.end.guestFault) return {outcome: 'error', reason: `the lab broke: ${facts.end.reason}`, excerpt: facts.end.excerpt}
  if (facts.end) return {outcome: 'reproduced', reason: facts.end.reason, excerpt: facts.end.excerpt}
  const crash = crashOn(facts.console)
  if (crash) return {outcome: 'reproduced', reason: `the guest booted, but: ${crash.title}`, excerpt: crash.lines}
  return {outcome: 'not reproduced', reason: 'the guest booted', excerpt: []}
}

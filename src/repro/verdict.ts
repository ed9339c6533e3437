/**
 * Judging a reproducer: one run's facts against the file's expect block, then the runs together.
 * Pure: facts in, a verdict out. The console is read by lab/oops.ts, the detector every other
 * part of pmemlab uses, so a WARNING here is what `pmemlab test` calls a WARNING.
 *
 * One run is judged in this order; the first rule that applies decides:
 *  1. The lab broke (QEMU died or was killed, the host ran out of something, a device could not
 *     be prepared): error, whatever the console shows. A broken lab says nothing about the kernel.
 *  2. Something must_not names showed (a class, a regex, or hang): not reproduced. The file said
 *     that this is some other behaviour, not the bug.
 *  3. The run hung (the script ran past expect.timeout, or the guest stopped answering) and must
 *     does not name hang: error, with the timeout. A hang nobody expected may hide the bug or be
 *     another one; it is no evidence either way.
 *  4. The guest died (panic, death after an Oops, reboot, power-off) and the console shows none
 *     of what must names: error. A death the expected report explains is part of the bug: a
 *     panic when must names panic, an Oops under panic_on_oops when it names oops, a WARNING
 *     under panic_on_warn when it names warning.
 *  5. Something must names did not show: not reproduced.
 *  6. expect names an exit status and the script ended with another: not reproduced. A run that
 *     died or hung (as expected) has no status, and then only the console counts.
 *  7. Otherwise: reproduced.
 *
 * The classes take in these console reports (lab/oops.ts kinds): oops: Oops and general
 * protection faults; bug: BUG, kernel BUG at, and KASAN/KFENCE/KCSAN reports (they print BUG:);
 * warning: WARN() splats (a lockdep report, which also starts WARNING:, is lockdep's); lockdep:
 * lockdep and RCU-usage reports; panic: a kernel panic. UBSAN reports, lockups, hung-task notices
 * and RCU stalls are reached by regex. Classes are matched line by line, so an Oops printed
 * inside a BUG report counts for both.
 */
import {ExitCode, type ExitCodeValue} from '../core/errors.js'
import {classify, consoleExcerpt, messageOf, scanConsole, type Finding, type FindingKind} from '../lab/oops.js'
import {consoleTail, type GuestEnd} from '../lab/postmortem.js'
import type {Pattern, PatternClass, ReproExpect} from './expect.js'

export type Outcome = 'reproduced' | 'not reproduced' | 'error'

export interface RunFacts {
  /** The script's exit status, when it ended by itself. */
  exit?: number
  /** The script ran past expect.timeout and was stopped. */
  timedOut: boolean
  /** How the guest ended, when it ended during the run (lab/postmortem.ts explainEnd). */
  guestEnd?: Pick<GuestEnd, 'kind' | 'reason' | 'excerpt' | 'guestFault'>
  /** What the guest console printed from the script's start to the run's end. */
  console: string
  /** The lab broke under the run, in one line: QEMU died, the host ran out of memory or disk, a device could not be prepared. */
  labError?: string
}

export interface RunVerdict {
  outcome: Outcome
  /** One line: why. */
  reason: string
  /** The console lines that decided it: what matched, what must_not names, or the guest's last words. */
  excerpt: string[]
}

const CLASS_KINDS: Record<Exclude<PatternClass, 'hang'>, readonly FindingKind[]> = {
  oops: ['oops', 'gpf'],
  bug: ['bug', 'kasan'],
  warning: ['warning'],
  lockdep: ['lockdep'],
  panic: ['panic'],
}

const MAX_EXCERPT = 60
const TAIL_LINES = 20

interface Match {
  /** "warning: WARNING: CPU: 0 PID: 1 at fs/dax.c:1 ...". */
  what: string
  excerpt: string[]
}

/** The console as lines, and each line as a kernel message (no timestamp), scanned once. */
class ConsoleText {
  readonly lines: string[]
  readonly messages: string[]
  private readonly findings: Finding[]

  constructor(readonly text: string) {
    this.lines = text.split('\n').map((l) => l.replace(/\r/g, '').trimEnd())
    this.messages = this.lines.map(messageOf)
    this.findings = scanConsole(text)
  }

  /** The report from line I (0-based) on, as the detector cut it: at least the line itself. */
  reportFrom(i: number): string[] {
    const finding = this.findings.find((f) => f.line - 1 <= i && i < f.line - 1 + f.lines.length)
    const lines = finding ? finding.lines.slice(i - (finding.line - 1)) : []
    return lines.length > 0 ? lines : [this.lines[i]]
  }
}

/** How the run hung, if it did. A guest that died is no hang, even past the timeout: the death came first. */
function hangOf(facts: RunFacts, expect: ReproExpect): string | undefined {
  if (facts.guestEnd !== undefined) return facts.guestEnd.kind === 'hang' ? facts.guestEnd.reason : undefined
  if (facts.timedOut) return `the script ran past its ${expect.timeoutSec} s timeout`
  return undefined
}

/** Where PATTERN shows in this run, if it does. */
function find(pattern: Pattern, facts: RunFacts, expect: ReproExpect, console: ConsoleText): Match | undefined {
  if (pattern.kind === 'regex') {
    const regex = new RegExp(pattern.source, pattern.flags)
    const i = console.messages.findIndex((m) => regex.test(m))
    return i < 0 ? undefined : {what: `${pattern.text} matched "${console.messages[i]}"`, excerpt: [console.lines[i]]}
  }
  if (pattern.class === 'hang') {
    const hang = hangOf(facts, expect)
    return hang === undefined ? undefined : {what: `hang: ${hang}`, excerpt: facts.guestEnd?.kind === 'hang' ? facts.guestEnd.excerpt : consoleTail(console.text, TAIL_LINES)}
  }
  const kinds = CLASS_KINDS[pattern.class]
  const i = console.lines.findIndex((line) => {
    const kind = classify(line)?.kind
    return kind !== undefined && kinds.includes(kind)
  })
  if (i >= 0) return {what: `${pattern.class}: ${console.messages[i]}`, excerpt: console.reportFrom(i)}
  // The death's own account, should the console have lost the panic line.
  if (pattern.class === 'panic' && facts.guestEnd?.kind === 'panic') return {what: `panic: ${facts.guestEnd.reason}`, excerpt: facts.guestEnd.excerpt}
  return undefined
}

const exitText = (exit: number | 'nonzero') => (exit === 'nonzero' ? 'a nonzero status' : `status ${exit}`)
const exitMatches = (wanted: number | 'nonzero', got: number) => (wanted === 'nonzero' ? got !== 0 : got === wanted)

/** Judges one run: see the order of the rules at the top of this file. */
export function judgeRun(expect: ReproExpect, facts: RunFacts): RunVerdict {
  if (facts.labError !== undefined) return {outcome: 'error', reason: `the lab broke: ${facts.labError}`, excerpt: []}
  const end = facts.guestEnd
  if (end && !end.guestFault) return {outcome: 'error', reason: `the lab broke: ${end.reason}`, excerpt: end.excerpt}
  const console = new ConsoleText(facts.console)
  const look = (pattern: Pattern) => ({pattern, match: find(pattern, facts, expect, console)})

  const forbidden = expect.mustNot.map(look).find((m) => m.match)
  if (forbidden?.match) return {outcome: 'not reproduced', reason: `${forbidden.match.what}, which must_not names`, excerpt: forbidden.match.excerpt}

  const hang = hangOf(facts, expect)
  const expected = expect.must.map(look)
  if (hang !== undefined && !expect.must.some((p) => p.kind === 'class' && p.class === 'hang')) {
    const excerpt = end?.kind === 'hang' ? end.excerpt : consoleTail(facts.console, TAIL_LINES)
    return {outcome: 'error', reason: `the run hung: ${hang}, and expect does not name hang`, excerpt}
  }
  const died = end !== undefined && end.kind !== 'hang'
  if (died && !expected.some((m) => m.match)) {
    const named = expect.must.length > 0 ? `the console shows none of ${expect.must.map((p) => p.text).join(', ')}` : 'expect names only an exit status'
    return {outcome: 'error', reason: `the guest died: ${end.reason}, and ${named}`, excerpt: end.excerpt}
  }

  const after = died ? ` (the guest died: ${end.reason})` : facts.exit !== undefined ? ` (the script exited ${facts.exit})` : ''
  const missing = expected.find((m) => !m.match)
  if (missing) {
    const what = missing.pattern.kind === 'class' && missing.pattern.class === 'hang' ? 'the run did not hang' : `no ${missing.pattern.text} on the console`
    return {outcome: 'not reproduced', reason: `${what}${after}`, excerpt: consoleExcerpt(facts.console)}
  }

  const found = expected.map((m) => m.match!)
  if (expect.exit !== undefined && hang === undefined && !died) {
    if (facts.exit === undefined) return {outcome: 'error', reason: 'the script ended without an exit status', excerpt: consoleTail(facts.console, TAIL_LINES)}
    if (!exitMatches(expect.exit, facts.exit)) return {outcome: 'not reproduced', reason: `the script exited ${facts.exit}, not with ${exitText(expect.exit)}`, excerpt: []}
    found.push({what: `the script exited ${facts.exit}`, excerpt: []})
  }
  const excerpt = [...new Set(found.flatMap((m) => m.excerpt))].slice(0, MAX_EXCERPT)
  return {outcome: 'reproduced', reason: found.map((m) => m.what).join('; '), excerpt}
}

// ---------------------------------------------------------------------------------------------
// Runs together

export interface RunPolicy {
  /** The most runs. */
  runs: number
  /** Stop at the first run that reproduces (--until-reproduced). */
  untilReproduced: boolean
}

/** Runs --until-reproduced makes when neither --runs nor the file says how many. */
export const UNTIL_REPRODUCED_RUNS = 20
/** Errors in a row that end the runs: a lab that broke three times running will not mend, and the runs left would only add errors. */
export const ERRORS_IN_A_ROW = 3

/** How many runs at most: --runs, else the file's run.runs, else 1 (UNTIL_REPRODUCED_RUNS with --until-reproduced). */
export function runLimit(flagRuns: number | undefined, fileRuns: number | undefined, untilReproduced: boolean): number {
  return flagRuns ?? fileRuns ?? (untilReproduced ? UNTIL_REPRODUCED_RUNS : 1)
}

export type StopReason = 'done' | 'reproduced' | 'errors'

/** Whether to run again after OUTCOMES (in the order the runs ended), or why not. */
export function nextRun(outcomes: readonly Outcome[], policy: RunPolicy): {again: true} | {again: false; why: StopReason} {
  if (policy.untilReproduced && outcomes.includes('reproduced')) return {again: false, why: 'reproduced'}
  if (outcomes.length >= ERRORS_IN_A_ROW && outcomes.slice(-ERRORS_IN_A_ROW).every((o) => o === 'error')) return {again: false, why: 'errors'}
  if (outcomes.length >= policy.runs) return {again: false, why: 'done'}
  return {again: true}
}

export interface ReproSummary {
  outcome: Outcome
  runs: number
  reproduced: number
  errors: number
  /** "reproduced 3/10", "not reproduced 0/10", "error 0/3 (3 errors; stopped after 3 errors in a row, of up to 10 runs)". */
  rate: string
  exitCode: ExitCodeValue
}

/**
 * The exit code of a reproducer's outcome, for scripts. 0 when it did not reproduce, 1 when it
 * did, 125 when there is no verdict: what `git bisect run` reads as good, bad and "cannot test
 * this commit, skip it", so that `git bisect run pmemlab repro bug.yaml --kernel ...` needs no
 * wrapper. A CI job that guards a fix reads it the same way: 0 passes (the bug stays away), 1
 * fails, and 125 is neither. (Bad input keeps its 2, interruption its 130: check a reproducer
 * once by hand before bisecting, since git bisect would take a 2 for a bad commit.)
 */
export function outcomeExitCode(outcome: Outcome): ExitCodeValue {
  if (outcome === 'reproduced') return ExitCode.failure
  if (outcome === 'not reproduced') return ExitCode.ok
  return ExitCode.noVerdict
}

/**
 * The outcome over all runs: reproduced when any run reproduced (the bug is there, however
 * rare); not reproduced only when every run ended with that verdict; error otherwise, since a run
 * that broke might have been the one to reproduce.
 */
export function summarize(outcomes: readonly Outcome[], policy: RunPolicy): ReproSummary {
  const count = (o: Outcome) => outcomes.filter((x) => x === o).length
  const [reproduced, errors, runs] = [count('reproduced'), count('error'), outcomes.length]
  const outcome: Outcome = reproduced > 0 ? 'reproduced' : errors > 0 || runs === 0 ? 'error' : 'not reproduced'
  const notes: string[] = []
  if (errors > 0) notes.push(`${errors} error${errors === 1 ? '' : 's'}`)
  const next = nextRun(outcomes, policy)
  if (!next.again && next.why !== 'done' && runs < policy.runs) {
    notes.push(`${next.why === 'reproduced' ? 'stopped at the first reproduction' : `stopped after ${ERRORS_IN_A_ROW} errors in a row`}, of up to ${policy.runs} runs`)
  }
  const rate = `${outcome} ${reproduced}/${runs}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`
  return {outcome, runs, reproduced, errors, rate, exitCode: outcomeExitCode(outcome)}
}

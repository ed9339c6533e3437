/**
 * src/bisect/ owns `pmemlab bisect`: a bisect driven through real `git bisect` in the user's tree
 * (git picks each commit, walks merges and keeps the log), with pmemlab building and testing each
 * commit and telling git what it saw. This module decides one step; run-verdict.ts judges a run
 * of a `-- COMMAND` or a boot (a reproducer file's runs are judged by repro/verdict.ts);
 * git-output.ts reads what git prints, git-argv.ts writes what git is told, state.ts is the state
 * file and what --resume does, report.ts the report. Pure: facts in, a verdict out.
 *
 * Terms. --good names a commit where the bug does not reproduce, --bad one where it does, in both
 * directions. git is always told its terms explicitly:
 *   normal     old = good (does not reproduce), new = bad (reproduces): git finds the first bad commit
 *   --reverse  old = broken (reproduces), new = fixed (does not): git finds the first fixed commit;
 *              the bad endpoint is then the ancestor and the good one its descendant
 * (git refuses to swap the meaning of its own good and bad, hence broken and fixed.)
 *
 * What a step saw, by --type (ktest's BISECT_TYPE):
 *   build  the build is the test: a build that fails reproduces, one that succeeds does not
 *   boot   a build that fails is skipped; each run is one boot (run-verdict.ts judgeBoot): a panic,
 *          Oops or hang at boot under the kernel reproduces, a clean boot does not, a lab that
 *          broke is an error
 *   test   a build that fails is skipped; each run is the reproducer, judged by repro/verdict.ts
 *          judgeRun (a panic, Oops or hang the expect block names reproduces, one it does not name
 *          is an error, as is a lab that broke), or the command after --, judged by run-verdict.ts
 *          judgeCommandRun (a panic, Oops or hang reproduces, as a nonzero status does). A kernel
 *          that dies while booting, before the test could run, gives an error run (syzkaller too
 *          counts a boot failure as neither good nor bad): it is some other bug, and --type boot
 *          is the bisect that looks for it
 * A lab that could not start at all for reasons outside the kernel (QEMU missing or killed, the
 * host out of memory or disk, an image that would not build) is skipped, as syzkaller skips infra
 * errors: it says nothing about the commit.
 *
 * Of a step's N runs (--runs N, --bad-threshold K, --max-errors E; defaults 1, 1, 0):
 *   reproduced  at least K runs reproduced
 *   clean       no run reproduced, at most E runs were errors, and at least N - E ended as not
 *               reproduced (a step stopped early has too few)
 *   skip        anything else: 1..K-1 reproductions (too few to call it bad, too many to call it
 *               good), or more errors than E (a broken run may have been the one to reproduce)
 * "Good only with no reproduction" is syzkaller's rule for flaky bugs: a single reproduction
 * proves the bug is there, while no reproduction only makes its absence likely (see confidence).
 */
import {ExitCode, type ExitCodeValue} from '../core/errors.js'
import type {Outcome} from '../repro/verdict.js'

export const BISECT_TYPES = ['build', 'boot', 'test'] as const
export type BisectType = (typeof BISECT_TYPES)[number]

export interface Terms {
  /** git's term for the older side: where the commit sought is not yet in. */
  old: string
  new: string
}

export const NORMAL_TERMS: Terms = {old: 'good', new: 'bad'}
export const REVERSE_TERMS: Terms = {old: 'broken', new: 'fixed'}
export const termsOf = (reverse: boolean): Terms => (reverse ? REVERSE_TERMS : NORMAL_TERMS)

export interface StepOptions {
  type: BisectType
  /** --runs: runs per step (boots with --type boot); 1 with --type build. */
  runs: number
  /** --bad-threshold: reproductions that make a step reproduced (1 <= K <= runs). */
  badThreshold: number
  /** --max-errors: errors a clean step may have had. */
  maxErrors: number
  reverse: boolean
}

export const DEFAULT_STEP_OPTIONS: StepOptions = {type: 'test', runs: 1, badThreshold: 1, maxErrors: 0, reverse: false}

/** The step options' own consistency, as one line for a usage error; undefined when they hold. */
export function stepOptionsProblem(o: StepOptions): string | undefined {
  if (!Number.isInteger(o.runs) || o.runs < 1) return `--runs ${o.runs}: write a whole number of 1 or more`
  if (!Number.isInteger(o.badThreshold) || o.badThreshold < 1 || o.badThreshold > o.runs) return `--bad-threshold ${o.badThreshold}: write a whole number from 1 to --runs (${o.runs})`
  if (!Number.isInteger(o.maxErrors) || o.maxErrors < 0 || o.maxErrors >= o.runs) return `--max-errors ${o.maxErrors}: write a whole number from 0 to --runs minus 1 (${o.runs - 1})`
  if (o.type === 'build' && o.runs !== 1) return '--runs goes with --type boot or test: a build is run once'
  return undefined
}

/** A step's build: what kernel/build.ts did with the commit. */
export type BuildFact = {ok: true; cached?: boolean; durationMs?: number} | {ok: false; reason: string; durationMs?: number}

export interface StepFacts {
  build: BuildFact
  /** The lab could not start at all, for reasons outside the kernel (one line); no run was made. */
  labError?: string
  /** Each run's outcome, in the order the runs ended (boots with --type boot; none with --type build). */
  runs: readonly Outcome[]
}

/** What a step saw, before it is named in git's terms. */
export type Observation = 'reproduced' | 'clean' | 'skip'
/** The side git is told: old, new, or skip. */
export type Side = 'old' | 'new' | 'skip'

export interface StepVerdict {
  observation: Observation
  side: Side
  /** The git bisect subcommand: a term, or skip. */
  term: string
  /** One line: why. */
  reason: string
}

export interface RunCounts {
  runs: number
  reproduced: number
  notReproduced: number
  errors: number
}

export function countRuns(outcomes: readonly Outcome[]): RunCounts {
  const count = (o: Outcome) => outcomes.filter((x) => x === o).length
  return {runs: outcomes.length, reproduced: count('reproduced'), notReproduced: count('not reproduced'), errors: count('error')}
}

/** "reproduced 2/3", "reproduced 0/5 (1 error)": the runs of a step for a table cell or a line. */
export function runsText(outcomes: readonly Outcome[]): string {
  const c = countRuns(outcomes)
  return `reproduced ${c.reproduced}/${c.runs}${c.errors > 0 ? ` (${c.errors} error${c.errors === 1 ? '' : 's'})` : ''}`
}

/** The side an observation takes in the bisect's direction. */
export function sideOf(observation: Observation, reverse: boolean): Side {
  if (observation === 'skip') return 'skip'
  return (observation === 'reproduced') !== reverse ? 'new' : 'old'
}

/** What a step saw, and why: see the rules at the top of this file. */
export function observe(facts: StepFacts, options: StepOptions): {observation: Observation; reason: string} {
  if (options.type === 'build') {
    return facts.build.ok ? {observation: 'clean', reason: 'the kernel built'} : {observation: 'reproduced', reason: `the build failed: ${facts.build.reason}`}
  }
  if (!facts.build.ok) return {observation: 'skip', reason: `the build failed: ${facts.build.reason}`}
  if (facts.labError !== undefined) return {observation: 'skip', reason: `the lab could not start: ${facts.labError}`}
  const c = countRuns(facts.runs)
  const rate = runsText(facts.runs)
  const what = options.type === 'boot' ? 'boot failed' : 'reproduced'
  if (c.runs === 0) return {observation: 'skip', reason: 'no run was made'}
  if (c.reproduced >= options.badThreshold) return {observation: 'reproduced', reason: options.badThreshold === 1 ? rate : `${rate}, at least the ${options.badThreshold} --bad-threshold asks`}
  if (c.reproduced > 0) return {observation: 'skip', reason: `${rate}: ${what} in fewer runs than the ${options.badThreshold} --bad-threshold asks, so neither verdict holds`}
  if (c.errors > options.maxErrors) {
    return {observation: 'skip', reason: `${rate}: ${c.errors} run${c.errors === 1 ? '' : 's'} broke (--max-errors ${options.maxErrors}), and a broken run may have been the one to reproduce`}
  }
  const needed = options.runs - options.maxErrors
  if (c.notReproduced < needed) return {observation: 'skip', reason: `${rate}: only ${c.notReproduced} clean run${c.notReproduced === 1 ? '' : 's'}, ${needed} needed`}
  return {observation: 'clean', reason: rate}
}

/** The verdict of one step: what it saw, in git's terms for this direction. */
export function stepVerdict(facts: StepFacts, options: StepOptions): StepVerdict {
  const {observation, reason} = observe(facts, options)
  const side = sideOf(observation, options.reverse)
  const terms = termsOf(options.reverse)
  return {observation, side, term: side === 'skip' ? 'skip' : terms[side], reason}
}

/** `pmemlab bisect step`'s exit code, as `git bisect run` reads it: 0 old, 1 new, 125 skip (whatever the terms are called). */
export function stepExitCode(side: Side): ExitCodeValue {
  return side === 'old' ? ExitCode.ok : side === 'new' ? ExitCode.failure : ExitCode.noVerdict
}

/** Errors in a row after which a step stops running: a lab that broke three times will not mend (as repro's ERRORS_IN_A_ROW). */
export const STEP_ERRORS_IN_A_ROW = 3

/**
 * Whether a step should run again after OUTCOMES. It stops as soon as its observation cannot
 * change: K reproductions are in (reproduced whatever comes), or neither reproduced nor clean can
 * still be reached (skip whatever comes), or the lab broke STEP_ERRORS_IN_A_ROW times running.
 */
export function runAgain(outcomes: readonly Outcome[], options: StepOptions): boolean {
  const c = countRuns(outcomes)
  const left = options.runs - c.runs
  if (left <= 0 || c.reproduced >= options.badThreshold) return false
  if (c.runs >= STEP_ERRORS_IN_A_ROW && outcomes.slice(-STEP_ERRORS_IN_A_ROW).every((o) => o === 'error')) return false
  const badReachable = c.reproduced + left >= options.badThreshold
  const cleanReachable = c.reproduced === 0 && c.errors <= options.maxErrors
  return badReachable || cleanReachable
}

// ---------------------------------------------------------------------------------------------
// Endpoints (ktest's BISECT_CHECK): both are tested before the first step

export type Endpoint = 'good' | 'bad'

/**
 * Why an endpoint cannot be one, as the one line the bisect is refused with; undefined when it
 * holds. The good endpoint must be clean and the bad one reproduced, in either direction; an
 * endpoint that could not be tested (a failed build, a lab that did not start, too few clean runs)
 * is refused too, since nothing was checked.
 */
export function endpointProblem(endpoint: Endpoint, commit: string, verdict: Pick<StepVerdict, 'observation' | 'reason'>): string | undefined {
  const wanted: Observation = endpoint === 'good' ? 'clean' : 'reproduced'
  if (verdict.observation === wanted) return undefined
  const short = commit.slice(0, 12)
  if (verdict.observation === 'skip') return `the ${endpoint} endpoint ${short} could not be tested (${verdict.reason}): give --${endpoint} a commit that builds and runs`
  const seen = endpoint === 'good' ? 'reproduces the bug' : 'does not reproduce the bug'
  return `the ${endpoint} endpoint ${short} ${seen} (${verdict.reason}): give --${endpoint} a commit that ${endpoint === 'good' ? 'does not' : 'does'}`
}

// ---------------------------------------------------------------------------------------------
// Confidence (syzkaller's, pkg/bisect: the product of each step's confidence)

/** A tested commit as confidence reads it: what it saw, and its runs. */
export interface ObservedStep {
  observation: Observation
  runs: readonly Outcome[]
}

export interface Confidence {
  /** The chance that no clean step was a missed reproduction (0..1); undefined when the rate is unknown. */
  value?: number
  /** The per-run reproduction rate it assumes: reproductions over judged runs on the reproduced commits. */
  rate?: {reproduced: number; runs: number; p: number}
  /** Each clean step's chance of having missed a reproduction, (1 - p)^n, in step order. */
  misses: number[]
  /** One line for the report. */
  text: string
}

/** Fewer judged runs on reproducing commits than this, and the rate is called a small sample. */
export const SMALL_SAMPLE = 10

const percent = (x: number) => `${(x * 100).toFixed(x > 0.999 && x < 1 ? 2 : 1)}%`

/**
 * How sure the result is. A reproduction is taken as proof (reports are specific: a commit
 * without the bug does not print it), so the doubt lies in the clean steps: a flaky bug may have
 * stayed away in all n runs of a commit that has it. With p, the per-run reproduction rate, that
 * chance is (1 - p)^n, and the result holds only if no clean step (endpoint check included) was
 * such a miss: confidence = product over clean steps of (1 - (1 - p)^n).
 * p is estimated from the runs on the commits that reproduced (the bad endpoint check and every
 * bad step), pooled: reproductions / (reproductions + clean runs), errors left out. syzkaller
 * narrows its estimate as the bisect goes; pooling uses every run it has, is the same in any
 * order, and says when its sample is small: "1 of 1 runs" is weak evidence of a deterministic bug. Skipped steps take no side and add no doubt. With --type build
 * the test is deterministic (p = 1).
 */
export function bisectConfidence(steps: readonly ObservedStep[], type: BisectType): Confidence {
  const clean = steps.filter((s) => s.observation === 'clean')
  if (type === 'build') return {value: 1, misses: clean.map(() => 0), text: 'a build is deterministic: 100%'}
  const reproducedRuns = steps.filter((s) => s.observation === 'reproduced').map((s) => countRuns(s.runs))
  const reproduced = reproducedRuns.reduce((sum, c) => sum + c.reproduced, 0)
  const judged = reproducedRuns.reduce((sum, c) => sum + c.reproduced + c.notReproduced, 0)
  if (judged === 0) {
    if (clean.length === 0) return {value: 1, misses: [], text: 'no commit was found clean, so none can have been a missed reproduction'}
    return {misses: [], text: 'unknown: no commit that reproduced was run, so the reproduction rate is unknown'}
  }
  const p = reproduced / judged
  const misses = clean.map((s) => (1 - p) ** countRuns(s.runs).notReproduced)
  const value = misses.reduce((product, miss) => product * (1 - miss), 1)
  const small = judged < SMALL_SAMPLE ? '; a small sample, more --runs give a firmer figure' : ''
  const sample = `${reproduced} of ${judged} run${judged === 1 ? '' : 's'} on commits that reproduced${small}`
  const text =
    clean.length === 0
      ? `100%: no commit was found clean (reproduction rate ${percent(p)}, ${sample})`
      : `${percent(value)} that ${clean.length === 1 ? 'the one clean commit did not miss' : `none of the ${clean.length} clean commits missed`} a reproduction, at a reproduction rate of ${percent(p)} per run (${sample})`
  return {value, rate: {reproduced, runs: judged, p}, misses, text}
}

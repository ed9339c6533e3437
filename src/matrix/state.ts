/**
 * A cell's state, decided from what happened to it. Pure: the runner gathers the facts (the
 * kernel's build, its sanity gate, each attempt at the suite) and this decides, with the reason
 * (one line), the console excerpt when there is one, and which phase and attempt decided.
 *
 *   pass   every test that ran passed (a lab error on an earlier attempt does not count against it)
 *   fail   the kernel under test failed: a test, a fatal console finding, a panic or hang at boot,
 *          devices that did not appear, a cell past its timeout
 *   skip   nothing to judge: the kernel did not build, a rule excluded the cell once its kernel's
 *          version was known, or every test skipped itself
 *   error  the lab broke, not the kernel: QEMU died, the host ran out of memory or disk; or the
 *          kernel's recipe cannot be built as written (a patch that does not apply, a missing file)
 *   flaky  failed, then passed on a retry
 */
import type {Counts} from '../suite/results.js'
import type {DeviceKind} from './cells.js'

export const CELL_STATES = ['pass', 'fail', 'skip', 'error', 'flaky'] as const
export type CellState = (typeof CELL_STATES)[number]
export type Phase = 'plan' | 'build' | 'gate' | 'suite'

/** The kernel's build; absent for kernels nothing builds (prebuilt, distro, a path). */
/** badInput: the recipe cannot be built as written (a patch that does not apply, a missing file): the matrix's own mistake, not the kernel's. */
export type BuildFact = {ok: true} | {ok: false; reason: string; badInput?: boolean}

/** The kernel's sanity gate: one boot with every device kind its cells use. */
export type GateFact =
  /** Booted; MISSING lists the device kinds that did not appear. */
  | {outcome: 'booted'; missing?: DeviceKind[]}
  /** The guest panicked, hung or died at boot: the kernel's failure. */
  | {outcome: 'failed'; reason: string; excerpt?: string[]}
  /** The lab could not boot it (QEMU exited, the host ran out of something). */
  | {outcome: 'error'; reason: string}

/** One attempt at the cell's suite. */
export type AttemptFact =
  | {
      outcome: 'ran'
      counts: Counts
      /** Console findings that fail runs (Oops, BUG, panic...). */
      fatalFindings: number
      /** One line per failing test or finding, first first: "builtin/nvdimm0/ext4/mmap: ...". */
      failures?: string[]
      /** Why the tests skipped themselves, when all did. */
      skipReason?: string
      durationMs: number
    }
  /** The guest died under the suite (panic, Oops, hang, reboot), or at boot (ATBOOT): the kernel's failure. */
  | {outcome: 'died'; reason: string; excerpt?: string[]; atBoot?: true; durationMs: number}
  /** The cell ran past the plan's timeout and was stopped. */
  | {outcome: 'timeout'; afterSec: number; durationMs: number}
  /** The lab broke under the suite. */
  | {outcome: 'error'; reason: string; durationMs: number}

export interface CellFacts {
  /** Set when a version rule excluded the cell once its kernel was resolved (cells.exclusionReason). */
  excluded?: string
  build?: BuildFact
  gate?: GateFact
  /** The device kinds of the cell's topology. */
  deviceKinds: readonly DeviceKind[]
  attempts: readonly AttemptFact[]
}

export interface CellDecision {
  state: CellState
  /** One line. */
  reason: string
  /** The console excerpt of a panic or hang. */
  details?: string[]
  decidedBy: {phase: Phase; attempt?: number}
}

export type Verdict = {verdict: 'pass' | 'fail' | 'skip' | 'error'; reason: string; details?: string[]}

/** What one attempt says on its own. */
export function attemptVerdict(attempt: AttemptFact): Verdict {
  switch (attempt.outcome) {
    case 'died':
      return {verdict: 'fail', reason: attempt.reason, ...(attempt.excerpt?.length ? {details: attempt.excerpt} : {})}
    case 'timeout':
      return {verdict: 'fail', reason: `ran past the cell timeout of ${attempt.afterSec} s and was stopped`}
    case 'error':
      return {verdict: 'error', reason: attempt.reason}
    case 'ran': {
      const c = attempt.counts
      const failing = c.failed + c.timedOut + c.errors
      if (failing > 0 || attempt.fatalFindings > 0) {
        const parts = [failing > 0 && `${failing} of ${c.total} tests failed`, attempt.fatalFindings > 0 && plural(attempt.fatalFindings, 'kernel finding')]
        const first = attempt.failures?.[0]
        const more = (attempt.failures?.length ?? 0) > 1 ? ` (and ${attempt.failures!.length - 1} more)` : ''
        return {verdict: 'fail', reason: `${parts.filter(Boolean).join(' and ')}${first ? `: ${first}${more}` : ''}`}
      }
      if (c.total === 0) return {verdict: 'skip', reason: attempt.skipReason ?? 'the suite ran no test here'}
      if (c.passed === 0) return {verdict: 'skip', reason: `all ${c.total} tests skipped${attempt.skipReason ? `: ${attempt.skipReason}` : ''}`}
      return {verdict: 'pass', reason: [`${c.passed} passed`, c.skipped > 0 && `${c.skipped} skipped`, c.todo > 0 && `${c.todo} todo`].filter(Boolean).join(', ')}
    }
  }
}

/** Whether the runner should make another attempt, RETRIES being the plan's extra attempts. */
export function wantsRetry(attempts: readonly AttemptFact[], retries: number): boolean {
  if (attempts.length === 0 || attempts.length > retries) return false
  const last = attemptVerdict(attempts[attempts.length - 1]).verdict
  return last === 'fail' || last === 'error'
}

/** The cell's state from its facts; the earliest phase that settles it wins. */
export function decideCell(facts: CellFacts): CellDecision {
  if (facts.excluded !== undefined) return {state: 'skip', reason: facts.excluded, decidedBy: {phase: 'plan'}}
  if (facts.build && !facts.build.ok) {
    // A recipe that cannot work must not turn a CI matrix green by skipping its cells.
    if (facts.build.badInput) return {state: 'error', reason: `the kernel's recipe cannot be built as written: ${facts.build.reason}`, decidedBy: {phase: 'build'}}
    return {state: 'skip', reason: `the kernel did not build: ${facts.build.reason}`, decidedBy: {phase: 'build'}}
  }
  const gate = facts.gate
  if (gate?.outcome === 'failed') {
    return {state: 'fail', reason: `the kernel failed its sanity gate: ${gate.reason}`, ...(gate.excerpt?.length ? {details: gate.excerpt} : {}), decidedBy: {phase: 'gate'}}
  }
  if (gate?.outcome === 'error') return {state: 'error', reason: `the sanity gate could not run: ${gate.reason}`, decidedBy: {phase: 'gate'}}
  const missing = (gate?.missing ?? []).filter((kind) => facts.deviceKinds.includes(kind))
  if (missing.length > 0) {
    return {state: 'fail', reason: `no ${missing.join(' or ')} device appeared in the guest at the sanity gate`, decidedBy: {phase: 'gate'}}
  }
  const verdicts = facts.attempts.map(attemptVerdict)
  if (verdicts.length === 0) return {state: 'error', reason: 'the cell never ran', decidedBy: {phase: 'suite'}}
  const decided = (state: CellState, index: number, reason: string): CellDecision => {
    const v = verdicts[index]
    return {state, reason, ...(v.details ? {details: v.details} : {}), decidedBy: {phase: 'suite', attempt: index + 1}}
  }
  const of = (index: number) => (verdicts.length > 1 ? `attempt ${index + 1} of ${verdicts.length}: ` : '')
  const passed = verdicts.findIndex((v) => v.verdict === 'pass')
  const failed = verdicts.findIndex((v) => v.verdict === 'fail')
  if (passed >= 0) {
    if (failed >= 0 && failed < passed) {
      return decided('flaky', passed, `passed on attempt ${passed + 1} after failing on attempt ${failed + 1}: ${verdicts[failed].reason}`)
    }
    const labError = verdicts.findIndex((v) => v.verdict === 'error')
    const after = labError >= 0 && labError < passed ? ` (after a lab error on attempt ${labError + 1}: ${verdicts[labError].reason})` : ''
    return decided('pass', passed, `${verdicts[passed].reason}${after}`)
  }
  const last = (verdict: Verdict['verdict']) => verdicts.map((v) => v.verdict).lastIndexOf(verdict)
  // A kernel that failed once and never passed failed, whatever the lab did on other attempts.
  if (failed >= 0) return decided('fail', last('fail'), `${of(last('fail'))}${verdicts[last('fail')].reason}`)
  // Otherwise the last attempt says it: a lab error, or tests that skipped themselves.
  const final = verdicts.length - 1
  return decided(verdicts[final].verdict === 'error' ? 'error' : 'skip', final, `${of(final)}${verdicts[final].reason}`)
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

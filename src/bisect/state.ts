/**
 * The state file of a bisect (OUTPUT/bisect-state.json): what was asked, every commit tested and
 * what it gave, git's bisect log as last seen, and the result once there is one. Pure: state in,
 * JSON out and back (zod-checked, versioned), and what `pmemlab bisect --resume` does next. The
 * edge writes it with core/cache.ts writeFileAtomic after every change, so a crash leaves either
 * the old state or the new one.
 *
 * The order the edge keeps, which resume relies on:
 *   1. a step is tested, and recorded here with its verdict (written);
 *   2. git is told (git bisect TERM COMMIT), and its log recorded here (written).
 * A crash between 1 and 2 leaves a step git has not heard of; a crash in 1 leaves nothing (the
 * step is tested again). So git's log is never ahead of the steps here, and the steps here are
 * what the bisect is: git's state can always be rebuilt from them.
 *
 * --resume, from the state and the tree's bisect (`git bisect log`, or "We are not bisecting."):
 *   finished   the state has a result: the report is written again, git is not touched
 *   check      an endpoint is not checked yet (bad first, then good, as ktest's BISECT_CHECK)
 *   start      both are checked and git was never started: git bisect start
 *   continue   the tree's bisect is this one (same start, same marks): `git bisect next` checks
 *              out the commit to test, which is HEAD already unless someone moved it
 *   replay     the tree's bisect differs (reset, replaced by another, or a step git has not
 *              heard of): git bisect reset, then git bisect replay of REPLAY, the recorded log
 *              with the marks git missed added, or one written from the steps alone when the
 *              recorded log does not agree with them
 */
import {z} from 'zod'
import {usageError} from '../core/errors.js'
import {startArgs} from './git-argv.js'
import {loggedBisect, parseBisectLog, type LoggedBisect} from './git-output.js'
import {BISECT_TYPES, termsOf, type Endpoint, type Terms} from './step-verdict.js'

export const STATE_FILE = 'bisect-state.json'
export const STATE_FORMAT = 'pmemlab-bisect-state'
export const STATE_VERSION = 1

const hash = z.string().regex(/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/, 'is not a full commit hash')
const outcome = z.enum(['reproduced', 'not reproduced', 'error'])

const runRecord = z.object({outcome, reason: z.string(), durationMs: z.number().nonnegative()}).strict()

const stepRecord = z
  .object({
    commit: hash,
    subject: z.string().optional(),
    /** An endpoint check, or a step git chose. */
    role: z.enum(['bad endpoint', 'good endpoint', 'step']),
    build: z
      .object({
        state: z.enum(['built', 'cached', 'failed']),
        reason: z.string().optional(),
        durationMs: z.number().nonnegative().optional(),
        /** The built kernel's key (kernel/key.ts) and the sha256 of its image, to tell a commit that changed nothing the kernel runs. */
        key: z.string().optional(),
        imageHash: z.string().optional(),
      })
      .strict(),
    labError: z.string().optional(),
    runs: z.array(runRecord),
    observation: z.enum(['reproduced', 'clean', 'skip']),
    side: z.enum(['old', 'new', 'skip']),
    /** What git was (or is to be) told: a term, or skip. */
    term: z.string(),
    reason: z.string(),
    startedAt: z.string(),
    durationMs: z.number().nonnegative(),
    /** The repro bundle of the step's runs, when there is one. */
    bundle: z.string().optional(),
  })
  .strict()

/** How each commit's kernel is built: `kernel build`'s recipe flags (fragment paths absolute). */
const recipeShape = z
  .object({configs: z.array(z.string()), sets: z.array(z.string()), base: z.enum(['tinyconfig', 'defconfig']), debug: z.boolean()})
  .strict()

/** The lab a `-- COMMAND` run or a --type boot boot starts, as `up`'s flags give it (a reproducer file names its own). */
const labShape = z
  .object({
    image: z.string().min(1),
    machine: z.enum(['pc', 'q35']),
    mem: z.string(),
    memmap: z.array(z.string()),
    nvdimm: z.array(z.string()),
    virtioPmem: z.array(z.string()),
    cpus: z.number().int().min(1),
    accel: z.enum(['auto', 'kvm', 'tcg']),
    append: z.array(z.string()),
    bootTimeoutSec: z.number().int().min(1),
    force: z.boolean(),
  })
  .strict()

const resultShape = z.discriminatedUnion('kind', [
  z.object({kind: z.literal('culprit'), commit: hash}).strict(),
  z.object({kind: z.literal('candidates'), commits: z.array(hash).min(1)}).strict(),
  /** An endpoint check failed: the one line the bisect was refused with. */
  z.object({kind: z.literal('refused'), endpoint: z.enum(['good', 'bad']), commit: hash, reason: z.string()}).strict(),
])

const stateShape = z
  .object({
    format: z.literal(STATE_FORMAT),
    version: z.literal(STATE_VERSION),
    /** The git tree, absolute. */
    tree: z.string().min(1),
    /** --good and --bad as given, and the commits they named when the bisect began. */
    good: z.object({ref: z.string(), commit: hash}).strict(),
    bad: z.object({ref: z.string(), commit: hash}).strict(),
    reverse: z.boolean(),
    type: z.enum(BISECT_TYPES),
    runs: z.number().int().min(1),
    badThreshold: z.number().int().min(1),
    maxErrors: z.number().int().min(0),
    /** What each run runs: a reproducer file (absolute), or a command; none with --type build or boot. */
    test: z.discriminatedUnion('kind', [
      z.object({kind: z.literal('repro'), file: z.string().min(1)}).strict(),
      /** timeoutSec: how long the command may run before it counts as hung (reproduced). */
      z.object({kind: z.literal('command'), argv: z.array(z.string()).min(1), timeoutSec: z.number().int().min(1).optional()}).strict(),
      z.object({kind: z.literal('none')}).strict(),
    ]),
    /** Absent in a state written before recipes were recorded: the checked-in fragments alone. */
    recipe: recipeShape.optional(),
    lab: labShape.optional(),
    startedAt: z.string(),
    /** In the order they were tested: the endpoint checks first. */
    steps: z.array(stepRecord),
    /** `git bisect log` as last recorded; empty before git bisect start. */
    log: z.string(),
    result: resultShape.optional(),
    /** The culprit's parent, built for the image check when no step had built it (report.ts parentBuild). */
    parentBuild: z.object({commit: hash, key: z.string().optional(), imageHash: z.string().optional(), reason: z.string().optional()}).strict().optional(),
  })
  .strict()

export type BisectState = z.infer<typeof stateShape>
export type StepRecord = z.infer<typeof stepRecord>
export type BisectResult = z.infer<typeof resultShape>
export type BisectRecipe = z.infer<typeof recipeShape>
export type BisectLab = z.infer<typeof labShape>
export type ParentBuild = NonNullable<BisectState['parentBuild']>

export type NewState = Omit<BisectState, 'format' | 'version' | 'steps' | 'log' | 'result'>

export function newState(input: NewState): BisectState {
  return stateShape.parse({format: STATE_FORMAT, version: STATE_VERSION, ...input, steps: [], log: ''})
}

export function serializeState(state: BisectState): string {
  return `${JSON.stringify(stateShape.parse(state), null, 2)}\n`
}

/** The state read back from TEXT; SOURCE (its path) names it in the one-line error (exit 2). */
export function parseState(text: string, source: string): BisectState {
  const fix = 'resume with the state file a pmemlab bisect wrote, or start the bisect again'
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw usageError(`${source} is not JSON: ${(error as Error).message}`, fix)
  }
  const head = data as {format?: unknown; version?: unknown} | null
  if (head?.format !== STATE_FORMAT) throw usageError(`${source} is not a pmemlab bisect state file`, fix)
  if (head.version !== STATE_VERSION) throw usageError(`${source} is a bisect state of version ${JSON.stringify(head.version)}; this pmemlab reads ${STATE_VERSION}`, 'resume with the pmemlab that began the bisect')
  const parsed = stateShape.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw usageError(`${source} is a damaged bisect state: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, fix)
  }
  return parsed.data
}

// ---------------------------------------------------------------------------------------------
// Derived

export const stateTerms = (state: BisectState): Terms => termsOf(state.reverse)

/** git's endpoints: the new side is the bad commit, or with --reverse the good one (the fix is newer than the break). */
export function gitEndpoints(state: BisectState): {newCommit: string; oldCommit: string} {
  return state.reverse ? {newCommit: state.good.commit, oldCommit: state.bad.commit} : {newCommit: state.bad.commit, oldCommit: state.good.commit}
}

/** The arguments git bisect start is (or was) given for this bisect. */
export const expectedStart = (state: BisectState) => startArgs(stateTerms(state), gitEndpoints(state).newCommit, gitEndpoints(state).oldCommit)

/** The marks this bisect has made, or is about to: every step git chose, in order. */
export const expectedMarks = (state: BisectState) => state.steps.filter((s) => s.role === 'step').map((s) => ({term: s.term, commit: s.commit}))

const endpointRole = (endpoint: Endpoint) => (endpoint === 'good' ? 'good endpoint' : 'bad endpoint')

/** The endpoint to check next (bad first), or undefined when both are. */
export function uncheckedEndpoint(state: BisectState): Endpoint | undefined {
  return (['bad', 'good'] as const).find((e) => !state.steps.some((s) => s.role === endpointRole(e)))
}

const sameMark = (a: {term: string; commit: string}, b: {term: string; commit: string}) => a.term === b.term && a.commit === b.commit
const sameArgs = (a: readonly string[] | undefined, b: readonly string[]) => a !== undefined && a.length === b.length && a.every((x, i) => x === b[i])

/** Whether LOGGED is this bisect with the first N of its marks, and no other. */
function isPrefix(logged: LoggedBisect, state: BisectState): boolean {
  const marks = expectedMarks(state)
  return sameArgs(logged.start, expectedStart(state)) && logged.marks.length <= marks.length && logged.marks.every((m, i) => sameMark(m, marks[i]))
}

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`

/** A log `git bisect replay` takes, written from the state's steps alone. */
export function logFromSteps(state: BisectState): string {
  const lines = [`git bisect start ${expectedStart(state).map(quote).join(' ')}`, ...expectedMarks(state).map((m) => `git bisect ${m.term} ${m.commit}`)]
  return `${lines.join('\n')}\n`
}

/** The tree's bisect: not in one, or the text of its `git bisect log`. */
export type TreeBisect = {bisecting: false} | {bisecting: true; log: string}

export type ResumeAction =
  | {kind: 'finished'}
  | {kind: 'check'; endpoint: Endpoint; commit: string}
  | {kind: 'start'; reset: boolean}
  | {kind: 'continue'}
  | {kind: 'replay'; log: string; why: string}

/** What --resume does next: see the top of this file. */
export function resumeAction(state: BisectState, tree: TreeBisect): ResumeAction {
  if (state.result) return {kind: 'finished'}
  const endpoint = uncheckedEndpoint(state)
  if (endpoint) return {kind: 'check', endpoint, commit: state[endpoint].commit}
  const marks = expectedMarks(state)
  const inTree = tree.bisecting ? loggedBisect(parseBisectLog(tree.log)) : undefined
  if (inTree && isPrefix(inTree, state) && inTree.marks.length === marks.length) return {kind: 'continue'}
  if (state.log === '' && marks.length === 0) return {kind: 'start', reset: tree.bisecting}

  const why = !inTree
    ? `${state.tree} is not bisecting any more`
    : !sameArgs(inTree.start, expectedStart(state))
      ? `${state.tree} is in another bisect`
      : isPrefix(inTree, state)
        ? `git has not heard of the last ${marks.length - inTree.marks.length} step${marks.length - inTree.marks.length === 1 ? '' : 's'}`
        : `${state.tree}'s bisect has marks pmemlab did not make`
  const recorded = loggedBisect(parseBisectLog(state.log))
  if (state.log !== '' && isPrefix(recorded, state)) {
    const missed = marks.slice(recorded.marks.length).map((m) => `git bisect ${m.term} ${m.commit}`)
    return {kind: 'replay', log: `${state.log.trimEnd()}\n${missed.map((l) => `${l}\n`).join('')}`, why}
  }
  return {kind: 'replay', log: logFromSteps(state), why: state.log === '' ? why : `${why}, and the recorded log does not match the steps`}
}

/** The state with STEP recorded after the others (checked: a record that does not fit the file is a bug, caught before it is written). */
export const withStep = (state: BisectState, step: StepRecord): BisectState => ({...state, steps: [...state.steps, stepRecord.parse(step)]})

export const withLog = (state: BisectState, log: string): BisectState => ({...state, log})
export const withResult = (state: BisectState, result: BisectResult): BisectState => ({...state, result: resultShape.parse(result)})
export const withParentBuild = (state: BisectState, parentBuild: ParentBuild): BisectState => ({...state, parentBuild})

/**
 * Why the tree's bisect is not this one's, as the one line a bisect is refused with; undefined
 * when it is (or the tree is in none). This bisect's are the bare `git bisect start` it makes
 * while it checks its endpoints (git then remembers the branch to return to), and the start
 * with its own terms and endpoints. STATE is undefined for a bisect about to begin, which takes
 * a tree in no bisect at all.
 */
export function foreignBisectProblem(state: BisectState | undefined, tree: TreeBisect, dir: string): string | undefined {
  if (!tree.bisecting) return undefined
  const fix = `finish or end it first (git -C ${dir} bisect reset)`
  if (!state) return `${dir} is already bisecting: ${fix}`
  const start = loggedBisect(parseBisectLog(tree.log)).start
  if (start !== undefined && (start.length === 0 || sameArgs(start, expectedStart(state)))) return undefined
  const how = start === undefined ? '' : ` (git bisect start ${start.join(' ')})`
  return `${dir} is in a bisect pmemlab did not start${how}: ${fix}, then --resume`
}

/** The last record of COMMIT: the one that counts, should a commit have been tested twice. */
export const stepOf = (state: BisectState, commit: string): StepRecord | undefined => [...state.steps].reverse().find((s) => s.commit === commit)

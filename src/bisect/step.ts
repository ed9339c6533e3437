/**
 * One step of a bisect: the commit checked out is built, its runs are made, and step-verdict.ts
 * decides; the result is the step's record for the state file. The build and the runs are a
 * StepRunner's (kernel-steps.ts builds kernels and boots labs; the unit tests give a fake), so
 * that the loop (run.ts) and `pmemlab bisect step` share this, and the loop can be tested
 * against real git without a kernel.
 */
import {join, resolve} from 'node:path'
import {buildDir} from '../core/paths.js'
import {sha256} from '../kernel/key.js'
import {formatDuration} from '../kernel/make.js'
import type {Outcome} from '../repro/verdict.js'
import type {StepRecord} from './state.js'
import {runAgain, runsText, stepVerdict, type StepFacts, type StepOptions} from './step-verdict.js'

export interface StepContext {
  commit: string
  subject?: string
  role: StepRecord['role']
  /** Where the step's runs go (stepDir). */
  dir: string
}

export interface BuiltKernel {
  /** The key of the built kernel (kernel/key.ts): what the runs boot. */
  key: string
  /** sha256 of its bzImage. */
  imageHash?: string
  cached: boolean
  durationMs: number
}

/** A build that failed is a fact of the commit (a skip, or bad with --type build); anything else that stops a build is thrown. */
export type BuildOutcome = {ok: true; kernel: BuiltKernel} | {ok: false; reason: string; durationMs: number}

export interface RunOutcome {
  outcome: Outcome
  reason: string
  durationMs: number
}

export interface TestOutcome {
  /** The lab could not start at all, for reasons outside the kernel: no run was made. */
  labError?: string
  runs: RunOutcome[]
  /** The repro bundle of the runs, when there is one. */
  bundle?: string
}

export interface StepRunner {
  /** Builds the commit checked out in the tree. */
  build(step: StepContext): Promise<BuildOutcome>
  /** Runs the test on KERNEL while AGAIN says so (the first run is always made). */
  test(step: StepContext, kernel: BuiltKernel, again: (outcomes: readonly Outcome[]) => boolean): Promise<TestOutcome>
}

/**
 * Where a tree's bisects build and lock. make's O= directory is reused by every build of a step
 * (and by `bisect step`), so that each is incremental. It is the one thing pmemlab puts in the
 * tree: a direct child, .pmemlab-bisect/, which git ignores (its own .gitignore says "*"), so
 * that kbuild names every path relative to it and ccache hits what any other pmemlab build of
 * the same source compiled. The lock held while a bisect of the tree runs is in pmemlab's cache.
 */
export function bisectPaths(tree: string): {buildDir: string; treeLock: string} {
  const id = `bisect-${sha256(resolve(tree)).slice(0, 16)}`
  return {buildDir: join(resolve(tree), BISECT_BUILD_DIR), treeLock: join(buildDir(), `${id}.tree.lock`)}
}

/** make's O= directory for bisects, under the top of the tree. */
export const BISECT_BUILD_DIR = '.pmemlab-bisect'

/** A commit's directory under the bisect's output: steps/<12 hex>. */
export const stepDir = (output: string, commit: string) => join(output, 'steps', commit.slice(0, 12))

/** Builds and tests the commit of STEP, and decides: see the top of this file. */
export async function testCommit(runner: StepRunner, step: StepContext, options: StepOptions): Promise<StepRecord> {
  const started = Date.now()
  const startedAt = new Date(started).toISOString()
  const build = await runner.build(step)
  const test: TestOutcome = build.ok && options.type !== 'build' ? await runner.test(step, build.kernel, (outcomes) => runAgain(outcomes, options)) : {runs: []}
  const facts: StepFacts = {
    build: build.ok ? {ok: true, cached: build.kernel.cached, durationMs: build.kernel.durationMs} : {ok: false, reason: build.reason, durationMs: build.durationMs},
    ...(test.labError !== undefined ? {labError: test.labError} : {}),
    runs: test.runs.map((r) => r.outcome),
  }
  const verdict = stepVerdict(facts, options)
  const buildRecord: StepRecord['build'] = build.ok
    ? {state: build.kernel.cached ? 'cached' : 'built', durationMs: build.kernel.durationMs, key: build.kernel.key, ...(build.kernel.imageHash ? {imageHash: build.kernel.imageHash} : {})}
    : {state: 'failed', reason: build.reason, durationMs: build.durationMs}
  return {
    commit: step.commit,
    ...(step.subject !== undefined ? {subject: step.subject} : {}),
    role: step.role,
    build: buildRecord,
    ...(test.labError !== undefined ? {labError: test.labError} : {}),
    runs: test.runs.map((r) => ({outcome: r.outcome, reason: r.reason, durationMs: r.durationMs})),
    ...verdict,
    startedAt,
    durationMs: Date.now() - started,
    ...(test.bundle !== undefined ? {bundle: test.bundle} : {}),
  }
}

/** One line for a tested commit: "step 1a2b3c4d5e6f (ext4: tidy): built in 2 min 5 s, reproduced 1/1: bad". */
export function stepLine(record: StepRecord): string {
  const subject = record.subject !== undefined ? ` (${record.subject})` : ''
  const time = record.build.durationMs !== undefined ? ` in ${formatDuration(record.build.durationMs)}` : ''
  const build = record.build.state === 'failed' ? `build failed${time}` : `${record.build.state}${time}`
  const runs = record.runs.length > 0 ? `, ${runsText(record.runs.map((r) => r.outcome))}` : record.labError !== undefined ? ', the lab could not start' : ''
  return `${record.role} ${record.commit.slice(0, 12)}${subject}: ${build}${runs}: ${record.term} (${record.reason})`
}

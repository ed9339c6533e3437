/**
 * The step runner of a real bisect. Each commit's kernel is built in place from the tree as it is
 * checked out (kernel/build.ts, `kernel build --tree`), with the bisect's recipe, in the tree's
 * pinned O= directory (step.ts bisectPaths: every step an incremental build, with ccache), with
 * kbuild's stamps pinned so that equal code gives an equal bzImage. The runs boot that kernel by
 * its key: the repro runner's for --repro FILE (the file's lab, image, preparation and verdict;
 * a bundle per step), lab-runs.ts's for a command or --type boot.
 *
 * Everything that can be checked without building is checked when the runner is made: the tree
 * (a kernel tree, no in-tree build), the fragments and --set, the reproducer file, the lab.
 */
import {copyFile, mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import {hashFile} from '../core/cache.js'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {log} from '../core/log.js'
import {NoSpaceError} from '../core/nospace.js'
import {loadImage} from '../image/spec.js'
import {buildKernel} from '../kernel/build.js'
import {loadFragments} from '../kernel/configure.js'
import {checkTree} from '../kernel/source.js'
import {topologyRequest} from '../lab/request.js'
import {planTopology} from '../lab/topology.js'
import {progressLine} from '../repro/document.js'
import {readReproFile, runRepro} from '../repro/run.js'
import type {ReproPlan} from '../repro/schema.js'
import type {Outcome} from '../repro/verdict.js'
import type {BisectInterrupt} from './interrupt.js'
import {labRequestOf, runLabSeries} from './lab-runs.js'
import {DEFAULT_COMMAND_TIMEOUT_SEC} from './options.js'
import type {BisectRecipe, BisectState} from './state.js'
import {bisectPaths, type BuildOutcome, type BuiltKernel, type StepContext, type StepRunner, type TestOutcome} from './step.js'

export type RunnerState = Pick<BisectState, 'tree' | 'test' | 'recipe' | 'lab' | 'type' | 'runs'>

/** The checked-in fragments alone: a state that recorded no recipe. */
const NO_RECIPE: BisectRecipe = {configs: [], sets: [], base: 'tinyconfig', debug: false}

/** The runner for STATE, its inputs checked (bad input: exit 2, before anything is built). */
export async function kernelSteps(state: RunnerState, options: {jobs?: number; interrupt?: BisectInterrupt} = {}): Promise<StepRunner> {
  const buildDir = bisectPaths(state.tree).buildDir
  await checkTree({dir: state.tree})
  const recipe = state.recipe ?? NO_RECIPE
  await loadFragments(recipe)
  let plan: ReproPlan | undefined
  if (state.test.kind === 'repro') {
    plan = await readReproFile(state.test.file)
    if (plan.kernel) log.info(`the reproducer's kernel (${plan.kernel.kind === 'build' ? 'a recipe' : plan.kernel.spec}) is not used: each commit is built from ${state.tree}`)
  }
  if (state.lab) {
    planTopology(topologyRequest(labRequestOf(state.lab, '').topology))
    await loadImage(state.lab.image, {remember: false})
  }
  return new KernelSteps(state, recipe, buildDir, plan, options)
}

class KernelSteps implements StepRunner {
  constructor(
    private readonly state: RunnerState,
    private readonly recipe: BisectRecipe,
    private readonly buildDir: string,
    private readonly plan: ReproPlan | undefined,
    private readonly options: {jobs?: number; interrupt?: BisectInterrupt},
  ) {}

  async build(step: StepContext): Promise<BuildOutcome> {
    const started = Date.now()
    try {
      const result = await buildKernel({
        source: {kind: 'tree', dir: this.state.tree},
        configs: this.recipe.configs,
        sets: this.recipe.sets,
        base: this.recipe.base,
        debug: this.recipe.debug,
        ...(this.options.jobs !== undefined ? {jobs: this.options.jobs} : {}),
        buildDir: this.buildDir,
        reproducible: true,
      })
      if (result.build.source.kind === 'tree' && result.build.source.commit !== step.commit) {
        throw new PmemlabError(`the tree was at ${result.build.source.commit.slice(0, 12)} when ${step.commit.slice(0, 12)} was to be built: something else moved HEAD`, ExitCode.failure)
      }
      return {ok: true, kernel: {key: result.key, imageHash: await hashFile(result.kernel), cached: result.cacheHit, durationMs: Date.now() - started}}
    } catch (error) {
      // A commit that does not build (make, or an option its Kconfig drops) is a fact of the commit;
      // a full disk, a missing compiler, bad input or an interrupt end the bisect.
      if (!(error instanceof PmemlabError) || error.exitCode !== ExitCode.failure || error instanceof NoSpaceError || /something else moved HEAD/.test(error.message)) throw error
      await this.keepFailedLog(error, step)
      return {ok: false, reason: error.message, durationMs: Date.now() - started}
    }
  }

  /** The make output of a failed build, into the step's directory (build/failed-KEY.log is the next failure's). */
  private async keepFailedLog(error: PmemlabError, step: StepContext): Promise<void> {
    const kept = /the make output is in (\S+)$/.exec(error.hint ?? '')?.[1]
    if (!kept) return
    await mkdir(step.dir, {recursive: true})
    await copyFile(kept, join(step.dir, 'build-failed.log')).catch(() => undefined)
  }

  async test(step: StepContext, kernel: BuiltKernel, again: (outcomes: readonly Outcome[]) => boolean): Promise<TestOutcome> {
    const test = this.state.test
    if (test.kind === 'repro') {
      const {document, bundle} = await runRepro({
        plan: this.plan!,
        // The bisect's --runs, not the file's run.runs: AGAIN stops the runs once the step's verdict is settled.
        runs: this.state.runs,
        untilReproduced: false,
        kernel: kernel.key,
        output: step.dir,
        again,
        onRun: (record, limit) => log.info(`  ${progressLine(record, limit)}`),
      })
      const runs = document.results.map((r) => ({outcome: r.outcome, reason: r.reason, durationMs: r.durationMs}))
      return {...(document.reason !== undefined && runs.length === 0 ? {labError: document.reason} : {}), runs, bundle}
    }
    if (test.kind === 'command') return runLabSeries({lab: this.state.lab!, kernel: kernel.key, run: {kind: 'command', argv: test.argv, timeoutSec: test.timeoutSec ?? DEFAULT_COMMAND_TIMEOUT_SEC}, output: step.dir, again, interrupt: this.options.interrupt})
    if (this.state.type === 'boot') return runLabSeries({lab: this.state.lab!, kernel: kernel.key, run: {kind: 'boot'}, output: step.dir, again, interrupt: this.options.interrupt})
    return {runs: []}
  }
}

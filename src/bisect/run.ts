/**
 * `pmemlab bisect`: the loop, through real `git bisect` in the user's tree. The edge around the
 * pure core (step-verdict.ts decides, state.ts says what --resume does, report.ts reports).
 *
 *   1. Before anything starts: the endpoints resolved to full hashes, the tree clean (no tracked
 *      change) and in no bisect pmemlab did not start, the step runner made (it reads the
 *      reproducer file and the fragments: bad input is one line, exit 2), the tree locked.
 *   2. The endpoints checked, bad first (ktest's BISECT_CHECK), each checked out inside a bare
 *      `git bisect start`, so that git remembers the branch to return to. An endpoint that is
 *      not what it claims ends the bisect with one line (exit 2) before any bisect step.
 *   3. `git bisect start` with the core's argv; then, while git names a commit to test: the step is
 *      built and tested (step.ts), recorded in the state file (written whole, by rename), and
 *      only then told to git; git's log is recorded, and the report rewritten.
 *   4. Once git names the first commit (or only skipped ones are left): the result recorded, the
 *      culprit's parent built for the image check when no step had built it, `git bisect reset`,
 *      the report written.
 * --resume reads the state file and does what resumeAction says. Ctrl-C: see interrupt.ts.
 *
 * OUTPUT holds bisect-state.json, bisect.json and bisect.md (report.ts), and steps/<hash>/ for
 * each tested commit: its runs, and with --repro its repro bundle.
 */
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {acquireLock, writeFileAtomic} from '../core/cache.js'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {processAlive} from '../core/process.js'
import {bareStartArgv, bisectLogArgv, bisectMarkArgv, bisectNextArgv, bisectReplayArgv, bisectResetArgv, bisectStartArgv, checkoutArgv, isAncestorArgv} from './git-argv.js'
import {git, gitOk, headOf, requireCleanTree, resolveCommit, showCommits, treeBisect} from './git.js'
import {parseBisectOutput, type BisectOutput} from './git-output.js'
import type {BisectInterrupt} from './interrupt.js'
import type {BisectAsk} from './options.js'
import {bisectReport, renderReport, REPORT_JSON, REPORT_MARKDOWN, type BisectReport} from './report.js'
import {
  foreignBisectProblem,
  gitEndpoints,
  newState,
  parseState,
  resumeAction,
  serializeState,
  STATE_FILE,
  stateTerms,
  stepOf,
  withLog,
  withParentBuild,
  withResult,
  withStep,
  type BisectState,
  type StepRecord,
} from './state.js'
import {bisectPaths, stepDir, testCommit, type StepRunner} from './step.js'
import {endpointProblem, type StepOptions} from './step-verdict.js'

export interface BisectDeps {
  /** The runner of the steps, made from the state (and so checking its inputs) before anything starts. */
  makeRunner: (state: BisectState) => Promise<StepRunner>
  interrupt?: BisectInterrupt
  /** Told of each tested commit. */
  onStep?: (record: StepRecord) => void
}

export interface BisectOutcome {
  state: BisectState
  report: BisectReport
}

/** Starts or resumes a bisect and runs it to its end: see the top of this file. */
export async function runBisect(ask: BisectAsk, deps: BisectDeps): Promise<BisectOutcome> {
  const output = ask.kind === 'resume' ? ask.output : ask.setup.output
  const state = ask.kind === 'resume' ? await readState(output) : await beginState(ask)
  const tree = state.tree
  await requireCleanTree(tree)
  const problem = foreignBisectProblem(state, await treeBisect(tree), tree)
  if (problem) throw usageError(problem)
  const runner = await deps.makeRunner(state)
  const release = await lockTree(tree)
  try {
    return await new Bisect(state, output, runner, deps).run()
  } finally {
    await release()
  }
}

async function readState(output: string): Promise<BisectState> {
  const path = join(output, STATE_FILE)
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw usageError(`no bisect to resume in ${output}: ${error.code === 'ENOENT' ? `it has no ${STATE_FILE}` : (error.code ?? error.message)}`, 'give --output the directory of the bisect to resume')
  })
  return parseState(text, path)
}

/** A new bisect's state, once its refs name commits in a clean tree and the output holds no unfinished bisect. */
async function beginState(ask: Extract<BisectAsk, {kind: 'start'}>): Promise<BisectState> {
  const {setup} = ask
  const previous = await readFile(join(setup.output, STATE_FILE), 'utf8').catch(() => undefined)
  if (previous !== undefined && parseState(previous, join(setup.output, STATE_FILE)).result === undefined) {
    throw usageError(`${setup.output} holds an unfinished bisect`, `go on with: pmemlab bisect --resume --output ${setup.output}; or give another --output`)
  }
  await requireCleanTree(setup.tree)
  // Refs like HEAD~3 would name other commits in a tree someone is bisecting.
  const problem = foreignBisectProblem(undefined, await treeBisect(setup.tree), setup.tree)
  if (problem) throw usageError(problem)
  const good = await resolveCommit(setup.tree, ask.good, '--good')
  const bad = await resolveCommit(setup.tree, ask.bad, '--bad')
  if (good === bad) throw usageError(`--good ${ask.good} and --bad ${ask.bad} are the same commit ${good.slice(0, 12)}`)
  // git finds the first new commit after the old one: the new side cannot be an ancestor of the old side.
  const [older, newer] = setup.options.reverse ? [bad, good] : [good, bad]
  if ((await git(isAncestorArgv(setup.tree, newer, older))).exitCode === 0) {
    throw usageError(
      setup.options.reverse ? `--good ${ask.good} is older than --bad ${ask.bad}, and --reverse looks for a fix` : `--bad ${ask.bad} is older than --good ${ask.good}`,
      setup.options.reverse ? 'drop --reverse to find the commit that broke it' : 'add --reverse to find the commit that fixed it',
    )
  }
  const {options} = setup
  return newState({
    tree: setup.tree,
    good: {ref: ask.good, commit: good},
    bad: {ref: ask.bad, commit: bad},
    reverse: options.reverse,
    type: options.type,
    runs: options.runs,
    badThreshold: options.badThreshold,
    maxErrors: options.maxErrors,
    test: setup.test,
    recipe: setup.recipe,
    ...(setup.lab ? {lab: setup.lab} : {}),
    startedAt: new Date().toISOString(),
  })
}

/** One bisect at a time in a tree: a second is refused (exit 5), not queued. */
async function lockTree(tree: string): Promise<() => Promise<void>> {
  const {treeLock} = bisectPaths(tree)
  const holder = Number((await readFile(treeLock, 'utf8').catch(() => '')).trim())
  if (holder > 0 && holder !== process.pid && (await processAlive(holder))) throw new PmemlabError(`another pmemlab (pid ${holder}) is bisecting ${tree}`, ExitCode.conflict, 'wait for it, or stop it')
  await mkdir(join(treeLock, '..'), {recursive: true})
  return acquireLock(treeLock, `bisect of ${tree}`)
}

export const stepOptionsOf = (state: BisectState): StepOptions => ({type: state.type, runs: state.runs, badThreshold: state.badThreshold, maxErrors: state.maxErrors, reverse: state.reverse})

class Bisect {
  constructor(
    private state: BisectState,
    private readonly output: string,
    private readonly runner: StepRunner,
    private readonly deps: BisectDeps,
  ) {}

  private get tree() {
    return this.state.tree
  }

  async run(): Promise<BisectOutcome> {
    await mkdir(this.output, {recursive: true})
    await this.save()
    for (;;) {
      this.deps.interrupt?.check()
      const inTree = await treeBisect(this.tree)
      const action = resumeAction(this.state, inTree)
      let said: BisectOutput
      if (action.kind === 'finished') return this.finish(inTree.bisecting)
      if (action.kind === 'check') {
        if (!inTree.bisecting) await gitOk(bareStartArgv(this.tree), `start a bisect in ${this.tree}`)
        await gitOk(checkoutArgv(this.tree, action.commit), `check out ${action.commit.slice(0, 12)}`)
        const [shown] = await showCommits(this.tree, [action.commit])
        const record = await this.test(action.commit, shown?.subject, `${action.endpoint} endpoint`)
        const problem = endpointProblem(action.endpoint, action.commit, record)
        if (problem) {
          this.state = withResult(this.state, {kind: 'refused', endpoint: action.endpoint, commit: action.commit, reason: problem})
          await this.save()
          await this.reset()
          await this.writeReport()
          throw usageError(problem)
        }
        continue
      }
      if (action.kind === 'start') {
        if (action.reset) await gitOk(bisectResetArgv(this.tree), `end the bare bisect in ${this.tree}`)
        const {newCommit, oldCommit} = gitEndpoints(this.state)
        log.info(`git bisect start: ${stateTerms(this.state).new} ${newCommit.slice(0, 12)}, ${stateTerms(this.state).old} ${oldCommit.slice(0, 12)}`)
        said = await this.bisect(bisectStartArgv(this.tree, stateTerms(this.state), newCommit, oldCommit))
      } else if (action.kind === 'continue') {
        said = await this.bisect(bisectNextArgv(this.tree))
      } else {
        log.info(`replaying the recorded bisect: ${action.why}`)
        if (inTree.bisecting) await gitOk(bisectResetArgv(this.tree), `end the bisect in ${this.tree}`)
        const file = join(this.output, 'replay.log')
        await writeFile(file, action.log)
        said = await this.bisect(bisectReplayArgv(this.tree, file))
      }
      while (said.kind === 'next') {
        if (said.revisionsLeft !== undefined) log.info(`${said.revisionsLeft} revision${said.revisionsLeft === 1 ? '' : 's'} left after this one (roughly ${said.stepsLeft} step${said.stepsLeft === 1 ? '' : 's'})`)
        const head = await headOf(this.tree)
        if (head !== said.commit) throw new PmemlabError(`git checked out ${said.commit.slice(0, 12)} to test, but HEAD is ${head.slice(0, 12)}: something else moved it`, ExitCode.failure, 'pmemlab bisect --resume goes on')
        const record = await this.test(said.commit, said.subject, 'step')
        said = await this.bisect(bisectMarkArgv(this.tree, record.term, record.commit))
      }
      return this.conclude(said)
    }
  }

  /** Builds and tests COMMIT (checked out), and records it. */
  private async test(commit: string, subject: string | undefined, role: StepRecord['role']): Promise<StepRecord> {
    const record = await testCommit(this.runner, {commit, subject, role, dir: stepDir(this.output, commit)}, stepOptionsOf(this.state))
    this.deps.interrupt?.check()
    this.state = withStep(this.state, record)
    await this.save()
    this.deps.onStep?.(record)
    return record
  }

  /** Runs a git bisect command, records git's log, and reads what it said. */
  private async bisect(argv: string[]): Promise<BisectOutput> {
    const said = await git(argv)
    const logged = await git(bisectLogArgv(this.tree))
    if (logged.exitCode === 0) this.state = withLog(this.state, logged.stdout)
    await this.save()
    await this.writeReport()
    return parseBisectOutput(said.all)
  }

  private async conclude(said: BisectOutput): Promise<BisectOutcome> {
    if (said.kind === 'first') this.state = withResult(this.state, {kind: 'culprit', commit: said.commit})
    else if (said.kind === 'candidates') this.state = withResult(this.state, {kind: 'candidates', commits: said.commits})
    else if (said.kind === 'refused') {
      await this.reset()
      throw usageError(`git bisect refused: ${said.message}`, 'check --good and --bad (and --reverse)')
    } else {
      throw new PmemlabError(`git bisect said what pmemlab cannot read: ${said.kind === 'waiting' ? said.status : said.kind === 'unknown' ? said.text.split('\n')[0] : said.kind}`, ExitCode.failure, 'see git bisect log in the tree; pmemlab bisect --resume goes on')
    }
    await this.save()
    await this.buildParent()
    return this.finish(true)
  }

  /**
   * The culprit's parent, built for the image check when no step built it (a skipped parent, or
   * one git never needed): checked out inside the bisect, built, not tested.
   */
  private async buildParent(): Promise<void> {
    const result = this.state.result
    if (result?.kind !== 'culprit' || this.state.parentBuild) return
    const culprit = stepOf(this.state, result.commit)
    const [shown] = await showCommits(this.tree, [result.commit])
    if (!culprit?.build.imageHash || shown?.parents.length !== 1) return
    const parent = shown.parents[0]
    if (stepOf(this.state, parent)?.build.imageHash) return
    log.info(`building the culprit's parent ${parent.slice(0, 12)} for the image check`)
    await gitOk(checkoutArgv(this.tree, parent), `check out ${parent.slice(0, 12)}`)
    const built = await this.runner.build({commit: parent, role: 'step', dir: stepDir(this.output, parent)})
    this.deps.interrupt?.check()
    this.state = withParentBuild(this.state, built.ok ? {commit: parent, key: built.kernel.key, ...(built.kernel.imageHash ? {imageHash: built.kernel.imageHash} : {})} : {commit: parent, reason: built.reason})
    await this.save()
  }

  /** The end: the tree back where it was (when still bisecting), the report written. */
  private async finish(bisecting: boolean): Promise<BisectOutcome> {
    if (bisecting) await this.reset()
    const report = await this.writeReport()
    return {state: this.state, report}
  }

  private async reset(): Promise<void> {
    if (!(await treeBisect(this.tree)).bisecting) return
    await gitOk(bisectResetArgv(this.tree), `end the bisect in ${this.tree}`)
    log.info(`git bisect reset: ${this.tree} is back where it was before the bisect`)
  }

  private save(): Promise<void> {
    return writeFileAtomic(join(this.output, STATE_FILE), serializeState(this.state))
  }

  private async writeReport(): Promise<BisectReport> {
    const result = this.state.result
    const named = result?.kind === 'culprit' ? [result.commit] : result?.kind === 'candidates' ? result.commits : []
    const commits = await showCommits(this.tree, named)
    const parents = result?.kind === 'culprit' ? await showCommits(this.tree, commits[0]?.parents ?? []) : []
    const report = bisectReport({state: this.state, commits: [...commits, ...parents], ...(this.state.parentBuild ? {parentBuild: this.state.parentBuild} : {})})
    await writeFileAtomic(join(this.output, REPORT_JSON), `${JSON.stringify(report, null, 2)}\n`)
    await writeFileAtomic(join(this.output, REPORT_MARKDOWN), renderReport(report))
    return report
  }
}

/** The line on stdout: the culprit's full hash and subject, or the candidates, or how far it got. */
export function resultLine(report: BisectReport): string {
  if (report.status === 'culprit') return `${report.culprit!.commit} ${report.culprit!.subject ?? ''}`.trimEnd()
  if (report.status === 'candidates') return `the first ${report.terms.new} commit is one of: ${report.candidates!.map((c) => c.commit).join(' ')}`
  return report.headline
}


import * as Flags from '@oclif/core/flags'
import {requireCleanTree, headOf, showCommits} from '../../bisect/git.js'
import {BisectInterrupt} from '../../bisect/interrupt.js'
import {kernelSteps} from '../../bisect/kernel-steps.js'
import {stepSetupOf} from '../../bisect/options.js'
import {stepDir, stepLine, testCommit} from '../../bisect/step.js'
import {stepExitCode} from '../../bisect/step-verdict.js'
import {commandAfterDashes, stepFlags} from '../../cli/bisect-flags.js'
import {PmemlabCommand} from '../../cli/command.js'
import {ExitCode} from '../../core/errors.js'
import {log} from '../../core/log.js'

export default class BisectStep extends PmemlabCommand {
  static override summary = 'Build HEAD of --tree and test it once, as a step of git bisect run: exit 0 good, 1 bad, 125 skip'
  static override description = `What pmemlab bisect does for each commit, for those who drive git bisect run themselves: HEAD is built with the recipe flags (in the tree's reused O= directory), then tested by --repro FILE, a command after --, a boot (--type boot) or the build alone (--type build), with the same rules (--runs, --bad-threshold, --max-errors; a commit that does not build, or whose lab cannot start, is skipped).
The exit code is git bisect run's: 0 for the old term, 1 for the new, 125 to skip. With --reverse (git bisect start --term-old=broken --term-new=fixed), 0 means the bug reproduced. When no verdict can be given (bad input, a missing program, an unexpected error) the one error line says why and the exit code is 128, so that git bisect run stops instead of marking the commit bad; Ctrl-C exits 130, which stops it too.
stdout gets the verdict line, or with --json the step's record; OUTPUT/steps/HASH/ keeps the runs.`

  static override examples = [
    'git bisect run <%= config.bin %> bisect step --tree . --repro ../bug.yaml --output ../bisect-results',
    'git bisect run <%= config.bin %> bisect step --tree . --type boot --output ../bisect-results',
  ]

  static override strict = false // the command after "--"

  static override flags = {
    ...stepFlags,
    json: Flags.boolean({description: "print the step's record instead of the verdict line"}),
  }

  async run(): Promise<void> {
    const {flags, argv} = await this.parse(BisectStep)
    const setup = stepSetupOf({...flags, command: commandAfterDashes(this.argv, argv as string[])}, process.cwd())
    await requireCleanTree(setup.tree)
    const interrupt = new BisectInterrupt('stopping the step')
    interrupt.install()
    try {
      const commit = await headOf(setup.tree)
      const [shown] = await showCommits(setup.tree, [commit])
      const {options} = setup
      const runner = await kernelSteps({tree: setup.tree, test: setup.test, recipe: setup.recipe, lab: setup.lab, type: options.type, runs: options.runs}, {jobs: setup.jobs, interrupt})
      const record = await testCommit(runner, {commit, subject: shown?.subject, role: 'step', dir: stepDir(setup.output, commit)}, options)
      log.info(stepLine(record))
      if (flags.json) this.printJson(record)
      else process.stdout.write(`${record.term} ${commit} ${record.reason}\n`)
      process.exitCode = stepExitCode(record.side)
    } finally {
      interrupt.uninstall()
    }
  }

  /** Any exit but a verdict's stops git bisect run (which would take 1 to 127 for a bad commit). */
  protected override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<void> {
    await super.catch(error)
    const code = Number(process.exitCode ?? 0)
    if (code !== ExitCode.ok && code < 128) process.exitCode = ExitCode.stopsBisectRun
  }
}

import * as Flags from '@oclif/core/flags'
import {join} from 'node:path'
import {BisectInterrupt} from '../../bisect/interrupt.js'
import {kernelSteps} from '../../bisect/kernel-steps.js'
import {bisectAskOf} from '../../bisect/options.js'
import {REPORT_MARKDOWN} from '../../bisect/report.js'
import {resultLine, runBisect} from '../../bisect/run.js'
import {stepLine} from '../../bisect/step.js'
import {commandAfterDashes, stepFlags} from '../../cli/bisect-flags.js'
import {PmemlabCommand} from '../../cli/command.js'
import {log} from '../../core/log.js'

export default class Bisect extends PmemlabCommand {
  static override summary = 'Find the commit that broke (or, with --reverse, fixed) a kernel behaviour: git bisect, each commit built and tested in a lab'
  static override description = `git bisect runs in --tree: git picks each commit, pmemlab builds it (one O= directory per tree, reused, so each build is incremental with ccache; a commit that does not build is skipped) and tests it: --repro FILE runs a reproducer file, a command after -- runs in a lab made as up makes it (a panic, Oops or hang is bad, a nonzero status bad, 125 cannot test), --type boot boots, --type build only builds.
Before the first step both endpoints are tested: --bad must reproduce and --good must not, else the bisect stops with one line (exit 2). With --runs N a commit is good only with no reproduction in N runs, bad at --bad-threshold reproductions, otherwise skipped; the report says how sure the result is.
Each tested commit is recorded in OUTPUT/bisect-state.json before git is told, so Ctrl-C (or a crash) loses nothing: --resume --output OUTPUT goes on, replaying git's log when the tree's bisect went away. At the end git bisect reset returns the tree to its branch.
stdout gets the culprit's hash and subject (or the candidates when skipped commits leave it open), or with --json the report; OUTPUT gets bisect.json, bisect.md (culprit, Fixes: line, one row per commit, warnings, the log) and steps/HASH/ with each commit's runs and repro bundle.
Exit 0 when it found the commit (or the candidates), 2 on bad input or a wrong endpoint, 130 when interrupted.`

  static override examples = [
    '<%= config.bin %> bisect --tree ~/linux --good v6.1 --bad HEAD --repro bug.yaml',
    '<%= config.bin %> bisect --tree ~/linux --good v6.1 --bad HEAD --repro bug.yaml --runs 5 --output ~/bisect-dax',
    '<%= config.bin %> bisect --tree ~/linux --good v6.1 --bad HEAD --nvdimm 1G -- sh -c \'ndctl create-namespace -f -e namespace0.0 -m fsdax && mkfs.ext4 -q /dev/pmem0 && mount -o dax /dev/pmem0 /mnt\'',
    '<%= config.bin %> bisect --tree ~/linux --good v6.2 --bad v6.1 --reverse --repro bug.yaml',
    '<%= config.bin %> bisect --tree ~/linux --good v6.1 --bad HEAD --type boot --append panic_on_warn=1',
    '<%= config.bin %> bisect --resume --output ~/bisect-dax',
  ]

  static override strict = false // the command after "--"

  static override flags = {
    ...stepFlags,
    good: Flags.string({description: 'a commit where the bug does not reproduce (with --reverse: the newer one, fixed)', helpValue: 'REF'}),
    bad: Flags.string({description: 'a commit where it does (with --reverse: the older one)', helpValue: 'REF'}),
    resume: Flags.boolean({description: 'go on with the bisect whose state is in --output (after Ctrl-C or a crash)'}),
    json: Flags.boolean({description: 'print the report (bisect.json) instead of the result line'}),
  }

  async run(): Promise<void> {
    const {flags, argv} = await this.parse(Bisect)
    const ask = bisectAskOf({...flags, command: commandAfterDashes(this.argv, argv as string[])}, process.cwd())
    const output = ask.kind === 'resume' ? ask.output : ask.setup.output
    const jobs = ask.kind === 'resume' ? ask.jobs : ask.setup.jobs
    const interrupt = new BisectInterrupt(`stopping the bisect; its state file is kept, and pmemlab bisect --resume --output ${output} goes on`)
    interrupt.install()
    try {
      const {report} = await runBisect(ask, {makeRunner: (state) => kernelSteps(state, {jobs, interrupt}), interrupt, onStep: (record) => log.info(stepLine(record))})
      for (const warning of report.warnings) log.warn(warning)
      log.info(`${report.headline}; the report: ${join(output, REPORT_MARKDOWN)}`)
      if (flags.json) this.printJson(report)
      else process.stdout.write(`${resultLine(report)}\n`)
    } finally {
      interrupt.uninstall()
    }
  }
}

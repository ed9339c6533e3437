import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {resolve} from 'node:path'
import {PmemlabCommand} from '../cli/command.js'
import {usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {progressLine, resultLine, type RunRecord} from '../repro/document.js'
import {readReproFile, runRepro} from '../repro/run.js'
import {MAX_RUNS} from '../repro/schema.js'

/** Lines of a run's excerpt shown under its progress line; run.json keeps them all. */
const EXCERPT_LINES = 8

export default class Repro extends PmemlabCommand {
  static override summary = 'Run a reproducer file: boot, prepare, run its script, and judge whether the bug showed'
  static override description = `Each run boots a fresh VM with the file's lab, prepares its devices with the commands pmemlab test uses, runs the script as root under bash with the file's timeout, and judges the console from the script's start and the script's status against expect: reproduced, not reproduced, or error (no verdict).
Progress goes to stderr, one line per run; the result ("reproduced 3/10") to stdout, or with --json the repro.json document. OUTPUT keeps repro.json, junit.xml (one test case per run), a copy of the file, and runs/N/ with each run's run.json, console log and the script's output.
Exit 0 when it did not reproduce in any run, 1 when it did, 125 when there is no verdict (what git bisect run reads as good, bad and skip), 2 on bad input, 130 when interrupted.`

  static override examples = [
    '<%= config.bin %> repro examples/repro/warning-sysrq.yaml',
    '<%= config.bin %> repro bug.yaml --runs 10 --json',
    '<%= config.bin %> repro bug.yaml --until-reproduced --kernel debian:6.12',
    'git bisect run <%= config.bin %> repro bug.yaml --kernel ./arch/x86/boot/bzImage',
  ]

  static override args = {file: Args.string({description: 'the reproducer file (see examples/repro/warning-sysrq.yaml)', required: true})}

  static override flags = {
    runs: Flags.integer({description: "how many runs at most (default: the file's run.runs, else 1; 20 with --until-reproduced)", helpValue: 'N'}),
    'until-reproduced': Flags.boolean({description: 'stop at the first run that reproduces'}),
    kernel: Flags.string({description: "kernel to boot instead of the file's, as up --kernel takes it (distro, debian:VERSION, a built kernel, a bzImage path)", helpValue: 'SPEC'}),
    output: Flags.string({description: 'where repro.json, junit.xml and each run\'s files go', default: 'repro-results', helpValue: 'DIR'}),
    json: Flags.boolean({description: 'print the repro.json document instead of the result line'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Repro)
    if (flags.runs !== undefined && (flags.runs < 1 || flags.runs > MAX_RUNS)) throw usageError(`invalid --runs ${flags.runs}`, `give a whole number from 1 to ${MAX_RUNS}`)
    const plan = await readReproFile(args.file)
    const document = await runRepro({
      plan,
      runs: flags.runs,
      untilReproduced: flags['until-reproduced'],
      kernel: flags.kernel,
      output: resolve(flags.output),
      onRun: showRun,
    })
    if (document.reason !== undefined) log.error(`no run: ${document.reason}`)
    if (flags.json) this.printJson(document)
    else process.stdout.write(`${resultLine(document)}\n`)
    process.exitCode = document.exitCode
  }
}

function showRun(record: RunRecord, limit: number): void {
  log.info(progressLine(record, limit))
  if (record.outcome === 'not reproduced') return
  for (const line of record.excerpt.slice(0, EXCERPT_LINES)) process.stderr.write(`    | ${line}\n`)
  if (record.excerpt.length > EXCERPT_LINES) process.stderr.write(`    | [... ${record.excerpt.length - EXCERPT_LINES} more lines in ${record.files.record}]\n`)
}

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {resolve} from 'node:path'
import {PmemlabCommand} from '../cli/command.js'
import {usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {progressLine, resultLine, type RunRecord} from '../repro/document.js'
import {withBundle, isBundle} from '../repro/bundle.js'
import {readReproFile, runRepro} from '../repro/run.js'
import {MAX_RUNS} from '../repro/schema.js'

/** Lines of a run's excerpt shown under its progress line; run.json keeps them all. */
const EXCERPT_LINES = 8

export default class Repro extends PmemlabCommand {
  static override summary = 'Run a reproducer file: boot, prepare, run its script, and judge whether the bug showed'
  static override description = `Each run boots a fresh VM with the file's lab, prepares its devices with the commands pmemlab test uses, runs the script as root under bash with the file's timeout, and judges the console from the script's start and the script's status against expect: reproduced, not reproduced, or error (no verdict).
Progress goes to stderr, one line per run; the result ("reproduced 3/10") to stdout, or with --json the repro.json document. OUTPUT keeps repro.json, junit.xml (one test case per run), a copy of the file, and runs/N/ with each run's run.json, console log and the script's output; and bundle.tar.gz, all of it with the reproducer's own files, metadata.json, reproduce.sh and SHA256SUMS, to attach to a bug report.
Given a bundle.tar.gz instead of FILE, it checks every file against SHA256SUMS (a missing, extra or changed file: one line, exit 2) and reruns the reproducer inside it.
Exit 0 when it did not reproduce in any run, 1 when it did, 125 when there is no verdict (what git bisect run reads as good, bad and skip), 2 on bad input, 130 when interrupted.`

  static override examples = [
    '<%= config.bin %> repro examples/repro/warning-sysrq.yaml',
    '<%= config.bin %> repro bug.yaml --runs 10 --json',
    '<%= config.bin %> repro repro-results/bundle.tar.gz --output rerun',
    '<%= config.bin %> repro bug.yaml --until-reproduced --kernel debian:6.12',
    'git bisect run <%= config.bin %> repro bug.yaml --kernel ./arch/x86/boot/bzImage',
  ]

  static override args = {file: Args.string({description: 'the reproducer file (see examples/repro/warning-sysrq.yaml), or a bundle.tar.gz an earlier series wrote', required: true})}

  static override flags = {
    runs: Flags.integer({description: "how many runs at most (default: the file's run.runs, else 1; 20 with --until-reproduced)", helpValue: 'N'}),
    'until-reproduced': Flags.boolean({description: 'stop at the first run that reproduces'}),
    kernel: Flags.string({description: "kernel to boot instead of the file's, as up --kernel takes it (distro, debian:VERSION, a built kernel, a bzImage path)", helpValue: 'SPEC'}),
    output: Flags.string({description: 'where repro.json, junit.xml and each run\'s files go', default: 'repro-results', helpValue: 'DIR'}),
    'with-vmlinux': Flags.boolean({description: "put the built kernel's vmlinux (built with debug info) into the bundle, and decode each run's kernel traces with it to function and line"}),
    json: Flags.boolean({description: 'print the repro.json document instead of the result line'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Repro)
    if (flags.runs !== undefined && (flags.runs < 1 || flags.runs > MAX_RUNS)) throw usageError(`invalid --runs ${flags.runs}`, `give a whole number from 1 to ${MAX_RUNS}`)
    const series = async (file: string) =>
      runRepro({
        plan: await readReproFile(file),
        runs: flags.runs,
        untilReproduced: flags['until-reproduced'],
        kernel: flags.kernel,
        withVmlinux: flags['with-vmlinux'],
        output: resolve(flags.output),
        onRun: showRun,
      })
    const {document, bundle} = (await isBundle(args.file)) ? await withBundle(args.file, series) : await series(args.file)
    log.info(`bundle: ${bundle}`)
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
  if (record.trace?.note !== undefined) process.stderr.write(`    (traces not decoded: ${record.trace.note})\n`)
  else if (record.files.decodedTrace !== undefined) process.stderr.write(`    (decoded reports: ${record.files.decodedTrace})\n`)
}

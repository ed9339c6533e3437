import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {resolve} from 'node:path'
import {PmemlabCommand} from '../../cli/command.js'
import {log} from '../../core/log.js'
import {listCells, listText, readMatrixFile} from '../../matrix/file.js'
import {cellDir, cellsTable, shown} from '../../matrix/outputs.js'
import {runMatrix} from '../../matrix/run.js'

export default class Matrix extends PmemlabCommand {
  static override summary = 'Run a matrix of kernels, topologies, filesystems and suites from a YAML file'
  static override description = `Each kernel is built once (a failed build makes its cells "skip"), then booted once by a sanity gate that checks its devices appear (a panic or hang there fails its cells), then its cells run as pmemlab test, several at once (--jobs), retried with --retries (pass on a retry: "flaky").
Progress is a live table on stderr. OUTPUT gets one directory per cell (cells/ID: cell.json, JUnit, each attempt's results, console log and log, the kernel's options report), written as the cell ends, and matrix.json, junit.xml and summary.md (also appended to $GITHUB_STEP_SUMMARY when set).
For CI: --list --json prints the cells for strategy.matrix (fromJSON), --cell ID runs one of them, and pmemlab matrix report merges their directories.
Exit 0 when every cell passed, was flaky or skipped; 1 when one failed; 8 when none failed but one errored (the lab broke, or a cell has no result); 2 on bad input; 130 when interrupted (finished cells are kept).`

  static override examples = [
    '<%= config.bin %> matrix examples/matrix-prebuilt.yaml',
    '<%= config.bin %> matrix examples/matrix.yaml --jobs 2 --retries 1 --output results',
    '<%= config.bin %> matrix examples/matrix-prebuilt.yaml --list --json',
    '<%= config.bin %> matrix examples/matrix-prebuilt.yaml --cell debian-6.12-pmem-ext4-builtin',
  ]

  static override args = {file: Args.string({description: 'the matrix file (see examples/matrix.yaml)', required: true})}

  static override flags = {
    jobs: Flags.integer({description: "cells at once (default: the file's jobs, else what the host's cores and available RAM allow)", min: 1, max: 64}),
    retries: Flags.integer({description: "extra attempts of a cell that failed or errored (default: the file's retries)", min: 0, max: 5}),
    output: Flags.string({description: 'where the cell directories and merged results go', default: 'matrix-results', helpValue: 'DIR'}),
    list: Flags.boolean({description: 'print the cells instead of running them (with --json: the strategy.matrix document)', exclusive: ['cell']}),
    cell: Flags.string({description: 'run this cell only, into OUTPUT/cells/ID (one CI job of a fanned-out matrix)', helpValue: 'ID'}),
    json: Flags.boolean({description: 'print one JSON document: matrix.json (with --cell: the cell record; with --list: the cells)'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Matrix)
    const plan = await readMatrixFile(args.file)
    if (flags.list) {
      const list = await listCells(plan)
      if (flags.json) this.printJson(list)
      else process.stdout.write(listText(plan, list))
      return
    }
    const output = resolve(flags.output)
    const result = await runMatrix({plan, output, jobs: flags.jobs, retries: flags.retries, cell: flags.cell})
    if (flags.cell !== undefined) {
      const record = result.records[0]
      if (flags.json && record) this.printJson(record)
      else if (record) process.stdout.write(cellsTable([record]))
      if (record) log.info(`cell ${record.id}: ${shown(cellDir(output, record.id))}`)
    } else if (flags.json) {
      if (result.document) this.printJson(result.document)
    } else if (result.records.length > 0) {
      process.stdout.write(cellsTable(result.document?.cells ?? result.records, result.document?.summary))
    }
    if (result.files.length > 0) log.info(`results: ${result.files.map(shown).join(', ')}; cells in ${shown(output)}/cells`)
    if (result.interrupted) log.warn(`interrupted: ${result.records.length} cell${result.records.length === 1 ? '' : 's'} finished and kept; the others are marked "no result"`)
    process.exitCode = result.exitCode
  }
}

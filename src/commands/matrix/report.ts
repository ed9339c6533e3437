import * as Flags from '@oclif/core/flags'
import {resolve} from 'node:path'
import {PmemlabCommand} from '../../cli/command.js'
import {usageError} from '../../core/errors.js'
import {log} from '../../core/log.js'
import {cellsTable, matrixExitCode, readCellRecords, shown, writeMatrix} from '../../matrix/outputs.js'
import {mergeCells} from '../../matrix/results.js'

export default class MatrixReport extends PmemlabCommand {
  static override summary = 'Merge the cell directories of matrix runs (CI job artifacts) into one report'
  static override description = `Finds every cell.json under the given directories (a cell directory, or a folder of downloaded artifacts holding them), refuses cells of another matrix file and cells given twice, marks the planned cells without a result as errors, and writes the same matrix.json, junit.xml and summary.md as a local run (appending the summary to $GITHUB_STEP_SUMMARY when set).
Exit codes as pmemlab matrix: 0 all passed, flaky or skipped; 1 a cell failed; 8 none failed but one errored or has no result; 2 bad input.`

  static override examples = ['<%= config.bin %> matrix report artifacts/', '<%= config.bin %> matrix report cell-a/ cell-b/ --output merged --json']

  static override strict = false

  static override flags = {
    output: Flags.string({description: 'where matrix.json, junit.xml and summary.md go', default: 'matrix-results', helpValue: 'DIR'}),
    json: Flags.boolean({description: 'print matrix.json instead of the table'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(MatrixReport)
    const dirs = (argv as string[]).filter((a) => a !== '--')
    if (dirs.length === 0) throw usageError('which cell directories?', 'pass one or more, like: pmemlab matrix report artifacts/')
    const doc = mergeCells(await readCellRecords(dirs))
    const output = resolve(flags.output)
    const files = await writeMatrix(output, doc)
    if (flags.json) this.printJson(doc)
    else process.stdout.write(cellsTable(doc.cells, doc.summary))
    log.info(`merged ${doc.cells.length - doc.cells.filter((c) => c.reason.startsWith('no result')).length} of ${doc.cells.length} cells: ${files.map(shown).join(', ')}`)
    process.exitCode = matrixExitCode(doc.summary)
  }
}

import assert from 'node:assert/strict'
import {register} from 'node:module'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {parse as parseYaml} from 'yaml'
import {packageRoot} from '../../src/core/paths.js'
import {expandCells} from '../../src/matrix/cells.js'
import {listDocument} from '../../src/matrix/list.js'
import {parseMatrix} from '../../src/matrix/schema.js'

/**
 * Every workflow in .github/workflows, checked by GitHub's own workflow parser
 * (@actions/workflow-parser: the schema of keys and values, and every ${{ }} expression), since no
 * workflow can run here. Then what that parser leaves to the run: each needs.JOB.outputs.NAME and
 * steps.ID.outputs.NAME a workflow reads is one that is written, and each matrix.KEY the matrix
 * workflow reads is a key of every cell `pmemlab matrix --list --json` prints.
 */

// The parser's modules import its JSON schema without an import attribute, which Node 20 refuses
// (ERR_IMPORT_ASSERTION_TYPE_MISSING; bundlers accept it). This hook adds the attribute for them.
const hook = `export async function load(url, context, next) {
  if (url.includes('/node_modules/@actions/') && url.endsWith('.json')) return next(url, {...context, importAttributes: {type: 'json'}})
  return next(url, context)
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
const {parseWorkflow, convertWorkflowTemplate, NoOperationTraceWriter} = await import('@actions/workflow-parser')

const workflowsDir = join(packageRoot, '.github', 'workflows')

/** Every error GitHub's parser finds in a workflow: "NAME (Line: L, Col: C): message". */
async function validate(name: string, content: string): Promise<string[]> {
  const parsed = parseWorkflow({name, content}, new NoOperationTraceWriter())
  const errors = parsed.context.errors.getErrors().map((e) => e.message)
  if (errors.length > 0 || !parsed.value) return errors
  const template = await convertWorkflowTemplate(parsed.context, parsed.value)
  return (template.errors ?? []).map((e) => e.Message)
}

interface Workflow {
  jobs: Record<string, {needs?: string | string[]; outputs?: Record<string, string>; steps?: Array<Record<string, unknown>>}>
}

/** What the parser does not check: outputs read from jobs and steps that do not write them. */
function danglingReferences(text: string): string[] {
  const workflow = parseYaml(text) as Workflow
  const problems: string[] = []
  for (const [jobId, job] of Object.entries(workflow.jobs)) {
    const jobText = JSON.stringify(job)
    const needs = [job.needs ?? []].flat()
    for (const [, other, output] of jobText.matchAll(/needs\.([\w-]+)\.outputs\.([\w-]+)/g)) {
      if (!needs.includes(other)) problems.push(`job ${jobId} reads needs.${other} but does not need it`)
      else if (!workflow.jobs[other]?.outputs?.[output]) problems.push(`job ${jobId} reads needs.${other}.outputs.${output}, which job ${other} does not declare`)
    }
    const stepIds = (job.steps ?? []).map((s) => s.id)
    for (const [, step] of jobText.matchAll(/steps\.([\w-]+)\.outputs/g)) {
      if (!stepIds.includes(step)) problems.push(`job ${jobId} reads steps.${step}, which no step of it is`)
    }
  }
  return problems
}

const workflowFiles = async () => (await readdir(workflowsDir)).filter((f) => /\.ya?ml$/.test(f)).sort()

describe('GitHub workflows', () => {
  test('every workflow passes GitHub\'s workflow parser and reads only outputs that are written', async () => {
    const files = await workflowFiles()
    assert.ok(files.includes('ci.yml') && files.includes('matrix.yml'), `workflows: ${files.join(', ')}`)
    for (const file of files) {
      const text = await readFile(join(workflowsDir, file), 'utf8')
      assert.deepEqual(await validate(file, text), [], file)
      assert.deepEqual(danglingReferences(text), [], file)
    }
  })

  test('the validator catches planted mistakes, naming their line', async () => {
    const text = await readFile(join(workflowsDir, 'matrix.yml'), 'utf8')
    const lines = text.split('\n')
    const lineOf = (needle: string) => lines.findIndex((l) => l.includes(needle)) + 1
    // An unknown key in a job.
    const unknownKey = text.replace('    timeout-minutes: 90\n', '    timeout-minute: 90\n')
    assert.notEqual(unknownKey, text)
    const keyErrors = await validate('matrix.yml', unknownKey)
    assert.ok(keyErrors.some((e) => e.includes(`(Line: ${lineOf('timeout-minutes: 90')}, Col: 5): Unexpected value 'timeout-minute'`)), keyErrors.join('\n'))
    // An expression that does not parse.
    const badExpression = text.replace('matrix: ${{ fromJSON(needs.plan.outputs.cells) }}', 'matrix: ${{ fromJSON(needs.plan.outputs.cells }}')
    assert.notEqual(badExpression, text)
    const expressionErrors = await validate('matrix.yml', badExpression)
    assert.ok(expressionErrors.some((e) => e.includes(`Line: ${lineOf('fromJSON(needs.plan.outputs.cells)')},`)), expressionErrors.join('\n'))
    // A context that does not exist.
    const badContext = text.replace("key: ${{ matrix.cache_key }}", 'key: ${{ matrixx.cache_key }}')
    const contextErrors = await validate('matrix.yml', badContext)
    assert.ok(contextErrors.some((e) => e.includes("Unrecognized named-value: 'matrixx'")), contextErrors.join('\n'))
    // And the reference check: an output the plan job does not declare.
    const dangling = danglingReferences(text.replace('fromJSON(needs.plan.outputs.cells)', 'fromJSON(needs.plan.outputs.cell)'))
    assert.deepEqual(dangling, ['job cell reads needs.plan.outputs.cell, which job plan does not declare'])
  })

  test('matrix.yml: plan lists the cells, one job per cell runs it with its cache key, report merges every artifact', async () => {
    const text = await readFile(join(workflowsDir, 'matrix.yml'), 'utf8')
    const workflow = parseYaml(text) as {env: Record<string, string>; jobs: Record<string, any>}
    const {plan, cell, report} = workflow.jobs
    assert.match(plan.steps.find((s: {id?: string}) => s.id === 'list').run, /matrix "\$MATRIX_FILE" --list --json/)
    assert.equal(cell.needs, 'plan')
    assert.equal(cell.strategy.matrix, '${{ fromJSON(needs.plan.outputs.cells) }}')
    assert.equal(cell.strategy['fail-fast'], false)
    const caches = cell.steps.filter((s: {uses?: string}) => s.uses?.startsWith('actions/cache@'))
    assert.ok(caches.some((s: {with: {key: string; path: string}}) => s.with.key === '${{ matrix.cache_key }}' && s.with.path.includes('/kernels')))
    assert.match(cell.steps.find((s: {run?: string}) => s.run?.includes('--cell')).run, /matrix "\$MATRIX_FILE" --cell "\$CELL" --output matrix-results/)
    const upload = cell.steps.find((s: {uses?: string}) => s.uses?.startsWith('actions/upload-artifact@'))
    assert.equal(upload.if, 'always()')
    assert.equal(upload.with.path, 'matrix-results/cells/${{ matrix.cell }}')
    assert.deepEqual(report.needs, ['plan', 'cell'])
    assert.match(report.if, /always\(\)/)
    assert.equal(report.steps.find((s: {uses?: string}) => s.uses?.startsWith('actions/download-artifact@')).with.pattern, 'cell-*')
    assert.ok(report.steps.some((s: {run?: string}) => s.run?.includes('matrix report artifacts')))
    // Every matrix.KEY the workflow reads is in every cell the listing of its default file prints.
    const file = /'([^']+)'/.exec(workflow.env.MATRIX_FILE)![1]
    const entries = listDocument(expandCells(parseMatrix(await readFile(join(packageRoot, file), 'utf8'), file)).cells).include
    const expressions = [...text.matchAll(/\$\{\{(.*?)\}\}/g)].map((m) => m[1]).join(' ')
    const keys = [...new Set([...expressions.matchAll(/\bmatrix\.([\w-]+)/g)].map((m) => m[1]))]
    assert.deepEqual(keys.sort(), ['cache_key', 'cell'])
    for (const entry of entries) for (const key of keys) assert.ok(key in entry, `${entry.cell} has no ${key}`)
  })
})

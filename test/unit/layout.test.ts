import assert from 'node:assert/strict'
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {packageRoot} from '../../src/core/paths.js'

/**
 * The shape of src/: every module in a layer folder, imports flowing one way
 * (commands -> cli -> matrix, bisect -> repro -> suite -> lab -> kernel, image -> core), no cycles, no module past 600 lines.
 * The rules are dependency-cruiser's, in .dependency-cruiser.cjs.
 */
const depcruise = join(packageRoot, 'node_modules', '.bin', 'depcruise')
const config = join(packageRoot, '.dependency-cruiser.cjs')
const MAX_LINES = 600

interface Violation {
  from: string
  to: string
  rule: {name: string}
  cycle?: Array<{name: string}>
}

async function cruise(cwd: string): Promise<{violations: Violation[]; modules: number}> {
  const result = await execa(depcruise, ['src', '--config', config, '--output-type', 'json'], {cwd, reject: false})
  assert.ok(result.stdout.startsWith('{'), `depcruise printed no report: ${result.stderr}`)
  const report = JSON.parse(result.stdout) as {summary: {violations: Violation[]; totalCruised: number}}
  return {violations: report.summary.violations, modules: report.summary.totalCruised}
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name))
}

describe('the layout of src/', () => {
  test('has no import cycle and no import against the layering', async () => {
    const {violations, modules} = await cruise(packageRoot)
    assert.ok(modules > 50, `only ${modules} modules cruised: is the config reading src/?`)
    assert.deepEqual(
      violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`),
      [],
    )
  })

  test('keeps every module in a layer folder and under 600 lines', async () => {
    const src = join(packageRoot, 'src')
    const layers = new Set(['core', 'kernel', 'image', 'lab', 'suite', 'matrix', 'repro', 'bisect', 'cli', 'commands'])
    for (const file of await sourceFiles(src)) {
      const path = relative(src, file)
      assert.ok(layers.has(path.split('/')[0]) && path.includes('/'), `${path} is not in a layer folder`)
      const lines = (await readFile(file, 'utf8')).split('\n').length
      assert.ok(lines <= MAX_LINES, `src/${path} has ${lines} lines (more than ${MAX_LINES}): split it along its seams`)
    }
  })

  test('catches a planted cycle and an import that runs up the layers', async () => {
    await withDir(
      async ({path}) => {
        await mkdir(join(path, 'src', 'core'), {recursive: true})
        await mkdir(join(path, 'src', 'lab'), {recursive: true})
        await writeFile(join(path, 'tsconfig.json'), await readFile(join(packageRoot, 'tsconfig.json')))
        await writeFile(join(path, 'src', 'core', 'size.ts'), "import {plan} from '../lab/topology.js'\nexport const size = () => plan() + 1\n")
        await writeFile(join(path, 'src', 'lab', 'topology.ts'), "import {size} from '../core/size.js'\nexport const plan = (): number => size()\n")
        const {violations} = await cruise(path)
        const found = violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort()
        assert.ok(found.includes('layer-core: src/core/size.ts -> src/lab/topology.ts'), found.join('\n'))
        assert.ok(found.some((v) => v.startsWith('no-circular: ')), found.join('\n'))
      },
      {unsafeCleanup: true, prefix: 'pmemlab-layout-'},
    )
  })

  test('keeps matrix and repro, which sit side by side, from importing each other', async () => {
    await withDir(
      async ({path}) => {
        for (const layer of ['core', 'matrix', 'repro']) await mkdir(join(path, 'src', layer), {recursive: true})
        await writeFile(join(path, 'tsconfig.json'), await readFile(join(packageRoot, 'tsconfig.json')))
        await writeFile(join(path, 'src', 'core', 'size.ts'), 'export const size = (): number => 1\n')
        await writeFile(join(path, 'src', 'matrix', 'cells.ts'), "import {size} from '../core/size.js'\nexport const cells = (): number => size()\n")
        await writeFile(join(path, 'src', 'repro', 'verdict.ts'), "import {cells} from '../matrix/cells.js'\nexport const verdict = (): number => cells()\n")
        const {violations} = await cruise(path)
        assert.deepEqual(
          violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`),
          ['layer-repro: src/repro/verdict.ts -> src/matrix/cells.ts'],
        )
      },
      {unsafeCleanup: true, prefix: 'pmemlab-layout-'},
    )
  })

  test('lets bisect drive repro, and keeps repro from bisect and bisect from matrix', async () => {
    await withDir(
      async ({path}) => {
        for (const layer of ['core', 'matrix', 'repro', 'bisect']) await mkdir(join(path, 'src', layer), {recursive: true})
        await writeFile(join(path, 'tsconfig.json'), await readFile(join(packageRoot, 'tsconfig.json')))
        await writeFile(join(path, 'src', 'core', 'size.ts'), 'export const size = (): number => 1\n')
        await writeFile(join(path, 'src', 'matrix', 'cells.ts'), "import {size} from '../core/size.js'\nexport const cells = (): number => size()\n")
        await writeFile(join(path, 'src', 'repro', 'verdict.ts'), "import {size} from '../core/size.js'\nexport const verdict = (): number => size()\n")
        await writeFile(join(path, 'src', 'repro', 'run.ts'), "import {step} from '../bisect/step.js'\nexport const run = (): number => step()\n")
        await writeFile(join(path, 'src', 'bisect', 'step.ts'), "import {verdict} from '../repro/verdict.js'\nexport const step = (): number => verdict()\n")
        await writeFile(join(path, 'src', 'bisect', 'report.ts'), "import {cells} from '../matrix/cells.js'\nexport const report = (): number => cells()\n")
        const {violations} = await cruise(path)
        assert.deepEqual(
          violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort(),
          ['layer-bisect: src/bisect/report.ts -> src/matrix/cells.ts', 'layer-repro: src/repro/run.ts -> src/bisect/step.ts'],
        )
      },
      {unsafeCleanup: true, prefix: 'pmemlab-layout-'},
    )
  })
})

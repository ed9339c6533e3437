import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {makeLab, type Lab} from './cli.js'

/**
 * Issue 11's user images on a real build and guest: a recipe kept in a project outside pmemlab
 * (a temporary directory) extends debian-12 with fio and a file, is built once, boots, and is a
 * cache hit the second time, re-indented too. The image is removed from the cache afterwards.
 */
describe('your own image', {timeout: 1_800_000}, () => {
  let lab: Lab
  let project: string
  let recipe: string
  let imageDir: string | undefined
  const text = (indent: string) =>
    ['name: pmemlab-e2e-fio', 'extends: debian-12', 'packages:', `${indent}- fio`, 'files:', `${indent}- source: hello.txt`, `${indent}  to: /root/hello.txt`, ''].join('\n')

  before(async () => {
    lab = await makeLab()
    project = await mkdtemp(join(tmpdir(), 'pmemlab-e2e-project-'))
    recipe = join(project, 'fio-image.yaml')
    await writeFile(recipe, text('  '))
    await writeFile(join(project, 'hello.txt'), 'hello from the project\n')
  })
  after(async () => {
    await lab.pmemlab(['down', '--all', '--timeout', '5'])
    await lab.dispose()
    await rm(project, {recursive: true, force: true})
    // 800 MiB of a test's own image: not left in the shared cache.
    if (imageDir) await rm(imageDir, {recursive: true, force: true})
  })

  test('image build PATH builds it, and image ls shows its recipe and base', async () => {
    const built = await lab.pmemlab(['image', 'build', recipe])
    assert.equal(built.exitCode, 0, built.stderr)
    assert.match(built.stdout, /^pmemlab-e2e-fio [0-9a-f]{12} /)
    const listed = await lab.pmemlab(['image', 'ls', '--json'])
    assert.equal(listed.exitCode, 0, listed.stderr)
    const image = (JSON.parse(listed.stdout) as Array<{name: string; path: string; recipe: string; extends?: string; packages: string[]}>).find((i) => i.name === 'pmemlab-e2e-fio')
    assert.ok(image, listed.stdout)
    imageDir = dirname(dirname(image.path))
    assert.equal(image.recipe, recipe)
    assert.equal(image.extends, 'debian-12')
    assert.ok(image.packages.includes('fio'))
    const table = await lab.pmemlab(['image', 'ls'])
    assert.match(table.stdout, new RegExp(`pmemlab-e2e-fio .*${recipe.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(extends debian-12\\)`))
  })

  test('up --image PATH boots it: fio runs, the project\'s file is there', async () => {
    const fio = await lab.pmemlab(['up', '--kernel', 'distro', '--image', recipe, '--', 'fio', '--version'])
    assert.equal(fio.exitCode, 0, fio.stderr)
    assert.match(fio.stdout, /^fio-\d/)
    const file = await lab.pmemlab(['up', '--kernel', 'distro', '--image', recipe, '--', 'cat', '/root/hello.txt'])
    assert.equal(file.exitCode, 0, file.stderr)
    assert.match(file.stdout, /^hello from the project/)
  })

  test('the second image build is a cache hit, and so is the recipe re-indented', async () => {
    const first = await lab.pmemlab(['image', 'build', recipe])
    assert.equal(first.exitCode, 0, first.stderr)
    assert.match(first.stderr, /image pmemlab-e2e-fio [0-9a-f]{12} is already built/)
    await writeFile(recipe, `# re-indented\n${text('    ')}`)
    const again = await lab.pmemlab(['image', 'build', recipe])
    assert.equal(again.exitCode, 0, again.stderr)
    assert.match(again.stderr, /is already built/)
    assert.equal(again.stdout, first.stdout)
  })

  test('a missing recipe: one line, exit 2, naming the path', async () => {
    const missing = join(project, 'nope.yaml')
    const result = await lab.pmemlab(['up', '--kernel', 'distro', '--image', missing, '--', 'true'])
    assert.equal(result.exitCode, 2, result.stderr)
    // Progress lines may come first (the distro kernel's initramfs, when not cached): one error line.
    const errors = result.stderr.trimEnd().split('\n').filter((line) => line.startsWith('pmemlab: error:'))
    assert.equal(errors.length, 1, result.stderr)
    assert.match(errors[0], new RegExp(`cannot read image recipe ${missing.replaceAll('.', '\\.')}: no such file`))
  })
})

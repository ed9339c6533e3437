import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import {makeBisectTree, TARBALL} from './bisect-tree.js'
import {assertOneErrorLine, makeLab, type Lab} from './cli.js'

/**
 * Issue 12's must-show 1-3 on real kernels, on the tree of bisect-tree.ts (its commits c0-c10).
 * With --good c0 --bad c7, git's picks are c3 (good), c5 (does not build: skipped) and c4 (bad):
 * the culprit is c4, with c5 skipped. With --reverse, --bad c4 --good c10, they are c7, c9 and
 * c8: the fix is c8. Every build is a tinyconfig with pmemlab's fragments, in one O= directory
 * reused between steps; the commits that change only documentation build in seconds. The
 * interrupted bisect goes first, while nothing is built: the next tests find most of its
 * kernels in the cache (a commit that did not build is built again, and fails again).
 */
interface ReportJson {
  status: string
  headline: string
  culprit?: {commit: string; subject?: string; bundle?: string}
  parent?: {commit: string; bundle?: string}
  fixes?: string
  skipped: string[]
  warnings: string[]
  steps: Array<{commit: string; role: string; buildState: string; verdict: string; runs: string}>
}
interface StateJson {
  steps: Array<{commit: string; role: string; build: {state: string}}>
  result?: {kind: string; commit?: string}
}

const HOURS = 3_600_000
const tail = (text: string) => text.trimEnd().split('\n').slice(-30).join('\n')

describe('pmemlab bisect on a Debian 6.1 tree', {timeout: 6 * HOURS, skip: existsSync(TARBALL) ? false : `${TARBALL} is not installed`}, () => {
  let lab: Lab
  let dir: string
  let tree: string
  let reproducer: string
  const c: string[] = []
  const git = (...args: string[]) => execa('git', args, {cwd: tree})

  before(async () => {
    lab = await makeLab()
    dir = await mkdtemp(join(tmpdir(), 'pmemlab-bisect-e2e-'))
    const made = await makeBisectTree(dir)
    tree = made.tree
    reproducer = made.reproducer
    c.push(...made.commits)
  })

  after(async () => {
    await lab?.dispose()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  const bisect = (args: string[], output: string) => lab.pmemlab(['bisect', '--tree', tree, '--repro', reproducer, '--output', join(dir, output), ...args], {timeout: 3 * HOURS})
  const report = async (output: string) => JSON.parse(await readFile(join(dir, output, 'bisect.json'), 'utf8')) as ReportJson
  const state = async (output: string) => JSON.parse(await readFile(join(dir, output, 'bisect-state.json'), 'utf8')) as StateJson

  async function treeIsBack(): Promise<void> {
    assert.equal((await git('branch', '--show-current')).stdout, 'main', 'git bisect reset took the tree back to its branch')
    assert.equal((await git('status', '--porcelain')).stdout, '', 'the tree holds nothing new')
    assert.equal((await execa('git', ['bisect', 'log'], {cwd: tree, reject: false})).exitCode, 1, 'the tree is in no bisect')
  }

  test('Ctrl-C in the middle leaves no make or QEMU; --resume finishes with the same culprit', async () => {
    // The first bisect here: nothing is built yet, so a step's make can be caught running.
    const output = join(dir, 'interrupted')
    const args = ['bisect', '--tree', tree, '--repro', reproducer, '--output', output, '--good', c[0], '--bad', c[7]]
    const child = lab.start(args)
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    // Once both endpoints are checked, stop it at the next build or boot.
    const deadline = Date.now() + 3 * HOURS
    for (;;) {
      assert.ok(Date.now() < deadline, 'the bisect never got past its endpoints')
      const saved = await state('interrupted').catch(() => undefined)
      if (saved && saved.steps.length >= 2 && ((await makes()).length > 0 || (await lab.qemuProcesses()).length > 0)) break
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    child.kill('SIGINT')
    const stopped = await child
    assert.equal(stopped.exitCode, 130, tail(stderr))
    assert.match(stderr, /SIGINT: stopping the bisect; its state file is kept, and pmemlab bisect --resume --output /)
    await new Promise((resolve) => setTimeout(resolve, 2000))
    assert.deepEqual(await makes(), [], 'no make is left')
    assert.deepEqual(await lab.qemuProcesses(), [], 'no QEMU is left')
    const half = await state('interrupted')
    assert.equal(half.result, undefined)

    const resumed = await lab.pmemlab(['bisect', '--resume', '--output', output, '--json'], {timeout: 3 * HOURS})
    assert.equal(resumed.exitCode, 0, tail(resumed.stderr))
    const json = JSON.parse(resumed.stdout) as ReportJson
    assert.equal(json.culprit?.commit, c[4])
    assert.deepEqual(json.skipped, [c[5]])
    await treeIsBack()
  })

  test('names exactly the commit that broke DAX, and reports the one that does not build as skipped', async () => {
    const result = await bisect(['--good', c[0], '--bad', c[7], '--json'], 'normal')
    assert.equal(result.exitCode, 0, tail(result.stderr))
    const json = JSON.parse(result.stdout) as ReportJson
    assert.equal(json.status, 'culprit')
    assert.equal(json.culprit?.commit, c[4])
    assert.equal(json.culprit?.subject, 'ext4: refuse -o dax')
    assert.equal(json.fixes, `Fixes: ${c[4].slice(0, 12)} ("ext4: refuse -o dax")`)
    assert.deepEqual(json.skipped, [c[5]])
    const skipped = json.steps.find((s) => s.commit === c[5])
    assert.deepEqual([skipped?.buildState, skipped?.verdict], ['failed', 'skip'])
    assert.deepEqual(json.steps.slice(0, 2).map((s) => [s.role, s.verdict]), [['bad endpoint', 'bad'], ['good endpoint', 'good']])
    assert.deepEqual(json.warnings, [], 'the images of the culprit and its parent differ, and every step was sure')
    assert.deepEqual(await report('normal'), json)
    for (const bundle of [json.culprit?.bundle, json.parent?.bundle]) assert.ok(bundle && (await stat(bundle)).size > 0, `a repro bundle: ${bundle}`)
    assert.match(await readFile(join(dir, 'normal', 'bisect.md'), 'utf8'), /^### pmemlab bisect: first bad commit /)
    await treeIsBack()
  })

  test('--reverse on the same tree names the commit that fixed it again', async () => {
    const result = await bisect(['--reverse', '--good', c[10], '--bad', c[4]], 'reverse')
    assert.equal(result.exitCode, 0, tail(result.stderr))
    assert.equal(result.stdout.trim(), `${c[8]} ext4: take -o dax again`)
    const json = await report('reverse')
    assert.match(json.headline, new RegExp(`^first fixed commit: ${c[8].slice(0, 12)} `))
    assert.equal(json.fixes, undefined)
    await treeIsBack()
  })

  test('a good endpoint that is bad is refused in one line, before any bisect step', async () => {
    const result = await bisect(['--good', c[4], '--bad', c[7]], 'wrong-good')
    assert.equal(result.exitCode, 2, tail(result.stderr))
    assert.equal(result.stdout, '')
    assertOneErrorLine(result.stderr, new RegExp(`^pmemlab: error: the good endpoint ${c[4].slice(0, 12)} reproduces the bug \\(reproduced 1/1\\): give --good a commit that does not$`))
    const saved = await state('wrong-good')
    assert.deepEqual(saved.steps.map((s) => s.role), ['bad endpoint', 'good endpoint'], 'no bisect step')
    assert.equal(saved.result?.kind, 'refused')
    await treeIsBack()
  })

  /** make processes building in a bisect's O= directory (.pmemlab-bisect at the top of the tree), as pgrep lists them. */
  async function makes(): Promise<string[]> {
    const listed = await execa('pgrep', ['-af', 'make'], {reject: false})
    return listed.stdout.split('\n').filter((line) => /\bmake\b/.test(line) && line.includes(`O=${join(tree, '.pmemlab-bisect')} `))
  }
})

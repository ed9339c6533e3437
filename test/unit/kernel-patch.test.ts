import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {cp, mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {buildKernel} from '../../src/kernel/build.js'
import {computeKey, type KeyInputs} from '../../src/kernel/key.js'
import {entryPatchFile, parsePatchOutput, patchKeyPart, samePatches} from '../../src/kernel/patch.js'
import {applyPatches, patchedSourceDir, readPatches} from '../../src/kernel/patch-tree.js'
import {withEnv} from './env.js'
import {prepareSource, sourceDir} from '../../src/kernel/source.js'
import {buildRequest, cacheSalts} from '../../src/matrix/kernel.js'
import {parseMatrix} from '../../src/matrix/schema.js'

// ---- a small fake kernel source tree, and patches made from it by real diff -u and git diff ----

const lines = (prefix: string, n = 20) => Array.from({length: n}, (_, i) => `${prefix} line ${i + 1}`).join('\n') + '\n'

async function makeTree(dir: string): Promise<string> {
  await mkdir(join(dir, 'fs'), {recursive: true})
  await mkdir(join(dir, 'mm'), {recursive: true})
  await writeFile(join(dir, 'Kconfig'), 'mainmenu "fake"\n')
  await writeFile(join(dir, 'Makefile'), 'VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 5\nEXTRAVERSION =\n')
  await writeFile(join(dir, 'fs', 'dax.c'), lines('dax'))
  await writeFile(join(dir, 'mm', 'memory.c'), lines('memory'))
  return dir
}

/** Replaces one line of a file: the edit a patch is made of. */
async function replaceLine(file: string, from: string, to: string): Promise<void> {
  const text = await readFile(file, 'utf8')
  assert.ok(text.includes(`${from}\n`), `${file} has no line "${from}"`)
  await writeFile(file, text.replace(`${from}\n`, `${to}\n`))
}

/**
 * A -p1 patch (a/ and b/ prefixes) from `diff -ruN` between TREE and a copy of it that EDIT
 * changed; written to OUT. The tree itself is left as it was.
 */
async function diffPatch(tree: string, out: string, edit: (copy: string) => Promise<void>): Promise<string> {
  const scratch = `${out}.dir`
  await mkdir(scratch, {recursive: true})
  await cp(tree, join(scratch, 'a'), {recursive: true})
  await cp(tree, join(scratch, 'b'), {recursive: true})
  await edit(join(scratch, 'b'))
  const diff = await execa('diff', ['-ruN', 'a', 'b'], {cwd: scratch, reject: false})
  assert.equal(diff.exitCode, 1, `diff found no difference: ${diff.stderr}`)
  await writeFile(out, `${diff.stdout}\n`)
  return out
}

/** sha256 of every file under dir, by relative path: to prove a tree was left alone. */
async function treeDigest(dir: string): Promise<Record<string, string>> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
  const digest: Record<string, string> = {}
  for (const file of files.sort()) digest[relative(dir, file)] = createHash('sha256').update(await readFile(file)).digest('hex')
  return digest
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<PmemlabError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof PmemlabError, `not a PmemlabError: ${String(error)}`)
    assert.match(error.oneLine(), pattern)
    assert.ok(!error.oneLine().includes('\n'), 'the error is one line')
    return error
  }
  assert.fail(`expected a rejection matching ${pattern}`)
}

/** A pristine tree and the patch files used by most tests. */
async function fixture(dir: string) {
  const tree = await makeTree(join(dir, 'src-pristine'))
  // first: lines 3 and 4 of fs/dax.c; second (on top of the first): line 4 again, and mm/memory.c
  const first = await diffPatch(tree, join(dir, '0001-fix.patch'), async (b) => {
    await replaceLine(join(b, 'fs', 'dax.c'), 'dax line 3', 'dax line 3 (fixed)')
    await replaceLine(join(b, 'fs', 'dax.c'), 'dax line 4', 'dax line 4 (fixed)')
  })
  const firstApplied = join(dir, 'first-applied')
  await cp(tree, firstApplied, {recursive: true})
  await replaceLine(join(firstApplied, 'fs', 'dax.c'), 'dax line 3', 'dax line 3 (fixed)')
  await replaceLine(join(firstApplied, 'fs', 'dax.c'), 'dax line 4', 'dax line 4 (fixed)')
  const second = await diffPatch(firstApplied, join(dir, '0002-more.patch'), async (b) => {
    await replaceLine(join(b, 'fs', 'dax.c'), 'dax line 4 (fixed)', 'dax line 4 (fixed twice)')
    await replaceLine(join(b, 'mm', 'memory.c'), 'memory line 10', 'memory line 10 (patched)')
  })
  // two hunks in fs/dax.c, far apart
  const twoHunks = await diffPatch(tree, join(dir, 'two-hunks.patch'), async (b) => {
    await replaceLine(join(b, 'fs', 'dax.c'), 'dax line 2', 'dax line 2 (changed)')
    await replaceLine(join(b, 'fs', 'dax.c'), 'dax line 18', 'dax line 18 (changed)')
  })
  // elsewhere: mm/memory.c only
  const elsewhere = await diffPatch(tree, join(dir, 'mm-only.patch'), (b) => replaceLine(join(b, 'mm', 'memory.c'), 'memory line 15', 'memory line 15 (x)'))
  return {tree, first, second, twoHunks, elsewhere}
}

async function scratchTree(dir: string, from: string, name: string): Promise<string> {
  const copy = join(dir, name)
  await cp(from, copy, {recursive: true})
  return copy
}

// ------------------------------------------------------------------------------------------------

describe('applying patches', () => {
  test('applies in order, and a patch that depends on the one before it applies on top of it', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first, second} = await fixture(dir)
        const copy = await scratchTree(dir, tree, 'copy')
        const patches = await readPatches([first, second])
        const strips = await applyPatches(copy, patches, [first, second])
        assert.deepEqual(strips, [1, 1])
        const dax = await readFile(join(copy, 'fs', 'dax.c'), 'utf8')
        assert.match(dax, /^dax line 3 \(fixed\)$/m)
        assert.match(dax, /^dax line 4 \(fixed twice\)$/m)
        assert.match(await readFile(join(copy, 'mm', 'memory.c'), 'utf8'), /^memory line 10 \(patched\)$/m)
        assert.deepEqual((await readdir(join(copy, 'fs'))).sort(), ['dax.c'], 'no .orig or .rej left behind')

        // The second really needs the first: alone, or first, it does not apply.
        const alone = await scratchTree(dir, tree, 'alone')
        const reordered = await readPatches([second, first])
        const error = await rejectsWith(applyPatches(alone, reordered, [second, first]), /^--patch 0002-more\.patch does not apply \(patch 1 of 2\): fs\/dax\.c: hunk #1 failed \(at line 1\)/)
        assert.equal(error.exitCode, ExitCode.usage)
      },
      {unsafeCleanup: true},
    ))

  test('a failing hunk names the patch, its place in the series, the file and the hunk', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, elsewhere, twoHunks} = await fixture(dir)
        const copy = await scratchTree(dir, tree, 'copy')
        await replaceLine(join(copy, 'fs', 'dax.c'), 'dax line 18', 'dax line 18 (someone else)')
        const patches = await readPatches([elsewhere, twoHunks])
        await rejectsWith(
          applyPatches(copy, patches, [elsewhere, twoHunks]),
          /^--patch two-hunks\.patch does not apply \(patch 2 of 2, on top of mm-only\.patch\): fs\/dax\.c: hunk #2 failed \(at line 15\): refresh it/,
        )
      },
      {unsafeCleanup: true},
    ))

  test('a reversed (already applied) patch, a missing file and a file that already exists are each named', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first} = await fixture(dir)
        const applied = await scratchTree(dir, tree, 'applied')
        await applyPatches(applied, await readPatches([first]), [first])
        await rejectsWith(applyPatches(applied, await readPatches([first]), [first]), /^--patch 0001-fix\.patch does not apply: fs\/dax\.c: reversed or already applied:/)

        const noMm = await scratchTree(dir, tree, 'no-mm')
        const touchesMm = await diffPatch(tree, join(dir, 'mm.patch'), (b) => replaceLine(join(b, 'mm', 'memory.c'), 'memory line 5', 'memory line 5 (x)'))
        await execa('rm', ['-r', join(noMm, 'mm')])
        await rejectsWith(applyPatches(noMm, await readPatches([touchesMm]), [touchesMm]), /mm\.patch does not apply: mm\/memory\.c: no such file in the source/)

        const creates = await diffPatch(tree, join(dir, 'creates.patch'), (b) => writeFile(join(b, 'fs', 'new.c'), 'new\n'))
        const hasNew = await scratchTree(dir, tree, 'has-new')
        await writeFile(join(hasNew, 'fs', 'new.c'), 'someone else\n')
        await rejectsWith(applyPatches(hasNew, await readPatches([creates]), [creates]), /creates\.patch does not apply: fs\/new\.c: would be created, but already exists/)
      },
      {unsafeCleanup: true},
    ))

  test('a -p0 patch (no a/ b/ prefixes) is detected and applied with -p0; a git diff with a new file and a rename applies', () =>
    withDir(
      async ({path: dir}) => {
        const {tree} = await fixture(dir)
        const p0 = join(dir, 'p0.patch')
        const edited = join(dir, 'dax-edited.c')
        await writeFile(edited, (await readFile(join(tree, 'fs', 'dax.c'), 'utf8')).replace('dax line 7\n', 'dax line 7 (p0)\n'))
        const diff = await execa('diff', ['-u', '--label', 'fs/dax.c', '--label', 'fs/dax.c', join(tree, 'fs', 'dax.c'), edited], {reject: false})
        await writeFile(p0, `${diff.stdout}\n`)
        const copy = await scratchTree(dir, tree, 'copy')
        assert.deepEqual(await applyPatches(copy, await readPatches([p0]), [p0]), [0])
        assert.match(await readFile(join(copy, 'fs', 'dax.c'), 'utf8'), /^dax line 7 \(p0\)$/m)

        // git diff: a new file, a rename with a change, in a repository made from the tree.
        const repo = await scratchTree(dir, tree, 'repo')
        const git = (...args: string[]) => execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {cwd: repo})
        await git('init', '-q')
        await git('add', '.')
        await git('commit', '-qm', 'base')
        await writeFile(join(repo, 'fs', 'new.c'), 'brand new\n')
        await git('mv', 'mm/memory.c', 'mm/memory2.c')
        await replaceLine(join(repo, 'mm', 'memory2.c'), 'memory line 1', 'memory line 1 (moved)')
        await git('add', '-A')
        const gitPatch = join(dir, 'git.patch')
        await writeFile(gitPatch, (await git('diff', '--cached', '-M')).stdout + '\n')
        const target = await scratchTree(dir, tree, 'target')
        assert.deepEqual(await applyPatches(target, await readPatches([gitPatch]), [gitPatch]), [1])
        assert.equal(await readFile(join(target, 'fs', 'new.c'), 'utf8'), 'brand new\n')
        assert.match(await readFile(join(target, 'mm', 'memory2.c'), 'utf8'), /^memory line 1 \(moved\)$/m)
        assert.deepEqual(await readdir(join(target, 'mm')), ['memory2.c'])
      },
      {unsafeCleanup: true},
    ))

  test('parsePatchOutput reads real patch output: failed hunks of several files, and what a malformed patch says', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, twoHunks} = await fixture(dir)
        const copy = await scratchTree(dir, tree, 'copy')
        await replaceLine(join(copy, 'fs', 'dax.c'), 'dax line 2', 'other 2')
        await replaceLine(join(copy, 'fs', 'dax.c'), 'dax line 18', 'other 18')
        const run = await execa('patch', ['-p1', '--forward', '--batch', '--dry-run', '--quoting-style=literal', '--directory', copy, '-i', twoHunks], {reject: false, all: true, env: {LC_ALL: 'C'}})
        const report = parsePatchOutput(run.all ?? '', 1, run.exitCode ?? 2)
        assert.deepEqual(report.problems, [{kind: 'hunks', file: 'fs/dax.c', hunks: [{hunk: 1, line: 1}, {hunk: 2, line: 15}]}])
        const garbage = join(dir, 'garbage.patch')
        await writeFile(garbage, 'diff --git a/x b/x\nnot a hunk\n')
        const bad = await execa('patch', ['-p1', '--batch', '--dry-run', '--directory', copy, '-i', garbage], {reject: false, all: true, env: {LC_ALL: 'C'}})
        const badReport = parsePatchOutput(bad.all ?? '', 1, bad.exitCode ?? 2)
        assert.ok(badReport.problems.length > 0 && bad.exitCode !== 0, `patch accepted garbage: ${bad.all}`)
        assert.ok(badReport.problems.every((p) => p.kind === 'malformed' || p.kind === 'other'), JSON.stringify(badReport))
        assert.deepEqual(parsePatchOutput('checking file fs/dax.c\n', 1, 0), {problems: [], fuzz: []})
      },
      {unsafeCleanup: true},
    ))
})

describe('the patched copy of a source', () => {
  test('a failing patch leaves the extracted source as it was, and no patched tree, temp or lock behind', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first, twoHunks} = await fixture(dir)
        // twoHunks after first: its hunk #1 context (lines 1-5) no longer matches once line 3 and 4 changed.
        await replaceLine(join(tree, 'fs', 'dax.c'), 'dax line 18', 'dax line 18 (upstream moved on)')
        const before = await treeDigest(tree)
        const listing = (await readdir(dir)).sort()
        await rejectsWith(patchedSourceDir(tree, await readPatches([first, twoHunks])), /two-hunks\.patch does not apply \(patch 2 of 2, on top of 0001-fix\.patch\): fs\/dax\.c: hunk/)
        assert.deepEqual(await treeDigest(tree), before, 'the extracted source was not touched')
        assert.deepEqual((await readdir(dir)).sort(), listing, 'no patched tree, temp directory or lock is left')
      },
      {unsafeCleanup: true},
    ))

  test('patches a copy once per ordered patch set, keeping the patches in it; the extracted source is untouched', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first, second} = await fixture(dir)
        const before = await treeDigest(tree)
        const patches = await readPatches([first, second])
        const made = await patchedSourceDir(tree, patches)
        assert.notEqual(made.dir, tree)
        assert.match(await readFile(join(made.dir, 'fs', 'dax.c'), 'utf8'), /^dax line 4 \(fixed twice\)$/m)
        assert.deepEqual(await treeDigest(tree), before)
        assert.deepEqual(await readdir(join(made.dir, '.pmemlab-patches')), ['01-0001-fix.patch', '02-0002-more.patch'])
        const marker = JSON.parse(await readFile(join(made.dir, '.pmemlab-patched'), 'utf8')) as {patches: Array<{sha256: string; strip: number}>}
        assert.deepEqual(marker.patches.map((p) => p.sha256), patchKeyPart(patches))
        const again = await patchedSourceDir(tree, await readPatches([first, second]))
        assert.deepEqual(again, {dir: made.dir, patchMs: 0})
        const onlyFirst = await patchedSourceDir(tree, await readPatches([first]))
        assert.notEqual(onlyFirst.dir, made.dir)
      },
      {unsafeCleanup: true},
    ))

  test('a tarball source is extracted, then a copy is patched; sourceDir gives the patched tree', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first} = await fixture(dir)
        await cp(tree, join(dir, 'tar', 'linux-6.1.5'), {recursive: true})
        const tarball = join(dir, 'linux-6.1.5.tar.gz')
        await execa('tar', ['-czf', tarball, '-C', join(dir, 'tar'), 'linux-6.1.5'])
        await withCache(join(dir, 'cache'), async () => {
          const plain = await sourceDir(await prepareSource({kind: 'source', file: tarball}))
          const patched = await sourceDir(await prepareSource({kind: 'source', file: tarball}, undefined, await readPatches([first])))
          assert.equal(patched.dir.startsWith(`${plain.dir}-patched-`), true, patched.dir)
          assert.match(await readFile(join(patched.dir, 'fs', 'dax.c'), 'utf8'), /^dax line 3 \(fixed\)$/m)
          assert.doesNotMatch(await readFile(join(plain.dir, 'fs', 'dax.c'), 'utf8'), /fixed/)
        })
      },
      {unsafeCleanup: true},
    ))

  test("a git tree: --ref patches pmemlab's snapshot, never the repository; the working tree itself is refused", () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first} = await fixture(dir)
        const git = (...args: string[]) => execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {cwd: tree})
        await git('init', '-q')
        await git('add', '.')
        await git('commit', '-qm', 'base')
        const before = await treeDigest(tree)
        await withCache(join(dir, 'cache'), async (cache) => {
          const patches = await readPatches([first])
          await rejectsWith(prepareSource({kind: 'tree', dir: tree}, undefined, patches), /^--patch cannot be applied to the working tree of --tree .*never writes to it: add --ref HEAD/)
          const {dir: patched} = await sourceDir(await prepareSource({kind: 'tree', dir: tree, ref: 'HEAD'}, undefined, patches))
          assert.ok(patched.startsWith(join(cache, 'build')), patched)
          assert.match(await readFile(join(patched, 'fs', 'dax.c'), 'utf8'), /^dax line 3 \(fixed\)$/m)
        })
        assert.deepEqual(await treeDigest(tree), before, 'the repository was not touched')
        assert.equal((await git('status', '--porcelain')).stdout, '')
      },
      {unsafeCleanup: true},
    ))

  test('kernel build with a patch that does not apply stops before configuring: exit 2, no entry, no patched tree', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, first, twoHunks} = await fixture(dir)
        await replaceLine(join(tree, 'fs', 'dax.c'), 'dax line 18', 'dax line 18 (upstream moved on)')
        await cp(tree, join(dir, 'tar', 'linux-6.1.5'), {recursive: true})
        const tarball = join(dir, 'linux-6.1.5.tar.gz')
        await execa('tar', ['-czf', tarball, '-C', join(dir, 'tar'), 'linux-6.1.5'])
        await withCache(join(dir, 'cache'), async (cache) => {
          const error = await rejectsWith(buildKernel({source: {kind: 'source', file: tarball}, patches: [first, twoHunks]}), /^--patch two-hunks\.patch does not apply \(patch 2 of 2, on top of 0001-fix\.patch\): fs\/dax\.c: hunks? #/)
          assert.equal(error.exitCode, ExitCode.usage)
          assert.deepEqual(await readdir(join(cache, 'kernels')).catch(() => []), [], 'no entry, not even a temporary one')
          const build = await readdir(join(cache, 'build'))
          assert.deepEqual(build.filter((name) => name.includes('patched')), [], `no patched tree is left: ${build.join(' ')}`)
          assert.equal(build.filter((name) => /^src-[0-9a-f]+$/.test(name)).length, 1, 'the extracted source stays for the next build')
        })
      },
      {unsafeCleanup: true},
    ))

  test('a missing patch, or a file that is no patch, is refused before anything is downloaded', () =>
    withDir(
      async ({path: dir}) => {
        const notPatch = join(dir, 'notes.txt')
        await writeFile(notPatch, 'remember to fix dax\n')
        await withCache(join(dir, 'cache'), async (cache) => {
          // The mirror does not exist: reaching it would be a different error.
          const source = {kind: 'version' as const, version: '6.1', mirror: 'http://127.0.0.1:9/pub/linux/kernel'}
          const missing = await rejectsWith(buildKernel({source, patches: [join(dir, 'nope.patch')]}), /^--patch .*nope\.patch: no such file: check the path: it is relative to the current directory/)
          assert.equal(missing.exitCode, ExitCode.usage)
          await rejectsWith(buildKernel({source, patches: [notPatch]}), /^--patch .*notes\.txt is not a patch/)
          assert.deepEqual(await readdir(cache).catch(() => []), [], 'nothing was downloaded or extracted')
        })
      },
      {unsafeCleanup: true},
    ))
})

describe('patches and the cache key', () => {
  const base: KeyInputs = {source: {tarball: 'a'.repeat(64)}, base: 'tinyconfig', fragment: 'CONFIG_DAX=y\n', compiler: 'gcc (Debian 12.2.0-14) 12.2.0', arch: 'x86_64'}

  test('the key changes with the patches’ content and order, not with their paths or names', () =>
    withDir(
      async ({path: dir}) => {
        const {first, second} = await fixture(dir)
        await mkdir(join(dir, 'elsewhere'))
        const renamed = join(dir, 'elsewhere', 'renamed.diff')
        await cp(first, renamed)
        const key = async (files: string[]) => computeKey({...base, patches: patchKeyPart(await readPatches(files))})
        const inOrder = await key([first, second])
        assert.equal(await key([renamed, second]), inOrder, 'same content under another path and name')
        assert.notEqual(await key([second, first]), inOrder, 'another order')
        assert.notEqual(await key([first]), inOrder, 'fewer patches')
        const edited = join(dir, 'edited.patch')
        await writeFile(edited, (await readFile(first, 'utf8')).replace('(fixed)', '(fixed better)'))
        assert.notEqual(await key([edited, second]), inOrder, 'other content')
        assert.notEqual(await key([first]), computeKey(base), 'patched or not')
        assert.equal(computeKey({...base, patches: []}), computeKey(base), 'no patches: the key of an unpatched build, as before')
      },
      {unsafeCleanup: true},
    ))

  test('samePatches and the files an entry keeps', () => {
    assert.equal(samePatches(undefined, []), true)
    assert.equal(samePatches([{sha256: 'a'}, {sha256: 'b'}], [{sha256: 'a'}, {sha256: 'b'}]), true)
    assert.equal(samePatches([{sha256: 'a'}, {sha256: 'b'}], [{sha256: 'b'}, {sha256: 'a'}]), false)
    assert.equal(samePatches([{sha256: 'a'}], undefined), false)
    assert.equal(entryPatchFile(0, 'fix.patch'), 'patches/01-fix.patch')
    assert.notEqual(entryPatchFile(0, 'fix.patch'), entryPatchFile(1, 'fix.patch'))
    assert.equal(entryPatchFile(2, '../we ird/x y.patch'), 'patches/03-x_y.patch')
  })
})

describe('patches in a matrix file', () => {
  test('flow to the build request (relative to the file) and to the CI cache salt; a tree without ref is refused', () =>
    withDir(
      async ({path: dir}) => {
        const file = join(dir, 'matrix.yaml')
        const matrix = (build: string) => parseMatrix(['version: 1', 'kernels:', `  - {name: k, build: ${build}}`, 'topologies: {pm: {memmap: [256M]}}'].join('\n'), file)
        const plan = matrix('{version: 6.12, patches: [p/a.patch, p/b.patch]}')
        assert.deepEqual(buildRequest(plan.kernels[0].build!, plan).patches, [join(dir, 'p', 'a.patch'), join(dir, 'p', 'b.patch')])
        const unpatched = matrix('{version: 6.12}')
        assert.equal('patches' in unpatched.kernels[0].build!, false, 'a recipe without patches is as it was')
        assert.equal('patches' in buildRequest(unpatched.kernels[0].build!, unpatched), false)

        await mkdir(join(dir, 'p'))
        await writeFile(join(dir, 'p', 'a.patch'), '--- a/x\n+++ b/x\n')
        await writeFile(join(dir, 'p', 'b.patch'), '--- a/y\n+++ b/y\n')
        const salt = async (p: typeof plan) => (await cacheSalts(p)).get('k')
        const first = await salt(plan)
        assert.notEqual(first, await salt(unpatched))
        assert.notEqual(first, await salt(matrix('{version: 6.12, patches: [p/b.patch, p/a.patch]}')))
        await writeFile(join(dir, 'p', 'a.patch'), '--- a/x\n+++ b/x\n@@ changed @@\n')
        assert.notEqual(first, await salt(plan))

        assert.throws(
          () => matrix('{tree: ../linux, patches: [p/a.patch]}'),
          (error: unknown) => error instanceof PmemlabError && /matrix\.yaml:3:\d+: kernels\[0\]\.build\.patches: cannot be applied to a tree without ref: .*add ref: HEAD/.test(error.oneLine()),
        )
        assert.deepEqual(buildRequest(matrix('{tree: ../linux, ref: HEAD, patches: [p/a.patch]}').kernels[0].build!, plan).patches, [join(dir, 'p', 'a.patch')])
      },
      {unsafeCleanup: true},
    ))
})

/** Runs body with PMEMLAB_CACHE_DIR at CACHE. */
function withCache(cache: string, body: (cache: string) => Promise<void>): Promise<void> {
  return withEnv({PMEMLAB_CACHE_DIR: cache}, () => body(cache))
}

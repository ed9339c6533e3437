import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {buildKernel, pinnedBuildDirProblem, REPRODUCIBLE_MAKE_VARS} from '../../src/kernel/build.js'
import {withEnv} from './env.js'
import {fixture} from './fake-kbuild.js'

describe('a pinned build directory (make O=, kept between builds)', () => {
  test('is refused deeper inside the kernel tree, or around it; directly under its top or elsewhere it is fine', () => {
    assert.equal(pinnedBuildDirProblem('build', '/src/linux'), 'the build directory build is not an absolute path')
    assert.match(pinnedBuildDirProblem('/src/linux/out/x86', '/src/linux')!, /^the build directory \/src\/linux\/out\/x86 is inside the kernel tree \/src\/linux but not directly under its top$/)
    assert.match(pinnedBuildDirProblem('/src/linux', '/src/linux/')!, /is inside the kernel tree/)
    assert.equal(pinnedBuildDirProblem('/src/linux/.pmemlab-bisect', '/src/linux/'), undefined, 'directly under the top: kbuild names the tree ".."')
    assert.match(pinnedBuildDirProblem('/src', '/src/linux')!, /^the kernel tree \/src\/linux is inside the build directory \/src$/)
    assert.equal(pinnedBuildDirProblem('/src/linux-build', '/src/linux'), undefined, 'a sibling whose name starts like the tree')
    assert.equal(pinnedBuildDirProblem('/cache/build/bisect-1', '/src/linux'), undefined)
  })

  test('commit after commit: reused, kept after a failed build, never an entry from a half build', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, bin, commit, log, cache, pinned} = await fixture(dir)
        await withEnv({PMEMLAB_CACHE_DIR: cache, PATH: `${bin}:${process.env.PATH}`, FAKE_MAKE_LOG: log, PMEMLAB_CCACHE: '0'}, async () => {
          const build = () => buildKernel({source: {kind: 'tree', dir: tree}, buildDir: pinned, reproducible: true, jobs: 1})
          await commit('first')
          const first = await build()
          assert.equal(first.cacheHit, false)
          assert.equal(await readFile(first.kernel, 'utf8'), 'first\n')
          assert.equal(await readFile(join(pinned, 'built-from'), 'utf8'), 'first\n', 'the O= directory stays after the build')
          const calls = (await readFile(log, 'utf8')).trim().split('\n')
          assert.deepEqual(calls.map((c) => c.split(' ').at(-1)), ['tinyconfig', 'olddefconfig', 'bzImage'])
          for (const call of calls) {
            assert.ok(call.includes(` O=${pinned} `), call)
            for (const stamp of REPRODUCIBLE_MAKE_VARS) assert.ok(call.includes(stamp), `${stamp} in: ${call}`)
          }
          assert.deepEqual((await readdir(join(cache, 'build'))).filter((n) => n.endsWith('.lock') || n.startsWith('out-')), [], 'no lock and no per-build O= left')

          await commit('second', true)
          const failed = await build().then(
            () => assert.fail('a broken commit built'),
            (error: unknown) => error,
          )
          assert.ok(failed instanceof PmemlabError)
          assert.equal(failed.exitCode, ExitCode.failure)
          assert.match(failed.message, /^make bzImage failed \(exit code 2\)$/)
          assert.deepEqual((await readdir(join(cache, 'kernels'))).filter((n) => !n.startsWith(first.key)), [], 'the failed build left no entry, not even a temporary one')
          assert.equal(await readFile(join(pinned, 'built-from'), 'utf8'), 'first\n', 'the failed build left the O= directory as make did')

          await commit('third')
          const third = await build()
          assert.equal(await readFile(third.kernel, 'utf8'), 'third\n')
          assert.match(await readFile(join(third.dir, 'build.log'), 'utf8'), /^incremental, on top of first$/m, 'the third build started from what the first left')
          assert.equal((await execa('git', ['status', '--porcelain'], {cwd: tree})).stdout, '', 'nothing new in the tree for git')
        })
      },
      {unsafeCleanup: true},
    ))

  test('deeper inside the tree it is refused and nothing is built', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, bin, commit, log, cache} = await fixture(dir)
        await withEnv({PMEMLAB_CACHE_DIR: cache, PATH: `${bin}:${process.env.PATH}`, FAKE_MAKE_LOG: log, PMEMLAB_CCACHE: '0'}, async () => {
          await commit('first')
          await assert.rejects(buildKernel({source: {kind: 'tree', dir: tree}, buildDir: join(tree, 'out', 'x86')}), (e: Error) => e instanceof PmemlabError && e.exitCode === ExitCode.usage && /is inside the kernel tree/.test(e.message))
          assert.equal(await readFile(log, 'utf8').catch(() => ''), '', 'make never ran')
          assert.deepEqual((await readdir(join(cache, 'kernels')).catch(() => [])).filter((n) => !n.endsWith('.lock')), [])
        })
      },
      {unsafeCleanup: true},
    ))

  test('without one, a build of a working tree still gets its own O= directory, removed afterwards', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, bin, commit, log, cache} = await fixture(dir)
        await withEnv({PMEMLAB_CACHE_DIR: cache, PATH: `${bin}:${process.env.PATH}`, FAKE_MAKE_LOG: log, PMEMLAB_CCACHE: '0'}, async () => {
          await commit('first')
          const built = await buildKernel({source: {kind: 'tree', dir: tree}, jobs: 1})
          const calls = await readFile(log, 'utf8')
          assert.match(calls, new RegExp(`O=${join(cache, 'build')}/out-${built.key.slice(0, 16)}-${process.pid} `))
          assert.doesNotMatch(calls, /KBUILD_BUILD_TIMESTAMP/, 'stamps are pinned only when asked')
          assert.deepEqual((await readdir(join(cache, 'build'))).filter((n) => n.startsWith('out-')), [])
        })
      },
      {unsafeCleanup: true},
    ))
})

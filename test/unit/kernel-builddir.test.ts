import assert from 'node:assert/strict'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {buildKernel, pinnedBuildDirProblem, REPRODUCIBLE_MAKE_VARS} from '../../src/kernel/build.js'
import {configureDigest, isKconfigInput} from '../../src/kernel/configure-reuse.js'
import {resolveKernel} from '../../src/kernel/boot.js'
import {elfWithNote} from '../helpers/elf.js'
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

  test('keeps its configuration while nothing Kconfig reads changes, and configures again when something does', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, bin, commit, log, cache, pinned} = await fixture(dir)
        await withEnv({PMEMLAB_CACHE_DIR: cache, PATH: `${bin}:${process.env.PATH}`, FAKE_MAKE_LOG: log, PMEMLAB_CCACHE: '0'}, async () => {
          let seen = 0
          /** The make targets of the builds since the last call. */
          const targets = async () => {
            const calls = (await readFile(log, 'utf8')).trim().split('\n')
            const fresh = calls.slice(seen)
            seen = calls.length
            return fresh.map((c) => c.split(' ').at(-1))
          }
          const build = (sets: string[] = []) => buildKernel({source: {kind: 'tree', dir: tree}, buildDir: pinned, reproducible: true, jobs: 1, sets})
          await commit('first')
          await build()
          assert.deepEqual(await targets(), ['tinyconfig', 'olddefconfig', 'bzImage'])
          await commit('second')
          const second = await build()
          assert.deepEqual(await targets(), ['bzImage'], 'a commit that changes no Kconfig input reuses the .config')
          assert.match(await readFile(join(second.dir, '.config'), 'utf8'), /^CONFIG_LIBNVDIMM=y$/m, 'and the entry still gets it, verified')
          await writeFile(join(tree, 'Kconfig'), 'mainmenu "fake, changed"\n')
          await commit('third')
          await build()
          assert.deepEqual(await targets(), ['tinyconfig', 'olddefconfig', 'bzImage'], 'a changed Kconfig file configures again')
          await build(['CONFIG_LOCALVERSION="-e2e"'])
          assert.deepEqual(await targets(), ['tinyconfig', 'olddefconfig', 'bzImage'], 'so does another --set')
          await writeFile(join(pinned, '.config'), 'CONFIG_EDITED_BY_HAND=y\n', {flag: 'a'})
          await commit('fourth')
          await build(['CONFIG_LOCALVERSION="-e2e"'])
          assert.deepEqual(await targets(), ['tinyconfig', 'olddefconfig', 'bzImage'], 'and a .config changed since')
          await commit('fifth')
          await build(['CONFIG_LOCALVERSION="-e2e"'])
          assert.deepEqual(await targets(), ['bzImage'])
        })
      },
      {unsafeCleanup: true},
    ))
})

describe('the PVH vmlinux of a built kernel', () => {
  test('is kept from the build when it has a PVH entry and boots in place of the bzImage; without one the bzImage boots', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, commit, env} = await fixture(dir)
        await withEnv(env, async () => {
          const pvhElf = elfWithNote('Xen', 18)
          await writeFile(join(tree, 'vmlinux.bin'), pvhElf)
          await commit('with-pvh')
          const withPvh = await buildKernel({source: {kind: 'tree', dir: tree}, jobs: 1})
          assert.equal(withPvh.build.files.pvh, 'vmlinux.pvh')
          assert.deepEqual(await readFile(join(withPvh.dir, 'vmlinux.pvh')), pvhElf)
          assert.ok(withPvh.build.artifacts?.['vmlinux.pvh'], 'the copy is stamped like the other files, so damage to it is seen')
          const booted = await resolveKernel(withPvh.key)
          assert.equal(booted.kernel, join(withPvh.dir, 'vmlinux.pvh'))
          assert.equal(booted.pvhOf, withPvh.kernel)
          await withEnv({PMEMLAB_NO_PVH: '1'}, async () => assert.equal((await resolveKernel(withPvh.key)).kernel, withPvh.kernel, 'PMEMLAB_NO_PVH=1 boots the bzImage'))

          await writeFile(join(tree, 'vmlinux.bin'), elfWithNote('Xen', 17))
          await commit('without-pvh')
          const withoutPvh = await buildKernel({source: {kind: 'tree', dir: tree}, jobs: 1})
          assert.equal(withoutPvh.build.files.pvh, undefined)
          assert.deepEqual((await readdir(withoutPvh.dir)).filter((name) => name.includes('vmlinux')), [])
          const plain = await resolveKernel(withoutPvh.key)
          assert.equal(plain.kernel, withoutPvh.kernel, 'no PVH entry: the bzImage boots')
          assert.equal(plain.pvhOf, undefined)
        })
      },
      {unsafeCleanup: true},
    ))
})

describe('what a configuration depends on (configure-reuse.ts)', () => {
  const line = (mode: string, blob: string, path: string) => `${mode} blob ${blob}\t${path}`
  const tree = [line('100644', 'a1', 'Kconfig'), line('100644', 'b1', 'fs/ext4/Kconfig'), line('100644', 'c1', 'fs/ext4/super.c'), line('100644', 'd1', 'arch/x86/configs/tiny.config'), line('100755', 'e1', 'scripts/cc-version.sh'), line('100644', 'f1', 'Makefile'), line('100644', 'g1', 'fs/Makefile')]
  const inputs = {base: 'tinyconfig', fragment: 'CONFIG_LIBNVDIMM=y\n', compiler: 'gcc 12.2.0', lsTree: tree.join('\n')}

  test('the files Kconfig reads are inputs; sources and sub-Makefiles are not', () => {
    assert.deepEqual(tree.map((l) => l.split('\t')[1]).filter(isKconfigInput), ['Kconfig', 'fs/ext4/Kconfig', 'arch/x86/configs/tiny.config', 'scripts/cc-version.sh', 'Makefile'])
    assert.equal(isKconfigInput('lib/Kconfig.debug'), true)
    assert.equal(isKconfigInput('kernel/configs/tiny-base.config'), true)
    assert.equal(isKconfigInput('Documentation/kbuild/kconfig.rst'), false)
  })

  test('the digest moves with an input, and only with one', () => {
    const digest = configureDigest(inputs)
    assert.equal(configureDigest({...inputs, lsTree: [...tree].reverse().join('\n')}), digest, 'the order of ls-tree lines does not matter')
    assert.equal(configureDigest({...inputs, lsTree: tree.join('\n').replace('c1\t', 'c2\t')}), digest, 'a changed source file does not move it')
    for (const changed of [
      {...inputs, lsTree: tree.join('\n').replace('b1\t', 'b2\t')},
      {...inputs, lsTree: tree.join('\n').replace('e1\t', 'e2\t')},
      {...inputs, base: 'defconfig'},
      {...inputs, fragment: 'CONFIG_LIBNVDIMM=m\n'},
      {...inputs, compiler: 'gcc 13.1.0'},
    ])
      assert.notEqual(configureDigest(changed), digest, JSON.stringify(changed).slice(0, 80))
  })
})


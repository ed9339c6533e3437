import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {BisectInterrupt} from '../../src/bisect/interrupt.js'
import {kernelSteps} from '../../src/bisect/kernel-steps.js'
import {runBisect} from '../../src/bisect/run.js'
import {bisectPaths, stepDir} from '../../src/bisect/step.js'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {withEnv} from './env.js'
import {fixture} from './fake-kbuild.js'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

describe('the real step runner, with a fake make', () => {
  test('--type build: each commit built in place in the one pinned O= directory; the first that does not build is named', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, commit, log, env} = await fixture(dir)
        const c = [await commit('v0'), await commit('v1'), await commit('v2'), await commit('v3', true), await commit('v4', true), await commit('v5', true)]
        await withEnv(env, async () => {
          const output = join(dir, 'out')
          const setup = {tree, test: {kind: 'none' as const}, options: {type: 'build' as const, runs: 1, badThreshold: 1, maxErrors: 0, reverse: false}, recipe: {configs: [], sets: [], base: 'tinyconfig' as const, debug: false}, output}
          const {state, report} = await runBisect({kind: 'start', setup, good: c[0], bad: c[5]}, {makeRunner: (s) => kernelSteps(s, {jobs: 1})})
          assert.equal(report.culprit?.commit, c[3])
          assert.equal(report.culprit?.subject, 'v3')
          const v2 = state.steps.find((s) => s.commit === c[2])
          assert.ok(v2, 'the parent of the culprit was a step')
          assert.equal(v2.build.state, 'built')
          assert.equal(v2.build.imageHash, sha256('v2\n'), "the step's image hash is the sha256 of its bzImage")
          assert.match(v2.build.key!, /^[0-9a-f]{64}$/)
          const v3 = state.steps.find((s) => s.commit === c[3])!
          assert.equal(v3.build.state, 'failed')
          assert.equal(v3.build.reason, 'make bzImage failed (exit code 2)')
          assert.equal(v3.term, 'bad', 'with --type build a failed build is the bug')
          assert.match(await readFile(join(stepDir(output, c[3]), 'build-failed.log'), 'utf8'), /fs\/dax\.c:1: error: expected ';'/)
          const pinned = bisectPaths(tree).buildDir
          const outDirs = new Set([...(await readFile(log, 'utf8')).matchAll(/ O=(\S+) /g)].map((m) => m[1]))
          assert.deepEqual([...outDirs], [pinned], 'every make ran in the one O= directory of the tree')
          assert.ok((await stat(pinned)).isDirectory(), 'and it is kept for the next bisect')
          assert.equal(pinned, join(tree, '.pmemlab-bisect'), 'directly under the top of the tree')
          assert.equal((await execa('git', ['status', '--porcelain', '--ignored=no'], {cwd: tree})).stdout, '', 'which git does not see')
          assert.equal((await execa('git', ['branch', '--show-current'], {cwd: tree})).stdout, 'main')
        })
      },
      {unsafeCleanup: true},
    ))

  test('a commit built twice is a cache hit the second time (the endpoints of a second bisect)', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, commit, env} = await fixture(dir)
        await commit('v0')
        const head = await commit('v1')
        await withEnv(env, async () => {
          const runner = await kernelSteps({tree, test: {kind: 'none'}, recipe: undefined, lab: undefined, type: 'build', runs: 1})
          const step = {commit: head, role: 'step' as const, dir: join(dir, 'out', 'steps', head.slice(0, 12))}
          const first = await runner.build(step)
          const second = await runner.build(step)
          assert.ok(first.ok && second.ok)
          assert.deepEqual([first.kernel.cached, second.kernel.cached], [false, true])
          assert.equal(first.kernel.key, second.kernel.key)
          assert.equal(first.kernel.imageHash, second.kernel.imageHash)
        })
      },
      {unsafeCleanup: true},
    ))

  test('bad input is refused when the runner is made, before any build', () =>
    withDir(
      async ({path: dir}) => {
        const {tree, commit, log, env} = await fixture(dir)
        await commit('v0')
        await withEnv(env, async () => {
          const base = {tree, test: {kind: 'none' as const}, recipe: undefined, lab: undefined, type: 'build' as const, runs: 1}
          const refused = async (state: Parameters<typeof kernelSteps>[0]) => {
            const error = await kernelSteps(state).then(() => assert.fail('accepted'), (e: unknown) => e)
            assert.ok(error instanceof PmemlabError, String(error))
            assert.equal(error.exitCode, ExitCode.usage, error.message)
            return error.oneLine()
          }
          assert.match(await refused({...base, recipe: {configs: [], sets: ['CONFIG_KASAN=maybe'], base: 'tinyconfig', debug: false}}), /^--set CONFIG_KASAN=maybe: expected CONFIG_NAME=VALUE/)
          assert.match(await refused({...base, recipe: {configs: [join(dir, 'none.config')], sets: [], base: 'tinyconfig', debug: false}}), /^cannot read the fragment .*none\.config: ENOENT$/)
          assert.match(await refused({...base, type: 'test', test: {kind: 'repro', file: join(dir, 'bug.yaml')}}), /^cannot read reproducer file .*bug\.yaml: no such file/)
          assert.match(await refused({...base, tree: join(dir, 'bin')}), /not a kernel source tree/)
          await writeFile(join(tree, '.config'), 'CONFIG_X=y\n')
          assert.match(await refused(base), /has an in-tree build \(\.config\)/)
          assert.equal(await readFile(log, 'utf8').catch(() => ''), '', 'make never ran')
        })
      },
      {unsafeCleanup: true},
    ))
})

describe('Ctrl-C during a bisect', () => {
  test('marks the bisect interrupted and aborts; with a build or VM handler present it leaves the exit to them', async () => {
    const interrupt = new BisectInterrupt('stopping the test')
    const other = () => undefined // stands for a running build's or VM's own handler, which ends the process itself
    interrupt.install()
    process.on('SIGINT', other)
    try {
      interrupt.check()
      const aborted = interrupt.withAbort((signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve('aborted'))))
      process.emit('SIGINT', 'SIGINT')
      assert.equal(await aborted, 'aborted')
      assert.equal(interrupt.signal, 'SIGINT')
      assert.throws(() => interrupt.check(), (e: Error) => e instanceof PmemlabError && e.exitCode === ExitCode.interrupted)
    } finally {
      process.off('SIGINT', other)
      interrupt.uninstall()
    }
  })
})

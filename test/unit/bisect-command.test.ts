import assert from 'node:assert/strict'
import {readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {packageRoot} from '../../src/core/paths.js'
import {fixture} from './fake-kbuild.js'

/**
 * `pmemlab bisect` and `pmemlab bisect step` on bad input, as a user runs them: one line on
 * stderr, exit 2 (128 for bisect step, so that git bisect run stops), nothing on stdout, nothing made (no output directory, no cache, the tree
 * untouched). Nothing here gets as far as a build.
 */
const pmemlab = (args: string[], cwd: string) =>
  execa(process.execPath, [join(packageRoot, 'bin', 'run.js'), ...args], {cwd, reject: false, stdin: 'ignore', env: {NO_COLOR: '1', PMEMLAB_STATE_DIR: join(cwd, 'state'), PMEMLAB_CACHE_DIR: join(cwd, 'cache')}})

describe('pmemlab bisect on bad input', () => {
  test('one line, exit 2 (bisect step: 128), nothing made', () =>
    withDir(
      async ({path}) => {
        const {tree, commit} = await fixture(path)
        await commit('v0')
        await commit('v1')
        await writeFile(join(path, 'typo.yaml'), 'version: 1\nrun: ./t\nexpect: {must: [warnign]}\n')
        const head = (await execa('git', ['rev-parse', 'HEAD'], {cwd: tree})).stdout
        const cases: Array<[string[], RegExp]> = [
          [['bisect'], /^pmemlab: error: which kernel tree\? give --tree DIR/],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD'], /^pmemlab: error: what is the test\? give --repro FILE/],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD', '--repro', 'typo.yaml', '--runs', '2', '--bad-threshold', '3'], /^pmemlab: error: --bad-threshold 3: write a whole number from 1 to --runs \(2\)$/],
          [['bisect', '--tree', 'linux', '--good', 'nope', '--bad', 'HEAD', '--repro', 'typo.yaml'], /^pmemlab: error: --good nope names no commit in \/.*\/linux: /],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD', '--repro', 'typo.yaml'], /^pmemlab: error: \/.*\/typo\.yaml:3:17: expect\.must\[0\]: "warnign" is neither a class nor a regex/],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD', '--repro', 'missing.yaml'], /^pmemlab: error: cannot read reproducer file .*missing\.yaml: no such file/],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD', '--output', 'linux/out', '--type', 'build'], /^pmemlab: error: --output linux\/out is inside the tree /],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD', '--type', 'boot', '--nvdimm', '1G', '--set', 'CONFIG_X=maybe'], /^pmemlab: error: --set CONFIG_X=maybe: expected CONFIG_NAME=VALUE/],
          [['bisect', '--tree', 'linux', '--good', 'HEAD~1', '--bad', 'HEAD', 'stray', '--', 'true'], /^pmemlab: error: unexpected argument stray: flags go before --, the command after it$/],
          [['bisect', '--resume'], /^pmemlab: error: no bisect to resume in \/.*\/bisect-results: it has no bisect-state\.json/],
          [['bisect', '--resume', '--runs', '3'], /^pmemlab: error: --resume goes on as the state file says: drop --runs/],
          [['bisect', 'step', '--tree', 'linux'], /^pmemlab: error: what is the test\? give --repro FILE/],
          [['bisect', 'step', '--tree', 'linux', '--type', 'build', '--repro', 'typo.yaml'], /^pmemlab: error: --type build runs no test of its own: drop --repro/],
          [['bisect', 'step', '--tree', 'linux', '--type', 'build', '--runs', 'many'], /^pmemlab: error: .*runs/],
          [['bisect', 'step', '--tree', 'nowhere', '--type', 'build'], /nowhere/],
        ]
        for (const [args, line] of cases) {
          const run = await pmemlab(args, path)
          assert.equal(run.exitCode, args[1] === 'step' ? 128 : 2, `${args.join(' ')}: ${run.stderr}`)
          assert.equal(run.stdout, '', args.join(' '))
          const lines = String(run.stderr).trimEnd().split('\n').filter((l) => !l.startsWith('pmemlab: ') || l.startsWith('pmemlab: error: '))
          assert.equal(lines.length, 1, String(run.stderr))
          assert.match(lines[0], line, args.join(' '))
        }
        assert.deepEqual((await readdir(path)).sort(), ['bin', 'linux', 'typo.yaml'], 'no bisect-results, state or cache directory')
        assert.equal((await execa('git', ['status', '--porcelain'], {cwd: tree})).stdout, '')
        assert.equal((await execa('git', ['rev-parse', 'HEAD'], {cwd: tree})).stdout, head)
        assert.equal((await execa('git', ['bisect', 'log'], {cwd: tree, reject: false})).exitCode, 1, 'the tree is in no bisect')
      },
      {unsafeCleanup: true, prefix: 'pmemlab-bisect-command-'},
    ))
})

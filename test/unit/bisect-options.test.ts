import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {bisectAskOf, DEFAULT_COMMAND_TIMEOUT_SEC, isInside, stepSetupOf, type BisectFlags} from '../../src/bisect/options.js'
import {commandAfterDashes} from '../../src/cli/bisect-flags.js'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'

/** Flags as oclif gives them when only these were typed (booleans and single values absent, lists empty). */
const flags = (over: Partial<BisectFlags> = {}): BisectFlags => ({command: [], config: [], set: [], memmap: [], nvdimm: [], 'virtio-pmem': [], append: [], ...over})
const start = (over: Partial<BisectFlags> = {}) => flags({tree: 'linux', good: 'v6.1', bad: 'HEAD', repro: 'bug.yaml', ...over})

/** The one line bad input is refused with (exit 2). */
function refusal(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof PmemlabError, String(error))
    assert.equal(error.exitCode, ExitCode.usage)
    assert.ok(!error.oneLine().includes('\n'))
    return error.oneLine()
  }
  assert.fail('accepted')
}

describe('pmemlab bisect flags', () => {
  test('a reproducer bisect: paths resolved from the working directory, defaults applied', () => {
    const ask = bisectAskOf(start({config: ['kasan.config'], set: ['CONFIG_KASAN=y']}), '/work')
    assert.deepEqual(ask, {
      kind: 'start',
      good: 'v6.1',
      bad: 'HEAD',
      setup: {
        tree: '/work/linux',
        test: {kind: 'repro', file: '/work/bug.yaml'},
        options: {type: 'test', runs: 1, badThreshold: 1, maxErrors: 0, reverse: false},
        recipe: {configs: ['/work/kasan.config'], sets: ['CONFIG_KASAN=y'], base: 'tinyconfig', debug: false},
        output: '/work/bisect-results',
      },
    })
  })

  test('a command after --: its lab as up makes it, backing files and a recipe path resolved', () => {
    const ask = bisectAskOf(start({repro: undefined, command: ['sh', '-c', 'exit 1'], nvdimm: ['1G:nv0.img', '512M'], image: 'my-image.yaml', cpus: 4, runs: 3, 'bad-threshold': 2, 'max-errors': 1, reverse: true, output: '/out'}), '/work')
    assert.equal(ask.kind, 'start')
    assert.ok(ask.kind === 'start')
    assert.deepEqual(ask.setup.test, {kind: 'command', argv: ['sh', '-c', 'exit 1'], timeoutSec: DEFAULT_COMMAND_TIMEOUT_SEC})
    assert.deepEqual(ask.setup.options, {type: 'test', runs: 3, badThreshold: 2, maxErrors: 1, reverse: true})
    assert.deepEqual(ask.setup.lab, {
      image: '/work/my-image.yaml',
      machine: 'pc',
      mem: '1G',
      memmap: [],
      nvdimm: ['1G:/work/nv0.img', '512M'],
      virtioPmem: [],
      cpus: 4,
      accel: 'auto',
      append: [],
      bootTimeoutSec: 180,
      force: false,
    })
    assert.equal(ask.setup.output, '/out')
    const boot = stepSetupOf(flags({tree: '/l', type: 'boot', append: ['panic_on_warn=1'], timeout: undefined}), '/w')
    assert.deepEqual(boot.test, {kind: 'none'})
    assert.deepEqual(boot.lab?.append, ['panic_on_warn=1'])
    assert.equal(boot.lab?.image, 'debian-12')
    assert.equal(stepSetupOf(flags({tree: '/l', type: 'build'}), '/w').lab, undefined)
  })

  test('bad input is one line, exit 2', () => {
    assert.equal(refusal(() => bisectAskOf(flags({good: 'a', bad: 'b', repro: 'x'}), '/w')), 'which kernel tree? give --tree DIR, a git checkout of the kernel')
    assert.match(refusal(() => bisectAskOf(start({repro: undefined}), '/w')), /^what is the test\? give --repro FILE \(a reproducer file\) or a command after --/)
    assert.equal(refusal(() => bisectAskOf(start({command: ['true']}), '/w')), 'give --repro FILE or a command after --, not both')
    assert.equal(refusal(() => bisectAskOf(start({type: 'build'}), '/w')), '--type build runs no test of its own: drop --repro, or use --type test')
    assert.equal(refusal(() => bisectAskOf(start({type: 'boot', repro: undefined, command: ['x']}), '/w')), '--type boot runs no test of its own: drop the command after --, or use --type test')
    assert.equal(refusal(() => bisectAskOf(start({type: 'fuzz'}), '/w')), '--type fuzz: write one of build, boot, test')
    assert.equal(refusal(() => bisectAskOf(start({runs: 0}), '/w')), '--runs 0: write a whole number of 1 or more')
    assert.equal(refusal(() => bisectAskOf(start({runs: 3, 'bad-threshold': 4}), '/w')), '--bad-threshold 4: write a whole number from 1 to --runs (3)')
    assert.equal(refusal(() => bisectAskOf(start({repro: undefined, type: 'build', runs: 2}), '/w')), '--runs goes with --type boot or test: a build is run once')
    assert.equal(refusal(() => bisectAskOf(start({nvdimm: ['1G'], force: true}), '/w')), '--nvdimm, --force: the reproducer file names its lab: drop them')
    assert.equal(refusal(() => bisectAskOf(start({repro: undefined, type: 'build', mem: '2G'}), '/w')), '--mem: a --type build bisect boots nothing: drop it')
    assert.match(refusal(() => bisectAskOf(start({timeout: 60}), '/w')), /^--timeout goes with a command after --: the reproducer file's expect\.timeout/)
    assert.equal(refusal(() => bisectAskOf(start({repro: undefined, command: ['x'], timeout: 0}), '/w')), '--timeout 0: write a whole number of seconds, 1 or more')
    assert.equal(refusal(() => bisectAskOf(start({jobs: 0}), '/w')), '--jobs 0: write a whole number, 1 or more')
    assert.equal(refusal(() => bisectAskOf(start({good: undefined}), '/w')), 'give --good: the commits where the bug does not and does reproduce')
    assert.match(refusal(() => bisectAskOf(start({good: undefined, bad: undefined, reverse: true}), '/w')), /^give --good and --bad: .*: with --reverse, --bad is the older commit/)
  })

  test('the output may not be inside the tree: its files would become part of every build', () => {
    assert.match(refusal(() => bisectAskOf(start({output: 'linux/out'}), '/work')), /^--output linux\/out is inside the tree \/work\/linux: git checks out commits there/)
    assert.match(refusal(() => bisectAskOf(start({tree: '.'}), '/src/linux')), /^--output bisect-results is inside the tree \/src\/linux: .*like --output \/src\/bisect-results$/)
    assert.ok(bisectAskOf(start({tree: '.', output: '../out'}), '/src/linux'))
    assert.equal(isInside('/a/b', '/a'), true)
    assert.equal(isInside('/a', '/a'), true)
    assert.equal(isInside('/ab', '/a'), false)
    assert.equal(isInside('/a/../b', '/a'), false)
  })

  test('--resume takes all but --output, --jobs and --json from the state file', () => {
    assert.deepEqual(bisectAskOf(flags({resume: true, output: 'out', jobs: 2}), '/w'), {kind: 'resume', output: '/w/out', jobs: 2})
    assert.deepEqual(bisectAskOf(flags({resume: true}), '/w'), {kind: 'resume', output: '/w/bisect-results'})
    assert.match(refusal(() => bisectAskOf(flags({resume: true, good: 'x', tree: 't', runs: 2, command: ['true'], set: ['CONFIG_X=y']}), '/w')), /^--resume goes on as the state file says: drop --good, --tree, the command after --, --runs, --set: give only --output DIR/)
  })

  test('the command after --, and no stray word before it', () => {
    assert.deepEqual(commandAfterDashes(['--tree', 'x', '--', 'sh', '-c', 'exit 1'], ['--', 'sh', '-c', 'exit 1']), ['sh', '-c', 'exit 1'])
    assert.deepEqual(commandAfterDashes(['--tree', 'x', '--', 'sh', '-c', 'exit 1'], ['sh', '-c', 'exit 1']), ['sh', '-c', 'exit 1'], 'oclif may drop the first --')
    assert.deepEqual(commandAfterDashes(['--', 'a', '--', 'b'], ['--', 'a', '--', 'b']), ['a', '--', 'b'])
    assert.deepEqual(commandAfterDashes(['--tree', 'x'], []), [])
    assert.equal(refusal(() => commandAfterDashes(['--tre', 'x', '--', 'true'], ['x', '--', 'true'])), 'unexpected argument x: flags go before --, the command after it')
    assert.equal(refusal(() => commandAfterDashes(['stray'], ['stray'])), 'unexpected argument stray: flags go before --, the command after it')
  })
})

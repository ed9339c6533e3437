import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import Exec from '../../src/commands/exec.js'
import Up from '../../src/commands/up.js'
import {parseFast} from '../../src/cli/fast.js'
import {LAB_FLAG_TABLE} from '../../src/cli/lab-flag-table.js'
import {withEnv} from './env.js'

describe('the fast start (up and exec without oclif)', () => {
  test('its flags are the oclif commands\' flags: names, kinds, repeatability, choices and defaults', () => {
    for (const [command, id] of [[Up, 'up'], [Exec, 'exec']] as const) {
      const oclifFlags = command.flags as Record<string, {type: string; multiple?: boolean; options?: readonly string[]; default?: unknown}>
      const parsed = parseFast([id, ...(id === 'exec' ? ['vm', '--'] : [])])!
      assert.deepEqual(Object.keys(parsed.values).sort(), [...Object.keys(oclifFlags), 'verbose'].sort(), id)
      for (const [name, flag] of Object.entries(oclifFlags)) {
        const spec = (LAB_FLAG_TABLE as Record<string, {multiple?: boolean; options?: readonly string[]}>)[name]
        assert.deepEqual(parsed.values[name], flag.default, `${id} --${name} default`)
        if (spec) {
          assert.equal(spec.multiple === true, flag.multiple === true, `${id} --${name} multiple`)
          assert.deepEqual(spec.options, flag.options, `${id} --${name} options`)
        }
      }
    }
  })

  test('takes plain argument lists, with defaults, repeated flags and the guest command', () => {
    const up = parseFast(['up', '--detach', '--name=lab1', '--memmap', '256M', '--memmap', '512M@4G', '--cpus', '4', '-v', '--', 'ls', '-l', '--', 'x'])!
    assert.equal(up.command, 'up')
    assert.deepEqual(up.positionals, [])
    assert.deepEqual(up.rest, ['ls', '-l', '--', 'x'])
    assert.equal(up.values.detach, true)
    assert.equal(up.values.name, 'lab1')
    assert.deepEqual(up.values.memmap, ['256M', '512M@4G'])
    assert.equal(up.values.cpus, 4)
    assert.equal(up.values.kernel, 'distro')
    assert.equal(up.values['boot-timeout'], 180)
    assert.equal(up.values.verbose, true)
    const exec = parseFast(['exec', 'lab1', '--timeout', '30', '--', 'sh', '-c', 'echo --help'])!
    assert.deepEqual([exec.positionals, exec.rest, exec.values.timeout], [['lab1'], ['sh', '-c', 'echo --help'], 30])
  })

  test('leaves to oclif what it does not understand completely', () => {
    for (const argv of [
      ['down', 'lab1'],
      ['up', '--help'],
      ['exec', 'lab1', '-h', '--', 'true'],
      ['up', '--bogus'],
      ['up', '--cpus', 'two'],
      ['up', '--machine', 'virt'],
      ['up', '--kernel'],
      ['up', '--detach=yes'],
      ['exec', '--timeout', '1.5', 'lab1', '--', 'true'],
      ['up', 'ls'],
      ['exec', 'lab1', 'true'],
      ['exec', '--', 'true'],
    ]) {
      assert.equal(parseFast(argv), undefined, argv.join(' '))
    }
  })

  test('PMEMLAB_NO_FAST_START=1 sends everything to oclif', async () => {
    await withEnv({PMEMLAB_NO_FAST_START: '1'}, async () => assert.equal(parseFast(['up', '--detach']), undefined))
  })
})

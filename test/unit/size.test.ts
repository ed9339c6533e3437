import assert from 'node:assert/strict'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {formatSize, humanSize, parseSize} from '../../src/core/size.js'

test('parseSize reads binary units as QEMU and memparse do', () => {
  assert.equal(parseSize('512M'), 512 * 1024 * 1024)
  assert.equal(parseSize('1G'), 1024 ** 3)
  assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3)
  assert.equal(parseSize('4096'), 4096)
  assert.equal(parseSize('256MiB'), 256 * 1024 ** 2)
  assert.equal(parseSize('2g'), 2 * 1024 ** 3)
})

test('parseSize refuses nonsense with a usage error naming the input', () => {
  for (const bad of ['12Q', '', 'M', '-1G', '0', '1.3']) {
    assert.throws(() => parseSize(bad, '--mem'), (error: unknown) => {
      assert.ok(error instanceof PmemlabError)
      assert.equal(error.exitCode, 2)
      assert.match(error.oneLine(), /--mem/)
      return true
    }, bad)
  }
})

test('formatSize picks the largest exact unit', () => {
  assert.equal(formatSize(256 * 1024 ** 2), '256M')
  assert.equal(formatSize(4 * 1024 ** 3), '4G')
  assert.equal(formatSize(1536 * 1024 ** 2), '1536M')
  assert.equal(formatSize(1000), '1000')
  assert.equal(humanSize(1.5 * 1024 ** 3), '1.5 GiB')
})

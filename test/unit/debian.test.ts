import assert from 'node:assert/strict'
import {test} from 'node:test'
import {checksumsSha256, parseDeb822} from '../../src/core/debian.js'

// The shape of a Sources index entry for the linux source package, abridged.
const SOURCES = `Package: linux
Binary: linux-doc, linux-headers-6.1.0-57-amd64
Version: 6.1.192-3
Directory: pool/main/l/linux
Checksums-Sha256:
 ${'a'.repeat(64)} 246210 linux_6.1.192-3.dsc
 ${'b'.repeat(64)} 143812612 linux_6.1.192.orig.tar.xz
 ${'c'.repeat(64)} 1599368 linux_6.1.192-3.debian.tar.xz

Package: linux-signed-amd64
Version: 6.1.192+3
Directory: pool/main/l/linux-signed-amd64
`

test('a deb822 index parses into stanzas with continuation lines kept', () => {
  const stanzas = parseDeb822(SOURCES)
  assert.equal(stanzas.length, 2)
  assert.equal(stanzas[0].get('package'), 'linux')
  assert.equal(stanzas[0].get('version'), '6.1.192-3')
  assert.equal(stanzas[0].get('checksums-sha256')?.split('\n').length, 4)
  assert.equal(stanzas[1].get('directory'), 'pool/main/l/linux-signed-amd64')
})

test('Checksums-Sha256 gives each file its digest and size', () => {
  const files = checksumsSha256(parseDeb822(SOURCES)[0].get('checksums-sha256'))
  assert.deepEqual(files.get('linux_6.1.192.orig.tar.xz'), {sha256: 'b'.repeat(64), size: 143812612})
  assert.equal(files.size, 3)
  assert.equal(checksumsSha256(undefined).size, 0)
})

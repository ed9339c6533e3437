import assert from 'node:assert/strict'
import {mkdtemp, rm, truncate, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, test} from 'node:test'
import {checkArtifact, describeDamage, isArtifactStamp, SAMPLE_BYTES, sampleDigest, stampFile, stampFiles} from '../../src/core/artifact.js'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pmemlab-artifact-'))
})
after(async () => {
  await rm(dir, {recursive: true, force: true})
})

const bytes = (length: number, seed: number) => Buffer.from(Array.from({length}, (_, i) => (i * 7 + seed) & 0xff))

test('describeDamage: intact, missing, truncated, grown, rewritten', () => {
  const recorded = {bytes: 1000, sample: 'aa'}
  assert.equal(describeDamage('/c/bzImage', recorded, {bytes: 1000, sample: 'aa'}), undefined)
  assert.equal(describeDamage('/c/bzImage', recorded, undefined), '/c/bzImage is missing')
  assert.equal(describeDamage('/c/bzImage', recorded, {bytes: 10, sample: 'aa'}), '/c/bzImage is truncated (10 of the 1000 bytes it had when built)')
  assert.match(describeDamage('/c/bzImage', recorded, {bytes: 2000, sample: 'aa'})!, /has grown since it was built \(2000 bytes, built as 1000\)/)
  assert.match(describeDamage('/c/bzImage', recorded, {bytes: 1000, sample: 'bb'})!, /has changed since it was built/)
  // An older entry recorded only the size: the size is all that is compared.
  assert.equal(describeDamage('/c/rootfs.img', {bytes: 1000}, {bytes: 1000, sample: 'bb'}), undefined)
  assert.match(describeDamage('/c/rootfs.img', {bytes: 1000}, {bytes: 999, sample: 'bb'})!, /truncated/)
})

test('sampleDigest depends on the size, the head and the tail', () => {
  const head = bytes(16, 1)
  const tail = bytes(16, 2)
  const base = sampleDigest(100, head, tail)
  assert.match(base, /^[0-9a-f]{64}$/)
  assert.notEqual(sampleDigest(101, head, tail), base)
  assert.notEqual(sampleDigest(100, bytes(16, 3), tail), base)
  assert.notEqual(sampleDigest(100, head, bytes(16, 3)), base)
  // Moving bytes from the head to the tail is not the same file.
  assert.notEqual(sampleDigest(100, head.subarray(0, 8), Buffer.concat([head.subarray(8), tail])), base)
})

test('stampFile sees a truncated, rewritten or missing file; a middle byte is not sampled', async () => {
  const file = join(dir, 'rootfs.img')
  const content = bytes(3 * SAMPLE_BYTES + 123, 5)
  await writeFile(file, content)
  const stamp = (await stampFile(file))!
  assert.ok(isArtifactStamp(stamp))
  assert.equal(stamp.bytes, content.length)
  assert.deepEqual(await stampFile(file), stamp, 'the same file gives the same stamp')
  assert.equal(await checkArtifact(file, stamp), undefined)

  // The last byte changed, same size.
  const lastChanged = Buffer.from(content)
  lastChanged[lastChanged.length - 1] ^= 0xff
  await writeFile(file, lastChanged)
  assert.match((await checkArtifact(file, stamp))!, /has changed since it was built/)

  // A byte in the middle (outside both samples) is not checked: that is the price of a cheap check.
  const middleChanged = Buffer.from(content)
  middleChanged[Math.floor(content.length / 2)] ^= 0xff
  await writeFile(file, middleChanged)
  assert.equal(await checkArtifact(file, stamp), undefined)

  await truncate(file, SAMPLE_BYTES)
  assert.match((await checkArtifact(file, stamp))!, new RegExp(`rootfs.img is truncated \\(${SAMPLE_BYTES} of the ${content.length} bytes`))

  await rm(file)
  assert.equal(await stampFile(file), undefined)
  assert.match((await checkArtifact(file, stamp))!, /rootfs.img is missing/)
})

test('stampFile covers files smaller than one sample, and the empty file', async () => {
  const small = join(dir, 'System.map')
  await writeFile(small, 'abc')
  const stamp = (await stampFile(small))!
  assert.equal(stamp.bytes, 3)
  await writeFile(small, 'abd')
  assert.notEqual((await stampFile(small))!.sample, stamp.sample)
  await writeFile(small, '')
  assert.equal((await stampFile(small))!.bytes, 0)
})

test('stampFiles stamps the files that exist and leaves the others out', async () => {
  await writeFile(join(dir, 'bzImage'), bytes(5000, 9))
  const stamps = await stampFiles(dir, ['bzImage', 'vmlinux'])
  assert.deepEqual(Object.keys(stamps), ['bzImage'])
  assert.equal(stamps.bzImage.bytes, 5000)
})

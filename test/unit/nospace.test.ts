import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {isNoSpace, mentionsNoSpace, mountOf, noSpaceError, noSpaceMessage, NoSpaceError} from '../../src/core/nospace.js'

const MOUNTINFO = [
  '26 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '24 26 0:22 / /dev/shm rw,relatime shared:3 - tmpfs tmpfs rw,size=24683756k',
  '90 26 0:40 / /var/tmp/with\\040space rw - xfs /dev/vdb rw',
  '91 26 0:41 / /tmp/cache rw - tmpfs tmpfs rw,size=65536k',
  '92 91 0:42 / /tmp/cache rw - ramfs ramfs rw',
].join('\n')

test('isNoSpace: ENOSPC and EDQUOT by code, by message, or as a cause', () => {
  assert.equal(isNoSpace(Object.assign(new Error('write failed'), {code: 'ENOSPC'})), true)
  assert.equal(isNoSpace(Object.assign(new Error('x'), {code: 'EDQUOT'})), true)
  assert.equal(isNoSpace(new Error('ENOSPC: no space left on device, write')), true)
  assert.equal(isNoSpace(new Error('outer', {cause: Object.assign(new Error('inner'), {code: 'ENOSPC'})})), true)
  assert.equal(isNoSpace(Object.assign(new Error('permission denied'), {code: 'EACCES'})), false)
  assert.equal(isNoSpace(new PmemlabError('mmdebstrap exited with status 25')), false)
  assert.equal(isNoSpace(undefined), false)
  assert.equal(isNoSpace('No space left on device'), false, 'only errors, not strings')
})

test("mentionsNoSpace finds strerror in a tool's output", () => {
  assert.equal(mentionsNoSpace('E: Write error - write (28: No space left on device)'), true)
  assert.equal(mentionsNoSpace("dpkg: error: failed to write (Disk quota exceeded)"), true)
  assert.equal(mentionsNoSpace('make: *** [Makefile:1] Error 2'), false)
})

test('mountOf: the longest mount point that holds the path; the later of two stacked mounts', () => {
  assert.deepEqual(mountOf(MOUNTINFO, '/home/user/.cache/pmemlab'), {mountPoint: '/', fsType: 'ext4'})
  assert.deepEqual(mountOf(MOUNTINFO, '/dev/shm/x'), {mountPoint: '/dev/shm', fsType: 'tmpfs'})
  assert.deepEqual(mountOf(MOUNTINFO, '/var/tmp/with space/cache'), {mountPoint: '/var/tmp/with space', fsType: 'xfs'})
  assert.deepEqual(mountOf(MOUNTINFO, '/dev/shmother'), {mountPoint: '/', fsType: 'ext4'}, 'a prefix of the name is not a parent')
  assert.deepEqual(mountOf(MOUNTINFO, '/tmp/cache/x'), {mountPoint: '/tmp/cache', fsType: 'ramfs'})
  assert.equal(mountOf('', '/x'), undefined)
})

test('noSpaceMessage: one line naming the directory, the file system, and both fixes', () => {
  const own = noSpaceMessage({doing: 'building a kernel', dir: '/tmp/cache', mount: {mountPoint: '/tmp/cache', fsType: 'tmpfs'}, totalBytes: 64 * 1024 ** 2, envVar: 'PMEMLAB_CACHE_DIR'})
  assert.ok(own instanceof NoSpaceError)
  assert.equal(own.exitCode, 1)
  assert.equal(
    own.oneLine(),
    'no space left on device while building a kernel in /tmp/cache (a 64 MiB tmpfs): free space there, or point PMEMLAB_CACHE_DIR at a larger file system',
  )
  const below = noSpaceMessage({doing: 'building image debian-12', dir: '/root/.cache/pmemlab', mount: {mountPoint: '/', fsType: 'ext4'}, totalBytes: 20 * 1024 ** 3, envVar: 'TMPDIR'})
  assert.match(below.oneLine(), /in \/root\/.cache\/pmemlab \(on the 20 GiB ext4 mounted on \/\): free space there, or point TMPDIR at/)
  assert.ok(!below.oneLine().includes('\n'))
})

test('noSpaceError: maps a full disk found in the error or in the log, and nothing else', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pmemlab-nospace-'))
  try {
    const dirs = [{dir, envVar: 'PMEMLAB_CACHE_DIR'}]
    const thrown = await noSpaceError(Object.assign(new Error('write'), {code: 'ENOSPC'}), {doing: 'testing', dirs})
    assert.ok(thrown instanceof NoSpaceError)
    assert.match(thrown.oneLine(), new RegExp(`^no space left on device while testing in ${dir} \\(on the .* mounted on /.*\\): free space there, or point PMEMLAB_CACHE_DIR`))
    assert.equal(await noSpaceError(thrown, {doing: 'again', dirs}), thrown, 'said once, never wrapped again')

    const logFile = join(dir, 'build.log')
    const toolFailure = new PmemlabError('bootstrapping failed: mmdebstrap exited with status 25')
    await writeFile(logFile, 'Get:1 http://deb.debian.org/debian bookworm InRelease\nE: Write error - write (28: No space left on device)\n')
    assert.ok((await noSpaceError(toolFailure, {doing: 'testing', dirs, logFile})) instanceof NoSpaceError)
    await writeFile(logFile, 'E: Unable to locate package nosuch\n')
    assert.equal(await noSpaceError(toolFailure, {doing: 'testing', dirs, logFile}), undefined)
    assert.equal(await noSpaceError(toolFailure, {doing: 'testing', dirs, logFile: join(dir, 'missing.log')}), undefined)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})

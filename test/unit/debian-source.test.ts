import assert from 'node:assert/strict'
import {test} from 'node:test'
import {sourceFromFlags} from '../../src/commands/kernel/build.js'
import {PmemlabError} from '../../src/core/errors.js'
import {
  compareVersions,
  DEFAULT_DEBIAN_SUITES,
  linuxOrigs,
  matchingOrigs,
  mergeOrigs,
  parseSuites,
  sourcesDigest,
  unknownVersionMessage,
} from '../../src/kernel/debian-source.js'
import {sourceOfRecord} from '../../src/kernel/source.js'

const sum = (c: string) => c.repeat(64)

/** A linux stanza as Debian's Sources index has it (abridged), plus the files its Checksums-Sha256 lists. */
function linuxStanza(version: string, orig: string, digit: string): string {
  const upstream = version.replace(/-[^-]*$/, '')
  return `Package: linux
Binary: linux-doc, linux-headers-amd64
Version: ${version}
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Directory: pool/main/l/linux
Files:
 ${'0'.repeat(32)} 246210 linux_${version}.dsc
Checksums-Sha256:
 ${sum('e')} 246210 linux_${version}.dsc
 ${sum(digit)} 150000000 ${orig === '' ? `linux_${upstream}.orig.tar.xz` : orig}
 ${sum('f')} 1599368 linux_${version}.debian.tar.xz
`
}

const OTHER = `Package: linux-signed-amd64
Version: 6.12.10+1
Directory: pool/main/l/linux-signed-amd64
Checksums-Sha256:
 ${sum('9')} 1000 linux-signed-amd64_6.12.10+1.tar.xz

Package: linux-base
Version: 4.9
Directory: pool/main/l/linux-base
`

const SID = [linuxStanza('7.2.12-1', '', '1'), OTHER, linuxStanza('7.2.8-2', '', '2'), linuxStanza('7.3~rc2-1~exp1', '', '3')].join('\n')
const TRIXIE = [OTHER, linuxStanza('6.12.9-1', '', '4'), linuxStanza('6.12.10-1', '', '5')].join('\n')
const BACKPORTS = linuxStanza('6.12.10-1~bpo12+1', 'linux_6.12.10.orig.tar.xz', '5')
const BOOKWORM = [linuxStanza('6.1.192-3', '', '6'), linuxStanza('6.1-1', '', '7')].join('\n')

const all = () => mergeOrigs([linuxOrigs('sid', SID), linuxOrigs('trixie', TRIXIE), linuxOrigs('bookworm-backports', BACKPORTS), linuxOrigs('bookworm', BOOKWORM)])

test('the linux stanzas of a Sources index give their orig tarballs; other packages and release candidates do not', () => {
  const sid = linuxOrigs('sid', SID)
  assert.deepEqual(
    sid.map((o) => [o.version, o.file, o.sha256[0]]),
    [
      ['7.2.12', 'linux_7.2.12.orig.tar.xz', '1'],
      ['7.2.8', 'linux_7.2.8.orig.tar.xz', '2'],
    ],
  )
  assert.equal(sid[0].directory, 'pool/main/l/linux')
  assert.equal(sid[0].size, 150000000)
  assert.deepEqual(sid[0].suites, ['sid'])
  // A stanza whose Checksums-Sha256 has no orig tarball cannot be verified: left out.
  const unverifiable = linuxStanza('6.12.11-1', 'linux_6.12.11.orig.tar.gz', '8')
  assert.deepEqual(linuxOrigs('trixie', unverifiable), [])
})

test('versions order numerically: 6.12.9 < 6.12.10 < 6.13, and 6.1 is 6.1.0', () => {
  assert.ok(compareVersions('6.12.9', '6.12.10') < 0)
  assert.ok(compareVersions('6.12.10', '6.13') < 0)
  assert.ok(compareVersions('6.9', '6.12') < 0)
  assert.equal(compareVersions('6.1', '6.1.0'), 0)
  assert.ok(compareVersions('7.0.1', '6.12.118') > 0)
})

test('the suites are merged one entry per version, newest first, with every suite that lists it', () => {
  const origs = all()
  assert.deepEqual(
    origs.map((o) => o.version),
    ['7.2.12', '7.2.8', '6.12.10', '6.12.9', '6.1.192', '6.1'],
  )
  const v61210 = origs.find((o) => o.version === '6.12.10')!
  assert.deepEqual(v61210.suites, ['trixie', 'bookworm-backports'])
})

test('a partial version names every matching release, newest first; an exact one names itself', () => {
  const origs = all()
  assert.deepEqual(
    matchingOrigs('6.12', origs).map((o) => o.version),
    ['6.12.10', '6.12.9'],
  )
  assert.deepEqual(
    matchingOrigs('7.2', origs).map((o) => o.version),
    ['7.2.12', '7.2.8'],
  )
  assert.deepEqual(
    matchingOrigs('6.1', origs).map((o) => o.version),
    ['6.1.192', '6.1'],
  )
  assert.deepEqual(
    matchingOrigs('6.12.9', origs).map((o) => o.version),
    ['6.12.9'],
  )
  // 6.1 is not a prefix of 6.12, nor 7.2 of 7.20.
  assert.deepEqual(matchingOrigs('6.1.0', origs).map((o) => o.version), ['6.1'])
  assert.deepEqual(matchingOrigs('6.12.118', origs), [])
  assert.deepEqual(matchingOrigs('5.10', origs), [])
  assert.throws(() => matchingOrigs('6', origs), (error: PmemlabError) => error.exitCode === 2)
})

test('an unknown version is told with the versions the indexes hold, oldest first', () => {
  const message = unknownVersionMessage('6.13', ['sid', 'trixie'], 'http://deb.debian.org/debian', all())
  assert.equal(message, "linux 6.13 is not in Debian's sid, trixie indexes at http://deb.debian.org/debian: they hold 6.1, 6.1.192, 6.12.9, 6.12.10, 7.2.8, 7.2.12")
  assert.match(unknownVersionMessage('6.13', ['sid'], 'M', []), /list no linux source release/)
})

test('suite lists are checked names, commas or spaces between them', () => {
  assert.deepEqual(parseSuites('trixie, bookworm-backports bookworm,trixie', '--debian-suites'), ['trixie', 'bookworm-backports', 'bookworm'])
  assert.throws(() => parseSuites('../etc', '--debian-suites'), /"\.\.\/etc" is not one/)
  assert.throws(() => parseSuites(' , ', 'PMEMLAB_DEBIAN_SUITES'), /expected suite names/)
  assert.ok(DEFAULT_DEBIAN_SUITES.includes('bullseye') && DEFAULT_DEBIAN_SUITES.includes('sid'))
})

test("InRelease's SHA256 line for main/source/Sources.xz is the index's digest", () => {
  const inRelease = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: Debian
Suite: unstable
MD5Sum:
 c4bb5f45d93e05a810ad8b0bcef5fcb1 12103252 main/source/Sources.xz
SHA256:
 ${sum('a')}   1234 main/binary-all/Packages.xz
 ${sum('b')} 12103252 main/source/Sources.xz
 ${sum('c')}   1234 contrib/source/Sources.xz
-----BEGIN PGP SIGNATURE-----
`
  assert.equal(sourcesDigest(inRelease), sum('b'))
  assert.equal(sourcesDigest('Origin: Debian\nMD5Sum:\n c4bb5f45d93e05a810ad8b0bcef5fcb1 1 main/source/Sources.xz\n'), undefined)
})

test('--from debian and the debian: prefix are the same source; mixing them with kernel.org is refused', () => {
  assert.deepEqual(sourceFromFlags({version: '6.12', from: 'debian'}), {kind: 'debian', version: '6.12', mirror: undefined, suites: undefined})
  assert.deepEqual(sourceFromFlags({version: 'debian:7.2', mirror: 'http://m/debian', 'debian-suites': 'sid,forky'}), {
    kind: 'debian',
    version: '7.2',
    mirror: 'http://m/debian',
    suites: ['sid', 'forky'],
  })
  assert.deepEqual(sourceFromFlags({version: '6.12'}), {kind: 'version', version: '6.12', mirror: undefined})
  const usage = (error: PmemlabError) => error.exitCode === 2
  assert.throws(() => sourceFromFlags({version: 'debian:6.1', from: 'kernel.org'}), usage)
  assert.throws(() => sourceFromFlags({version: '6.1', 'debian-suites': 'sid'}), usage)
  assert.throws(() => sourceFromFlags({from: 'debian', source: 'x.tar.xz'}), usage)
})

test("a Debian build's record gives back its exact tarball, not a new lookup", () => {
  const url = 'http://deb.debian.org/debian/pool/main/l/linux/linux_6.12.10.orig.tar.xz'
  assert.deepEqual(sourceOfRecord({kind: 'version', requested: 'debian:6.12', version: '6.12.10', file: 'linux_6.12.10.orig.tar.xz', url, sha256: sum('5')}), {
    kind: 'debian',
    version: '6.12.10',
    pinned: {url, sha256: sum('5')},
  })
  assert.deepEqual(
    sourceOfRecord({kind: 'version', requested: '6.12', version: '6.12.10', file: 'linux-6.12.10.tar.xz', url: 'https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.10.tar.xz', sha256: sum('5')}),
    {kind: 'version', version: '6.12.10', mirror: 'https://cdn.kernel.org/pub/linux/kernel'},
  )
})

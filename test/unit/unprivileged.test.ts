import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode} from '../../src/core/errors.js'
import {
  checkUnprivilegedBuild,
  freeSubordinateRange,
  mmdebstrapMissing,
  parseSubordinateIds,
  unprivilegedBuildError,
  unprivilegedFixLine,
  type UnprivilegedFacts,
} from '../../src/image/unprivileged.js'

const OTHER = 'alice:100000:65536\n'
const facts = (over: Partial<UnprivilegedFacts> = {}): UnprivilegedFacts => ({
  uid: 1001,
  gid: 1001,
  user: 'bob',
  subuid: `${OTHER}bob:165536:65536\n`,
  subgid: `${OTHER}bob:165536:65536\n`,
  programs: {newuidmap: true, newgidmap: true, fakeroot: true},
  ...over,
})

describe('what a build without root needs', () => {
  test('root needs nothing, even on a host with none of it', () => {
    const verdict = checkUnprivilegedBuild(
      facts({uid: 0, gid: 0, user: 'root', subuid: undefined, subgid: undefined, programs: {newuidmap: false, newgidmap: false, fakeroot: false}, userns: {ok: false}}),
    )
    assert.equal(verdict.root, true)
    assert.deepEqual(verdict.missing, [])
    assert.deepEqual(verdict.fix, [])
  })

  test('a user with helpers and 65536 ids by name in both files can build', () => {
    const verdict = checkUnprivilegedBuild(facts({userns: {ok: true}}))
    assert.equal(verdict.root, false)
    assert.deepEqual(verdict.missing, [])
    assert.deepEqual(verdict.fix, [])
    assert.equal(verdict.detail, 'bob has 65536 subuids from 165536 and 65536 subgids from 165536; newuidmap, newgidmap and fakeroot found; user namespaces work')
  })

  test('no entry: usermod adds a range that overlaps no one else', () => {
    const verdict = checkUnprivilegedBuild(facts({subuid: OTHER, subgid: OTHER}))
    assert.deepEqual(verdict.missing, ['an entry for bob in /etc/subuid', 'an entry for bob in /etc/subgid'])
    assert.deepEqual(verdict.fix, ['usermod --add-subuids 165536-231071 --add-subgids 165536-231071 bob'])
    assert.equal(
      unprivilegedFixLine(verdict),
      'as root, run: usermod --add-subuids 165536-231071 --add-subgids 165536-231071 bob',
    )
  })

  test('only the missing file is named and fixed', () => {
    const verdict = checkUnprivilegedBuild(facts({subgid: OTHER}))
    assert.deepEqual(verdict.missing, ['an entry for bob in /etc/subgid'])
    // 165536.. is bob's in /etc/subuid: one range free in both files is picked.
    assert.deepEqual(verdict.fix, ['usermod --add-subgids 231072-296607 bob'])
  })

  test("an entry by numeric uid does not count: mmdebstrap reads entries by name", () => {
    const verdict = checkUnprivilegedBuild(facts({subuid: `${OTHER}1001:300000:65536\n`, subgid: `${OTHER}bob:300000:65536\n`}))
    assert.equal(verdict.missing.length, 1)
    assert.match(verdict.missing[0], /^an entry for bob in \/etc\/subuid \(the entry 1001:300000:65536 is by uid/)
    assert.deepEqual(verdict.fix, ['usermod --add-subuids 165536-231071 bob'])
    // An entry by the uid of someone else is not mistaken for ours either.
    assert.equal(checkUnprivilegedBuild(facts({subuid: '1002:300000:65536\n'})).missing[0], 'an entry for bob in /etc/subuid')
  })

  test('a range under 65536 ids is too small, and the fix replaces it', () => {
    const verdict = checkUnprivilegedBuild(facts({subuid: `${OTHER}bob:300000:1000\n`, subgid: `${OTHER}bob:300000:65535\n`}))
    assert.deepEqual(verdict.missing, ["65536 ids in bob's first /etc/subuid entry, not 1000", "65536 ids in bob's first /etc/subgid entry, not 65535"])
    assert.deepEqual(verdict.fix, ['usermod --del-subuids 300000-300999 --add-subuids 165536-231071 --del-subgids 300000-365534 --add-subgids 165536-231071 bob'])
  })

  test('only the first entry by name counts, as in mmdebstrap', () => {
    const verdict = checkUnprivilegedBuild(facts({subuid: 'bob:300000:10\nbob:400000:65536\n'}))
    assert.deepEqual(verdict.missing, ["65536 ids in bob's first /etc/subuid entry, not 10"])
  })

  test("a uid at or above 65536 needs a range that reaches it (the build sources keep the user's ids)", () => {
    const verdict = checkUnprivilegedBuild(facts({uid: 70000, subuid: 'bob:200000:65536\n', subgid: 'bob:200000:65536\n'}))
    assert.deepEqual(verdict.missing, ["70001 ids in bob's first /etc/subuid entry, not 65536, to reach its own uid 70000"])
    assert.deepEqual(verdict.fix, ['usermod --del-subuids 200000-265535 --add-subuids 100000-170000 bob'])
  })

  test('missing files are created first: usermod refuses to', () => {
    const verdict = checkUnprivilegedBuild(facts({subuid: undefined, subgid: undefined}))
    assert.deepEqual(verdict.missing, ['/etc/subuid (it does not exist)', '/etc/subgid (it does not exist)'])
    assert.deepEqual(verdict.fix, ['touch /etc/subuid /etc/subgid', 'usermod --add-subuids 100000-165535 --add-subgids 100000-165535 bob'])
    const one = checkUnprivilegedBuild(facts({subgid: undefined}))
    assert.deepEqual(one.fix, ['touch /etc/subgid', 'usermod --add-subgids 231072-296607 bob'])
  })

  test('missing helpers are one apt-get install, before the ids', () => {
    const verdict = checkUnprivilegedBuild(facts({programs: {newuidmap: false, newgidmap: false, fakeroot: false}, subuid: ''}))
    assert.deepEqual(verdict.missing, ['newuidmap and newgidmap (package uidmap)', 'fakeroot (package fakeroot)', 'an entry for bob in /etc/subuid'])
    assert.deepEqual(verdict.fix, ['apt-get install uidmap fakeroot', 'usermod --add-subuids 231072-296607 bob'])
    const onlyGid = checkUnprivilegedBuild(facts({programs: {newuidmap: true, newgidmap: false, fakeroot: true}}))
    assert.deepEqual(onlyGid.missing, ['newgidmap (package uidmap)'])
    assert.deepEqual(onlyGid.fix, ['apt-get install uidmap'])
  })

  test('a uid without a name gets one: mmdebstrap looks entries up by name', () => {
    const verdict = checkUnprivilegedBuild(facts({user: undefined, uid: 4242, gid: 4242}))
    assert.equal(verdict.user, 'pmemlab-4242')
    assert.deepEqual(verdict.fix, [
      'useradd --no-create-home --uid 4242 pmemlab-4242',
      'usermod --add-subuids 231072-296607 --add-subgids 231072-296607 pmemlab-4242',
    ])
  })

  test('refused user namespaces are fixed by the sysctl that refuses them', () => {
    const refused = (sysctls: UnprivilegedFacts['sysctls']) =>
      checkUnprivilegedBuild(facts({userns: {ok: false, error: 'unshare syscall failed: Operation not permitted'}, sysctls}))
    const apparmor = refused({maxUserNamespaces: 15000, apparmorRestrictUnprivilegedUserns: 1})
    assert.deepEqual(apparmor.missing, ['user namespaces, which this host refuses (unshare syscall failed: Operation not permitted)'])
    assert.deepEqual(apparmor.fix, ['sysctl -w kernel.apparmor_restrict_unprivileged_userns=0'])
    assert.deepEqual(refused({unprivilegedUsernsClone: 0, maxUserNamespaces: 15000}).fix, ['sysctl -w kernel.unprivileged_userns_clone=1'])
    assert.deepEqual(refused({maxUserNamespaces: 0}).fix, ['sysctl -w user.max_user_namespaces=10000'])
    const unknown = refused({maxUserNamespaces: 15000})
    assert.deepEqual(unknown.fix, [])
    assert.match(unprivilegedFixLine(unknown), /^no sysctl here refuses them.*build the image as root/)
  })

  test('the refusal is one line with exit code 3, naming what is missing and the fix', () => {
    const error = unprivilegedBuildError(checkUnprivilegedBuild(facts({programs: {newuidmap: false, newgidmap: false, fakeroot: true}, subuid: OTHER, subgid: OTHER})))
    assert.equal(error.exitCode, ExitCode.missingDependency)
    assert.equal(
      error.oneLine(),
      'building an image as bob needs newuidmap and newgidmap (package uidmap), an entry for bob in /etc/subuid, an entry for bob in /etc/subgid: ' +
        'as root, run: apt-get install uidmap && usermod --add-subuids 165536-231071 --add-subgids 165536-231071 bob',
    )
  })
})

describe('subordinate id files', () => {
  test('entries are owner:start:count; comments, blanks and malformed lines are skipped', () => {
    assert.deepEqual(parseSubordinateIds('# comment\n\nalice:100000:65536\n1001:200000:10\nbroken\nbob:x:1\n'), [
      {owner: 'alice', start: 100000, count: 65536},
      {owner: '1001', start: 200000, count: 10},
    ])
  })

  test('a free range starts at 100000 and skips every range it would overlap, using a gap that fits', () => {
    assert.equal(freeSubordinateRange([], 65536), 100000)
    const taken = parseSubordinateIds('a:100000:65536\nb:170000:1000\nc:300000:65536\n')
    // 165536..169999 is too small a gap; 171000..236535 fits below c.
    assert.equal(freeSubordinateRange(taken, 65536), 171000)
    assert.equal(freeSubordinateRange(taken, 200000), 365536)
  })
})

describe("mmdebstrap's own words", () => {
  test('a missing helper is named with its package', () => {
    const said = mmdebstrapMissing('I: chroot architecture amd64 is equal to the host\'s architecture\nE: cannot find newuidmap\n')
    assert.deepEqual(said, {line: 'E: cannot find newuidmap', fix: 'apt-get install uidmap'})
  })

  test('missing subordinate ids are named by the line that says so (seen on Debian 12)', () => {
    const said = mmdebstrapMissing('W: no entry in /etc/subuid for carol\nE: failed to parse /etc/subuid and /etc/subgid\n')
    assert.deepEqual(said, {line: 'W: no entry in /etc/subuid for carol'})
    assert.deepEqual(mmdebstrapMissing("W: /etc/subgid doesn't exist\nE: failed to parse /etc/subuid and /etc/subgid"), {line: "W: /etc/subgid doesn't exist"})
  })

  test('a range that misses the user\'s own ids shows in the copy-in hook', () => {
    const log = [
      'tar: pmemlab-build/build.sh: Cannot change ownership to uid 1002, gid 1002: Invalid argument',
      'E: setup failed: E: hookhelper failed: E: tar failed',
      'E: mmdebstrap failed to run',
    ].join('\n')
    assert.match(mmdebstrapMissing(log)!.line, /Cannot change ownership to uid 1002/)
  })

  test('refused user namespaces are named; other failures are not mistaken for missing pieces', () => {
    assert.deepEqual(mmdebstrapMissing('E: unshare syscall failed: Operation not permitted\n'), {line: 'E: unshare syscall failed: Operation not permitted'})
    assert.equal(mmdebstrapMissing('E: apt-get update failed\nE: mmdebstrap failed to run\n'), undefined)
    assert.equal(mmdebstrapMissing(''), undefined)
  })
})

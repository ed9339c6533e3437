import assert from 'node:assert/strict'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {
  countResults,
  globToRegExp,
  missingNeeds,
  parseManifest,
  planUserSuite,
  renderSummary,
  reportJson,
  roundsFor,
  runFailed,
  selected,
  subResults,
  toJUnit,
  toTap,
  type ConsoleFinding,
  type RunReport,
  type TestResult,
} from '../../src/suite/results.js'
import {parseTap} from '../../src/suite/tap.js'
import {parseDevices} from '../../src/suite/devices.js'
import {withNvdimmFile} from '../../src/suite/powerloss.js'

const usage = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (error: unknown) => error instanceof PmemlabError && error.exitCode === 2 && pattern.test(error.oneLine()))

// ---------------------------------------------------------------------------------------------
// Manifests

test('a manifest with every field parses; tests may be file names or objects', () => {
  const manifest = parseManifest(
    [
      'name: my-pmem-tests',
      'description: checks for my pool code',
      'setup: setup.sh',
      'timeout: 30',
      'needs: {fs: [xfs]}',
      'tests:',
      '  - first.sh',
      '  - run: second',
      '    name: second test',
      '    args: [--pool, big]',
      '    timeout: 2.5',
      '    needs: {devices: [nvdimm]}',
    ].join('\n'),
    'pmemlab-suite.yaml',
  )
  assert.equal(manifest.name, 'my-pmem-tests')
  assert.equal(manifest.setup, 'setup.sh')
  assert.deepEqual(manifest.needs, {fs: ['xfs']})
  assert.deepEqual(manifest.tests, [
    {run: 'first.sh', args: []},
    {run: 'second', name: 'second test', args: ['--pool', 'big'], timeout: 2.5, needs: {devices: ['nvdimm']}},
  ])
  assert.deepEqual(parseManifest('', 'empty.yaml'), {}, 'an empty manifest is allowed')
})

test('manifest mistakes are usage errors that name the file and the field', () => {
  usage(() => parseManifest('tests: [a.sh\n', 'dir/pmemlab-suite.yaml'), /dir\/pmemlab-suite.yaml is not valid YAML/)
  usage(() => parseManifest('timeouts: 3\n', 'm.yaml'), /m.yaml is invalid: \(top level\): Unrecognized key/)
  usage(() => parseManifest('timeout: -1\n', 'm.yaml'), /timeout: Number must be greater than 0/)
  usage(() => parseManifest('tests: [../etc/passwd]\n', 'm.yaml'), /tests.0.run: name a file inside the suite directory/)
  usage(() => parseManifest('needs: {fs: [btrfs]}\n', 'm.yaml'), /needs.fs.0/)
  usage(() => parseManifest('tests:\n  - run: a\n    name: "x/y"\n', 'm.yaml'), /without "\/"/)
})

const files = [
  {path: 'pmemlab-suite.yaml', mode: 0o644},
  {path: 'b-test', mode: 0o755},
  {path: 'a-test.sh', mode: 0o644},
  {path: 'setup.sh', mode: 0o755},
  {path: 'README', mode: 0o644},
  {path: 'lib/helper.sh', mode: 0o755},
]

test('without a tests list, the tests are the executables and .sh files at the top, by name, without setup', () => {
  const suite = planUserSuite({dir: '/src/s', dirName: 'my suite', manifest: {setup: 'setup.sh'}, files, defaultTimeoutSec: 120})
  assert.equal(suite.name, 'my-suite')
  assert.deepEqual(
    suite.tests.map((t) => [t.name, t.run, t.timeoutSec]),
    [
      ['a-test.sh', 'a-test.sh', 120],
      ['b-test', 'b-test', 120],
    ],
  )
  assert.equal(suite.files.length, files.length, 'every file is copied')
})

test('timeouts: the test\'s own, else the manifest\'s, else the default', () => {
  const manifest = parseManifest('timeout: 7\ntests: [a-test.sh, {run: b-test, timeout: 2}]\n', 'm')
  const suite = planUserSuite({dir: '/s', dirName: 's', manifest, files, defaultTimeoutSec: 120})
  assert.deepEqual(
    suite.tests.map((t) => t.timeoutSec),
    [7, 2],
  )
  assert.equal(suite.timeoutSec, 7)
})

test('a test or setup that is not in the directory, duplicate names, no tests, or the name "builtin" are refused', () => {
  usage(() => planUserSuite({dir: '/s', dirName: 's', manifest: parseManifest('tests: [nope.sh]', 'm'), files, defaultTimeoutSec: 1}), /test nope.sh is not a file in \/s/)
  usage(() => planUserSuite({dir: '/s', dirName: 's', manifest: {setup: 'gone.sh'}, files, defaultTimeoutSec: 1}), /setup gone.sh/)
  usage(() => planUserSuite({dir: '/s', dirName: 's', manifest: parseManifest('tests: [a-test.sh, a-test.sh]', 'm'), files, defaultTimeoutSec: 1}), /two tests are named a-test.sh/)
  usage(() => planUserSuite({dir: '/s', dirName: 's', files: [{path: 'README', mode: 0o644}], defaultTimeoutSec: 1}), /no tests in \/s/)
  usage(() => planUserSuite({dir: '/s', dirName: 'builtin', files, defaultTimeoutSec: 1}), /named "builtin"/)
})

test('needs: missing device kinds are named, and filesystem rounds are the run\'s filesystems the suite accepts', () => {
  assert.equal(missingNeeds({devices: ['nvdimm']}, ['memmap', 'nvdimm']), undefined)
  assert.equal(missingNeeds({devices: ['virtio-pmem', 'nvdimm']}, ['memmap']), 'needs a virtio-pmem device and a nvdimm device; this lab has memmap')
  assert.equal(missingNeeds({}, []), undefined)
  assert.deepEqual(roundsFor({}, ['ext4', 'xfs']), ['ext4', 'xfs'])
  assert.deepEqual(roundsFor({fs: ['xfs']}, ['ext4', 'xfs']), ['xfs'])
  assert.deepEqual(roundsFor({fs: ['xfs']}, ['ext4']), [])
})

// ---------------------------------------------------------------------------------------------
// Selecting

test('globs: * crosses slashes, ? is one character, [...] a class; matching is whole and case-insensitive', () => {
  assert.ok(globToRegExp('builtin/*').test('builtin/nvdimm0/xfs/dax-check'))
  assert.ok(globToRegExp('*/xfs/*').test('builtin/memmap0/xfs/libpmem'))
  assert.ok(!globToRegExp('*/xfs/*').test('builtin/memmap0/ext4/libpmem'))
  assert.ok(globToRegExp('nvdimm?').test('NVDIMM0'))
  assert.ok(globToRegExp('memmap[01]').test('memmap1'))
  assert.ok(!globToRegExp('memmap[!01]').test('memmap1'))
  assert.ok(globToRegExp('a.b+c(d)').test('a.b+c(d)'))
  assert.ok(!globToRegExp('a.b').test('axb'))
  assert.ok(globToRegExp('[oops').test('[oops'))
})

test('selected: no filter selects all; a glob selects an id or any of its prefixes', () => {
  assert.ok(selected('builtin/power-loss', []))
  assert.ok(selected('builtin/nvdimm0/xfs/pmemobj', ['builtin/nvdimm0/*']))
  assert.ok(selected('builtin/nvdimm0/xfs/pmemobj', ['builtin/nvdimm0']), 'a group selects its steps')
  assert.ok(!selected('builtin/memmap0/xfs/pmemobj', ['builtin/nvdimm0/*']))
  assert.ok(selected('user-suite/ext4/pass.sh', ['nothing', 'user-suite/*']))
  assert.ok(!selected('builtin/power-loss', ['user-suite/*']))
  // "!glob" leaves out what it matches, from everything or from what the other globs select.
  assert.ok(!selected('builtin/memmap0/xfs/pmd', ['!*/pmd']))
  assert.ok(selected('builtin/memmap0/xfs/pmemobj', ['!*/pmd']))
  assert.ok(!selected('builtin/nvdimm0/ext4/pmemobj', ['builtin/nvdimm0/*', '!builtin/nvdimm0/ext4']), 'excluding a group excludes its steps')
  assert.ok(selected('builtin/nvdimm0/xfs/pmemobj', ['builtin/nvdimm0/*', '!builtin/nvdimm0/ext4']))
  assert.ok(!selected('builtin/memmap0/xfs/pmemobj', ['builtin/nvdimm0/*', '!*/pmd']))
})

// ---------------------------------------------------------------------------------------------
// The report

const t = (suite: string, group: string, name: string, status: TestResult['status'], extra: Partial<TestResult> = {}): TestResult => ({
  id: `${suite}/${group}/${name}`,
  suite,
  group,
  name,
  status,
  durationMs: 1500,
  ...extra,
})

const panic: ConsoleFinding = {
  kind: 'panic',
  title: 'Kernel panic - not syncing: sysrq triggered crash',
  line: 400,
  lines: ['[   42.1] Kernel panic - not syncing: sysrq triggered crash', '[   42.2] CPU: 0 PID: 312 Comm: sh'],
  fails: true,
  vm: 'test-ab12',
  during: 'crash/ext4/crash.sh',
}

function report(tests: TestResult[], findings: ConsoleFinding[] = []): RunReport {
  const suites = [...new Set(tests.map((x) => x.suite))].map((name) => ({name, kind: name === 'builtin' ? ('builtin' as const) : ('user' as const), tests: tests.filter((x) => x.suite === name)}))
  const base: RunReport = {
    ok: true,
    exitCode: 0,
    startedAt: '2026-11-25T15:59:13.123Z',
    durationMs: 42_000,
    phases: {bootMs: 10_000, prepareMs: 12_000, testsMs: 15_000},
    lab: {name: 'test-ab12', kernel: 'distro', image: 'debian-12', accel: 'tcg', filesystems: ['ext4'], devices: []},
    suites,
    findings,
  }
  base.ok = !runFailed(base)
  base.exitCode = base.ok ? 0 : 1
  return base
}

const userTests = [
  t('user-suite', 'ext4', 'pass.sh', 'pass', {subtests: [{name: 'PMEMLAB_PMEM_DIR is a directory', status: 'pass'}, {name: 'a # tricky name', status: 'skip', message: 'later'}], output: 'TAP version 13\nok 1\n'}),
  t('user-suite', 'ext4', 'fail.sh', 'fail', {message: 'exited with status 3', details: ['this test fails on purpose']}),
  t('user-suite', 'ext4', 'hang.sh', 'timeout', {message: 'killed after 3 s (its timeout)'}),
]

test('counts and the verdict: failures, timeouts, errors and failing console findings fail a run; skips, TODOs and notices do not', () => {
  assert.deepEqual(countResults(userTests), {total: 3, passed: 1, failed: 1, timedOut: 1, errors: 0, skipped: 0, todo: 0})
  assert.equal(runFailed(report([t('b', 'g', 'x', 'pass'), t('b', 'g', 'y', 'skip'), t('b', 'g', 'z', 'todo')])), false)
  assert.equal(runFailed(report([t('b', 'g', 'x', 'error')])), true)
  assert.equal(runFailed(report([t('b', 'g', 'x', 'pass')], [panic])), true, 'a panic fails a run in which every test passed')
  assert.equal(runFailed(report([t('b', 'g', 'x', 'pass')], [{...panic, kind: 'hung-task', fails: false}])), false)
})

test('subResults turns TAP test points into pass/fail/skip/todo with a message', () => {
  const doc = parseTap('1..4\nok 1 - a\nnot ok 2 - b\n# because\nok 3 - c # SKIP no xfs\nnot ok 4 - d # TODO soon\n')
  assert.deepEqual(subResults(doc), [
    {name: 'a', status: 'pass'},
    {name: 'b', status: 'fail', message: 'because'},
    {name: 'c', status: 'skip', message: 'no xfs'},
    {name: 'd', status: 'todo', message: 'soon'},
  ])
})

test('the summary: a row per group, each failure with its reason, the kernel finding with its first lines, totals', () => {
  const text = renderSummary(report([t('builtin', 'memmap0/ext4', 'statx', 'pass'), t('builtin', 'memmap0/ext4', 'mmap', 'pass'), ...userTests], [panic]))
  const lines = text.split('\n')
  assert.match(lines[0], /^SUITE\s+GROUP\s+PASSED\s+FAILED\s+TIMEOUT\s+SKIPPED\s+TIME$/)
  assert.match(lines[1], /^builtin\s+memmap0\/ext4\s+2\s+0\s+0\s+0\s+3.0 s$/)
  assert.match(lines[2], /^user-suite\s+ext4\s+1\s+1\s+1\s+0\s+4.5 s$/)
  assert.ok(lines.includes('FAIL  user-suite/ext4/fail.sh: exited with status 3'))
  assert.ok(lines.includes('    this test fails on purpose'))
  assert.ok(lines.includes('TIMEOUT  user-suite/ext4/hang.sh: killed after 3 s (its timeout)'))
  assert.ok(lines.includes('KERNEL  panic in test-ab12, during crash/ext4/crash.sh: Kernel panic - not syncing: sysrq triggered crash'))
  assert.ok(lines.includes('    [   42.2] CPU: 0 PID: 312 Comm: sh'))
  assert.equal(lines.at(-2), 'FAILED: 3 passed, 1 failed, 1 timed out, 1 kernel finding in 42.0 s')
})

test('the JSON document carries the verdict, phases, counts, tests and findings', () => {
  const json = reportJson(report(userTests, [panic])) as {ok: boolean; exitCode: number; summary: unknown; suites: Array<{tests: Array<{id: string; status: string}>}>; findings: unknown[]; phases: unknown}
  assert.equal(json.ok, false)
  assert.equal(json.exitCode, 1)
  assert.deepEqual(json.phases, {bootMs: 10_000, prepareMs: 12_000, testsMs: 15_000})
  assert.deepEqual(json.summary, {total: 3, passed: 1, failed: 1, timedOut: 1, errors: 0, skipped: 0, todo: 0})
  assert.deepEqual(
    json.suites[0].tests.map((x) => [x.id, x.status]),
    [
      ['user-suite/ext4/pass.sh', 'pass'],
      ['user-suite/ext4/fail.sh', 'fail'],
      ['user-suite/ext4/hang.sh', 'timeout'],
    ],
  )
  assert.equal(json.findings.length, 1)
})

test('JUnit: pass, failure and a timeout as an error of type timeout, with the console as a test case of its own', () => {
  const xml = toJUnit(report(userTests, [panic]))
  assert.match(xml, /<testsuites name="pmemlab test" tests="4" failures="2" errors="1" skipped="0"/)
  assert.match(xml, /<testcase name="pass.sh" classname="user-suite.ext4" time="1.5">\n {6}<system-out><!\[CDATA\[ok - PMEMLAB_PMEM_DIR is a directory\nskip - a # tricky name \(later\)\nTAP version 13\nok 1\n\]\]><\/system-out>/)
  assert.match(xml, /<testcase name="fail.sh" classname="user-suite.ext4" time="1.5">\n {6}<failure message="exited with status 3" type="failure"><!\[CDATA\[exited with status 3\nthis test fails on purpose\]\]><\/failure>/)
  assert.match(xml, /<testcase name="hang.sh" classname="user-suite.ext4" time="1.5">\n {6}<error message="killed after 3 s \(its timeout\)" type="timeout">/)
  assert.match(xml, /<testsuite name="kernel" time="0" tests="1" failures="1"/)
  assert.match(xml, /<failure message="panic: Kernel panic - not syncing: sysrq triggered crash" type="kernel"><!\[CDATA\[panic in test-ab12, during crash\/ext4\/crash.sh/)
  const clean = toJUnit(report([t('builtin', 'lab', 'x', 'pass')]))
  assert.match(clean, /<testcase name="no Oops, BUG, WARNING, lockdep report or panic on the console" classname="kernel.console" time="0"\/>/)
})

test('TAP: our own output parses back with the same verdicts, user TAP as subtests, the console as the last test point', () => {
  const text = toTap(report([t('builtin', 'memmap0/ext4', 'statx # DAX', 'pass'), t('builtin', 'devdax/nvdimm0', 'devdax', 'skip', {message: 'needs an NVDIMM'}), ...userTests], [panic]))
  const doc = parseTap(text)
  assert.equal(doc.version, 14)
  assert.deepEqual(doc.problems, [])
  assert.deepEqual(
    doc.asserts.map((a) => [a.id, a.ok, a.name, a.directive?.kind]),
    [
      [1, true, 'builtin/memmap0/ext4/statx # DAX', undefined],
      [2, true, 'builtin/devdax/nvdimm0/devdax', 'skip'],
      [3, true, 'user-suite/ext4/pass.sh', undefined],
      [4, false, 'user-suite/ext4/fail.sh', undefined],
      [5, false, 'user-suite/ext4/hang.sh', undefined],
      [6, false, 'kernel/console/no Oops, BUG, WARNING, lockdep report or panic on the console', undefined],
    ],
  )
  assert.deepEqual(
    doc.asserts[2].subtest?.asserts.map((a) => [a.name, a.ok, a.directive?.kind]),
    [
      ['PMEMLAB_PMEM_DIR is a directory', true, undefined],
      ['a # tricky name', true, 'skip'],
    ],
  )
  assert.match(doc.asserts[4].yaml ?? '', /status: "timeout"/)
  assert.match(doc.asserts[5].yaml ?? '', /sysrq triggered crash/)
  const clean = parseTap(toTap(report([t('builtin', 'lab', 'x', 'pass')])))
  assert.equal(clean.ok, true)
})

// ---------------------------------------------------------------------------------------------
// Runner helpers

test('parseDevices reads pmemlab-suite devices', () => {
  const devices = parseDevices('memmap 0 namespace1.0 fsdax pmem1 268435456\nnvdimm 0 namespace0.0 raw pmem0 536870912\n\nnoise line\n')
  assert.deepEqual(devices, [
    {kind: 'memmap', index: 0, namespace: 'namespace1.0', mode: 'fsdax', dev: 'pmem1', bytes: 268435456},
    {kind: 'nvdimm', index: 0, namespace: 'namespace0.0', mode: 'raw', dev: 'pmem0', bytes: 536870912},
  ])
})

test('withNvdimmFile backs the first NVDIMM with the runner\'s file, keeps a user\'s file, and spells out the default topology', () => {
  const base = {machine: 'pc' as const, mem: '1G', memmap: [] as string[], nvdimm: [] as string[], virtioPmem: [] as string[]}
  assert.deepEqual(withNvdimmFile(base, '/s/nv.img'), {topology: {...base, memmap: ['256M'], nvdimm: ['512M:/s/nv.img']}, owned: true})
  assert.deepEqual(withNvdimmFile({...base, nvdimm: ['1G', '2G']}, '/s/nv.img'), {topology: {...base, nvdimm: ['1G:/s/nv.img', '2G']}, owned: true})
  assert.deepEqual(withNvdimmFile({...base, nvdimm: ['1G:/mine.img']}, '/s/nv.img'), {topology: {...base, nvdimm: ['1G:/mine.img']}, owned: false})
  assert.deepEqual(withNvdimmFile({...base, memmap: ['128M']}, '/s/nv.img'), {topology: {...base, memmap: ['128M']}, owned: false}, 'no NVDIMM: nothing to back')
})

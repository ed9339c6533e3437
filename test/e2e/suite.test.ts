import assert from 'node:assert/strict'
import {chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {parseTap, type TapDocument} from '../../src/suite/tap.js'
import {makeLab, root, type Lab} from './cli.js'
import {decodeXml as decode} from '../helpers/xml.js'

/** Issue 4's acceptance: `pmemlab test` on real guests, under whatever accelerator this host has. */

interface JsonTest {
  id: string
  suite: string
  group: string
  name: string
  status: string
  message?: string
  details?: string[]
}

interface JsonReport {
  ok: boolean
  exitCode: number
  phases: {bootMs: number; prepareMs: number; testsMs: number}
  summary: {total: number; passed: number; failed: number; timedOut: number; errors: number}
  suites: Array<{name: string; tests: JsonTest[]}>
  findings: Array<{kind: string; title: string; lines: string[]; during: string; fails: boolean}>
  kept?: {name: string}
}

interface JUnitCase {
  name: string
  classname: string
  outcome: 'pass' | 'failure' | 'error' | 'skipped'
  type?: string
  message?: string
}


/** The test cases of a JUnit document, with what each one's child element says. */
function junitCases(xml: string): JUnitCase[] {
  assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites /)
  const cases: JUnitCase[] = []
  for (const m of xml.matchAll(/<testcase name="([^"]*)" classname="([^"]*)" time="[\d.]+"(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = m[3] ?? ''
    const child = /<(failure|error|skipped)(?: message="([^"]*)")?(?: type="([^"]*)")?/.exec(body)
    cases.push({
      name: decode(m[1]),
      classname: decode(m[2]),
      outcome: (child?.[1] as JUnitCase['outcome']) ?? 'pass',
      ...(child?.[3] ? {type: child[3]} : {}),
      ...(child?.[2] ? {message: decode(child[2])} : {}),
    })
  }
  return cases
}

const tests = (report: JsonReport, suite: string) => report.suites.find((s) => s.name === suite)?.tests ?? []
const tail = (text: string) => text.trimEnd().split('\n').slice(-40).join('\n')

/** The one test of GROUP whose name matches, from JSON, JUnit and TAP alike. */
function find(report: JsonReport, junit: JUnitCase[], tap: TapDocument, suite: string, group: string, name: RegExp) {
  const json = tests(report, suite).filter((t) => t.group === group && name.test(t.name))
  assert.equal(json.length, 1, `one ${suite}/${group} test matching ${name} in JSON: ${tests(report, suite).map((t) => t.id).join(', ')}`)
  const [t] = json
  const classname = `${suite}.${group.replaceAll('/', '.')}`
  const xml = junit.filter((c) => c.classname === classname && c.name === t.name)
  assert.equal(xml.length, 1, `${t.id} in JUnit`)
  const point = tap.asserts.filter((a) => a.name === t.id)
  assert.equal(point.length, 1, `${t.id} in TAP`)
  return {json: t, junit: xml[0], tap: point[0]}
}

describe('pmemlab test', {timeout: 1_200_000}, () => {
  let lab: Lab
  let scratch: string
  before(async () => {
    lab = await makeLab()
    scratch = await mkdtemp(join(tmpdir(), 'pmemlab-suite-'))
    // Warm the image cache so that the first test's timing is the suite's, not the build's.
    const built = await lab.pmemlab(['image', 'build', 'debian-12'])
    assert.equal(built.exitCode, 0, built.stderr)
  })
  after(async () => {
    await lab.pmemlab(['down', '--all', '--timeout', '5'])
    await lab.dispose()
    await rm(scratch, {recursive: true, force: true})
  })

  test('the built-in suite passes on the distro kernel: ext4 and xfs on a memmap range and an NVDIMM, device DAX, power loss', async () => {
    const junitFile = join(scratch, 'builtin.xml')
    const tapFile = join(scratch, 'builtin.tap')
    const run = await lab.pmemlab(['test', '--kernel', 'distro', '--json', '--junit', junitFile, '--tap', tapFile])
    assert.equal(run.exitCode, 0, tail(run.stderr))
    const report = JSON.parse(run.stdout) as JsonReport
    assert.equal(report.ok, true)
    assert.equal(report.summary.failed + report.summary.errors + report.summary.timedOut, 0)
    assert.deepEqual(report.findings.filter((f) => f.fails), [])
    assert.ok(report.summary.passed > 100, `${report.summary.passed} passed`)
    assert.ok(report.phases.bootMs > 0 && report.phases.prepareMs > 0 && report.phases.testsMs > 0, JSON.stringify(report.phases))
    const junit = junitCases(await readFile(junitFile, 'utf8'))
    const tap = parseTap(await readFile(tapFile, 'utf8'))
    assert.equal(tap.ok, true, tap.problems.join('; '))
    assert.equal(tap.asserts.length, report.summary.total + 1, 'every test, and the console check')

    const must: Array<[string, RegExp]> = [
      ['lab', /^the guest sees every persistent-memory device of the lab$/],
      ['control/rootfs', /^mmap MAP_SHARED_VALIDATE\|MAP_SYNC fails with EOPNOTSUPP/],
      ['control/rootfs', /^pmem_map_file reports is_pmem=0/],
      ['control/rootfs', /^4 touches in \/var\/tmp mapped no huge page of device memory/],
      ['devdax/nvdimm0', /^libpmem reports is_pmem=1 for device DAX$/],
      ['devdax/nvdimm0', /^data persisted with pmem_memcpy_persist reads back after a new mapping/],
      ['power-loss/nvdimm0', /^a transaction is open .* waiting for the power cut$/],
      ['power-loss/nvdimm0', /^after the power cut: mount -t ext4 -o dax$/],
      ['power-loss/nvdimm0', /^after the power cut: the pool opens \(recovery ran\)$/],
      ['power-loss/nvdimm0', /^after the power cut: exactly the 100 committed records are there$/],
      ['power-loss/nvdimm0', /^after the power cut: every committed record holds its value and the uncommitted record is gone$/],
      ['power-loss/nvdimm0', /^after the power cut: the interrupted transaction's changes were rolled back$/],
      ['power-loss/nvdimm0', /^after the power cut: pmempool check says the pool is consistent$/],
      ['power-loss/memmap0', /^memmap loses data, as real DRAM would$/],
    ]
    for (const device of ['memmap0', 'nvdimm0']) {
      for (const fs of ['ext4', 'xfs']) {
        const group = `${device}/${fs}`
        must.push(
          [group, /^namespace in fsdax mode$/],
          [group, new RegExp(`^mount -t ${fs} -o dax`)],
          [group, /^mount options of .* include dax$/],
          [group, /^statx reports STATX_ATTR_DAX/],
          [group, /^mmap MAP_SHARED_VALIDATE\|MAP_SYNC succeeds/],
          // Issue 13: huge-page faults, seen in pagemap and traced by the distro kernel's fs_dax events.
          [group, /^4 touches in .* mapped 4 huge pages of device memory \(pagemap\)$/],
          [group, /^the kernel traced 4 dax_pmd_fault_done NOPAGE events/],
          [group, /^pmem_map_file reports is_pmem=1/],
          [group, /^a committed transaction keeps its change$/],
          [group, /^an aborted transaction rolls back its stores and its allocation$/],
          [group, /^the data is intact after close and reopen$/],
          [group, /^pmempool check says the pool is consistent$/],
        )
      }
    }
    for (const [group, name] of must) {
      const {json, junit: xml, tap: point} = find(report, junit, tap, 'builtin', group, name)
      assert.equal(json.status, 'pass', `${json.id}: ${json.message}`)
      assert.equal(xml.outcome, 'pass', json.id)
      assert.equal(point.ok, true, json.id)
      assert.equal(point.directive, undefined, json.id)
    }
    const console = junit.find((c) => c.classname === 'kernel.console')
    assert.equal(console?.outcome, 'pass')
    assert.match(run.stderr, /builtin memmap0\/xfs: dax-check/, 'live progress names the running step')
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await readdir(join(lab.stateDir, 'test-files')).catch(() => []), [], 'the runner\'s NVDIMM file is deleted')
  })

  test('a user suite with a passing, a failing and a hanging test gives exactly those results; --keep leaves the VM', async () => {
    const junitFile = join(scratch, 'user.xml')
    const tapFile = join(scratch, 'user.tap')
    const suiteDir = join(root, 'test', 'fixtures', 'user-suite')
    const started = Date.now()
    const run = await lab.pmemlab(['test', '--kernel', 'distro', '--suite', suiteDir, '--fs', 'ext4', '--json', '--junit', junitFile, '--tap', tapFile, '--keep'])
    assert.equal(run.exitCode, 1, tail(run.stderr))
    const report = JSON.parse(run.stdout) as JsonReport
    assert.deepEqual(
      tests(report, 'user-suite').map((t) => [t.id, t.status]),
      [
        ['user-suite/ext4/pass.sh', 'pass'],
        ['user-suite/ext4/fail.sh', 'fail'],
        ['user-suite/ext4/hang.sh', 'timeout'],
      ],
    )
    assert.equal(report.suites.length, 1, 'only the suite asked for')
    const [pass, fail, hang] = tests(report, 'user-suite')
    assert.equal(fail.message, 'exited with status 3')
    assert.ok(fail.details?.includes('this test fails on purpose'))
    assert.equal(hang.message, 'killed after 3 s (its timeout)')
    assert.ok(Date.now() - started < 120_000, 'the hanging test did not hold the run up')
    assert.deepEqual((pass as JsonTest & {subtests?: Array<{status: string}>}).subtests?.map((s) => s.status), ['pass', 'pass', 'pass'], 'its TAP was parsed')

    const junit = junitCases(await readFile(junitFile, 'utf8')).filter((c) => c.classname === 'user-suite.ext4')
    assert.deepEqual(
      junit.map((c) => [c.name, c.outcome, c.type]),
      [
        ['pass.sh', 'pass', undefined],
        ['fail.sh', 'failure', 'failure'],
        ['hang.sh', 'error', 'timeout'],
      ],
    )
    const tap = parseTap(await readFile(tapFile, 'utf8'))
    const user = tap.asserts.filter((a) => a.name.startsWith('user-suite/'))
    assert.deepEqual(
      user.map((a) => [a.name, a.ok]),
      [
        ['user-suite/ext4/pass.sh', true],
        ['user-suite/ext4/fail.sh', false],
        ['user-suite/ext4/hang.sh', false],
      ],
    )
    assert.equal(user[0].subtest?.asserts.length, 3)
    assert.match(user[2].yaml ?? '', /status: "timeout"/)
    assert.match(run.stderr, /user-suite ext4: hang.sh/)

    // --keep: the VM is still there, reachable, and goes away with down.
    const name = report.kept?.name
    assert.ok(name, 'the report names the kept VM')
    assert.match(run.stderr, new RegExp(`pmemlab console ${name}`))
    const exec = await lab.pmemlab(['exec', name, '--', 'ls', '/opt/pmemlab-suites/user-suite'])
    assert.equal(exec.exitCode, 0, exec.stderr)
    assert.match(exec.stdout, /hang.sh/)
    const down = await lab.pmemlab(['down', name])
    assert.equal(down.exitCode, 0, down.stderr)
    assert.deepEqual(await lab.qemuProcesses(), [])
  })

  test('a kernel WARNING and a panic provoked from a user suite fail the run and are shown; no QEMU is left', async () => {
    const dir = join(scratch, 'crash-suite')
    await mkdir(dir)
    // A WARN splat written to the kernel log (no module needed), from a test that passes.
    await writeFile(join(dir, '1-warn.sh'), '#!/bin/sh\necho "<4>WARNING: CPU: 0 PID: 1 at drivers/nvdimm/pmemlab-e2e.c:42 pmemlab_e2e+0x0/0x10" >/dev/kmsg\n')
    await writeFile(join(dir, '2-crash.sh'), '#!/bin/sh\necho 1 >/proc/sys/kernel/sysrq\necho c >/proc/sysrq-trigger\n')
    await writeFile(join(dir, '3-after.sh'), '#!/bin/sh\necho never runs\n')
    for (const file of await readdir(dir)) await chmod(join(dir, file), 0o755)
    const junitFile = join(scratch, 'crash.xml')
    const run = await lab.pmemlab(['test', '--kernel', 'distro', '--suite', dir, '--fs', 'ext4', '--json', '--junit', junitFile])
    // The guest died: the documented code of a guest death, the one-line reason, the excerpt, the kept log.
    assert.equal(run.exitCode, 7, tail(run.stderr))
    // (The WARNING was announced live as an error line of its own; the run's end names the death.)
    const reason = run.stderr.split('\n').find((l) => l.startsWith('pmemlab: error: VM '))
    assert.match(reason ?? '', /^pmemlab: error: VM "test-\w+" died: the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash \(after warning: WARNING: CPU: 0 PID: 1 at drivers\/nvdimm\/pmemlab-e2e\.c:42 [^)]*\): console log kept in (\S+)$/)
    const keptLog = /console log kept in (\S+)$/.exec(reason!)![1]
    assert.ok(keptLog.startsWith(lab.stateDir), keptLog)
    assert.match(await readFile(keptLog, 'utf8'), /Kernel panic - not syncing: sysrq triggered crash/)
    assert.ok(run.stderr.split('\n').some((l) => l.startsWith('  | ') && l.includes('sysrq_handle_crash')), 'the excerpt follows the reason')
    const crashCase = junitCases(await readFile(junitFile, 'utf8')).find((c) => c.name === '2-crash.sh')
    assert.equal(crashCase?.outcome, 'error')
    assert.match(crashCase?.message ?? '', /died: the guest kernel panicked/)
    const report = JSON.parse(run.stdout) as JsonReport
    assert.equal(report.exitCode, 7)
    assert.deepEqual(
      tests(report, 'crash-suite').map((t) => [t.name, t.status]),
      [
        ['1-warn.sh', 'pass'],
        ['2-crash.sh', 'error'],
        ['3-after.sh', 'error'],
      ],
    )
    assert.match(tests(report, 'crash-suite')[1].message ?? '', /VM "test-\w+" died: the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash/)
    // (A hung-task or RCU-stall notice on a busy host would not fail the run: leave those out.)
    const findings = report.findings.filter((f) => f.fails)
    assert.deepEqual(
      findings.map((f) => f.kind),
      ['warning', 'panic'],
    )
    assert.match(findings[0].title, /^WARNING: CPU: 0 PID: 1 at drivers\/nvdimm\/pmemlab-e2e.c:42/)
    assert.equal(findings[0].during, 'crash-suite/ext4/1-warn.sh', 'the warning is tied to the test that passed')
    assert.equal(findings[1].title, 'Kernel panic - not syncing: sysrq triggered crash')
    assert.ok(findings[1].lines.length > 1, 'with its first lines')
    // Shown live on stderr, with its first lines.
    assert.match(run.stderr, /kernel panic: Kernel panic - not syncing: sysrq triggered crash/)
    assert.match(run.stderr, /\| .*Call Trace:|\| .*CPU: \d+ PID: \d+/)
    // And in the summary table of a run without --json.
    const again = await lab.pmemlab(['test', '--kernel', 'distro', '--suite', dir, '--fs', 'ext4', '--filter', 'crash-suite/*/2-crash.sh'])
    assert.equal(again.exitCode, 7)
    assert.match(again.stdout, /^KERNEL {2}panic in test-\w+, during crash-suite\/ext4\/2-crash.sh: Kernel panic - not syncing: sysrq triggered crash$/m)
    assert.match(again.stdout, /^FAILED: /m)
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
  })

  test('QEMU killed in the middle of a run ends it at once as an error naming it, in the JUnit too', async () => {
    const dir = join(scratch, 'killed-suite')
    await mkdir(dir)
    await writeFile(join(dir, '1-long.sh'), '#!/bin/sh\nsleep 900\n')
    await writeFile(join(dir, '2-after.sh'), '#!/bin/sh\necho never runs\n')
    for (const file of await readdir(dir)) await chmod(join(dir, file), 0o755)
    const junitFile = join(scratch, 'killed.xml')
    // Per-test timeout past this test's own: the run can only end in time by noticing QEMU's death.
    const child = lab.start(['test', '--kernel', 'distro', '--suite', dir, '--fs', 'ext4', '--timeout', '1200', '--junit', junitFile])
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    for (let waited = 0; !stderr.includes('killed-suite ext4: 1-long.sh'); waited += 200) {
      assert.ok(waited < 300_000, `the long test never started: ${tail(stderr)}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const [qemu] = await lab.qemuProcesses()
    process.kill(Number(qemu.split(' ')[0]), 'SIGKILL')
    const run = await child
    assert.equal(run.exitCode, 8, tail(stderr))
    assert.match(stderr, /^pmemlab: error: VM "test-\w+" died: QEMU was killed by SIGKILL: console log kept in \S+$/m)
    const cases = junitCases(await readFile(junitFile, 'utf8'))
    assert.deepEqual(
      cases.filter((c) => c.classname.startsWith('killed-suite')).map((c) => [c.name, c.outcome]),
      [
        ['1-long.sh', 'error'],
        ['2-after.sh', 'error'],
      ],
    )
    assert.match(cases.find((c) => c.name === '1-long.sh')?.message ?? '', /died: QEMU was killed by SIGKILL/)
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
  })

  test('a filesystem that mounted without DAX fails with a reason a user understands', async () => {
    const run = await lab.pmemlab(['test', '--kernel', 'distro', '--raw-namespaces', '--filter', 'builtin/nvdimm0/*', '--json'])
    assert.equal(run.exitCode, 1, tail(run.stderr))
    const report = JSON.parse(run.stdout) as JsonReport
    const builtin = tests(report, 'builtin')
    assert.ok(builtin.every((t) => t.group.startsWith('nvdimm0/')), 'only what the filter selected')
    // xfs mounts anyway, silently without DAX: the checks catch it and say why.
    const statx = builtin.find((t) => t.group === 'nvdimm0/xfs' && t.name.startsWith('statx reports STATX_ATTR_DAX'))
    assert.equal(statx?.status, 'fail')
    assert.match(statx?.message ?? '', /the xfs filesystem mounted without DAX: namespace0\.0 \(\/dev\/pmem\d\) is a raw namespace, which cannot do DAX \(convert it with ndctl create-namespace -f -e namespace0\.0 -m fsdax\)/)
    assert.ok(statx?.details?.some((d) => /DAX unsupported by block device/.test(d)), 'with the kernel\'s own words')
    const mapSync = builtin.find((t) => t.group === 'nvdimm0/xfs' && t.name.startsWith('mmap MAP_SHARED_VALIDATE|MAP_SYNC succeeds'))
    assert.equal(mapSync?.status, 'fail')
    const isPmem = builtin.find((t) => t.group === 'nvdimm0/xfs' && t.name.startsWith('pmem_map_file reports is_pmem=1'))
    assert.equal(isPmem?.status, 'fail')
    // Issue 13's control: on a mount that is not DAX the huge-page check fails, by both witnesses.
    const pmd = builtin.find((t) => t.group === 'nvdimm0/xfs' && /mapped 4 huge pages of device memory/.test(t.name))
    assert.equal(pmd?.status, 'fail', JSON.stringify(pmd))
    assert.match(pmd?.message ?? '', /the file is not on DAX/)
    const traced = builtin.find((t) => t.group === 'nvdimm0/xfs' && /dax_pmd_fault_done NOPAGE events/.test(t.name))
    assert.equal(traced?.status, 'fail', 'the distro kernel has the fs_dax trace events: none fired')
    // ext4 refuses to mount with dax on a raw namespace: the preparation fails, saying why.
    const mount = builtin.find((t) => t.group === 'nvdimm0/ext4' && t.name === 'mount -t ext4 -o dax')
    assert.equal(mount?.status, 'fail')
    assert.match(mount?.message ?? '', /cannot do DAX: namespace0\.0 is a raw namespace/)
    assert.match(run.stderr, /is not on DAX: the xfs filesystem mounted without DAX/)
    assert.deepEqual(await lab.qemuProcesses(), [])
  })

  test('bad input fails before anything boots', async () => {
    const badFs = await lab.pmemlab(['test', '--fs', 'btrfs'])
    assert.equal(badFs.exitCode, 2)
    assert.match(badFs.stderr, /invalid --fs "btrfs"/)
    const dir = join(scratch, 'bad-suite')
    await mkdir(dir)
    await writeFile(join(dir, 'pmemlab-suite.yaml'), 'tests: [missing.sh]\n')
    const badSuite = await lab.pmemlab(['test', '--suite', dir])
    assert.equal(badSuite.exitCode, 2)
    assert.match(badSuite.stderr, /test missing.sh is not a file in/)
    assert.equal(badSuite.stderr.trim().split('\n').length, 1, badSuite.stderr)
    assert.deepEqual(await lab.vmDirs(), [])
  })

  test('a lab that cannot start exits 6, and the JUnit file says so too', async () => {
    const junitFile = join(scratch, 'boot.xml')
    const run = await lab.pmemlab(['test', '--kernel', 'distro', '--boot-timeout', '1', '--json', '--junit', junitFile])
    assert.equal(run.exitCode, 6, tail(run.stderr))
    const report = JSON.parse(run.stdout) as JsonReport & {error?: string}
    assert.equal(report.ok, false)
    assert.match(report.error ?? '', /failed to boot: the guest agent did not answer within 1 s/)
    const cases = junitCases(await readFile(junitFile, 'utf8'))
    assert.deepEqual(
      cases.filter((c) => c.outcome !== 'pass').map((c) => [c.classname, c.name, c.outcome]),
      [['builtin.lab', 'boot', 'error']],
    )
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
  })
})

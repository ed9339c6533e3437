import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {NDCTL} from '../../src/suite/upstream.js'
import {makeLab, ndctlTests, type Lab, type UpstreamReport} from './cli.js'

/**
 * Issue 13: ndctl's own tests, built into the image from Debian's ndctl source, run in a lab on
 * the distro kernel (the built kernel's run is in pmem-kernels.test.ts). Every test of the subset
 * must pass here: a failure is a real regression of ndctl, the kernel or the lab.
 */

describe('pmemlab test --suite ndctl', {timeout: 1_800_000}, () => {
  let lab: Lab
  let scratch: string
  before(async () => {
    lab = await makeLab()
    scratch = await mkdtemp(join(tmpdir(), 'pmemlab-ndctl-'))
  })
  after(async () => {
    await lab.pmemlab(['down', '--all', '--timeout', '5'])
    await lab.dispose()
    await rm(scratch, {recursive: true, force: true})
  })

  test('ndctl\'s tests pass on the distro kernel, in the lab chosen for them, reported in JSON and JUnit', async () => {
    const junitFile = join(scratch, 'ndctl.xml')
    const run = await lab.pmemlab(['test', '--suite', 'ndctl', '--kernel', 'distro', '--json', '--junit', junitFile], {timeout: 1_500_000})
    const report = JSON.parse(run.stdout) as UpstreamReport
    const {tests, notPassed} = ndctlTests(report)
    assert.match(run.stderr, /the lab for ndctl is --memmap 4G --nvdimm 8G,labels --mem 2G/)
    assert.deepEqual(tests.map((t) => t.name), NDCTL.tests.map((t) => t.name), 'every test of the subset ran, in order')
    assert.equal(notPassed, '')
    assert.equal(run.exitCode, 0, run.stderr.split('\n').slice(-30).join('\n'))
    assert.equal(report.suites.find((s) => s.name === 'ndctl')?.kind, 'upstream')
    assert.deepEqual([report.summary.total, report.summary.passed, report.summary.skipped], [NDCTL.tests.length, NDCTL.tests.length, 0])
    const junit = await readFile(junitFile, 'utf8')
    for (const t of NDCTL.tests) assert.match(junit, new RegExp(`<testcase name="${t.name.replaceAll('.', '\\.')}" classname="ndctl\\.(memmap|nvdimm)"`), t.name)
  })

  test('without a labelled NVDIMM the NVDIMM tests skip, naming the flag; --fail-on-skip makes that a failure', async () => {
    const args = ['test', '--suite', 'ndctl', '--kernel', 'distro', '--memmap', '256M', '--nvdimm', '512M', '--filter', 'ndctl/nvdimm/*', '--json']
    const run = await lab.pmemlab(args)
    assert.equal(run.exitCode, 0, run.stderr.split('\n').slice(-20).join('\n'))
    const report = JSON.parse(run.stdout) as UpstreamReport
    const {tests} = ndctlTests(report)
    assert.deepEqual(tests.map((t) => t.group), ['nvdimm', 'nvdimm', 'nvdimm', 'nvdimm'])
    for (const t of tests) {
      assert.equal(t.status, 'skip', t.id)
      assert.match(t.message ?? '', /needs an NVDIMM with a label area \(--nvdimm SIZE,labels\)/)
    }
    assert.equal(report.summary.skipped, 4)

    const strict = await lab.pmemlab([...args, '--fail-on-skip'])
    assert.equal(strict.exitCode, 1, strict.stderr.split('\n').slice(-20).join('\n'))
    assert.equal((JSON.parse(strict.stdout) as UpstreamReport).ok, false)
  })
})

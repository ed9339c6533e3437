import assert from 'node:assert/strict'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {DEFAULT_MEM} from '../../src/lab/request.js'
import {countResults, runFailed, type SuiteResult} from '../../src/suite/results.js'
import {isNamedSuite, UPSTREAM_SUITE_NAMES} from '../../src/suite/names.js'
import {checkUpstreamSpecs, missingFeature, NDCTL, planUpstream, skipReason, UPSTREAM_SUITES, upstreamCommand, upstreamTopology} from '../../src/suite/upstream.js'

const MEMMAP = {kind: 'memmap' as const}
const NVDIMM = {kind: 'nvdimm' as const}
const LABELLED = {kind: 'nvdimm' as const, labelBytes: 128 * 1024}

test('ndctl tests run where their device is, and say which flag gives it where it is not', () => {
  const all = planUpstream(NDCTL, [MEMMAP, LABELLED], [])
  assert.deepEqual(all.map((p) => p.test.name), NDCTL.tests.map((t) => t.name), 'all of them, in meson.build order')
  assert.ok(all.every((p) => p.skip === undefined))
  // A label-less NVDIMM cannot hold the named namespaces the NVDIMM tests create.
  const labelless = planUpstream(NDCTL, [MEMMAP, NVDIMM], [])
  const nvdimmTests = labelless.filter((p) => p.group === 'nvdimm')
  assert.ok(nvdimmTests.length >= 4)
  for (const p of nvdimmTests) assert.match(p.skip ?? '', /--nvdimm SIZE,labels/)
  assert.ok(labelless.filter((p) => p.group === 'memmap').every((p) => p.skip === undefined))
  const noMemmap = planUpstream(NDCTL, [LABELLED], [])
  assert.ok(noMemmap.filter((p) => p.group === 'memmap').every((p) => /--memmap SIZE/.test(p.skip ?? '')))
})

test('tests that need trace events or device-mapper skip on a kernel without them, naming the fragment', () => {
  const test = (name: string) => NDCTL.tests.find((t) => t.name === name)!
  const all = new Set(['fs_dax trace events', 'device-mapper', 'memory-failure'])
  for (const t of NDCTL.tests) assert.equal(missingFeature(t, all), undefined, t.name)
  assert.match(missingFeature(test('dax-ext4.sh'), new Set(['device-mapper'])) ?? '', /no fs_dax trace events \(CONFIG_FTRACE, CONFIG_EVENT_TRACING\): build it with pmemlab kernel build --config ndctl/)
  assert.match(missingFeature(test('dm.sh'), new Set()) ?? '', /no device-mapper \(CONFIG_BLK_DEV_DM\)/)
  assert.match(missingFeature(test('device-dax'), new Set()) ?? '', /cannot soft-offline pages \(CONFIG_MEMORY_FAILURE\)/)
  assert.equal(missingFeature(test('align.sh'), new Set()), undefined)
})

test('--filter selects ndctl tests by suite/group/name', () => {
  assert.deepEqual(planUpstream(NDCTL, [MEMMAP, LABELLED], ['ndctl/memmap/dax-*']).map((p) => p.test.name), ['dax-dev', 'dax-ext4.sh', 'dax-xfs.sh'])
  assert.deepEqual(planUpstream(NDCTL, [MEMMAP, LABELLED], ['ndctl/nvdimm']).map((p) => p.group), ['nvdimm', 'nvdimm', 'nvdimm', 'nvdimm'])
  assert.deepEqual(planUpstream(NDCTL, [MEMMAP, LABELLED], ['builtin/*']), [])
})

test('the lab for ndctl is chosen only when the user named no pmem device', () => {
  const none = {machine: 'pc' as const, mem: DEFAULT_MEM, memmap: [], nvdimm: [], virtioPmem: []}
  const chosen = upstreamTopology(none, [NDCTL], DEFAULT_MEM)
  assert.deepEqual([chosen.topology.memmap, chosen.topology.nvdimm, chosen.topology.mem], [['4G'], ['8G,labels'], '2G'])
  assert.equal(chosen.chosen, '--memmap 4G --nvdimm 8G,labels --mem 2G')
  // The user's --mem stays when given.
  assert.equal(upstreamTopology({...none, mem: '4G'}, [NDCTL], DEFAULT_MEM).topology.mem, '4G')
  const mine = {...none, nvdimm: ['1G']}
  assert.deepEqual(upstreamTopology(mine, [NDCTL], DEFAULT_MEM), {topology: mine})
  assert.deepEqual(upstreamTopology(none, [], DEFAULT_MEM), {topology: none})
})

test('each test gets the environment ndctl\'s meson.build gives it, scripts from the source tree', () => {
  const script = upstreamCommand(NDCTL, NDCTL.tests.find((t) => t.name === 'dax-ext4.sh')!)
  assert.deepEqual(script.argv, ['/bin/bash', '/opt/pmemlab/ndctl/src/test/dax-ext4.sh'])
  assert.equal(script.env.NDCTL, '/opt/pmemlab/ndctl/build/ndctl/ndctl')
  assert.equal(script.env.TEST_PATH, '/opt/pmemlab/ndctl/build/test')
  assert.equal(script.env.DATA_PATH, '/opt/pmemlab/ndctl/src/test')
  assert.ok(script.env.PATH.startsWith('/opt/pmemlab/ndctl/bin:'), 'pmemlab\'s journalctl comes first')
  assert.deepEqual(upstreamCommand(NDCTL, NDCTL.tests.find((t) => t.name === 'device-dax')!).argv, ['/opt/pmemlab/ndctl/build/test/device-dax'])
})

test('a skip\'s reason is what the test said, not its bash -x trace or library debug lines', () => {
  assert.equal(skipReason('kernel 6.1.0-57-amd64: missing fio, skipping...\n', '+ exit 77\n'), 'kernel 6.1.0-57-amd64: missing fio, skipping...')
  assert.equal(
    skipReason('attempted: 1 skipped: 1\n', 'libkmod: DEBUG x\n__ndctl_test_skip: explicit skip test_pmem_namespaces:199\nnfit_test unavailable skipping tests\n'),
    'nfit_test unavailable skipping tests',
  )
  assert.equal(skipReason('unable to find empty region\n', '++ exit 77\n'), 'unable to find empty region')
  assert.equal(skipReason('', ''), undefined)
})

test('--fail-on-skip makes a skip fail the run; without it a skip does not', () => {
  const suites: SuiteResult[] = [
    {name: 'ndctl', kind: 'upstream', tests: [
      {id: 'ndctl/memmap/dax-dev', suite: 'ndctl', group: 'memmap', name: 'dax-dev', status: 'pass', durationMs: 1},
      {id: 'ndctl/nvdimm/align.sh', suite: 'ndctl', group: 'nvdimm', name: 'align.sh', status: 'skip', durationMs: 1, message: 'x'},
    ]},
  ]
  assert.equal(countResults(suites.flatMap((s) => s.tests)).skipped, 1)
  assert.equal(runFailed({suites, findings: []}), false)
  assert.equal(runFailed({suites, findings: []}, {failOnSkip: true}), true)
})

test('the names the matrix schema knows are the upstream suites; ./ndctl is a directory', () => {
  assert.deepEqual([...UPSTREAM_SUITE_NAMES], UPSTREAM_SUITES.map((s) => s.name))
  assert.deepEqual(['builtin', 'ndctl', './ndctl', 'tests'].map(isNamedSuite), [true, true, false, false])
})

test('an upstream suite named twice is refused', () => {
  assert.deepEqual(checkUpstreamSpecs(['builtin', 'ndctl', './ndctl']).map((s) => s.name), ['ndctl'])
  assert.throws(() => checkUpstreamSpecs(['ndctl', 'ndctl']), (error: unknown) => error instanceof PmemlabError && error.exitCode === 2 && /given twice/.test(error.message))
})

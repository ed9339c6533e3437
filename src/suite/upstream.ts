/**
 * Upstream suites (`--suite ndctl`): a project's own tests, built into the guest image by its
 * recipe (images/debian-12: build.upstream) and run in the lab as that project's developers run
 * them, each as one test with its exit status (0 passes, 77 skips). pmemlab prepares nothing
 * for them: they make and destroy their own namespaces, so they get the devices as booted.
 *
 * Without nfit_test (a kernel module built only from a kernel tree), ndctl's tests that can run
 * are the ones that look for a memmap range (provider e820) or for a QEMU NVDIMM with a label
 * area (provider ACPI.NFIT); the others skip themselves, and are not listed here.
 */
import {usageError} from '../core/errors.js'
import type {TopologyFlags} from '../lab/request.js'
import type {VmDevice} from '../lab/state.js'
import {selected, testId} from './results.js'
import {exitVerdict, stepLine, tail, type TestRun} from './testrun.js'

/** What an upstream test needs from the lab. */
export type UpstreamNeed = 'memmap' | 'nvdimm-labels'

export interface UpstreamTest {
  /** The name upstream gives it (ndctl's test/meson.build). */
  name: string
  /** A script in ROOT/src/test, or a program in ROOT/build/test. */
  kind: 'script' | 'program'
  needs: UpstreamNeed
  /** What the kernel must have, probed in the guest before the tests run. */
  requires?: KernelFeature[]
}

/** Kernel features some upstream tests use, which pmemlab's default kernel config leaves out. */
export type KernelFeature = 'fs_dax trace events' | 'device-mapper' | 'memory-failure'

/**
 * A guest shell script printing the name of each feature the running kernel has. tracefs is
 * mounted first where it is not (pmemlab-init does not mount it); dm_mod loads on demand.
 */
export const FEATURE_PROBE = [
  't=/sys/kernel/tracing',
  '[ -d $t/events ] || mount -t tracefs tracefs $t 2>/dev/null',
  '[ -d $t/events/fs_dax ] && echo "fs_dax trace events"',
  'grep -qw device-mapper /proc/misc || modprobe dm_mod 2>/dev/null',
  'grep -qw device-mapper /proc/misc && echo device-mapper',
  '[ -e /sys/devices/system/memory/soft_offline_page ] && echo memory-failure',
  'true',
].join('\n')

const FEATURE_FIX: Record<KernelFeature, string> = {
  'fs_dax trace events': 'the kernel has no fs_dax trace events (CONFIG_FTRACE, CONFIG_EVENT_TRACING)',
  'device-mapper': 'the kernel has no device-mapper (CONFIG_BLK_DEV_DM)',
  'memory-failure': 'the kernel cannot soft-offline pages (CONFIG_MEMORY_FAILURE)',
}

/** Why a test cannot run on a kernel with FEATURES, or nothing. */
export function missingFeature(test: UpstreamTest, features: ReadonlySet<string>): string | undefined {
  const missing = (test.requires ?? []).filter((feature) => !features.has(feature))
  return missing.length > 0 ? `${missing.map((f) => FEATURE_FIX[f]).join('; ')}: build it with pmemlab kernel build --config ndctl` : undefined
}

export interface UpstreamSuite {
  name: string
  /** Where the recipe built it in the image. */
  root: string
  /** A program that is there when the image has the suite. */
  probe: string
  tests: UpstreamTest[]
  /** The lab it is meant for, used when the user names no pmem device. */
  lab: {memmap: string[]; nvdimm: string[]; mem: string}
  /** Upstream's own per-test timeout: the TCG guest gets at least that. */
  timeoutSec: number
}

const NDCTL_ROOT = '/opt/pmemlab/ndctl'

/**
 * ndctl's tests in the order its meson.build runs them (they share the devices: each leaves
 * them as a later one expects). The NVDIMM tests create namespaces of up to 4 GiB (daxctl-devices)
 * and 2 GiB at 1 GiB alignment (align.sh); dax.sh fallocates 1 GiB on the memmap range,
 * device-dax writes 2 GiB there at 1 GiB alignment (which a 2 GiB range cannot hold: measured,
 * "failed data setup"), and mmap.sh maps a 1 GiB file privately, which needs that much guest RAM.
 */
export const NDCTL: UpstreamSuite = {
  name: 'ndctl',
  root: NDCTL_ROOT,
  probe: `${NDCTL_ROOT}/build/ndctl/ndctl`,
  tests: [
    {name: 'sub-section.sh', kind: 'script', needs: 'nvdimm-labels'},
    {name: 'dax-dev', kind: 'program', needs: 'memmap'},
    {name: 'dax-ext4.sh', kind: 'script', needs: 'memmap', requires: ['fs_dax trace events']},
    {name: 'dax-xfs.sh', kind: 'script', needs: 'memmap', requires: ['fs_dax trace events']},
    {name: 'align.sh', kind: 'script', needs: 'nvdimm-labels'},
    {name: 'device-dax', kind: 'program', needs: 'memmap', requires: ['memory-failure']},
    {name: 'daxctl-devices.sh', kind: 'script', needs: 'nvdimm-labels'},
    {name: 'dm.sh', kind: 'script', needs: 'nvdimm-labels', requires: ['device-mapper']},
    {name: 'mmap.sh', kind: 'script', needs: 'memmap'},
  ],
  lab: {memmap: ['4G'], nvdimm: ['8G,labels'], mem: '2G'},
  timeoutSec: 600,
}

export const UPSTREAM_SUITES: readonly UpstreamSuite[] = [NDCTL]

/** The upstream suite a --suite value names ("ndctl"), if it names one; a directory is ./ndctl. */
export const upstreamSuiteNamed = (spec: string) => UPSTREAM_SUITES.find((suite) => suite.name === spec)

const GROUP: Record<UpstreamNeed, string> = {memmap: 'memmap', 'nvdimm-labels': 'nvdimm'}

/** Why the lab cannot run a test, or nothing when it can. */
export function missingDevice(need: UpstreamNeed, devices: readonly Pick<VmDevice, 'kind' | 'labelBytes'>[]): string | undefined {
  if (need === 'memmap') return devices.some((d) => d.kind === 'memmap') ? undefined : 'needs a memmap range (--memmap SIZE): ndctl looks for an e820 namespace'
  return devices.some((d) => d.kind === 'nvdimm' && (d.labelBytes ?? 0) > 0)
    ? undefined
    : 'needs an NVDIMM with a label area (--nvdimm SIZE,labels): ndctl creates named namespaces on it'
}

/** The tests of SUITE to run (--filter), each with why it must skip in this lab, if it must. */
export function planUpstream(suite: UpstreamSuite, devices: readonly Pick<VmDevice, 'kind' | 'labelBytes'>[], filters: readonly string[]): Array<{test: UpstreamTest; group: string; skip?: string}> {
  return suite.tests
    .map((test) => ({test, group: GROUP[test.needs], skip: missingDevice(test.needs, devices)}))
    .filter(({test, group}) => selected(testId(suite.name, group, test.name), filters))
}

/**
 * The lab for a run: the user's devices when they named any, else the one the upstream suites
 * need (with more RAM when --mem was left at its default), said on stderr by the caller.
 */
export function upstreamTopology(topology: TopologyFlags, suites: readonly UpstreamSuite[], defaultMem: string): {topology: TopologyFlags; chosen?: string} {
  const named = topology.memmap.length + topology.nvdimm.length + topology.virtioPmem.length > 0
  if (named || suites.length === 0) return {topology}
  const memmap = [...new Set(suites.flatMap((s) => s.lab.memmap))]
  const nvdimm = [...new Set(suites.flatMap((s) => s.lab.nvdimm))]
  const mem = topology.mem === defaultMem ? suites.map((s) => s.lab.mem).sort().at(-1)! : topology.mem
  const chosen = `--memmap ${memmap.join(' --memmap ')} --nvdimm ${nvdimm.join(' --nvdimm ')} --mem ${mem}`
  return {topology: {...topology, memmap, nvdimm, mem}, chosen}
}

/** The guest argv and environment of one test, as ndctl's meson.build sets them. */
export function upstreamCommand(suite: UpstreamSuite, test: UpstreamTest): {argv: string[]; env: Record<string, string>} {
  const {root} = suite
  const argv = test.kind === 'script' ? ['/bin/bash', `${root}/src/test/${test.name}`] : [`${root}/build/test/${test.name}`]
  return {
    argv,
    env: {
      // bin/ holds pmemlab's journalctl for the tests' check_dmesg (the guest has no systemd).
      PATH: `${root}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      NDCTL: `${root}/build/ndctl/ndctl`,
      DAXCTL: `${root}/build/daxctl/daxctl`,
      CXL: `${root}/build/cxl/cxl`,
      TEST_PATH: `${root}/build/test`,
      DATA_PATH: `${root}/src/test`,
    },
  }
}

/** Lines that say nothing about why a test stopped: bash -x traces, the libraries' debug log, ndctl's JSON. */
const NOISE = /^(\++ |lib(ndctl|daxctl|cxl|kmod): |\s*[[\]{}"]|\s*$)/

/**
 * Why a test skipped itself, from its output: ndctl's do_skip ("kernel 6.1.0: missing fio,
 * skipping...") or a library's explicit skip, else the last line that is not a trace.
 */
export function skipReason(stdout: string, stderr: string): string | undefined {
  const lines = `${stdout}\n${stderr}`.split('\n').filter((line) => line.trim() && !NOISE.test(line))
  return lines.filter((line) => /skip|unavailable|not supported|unable to/i.test(line)).at(-1) ?? lines.at(-1)
}

/** Runs SUITE's tests in the lab, one guest command each, from a scratch directory. */
export async function upstreamSuite(testRun: TestRun, suite: UpstreamSuite): Promise<void> {
  const devices = testRun.session?.record.devices ?? []
  const planned = planUpstream(suite, devices, testRun.options.filters)
  if (planned.length === 0) return
  const timeoutSec = Math.max(testRun.options.timeoutSec, suite.timeoutSec)
  const scratch = `/var/tmp/pmemlab-${suite.name}`
  const probe = await probeGuest(testRun, suite, scratch)
  const notBuilt = 'notBuilt' in probe ? probe.notBuilt : undefined
  const features = 'features' in probe ? probe.features : new Set<string>()
  for (const {test, group, skip: noDevice} of planned) {
    const skip = noDevice ?? missingFeature(test, features)
    if (testRun.lost || notBuilt) {
      testRun.record({suite: suite.name, group, name: test.name, status: 'error', durationMs: 0, message: `not run: ${testRun.lost ?? notBuilt}`})
      continue
    }
    if (skip) {
      testRun.record({suite: suite.name, group, name: test.name, status: 'skip', durationMs: 0, message: skip})
      continue
    }
    testRun.current = testId(suite.name, group, test.name)
    stepLine(`${suite.name} ${group}: ${test.name}`)
    const {argv, env} = upstreamCommand(suite, test)
    const run = await testRun.guest(argv, {timeoutSec, env, cwd: scratch, live: false})
    testRun.phases.testsMs += run.elapsedMs
    const verdict = exitVerdict(run, timeoutSec)
    if (verdict.status === 'skip') verdict.message = skipReason(run.stdout, run.stderr) ?? verdict.message
    if (verdict.status === 'fail') verdict.details = [...tail(run.stdout, 8), ...tail(run.stderr, 8)].filter((line) => !NOISE.test(line)).slice(-10)
    testRun.record({suite: suite.name, group, name: test.name, durationMs: run.elapsedMs, ...verdict})
  }
}

/**
 * Whether the image has the suite built (a user's own image may not), and which kernel features
 * the guest has; makes the scratch directory.
 */
async function probeGuest(testRun: TestRun, suite: UpstreamSuite, scratch: string): Promise<{notBuilt: string} | {features: Set<string>}> {
  const built = await testRun.guest(['/bin/sh', '-c', 'test -x "$1" && mkdir -p "$2"', 'probe', suite.probe, scratch], {timeoutSec: 30, live: false})
  if (built.lost) return {notBuilt: built.lost}
  if (built.exitCode !== 0) return {notBuilt: `the image has no ${suite.name} test suite in ${suite.root}: use the debian-12 image, or one whose recipe extends it`}
  const probed = await testRun.guest(['/bin/sh', '-c', FEATURE_PROBE], {timeoutSec: 60, live: false})
  return {features: new Set(probed.stdout.split('\n').filter(Boolean))}
}

/** Refuses a run that names an upstream suite twice. */
export function checkUpstreamSpecs(specs: readonly string[]): UpstreamSuite[] {
  const suites = specs.map(upstreamSuiteNamed).filter((s): s is UpstreamSuite => s !== undefined)
  const twice = suites.find((s, i) => suites.indexOf(s) !== i)
  if (twice) throw usageError(`--suite ${twice.name} is given twice`, 'name each suite once')
  return suites
}

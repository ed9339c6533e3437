/**
 * src/suite/ owns `pmemlab test`: it boots a lab, prepares its persistent memory like a pmem
 * developer would, runs the built-in suite and user suites in the guest while watching its
 * console, and reports the results (results.ts: the report, summary, JSON and TAP; junit.ts: JUnit;
 * tap.ts: reading TAP). This module runs a test run from start to end: testrun.ts holds its state
 * and runs guest commands, console.ts watches the console, devices.ts finds and prepares the
 * guest's devices, and builtin.ts, usersuite.ts and powerloss.ts are the suites.
 */
import {rm} from 'node:fs/promises'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {resolveImage} from '../image/resolve.js'
import {imageSpecText} from '../image/spec.js'
import {builtinSuite} from './builtin.js'
import {inventory} from './devices.js'
import {powerLossCase, useOwnedNvdimmFile} from './powerloss.js'
import {MANIFEST, runFailed, type RunReport, type UserSuite} from './results.js'
import {TestRun, type TestRunOptions} from './testrun.js'
import {loadUserSuite, userSuite} from './usersuite.js'
import {checkUpstreamSpecs, upstreamSuite, upstreamTopology, type UpstreamSuite} from './upstream.js'
import {isNamedSuite} from './names.js'
import {DEFAULT_MEM} from '../lab/request.js'

export type {TestRunOptions} from './testrun.js'

/** How a lab can end a run early: it could not start, the guest died, or QEMU did. */
const LAB_ENDS = new Set<number>([ExitCode.bootFailed, ExitCode.guestDied, ExitCode.qemuDied])

/** Runs `pmemlab test`. User suites are loaded and checked first: bad input fails before anything boots. */
export async function runTests(options: TestRunOptions): Promise<RunReport> {
  const upstreamSuites = checkUpstreamSpecs(options.suites)
  const userSuites: UserSuite[] = []
  for (const spec of options.suites) {
    if (isNamedSuite(spec)) continue
    const suite = await loadUserSuite(spec, options.timeoutSec)
    if (userSuites.some((s) => s.name === suite.name)) throw usageError(`two user suites are named ${suite.name}`, `rename one in its ${MANIFEST}`)
    if (isNamedSuite(suite.name)) throw usageError(`the user suite in ${suite.dir} is named ${suite.name}, like pmemlab's own suite`, `rename it in its ${MANIFEST}`)
    userSuites.push(suite)
  }
  if (options.filesystems.length === 0) throw usageError('no filesystem to test', 'give --fs ext4, xfs or ext4,xfs')
  const lab = upstreamTopology(options.topology, upstreamSuites, DEFAULT_MEM)
  if (lab.chosen) log.info(`no pmem devices named: the lab for ${upstreamSuites.map((s) => s.name).join(' and ')} is ${lab.chosen}`)
  return execute(new TestRun({...options, topology: lab.topology}, userSuites, upstreamSuites), upstreamSuites)
}

async function execute(testRun: TestRun, upstreamSuites: UpstreamSuite[]): Promise<RunReport> {
  let error: PmemlabError | undefined
  let kept: RunReport['kept']
  try {
    if (testRun.powerLoss) await useOwnedNvdimmFile(testRun)
    // Built first (when the cache lacks it), so that the boot time is the boot's alone.
    const imageStarted = Date.now()
    const image = await resolveImage(testRun.options.image, {build: true})
    if (Date.now() - imageStarted > 1000) testRun.phases.imageMs = Date.now() - imageStarted
    log.debug(`image ${image.name} ${image.hash.slice(0, 12)}`)
    try {
      await testRun.boot(testRun.name)
    } catch (bootError) {
      if (!(bootError instanceof PmemlabError) || !LAB_ENDS.has(bootError.exitCode)) throw bootError
      error = bootError
      // CI reads the JUnit and TAP files: they must fail too.
      const suite = [...testRun.suites.keys()][0]
      testRun.record({suite, group: 'lab', name: 'boot', status: 'error', durationMs: 0, message: error.oneLine()})
    }
    if (!error) {
      const devices = await inventory(testRun)
      if (testRun.builtin) await builtinSuite(testRun, devices)
      for (const suite of testRun.userSuites) await userSuite(testRun, suite, devices)
      // They reshape the namespaces as they go: after the suites that use them as booted.
      for (const suite of upstreamSuites) await upstreamSuite(testRun, suite)
      if (testRun.powerLoss) await powerLossCase(testRun, devices)
    }
    kept = await testRun.finish()
    error ??= testRun.death
  } finally {
    if (testRun.session && !kept) await testRun.session.stop(testRun.lost ? 5000 : 20_000).catch(() => undefined)
    if (testRun.ownedDir && !kept) await rm(testRun.ownedDir, {recursive: true, force: true})
  }
  const report: RunReport = {
    ok: false,
    exitCode: 0,
    startedAt: testRun.startedAt,
    durationMs: Date.now() - testRun.started,
    phases: testRun.phases,
    lab: {
      name: testRun.name,
      kernel: testRun.options.kernel,
      image: imageSpecText(testRun.options.image),
      accel: testRun.session?.record.accel,
      filesystems: testRun.options.filesystems,
      devices: (testRun.session?.record.devices ?? []).map((d) => ({...d, file: d.file && d.persistent && !testRun.ownedDir ? d.file : undefined})),
    },
    suites: [...testRun.suites.values()],
    findings: testRun.findings,
    ...(error ? {error: error.oneLine(), errorDetails: [...error.details]} : {}),
    ...(kept ? {kept} : {}),
  }
  report.ok = !runFailed(report, {failOnSkip: testRun.options.failOnSkip})
  report.exitCode = error ? error.exitCode : report.ok ? ExitCode.ok : ExitCode.failure
  return report
}

/**
 * User suites (--suite DIR): directories of executables and scripts, validated before anything
 * boots, copied into the guest and run once per filesystem with the prepared DAX mounts in
 * their environment (PMEMLAB_PMEM_DIR, PMEMLAB_MOUNTS, PMEMLAB_FS). A test's TAP is parsed into
 * subtests; otherwise its exit status counts (77 skips it).
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {basename, join, relative, resolve} from 'node:path'
import {usageError} from '../core/errors.js'
import {humanSize} from '../core/size.js'
import {
  MANIFEST,
  missingNeeds,
  parseManifest,
  planUserSuite,
  roundsFor,
  selected,
  testId,
  type Filesystem,
  type UserSuite,
} from './results.js'
import {deviceName, mountAll, type GuestDevice, type Mount} from './devices.js'
import {exitVerdict, stepLine, tail, type TestRun} from './testrun.js'

const GUEST_SUITES = '/opt/pmemlab-suites'

/** Loads and validates the user suites before anything boots: bad input fails fast (exit 2). */
export async function loadUserSuite(dir: string, defaultTimeoutSec: number): Promise<UserSuite> {
  const abs = resolve(dir)
  const info = await stat(abs).catch(() => undefined)
  if (!info?.isDirectory()) throw usageError(`--suite ${dir}: not a directory`, 'give "builtin" or a directory of test scripts')
  const files: Array<{path: string; mode: number}> = []
  let total = 0
  const walk = async (sub: string): Promise<void> => {
    for (const entry of await readdir(join(abs, sub), {withFileTypes: true})) {
      const path = sub ? `${sub}/${entry.name}` : entry.name
      if (entry.isDirectory()) await walk(path)
      else if (entry.isFile()) {
        const s = await stat(join(abs, path))
        total += s.size
        files.push({path, mode: s.mode & 0o777})
      }
    }
  }
  await walk('')
  if (total > 64 * 1024 * 1024) throw usageError(`--suite ${dir} holds ${humanSize(total)}`, 'keep a suite under 64 MiB: it is copied into the guest through the agent')
  const manifestText = await readFile(join(abs, MANIFEST), 'utf8').catch(() => undefined)
  const manifest = manifestText === undefined ? undefined : parseManifest(manifestText, relative(process.cwd(), join(abs, MANIFEST)) || MANIFEST)
  return planUserSuite({dir: abs, dirName: basename(abs), manifest, files, defaultTimeoutSec})
}

/** Copies SUITE into the guest and runs its tests once per filesystem round, with the devices prepared. */
export async function userSuite(testRun: TestRun, suite: UserSuite, devices: GuestDevice[]): Promise<void> {
  const guestDir = `${GUEST_SUITES}/${suite.name}`
  testRun.current = `copy of ${suite.name}`
  const rounds = roundsFor(suite.needs, testRun.options.filesystems)
  const wanted = rounds.flatMap((fs) => suite.tests.filter((t) => (!t.needs.fs || t.needs.fs.includes(fs)) && selected(testId(suite.name, fs, t.name), testRun.options.filters)).map((t) => ({fs, test: t})))
  if (wanted.length === 0) return
  stepLine(`${suite.name}: copying ${suite.files.length} files from ${suite.dir} to ${guestDir}`)
  const copyError = await copySuite(testRun, suite, guestDir)
  const kinds = [...new Set(devices.map((d) => d.kind))]
  for (const fs of rounds) {
    const tests = wanted.filter((w) => w.fs === fs).map((w) => w.test)
    if (tests.length === 0) continue
    stepLine(`${suite.name} ${fs}: preparing ${devices.map(deviceName).join(', ') || 'no devices'}`)
    const started = Date.now()
    const prepared = copyError ? {mounts: [] as Mount[], notReady: copyError} : await mountAll(testRun, suite.name, fs, devices)
    const {mounts} = prepared
    let notReady = prepared.notReady
    testRun.phases.prepareMs += Date.now() - started
    const env: Record<string, string> = {
      PMEMLAB_FS: fs,
      PMEMLAB_MOUNTS: mounts.map((m) => m.dir).join(' '),
      PMEMLAB_PMEM_DIR: mounts[0]?.dir ?? '',
      PMEMLAB_SUITE_DIR: guestDir,
      ...Object.fromEntries(mounts.map((m) => [`PMEMLAB_PMEM_DIR_${deviceName(m.device).toUpperCase().replaceAll('-', '_')}`, m.dir])),
    }
    if (!notReady && suite.setup) {
      testRun.current = testId(suite.name, fs, 'setup')
      stepLine(`${suite.name} ${fs}: setup ${suite.setup}`)
      const run = await testRun.guest(commandFor(suite, suite.setup, []), {timeoutSec: suite.timeoutSec, env, cwd: guestDir, live: false})
      testRun.phases.prepareMs += run.elapsedMs
      if (run.lost || run.timedOut || run.exitCode !== 0) {
        notReady = run.lost ?? `setup ${suite.setup} ${run.timedOut ? `timed out after ${suite.timeoutSec} s` : `failed with exit status ${run.exitCode}`}${tail(run.stderr, 1).length ? `: ${tail(run.stderr, 1)[0]}` : ''}`
      }
    }
    for (const test of tests) {
      if (notReady || testRun.lost) {
        testRun.record({suite: suite.name, group: fs, name: test.name, status: 'error', durationMs: 0, message: `not run: ${testRun.lost ?? notReady}`})
        continue
      }
      const missing = missingNeeds({...suite.needs, ...test.needs}, kinds)
      if (missing) {
        testRun.record({suite: suite.name, group: fs, name: test.name, status: 'skip', durationMs: 0, message: missing})
        continue
      }
      await userTest(testRun, suite, fs, test, {...env, PMEMLAB_TEST_TIMEOUT: String(test.timeoutSec)}, guestDir)
    }
    if (!testRun.lost) {
      const started2 = Date.now()
      for (const m of mounts) await testRun.guest(['pmemlab-suite', 'unmount', m.dir], {timeoutSec: 60, live: false})
      testRun.phases.prepareMs += Date.now() - started2
    }
  }
}

function commandFor(suite: UserSuite, file: string, args: string[]): string[] {
  const mode = suite.files.find((f) => f.path === file)?.mode ?? 0
  return (mode & 0o111) !== 0 ? [`./${file}`, ...args] : ['/bin/sh', file, ...args]
}

/** Copies the suite's files into the guest; returns why it failed, if it did. */
async function copySuite(testRun: TestRun, suite: UserSuite, guestDir: string): Promise<string | undefined> {
  const started = Date.now()
  try {
    const dirs = [...new Set(suite.files.map((f) => join(guestDir, f.path, '..')))]
    const made = await testRun.session!.agent.run(['/bin/mkdir', '-p', guestDir, ...dirs])
    if (made.exitCode !== 0) return `cannot create ${guestDir} in the guest: ${made.stderr.trim()}`
    for (const file of suite.files) await testRun.session!.writeFile(join(guestDir, file.path), await readFile(join(suite.dir, file.path)), file.mode)
    return undefined
  } catch (error) {
    return (await testRun.alive()) ? `copying the suite into the guest failed: ${(error as Error).message}` : await testRun.loseGuest('while the suite was copied')
  } finally {
    testRun.phases.prepareMs += Date.now() - started
  }
}

async function userTest(testRun: TestRun, suite: UserSuite, fs: Filesystem, test: UserSuite['tests'][number], env: Record<string, string>, cwd: string): Promise<void> {
  testRun.current = testId(suite.name, fs, test.name)
  stepLine(`${suite.name} ${fs}: ${test.name}`)
  const run = await testRun.guest(commandFor(suite, test.run, test.args), {timeoutSec: test.timeoutSec, env, cwd, live: true})
  testRun.phases.testsMs += run.elapsedMs
  testRun.record({suite: suite.name, group: fs, name: test.name, durationMs: run.elapsedMs, ...exitVerdict(run, test.timeoutSec)})
}

import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import {makeLab, root, type Lab} from './cli.js'

/**
 * Issue 11's reproducers on real guests (the distro kernel): a WARNING the script provokes is
 * "reproduced" with its excerpt kept, a script that provokes nothing is "not reproduced", a script
 * that hangs gives no verdict (a timeout, exit 125), a panic is a fact the runs go on after,
 * --runs 3 reports a rate, --until-reproduced stops at the first reproduction, and Ctrl-C stops
 * the VM (exit 130). Every run boots a VM of its own.
 */

interface RunJson {
  run: number
  outcome: string
  reason: string
  excerpt: string[]
  exit?: number
  timedOut: boolean
  guestEnd?: {kind: string; reason: string}
  labError?: string
  lab?: {vm: string; accel: string; qemuArgv: string[]; kernelCmdline: string}
  files: Record<string, string>
}
interface ReproJson {
  format: string
  outcome: string
  rate: string
  exitCode: number
  runs: number
  reproduced: number
  stopped: string
  kernel?: {asked: string; spec: string; from: string; version?: string}
  image?: {name: string; hash: string}
  results: RunJson[]
}

const LAB = 'lab: {nvdimm: [256M], mem: 512M}'

/** Reproduces in run 2 only: a WARNING splat's first line into the kernel log, as a WARN_ON in fs/dax.c prints it. */
const SECOND_RUN = `version: 1
kernel: distro
${LAB}
prepare:
  nvdimm0: {mode: fsdax, mkfs: ext4, mount: /mnt/pmem}
run:
  runs: 3
  script: |
    set -e
    echo "run $PMEMLAB_REPRO_RUN" > /mnt/pmem/marker
    if [ "$PMEMLAB_REPRO_RUN" = 2 ]; then
      printf '<4>WARNING: CPU: 0 PID: %s at fs/dax.c:7 pmemlab_repro_e2e+0x0/0x10\\n' "$$" > /dev/kmsg
    fi
    cat /mnt/pmem/marker
expect:
  must: [warning]
  timeout: 60
`

const QUIET = `version: 1
kernel: ./no-such-bzImage
${LAB}
run: 'echo nothing to see; exit 0'
expect: {must: [warning], exit: 0, timeout: 60}
`

const HANG = (timeout: number) => `version: 1
${LAB}
run: sleep 900
expect: {must: [warning], timeout: ${timeout}}
`

const PANIC = `version: 1
${LAB}
run: {runs: 2, script: 'echo c > /proc/sysrq-trigger'}
expect: {must: [panic], timeout: 60}
`

const tail = (text: string) => text.trimEnd().split('\n').slice(-40).join('\n')

describe('pmemlab repro', {timeout: 1_800_000}, () => {
  let lab: Lab
  let dir: string

  before(async () => {
    lab = await makeLab()
    dir = await mkdtemp(join(tmpdir(), 'pmemlab-repro-'))
    for (const [name, text] of [['second-run.yaml', SECOND_RUN], ['quiet.yaml', QUIET], ['hang.yaml', HANG(5)], ['hang-long.yaml', HANG(300)], ['panic.yaml', PANIC]]) await writeFile(join(dir, name), text)
    // Warm the image cache, so that no run's time is the image build's.
    const built = await lab.pmemlab(['image', 'build', 'debian-12'])
    assert.equal(built.exitCode, 0, built.stderr)
  })
  after(async () => {
    await lab.dispose()
    await rm(dir, {recursive: true, force: true})
  })

  /** Runs pmemlab repro ARGS --json into OUTPUT and reads repro.json, which must be what stdout printed. */
  async function repro(args: string[], output: string) {
    const run = await lab.pmemlab(['repro', ...args, '--output', output, '--json'])
    const doc = JSON.parse(run.stdout) as ReproJson
    assert.deepEqual(JSON.parse(await readFile(join(output, 'repro.json'), 'utf8')), doc)
    for (const result of doc.results) assert.deepEqual(JSON.parse(await readFile(join(output, result.files.record), 'utf8')), result)
    return {run, doc}
  }

  async function nothingLeft(): Promise<void> {
    assert.deepEqual(await lab.qemuProcesses(), [])
    assert.deepEqual(await lab.vmDirs(), [])
  }

  test('the example: a WARNING the script provokes is reproduced, with the excerpt and every artifact kept', async () => {
    const example = join(root, 'examples', 'repro', 'warning-sysrq.yaml')
    const output = join(dir, 'example')
    const {run, doc} = await repro([example, '--runs', '1'], output)
    assert.equal(run.exitCode, 1, tail(run.stderr))
    assert.deepEqual([doc.format, doc.outcome, doc.rate, doc.exitCode, doc.stopped], ['pmemlab-repro', 'reproduced', 'reproduced 1/1', 1, 'done'])
    const [first] = doc.results
    assert.equal(first.outcome, 'reproduced')
    assert.match(first.reason, /^warning: WARNING: CPU: 0 PID: \d+ at fs\/dax\.c:1 pmemlab_repro_example\+0x0\/0x10; \/sysrq \?: Show Blocked State\/i matched "sysrq: Show Blocked State"; the script exited 0$/i)
    assert.ok(first.excerpt.some((l) => /WARNING: CPU: 0 PID: \d+ at fs\/dax\.c:1 pmemlab_repro_example/.test(l)), first.excerpt.join('\n'))
    assert.equal(first.exit, 0)
    assert.match(doc.kernel?.version ?? '', /^\d+\.\d+/)
    assert.deepEqual([doc.kernel?.asked, doc.kernel?.from, doc.image?.name], ['distro', 'file', 'debian-12'])
    assert.match(first.lab?.qemuArgv[0] ?? '', /qemu-system-x86_64$/)
    assert.match(first.lab?.kernelCmdline ?? '', /console=ttyS0/)
    // The artifacts a bundle will take: the console from boot to stop, the script's output, JUnit, the file.
    const consoleLog = await readFile(join(output, first.files.console), 'utf8')
    assert.match(consoleLog, /Linux version/)
    assert.match(consoleLog, /pmemlab-repro: run 1 \(\w+\): the script starts/)
    assert.match(await readFile(join(output, first.files.stdout), 'utf8'), /^ok \d+ /m, 'pmemlab-dax-check\'s TAP')
    assert.equal(await readFile(join(output, 'reproducer.yaml'), 'utf8'), await readFile(example, 'utf8'))
    const junit = await readFile(join(output, 'junit.xml'), 'utf8')
    assert.match(junit, /<testcase name="run 1" classname="repro.warning-sysrq" time="[\d.]+">\s*<failure message="warning: WARNING: CPU: 0 PID: \d+ at fs\/dax.c:1 [^"]*" type="reproduced"/)
    assert.match(run.stderr, /^pmemlab: run 1\/1: reproduced: warning: WARNING: CPU: 0 PID: \d+ at fs\/dax\.c:1 /m)
    assert.match(run.stderr, /^ {4}\| .*WARNING: CPU: 0 PID: \d+ at fs\/dax\.c:1/m, 'the excerpt under the progress line')
    await nothingLeft()
  })

  test('the LAB-NOTES trap example: XFS on a raw NVDIMM namespace mounts without DAX, reproduced from the kernel\'s own words', async () => {
    const output = join(dir, 'trap')
    const {run, doc} = await repro([join(root, 'examples', 'repro', 'xfs-raw-namespace-no-dax.yaml')], output)
    assert.equal(run.exitCode, 1, tail(run.stderr))
    assert.deepEqual([doc.outcome, doc.rate], ['reproduced', 'reproduced 1/1'])
    const [first] = doc.results
    assert.match(first.reason, /matched "XFS \(pmem\d+\): DAX unsupported by block device\. Turning off DAX\."; the script exited 0$/)
    const out = await readFile(join(output, first.files.stdout), 'utf8')
    assert.match(out, /"mode":"raw"/, 'the namespace booted raw')
    assert.match(out, / \/mnt\/pmem .* - xfs \S+ rw,.*dax=never/, 'mounted, DAX turned off')
    assert.match(out, /^ok \d+ - statx does not report STATX_ATTR_DAX/m)
    await nothingLeft()
  })

  test('a script that provokes nothing is not reproduced (exit 0); --kernel overrides the file\'s kernel', async () => {
    const output = join(dir, 'quiet')
    const {run, doc} = await repro([join(dir, 'quiet.yaml'), '--kernel', 'distro'], output)
    assert.equal(run.exitCode, 0, tail(run.stderr))
    assert.deepEqual([doc.outcome, doc.rate, doc.exitCode], ['not reproduced', 'not reproduced 0/1', 0])
    assert.deepEqual([doc.kernel?.asked, doc.kernel?.from], ['distro', 'flag'])
    assert.equal(doc.results[0].reason, 'no warning on the console (the script exited 0)')
    assert.equal(await readFile(join(output, doc.results[0].files.stdout), 'utf8'), 'nothing to see\n')
    assert.match(await readFile(join(output, 'junit.xml'), 'utf8'), /<testcase name="run 1" classname="repro.quiet" time="[\d.]+">\s*<system-out>/)
    // Without --json: the rate alone on stdout.
    const plain = await lab.pmemlab(['repro', join(dir, 'quiet.yaml'), '--kernel', 'distro', '--output', join(dir, 'quiet-plain')])
    assert.equal(plain.exitCode, 0, tail(plain.stderr))
    assert.equal(plain.stdout, 'not reproduced 0/1', 'one line (execa drops its newline)')
    await nothingLeft()
  })

  test('a script that hangs gives no verdict: the run is an error with its timeout (exit 125)', async () => {
    const started = Date.now()
    const {run, doc} = await repro([join(dir, 'hang.yaml')], join(dir, 'hang'))
    assert.equal(run.exitCode, 125, tail(run.stderr))
    assert.deepEqual([doc.outcome, doc.rate, doc.exitCode], ['error', 'error 0/1 (1 error)', 125])
    assert.equal(doc.results[0].reason, 'the run hung: the script ran past its 5 s timeout, and expect does not name hang')
    assert.equal(doc.results[0].timedOut, true)
    assert.ok(Date.now() - started < 300_000, 'the timeout stopped the script, not the 900 s sleep')
    await nothingLeft()
  })

  test('a guest panic is a fact of the run, and the runs go on after it', async () => {
    const {run, doc} = await repro([join(dir, 'panic.yaml')], join(dir, 'panic'))
    assert.equal(run.exitCode, 1, tail(run.stderr))
    assert.deepEqual([doc.outcome, doc.rate], ['reproduced', 'reproduced 2/2'])
    for (const result of doc.results) {
      assert.equal(result.guestEnd?.kind, 'panic')
      assert.match(result.reason, /^panic: Kernel panic - not syncing: sysrq triggered crash/)
      assert.ok(result.excerpt.some((l) => l.includes('sysrq triggered crash')), result.excerpt.join('\n'))
    }
    await nothingLeft()
  })

  test('--runs 3 reports the rate; --until-reproduced stops at the first reproduction', async () => {
    const output = join(dir, 'rate')
    const {run, doc} = await repro([join(dir, 'second-run.yaml'), '--runs', '3'], output)
    assert.equal(run.exitCode, 1, tail(run.stderr))
    assert.deepEqual([doc.rate, doc.runs, doc.reproduced], ['reproduced 1/3', 3, 1])
    assert.deepEqual(doc.results.map((r) => r.outcome), ['not reproduced', 'reproduced', 'not reproduced'])
    assert.equal(await readFile(join(output, doc.results[1].files.stdout), 'utf8'), 'run 2\n', 'the script ran on the prepared DAX mount')
    assert.match(run.stderr, /^pmemlab: run 1\/3: not reproduced: no warning on the console \(the script exited 0\)$/m)
    assert.match(run.stderr, /^pmemlab: run 2\/3: reproduced: warning: WARNING: CPU: 0 PID: \d+ at fs\/dax\.c:7 /m)
    assert.equal((await readFile(join(output, 'junit.xml'), 'utf8')).match(/<testcase /g)?.length, 3)
    const until = await repro([join(dir, 'second-run.yaml'), '--until-reproduced', '--runs', '3'], join(dir, 'until'))
    assert.equal(until.run.exitCode, 1, tail(until.run.stderr))
    assert.deepEqual([until.doc.rate, until.doc.stopped], ['reproduced 1/2 (stopped at the first reproduction, of up to 3 runs)', 'reproduced'])
    await nothingLeft()
  })

  test('Ctrl-C stops the VM and exits 130; repro.json says the series was interrupted', async () => {
    const output = join(dir, 'interrupted')
    const child = lab.start(['repro', join(dir, 'hang-long.yaml'), '--runs', '3', '--output', output])
    let stderr = ''
    const scriptRuns = new Promise<void>((resolve) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        if (/lab repro-\w+-1 up in/.test(stderr)) resolve()
      })
    })
    await Promise.race([scriptRuns, child])
    await new Promise((resolve) => setTimeout(resolve, 5000))
    child.kill('SIGINT')
    const result = await child
    assert.equal(result.exitCode, 130, tail(String(result.stderr)))
    assert.match(String(result.stderr), /SIGINT: stopping repro-\w+-1/)
    const doc = JSON.parse(await readFile(join(output, 'repro.json'), 'utf8')) as ReproJson
    assert.deepEqual([doc.stopped, doc.exitCode, doc.runs], ['interrupted', 130, 0])
    await assert.rejects(stat(join(output, 'runs', '1', 'run.json')), 'the interrupted run has no record')
    await nothingLeft()
    const left = await execa('pgrep', ['-af', output], {reject: false})
    assert.deepEqual(left.stdout.split('\n').filter((line) => line && !line.includes('pgrep')), [])
  })

  test('a mistake in the file is one line naming its line, exit 2, before anything boots', async () => {
    const bad = join(dir, 'bad.yaml')
    await writeFile(bad, QUIET.replace('must: [warning]', 'must: [warnign]'))
    const run = await lab.pmemlab(['repro', bad, '--output', join(dir, 'bad')])
    assert.equal(run.exitCode, 2)
    assert.equal(run.stdout, '')
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr)
    assert.match(run.stderr, new RegExp(`^pmemlab: error: ${bad.replaceAll('/', '\\/')}:5:17: expect\\.must\\[0\\]: "warnign" is neither a class nor a regex: did you mean "warning"\\?`))
    await assert.rejects(stat(join(dir, 'bad')))
    await nothingLeft()
  })
})

import assert from 'node:assert/strict'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'
import {devdaxVariable, endMarkerArgv, endMarkerShown, runMarkers, SCRIPT_HOME, SCRIPT_PATH, scriptArgv, scriptConsole, scriptEnv} from '../../src/repro/guest.js'
import {parseRepro} from '../../src/repro/schema.js'
import {judgeRun} from '../../src/repro/verdict.js'

const markers = runMarkers(2, 'a1b2c3')

/** Console lines as the serial port prints them, joined into the log's bytes. */
const log = (...lines: string[]) => Buffer.from(lines.map((l) => `${l}\n`).join(''))

const BOOT = ['[    1.000000] Linux version 6.12.0 (builder@host)', '[    2.000000] EXT4-fs (pmem0): mounted filesystem']
const WARNING = ['[    3.000000] ------------[ cut here ]------------', '[    3.000001] WARNING: CPU: 0 PID: 7 at fs/dax.c:1 dax_insert_entry+0x2a/0x40', '[    3.000002] ---[ end trace 0000000000000000 ]---']
const START = `[    4.000000] ${markers.start}`
const DURING = ['[    5.000000] sysrq: Show Blocked State', '[    5.100000] task:bash state:D stack:0']
const END = `[    6.000000] ${markers.end}`
const AFTER = ['[    7.000000] reboot: Power down']

describe('the commands of a run', () => {
  test('markers differ between runs and series, and name the run', () => {
    assert.notEqual(runMarkers(1, 'a1b2c3').start, runMarkers(2, 'a1b2c3').start)
    assert.notEqual(runMarkers(1, 'a1b2c3').start, runMarkers(1, 'ffffff').start)
    assert.notEqual(markers.start, markers.end)
    assert.match(markers.start, /run 2 \(a1b2c3\)/)
  })

  test('the script runs under bash from HOME, after the start marker, with its own status and output', async () => {
    const argv = scriptArgv(markers)
    assert.deepEqual(argv.slice(0, 2), ['/bin/bash', '-c'])
    assert.deepEqual(argv.slice(3), ['pmemlab-repro', markers.start, SCRIPT_HOME, SCRIPT_PATH])
    // The same snippet on the host, with a file standing in for /dev/kmsg and for the guest's paths.
    await withDir(
      async ({path}) => {
        const kmsg = join(path, 'kmsg')
        const home = join(path, 'home')
        const script = join(path, 'script.sh')
        await mkdir(home)
        await writeFile(kmsg, '')
        await writeFile(script, 'pwd\necho out; echo err >&2\n[[ -n "$BASH_VERSION" ]] && exit 3\n')
        // Appended: each write to /dev/kmsg is a record of its own, where > would truncate a file.
        const snippet = argv[2].replace('>/dev/kmsg', `>>${kmsg}`)
        const run = await execa(argv[0], [argv[1], snippet, argv[3], markers.start, home, script], {reject: false})
        assert.equal(run.exitCode, 3, 'the script\'s status, from bash')
        assert.equal(run.stdout, `${home}\nout`, 'from HOME; the marker is not on its output')
        assert.equal(run.stderr, 'err')
        assert.equal(await readFile(kmsg, 'utf8'), `<5>${markers.start}\n`)
        const end = endMarkerArgv(markers)
        const ended = await execa(end[0], [end[1], end[2].replace('>/dev/kmsg', `>>${kmsg}`), ...end.slice(3)], {reject: false})
        assert.equal(ended.exitCode, 0)
        assert.equal(await readFile(kmsg, 'utf8'), `<5>${markers.start}\n<5>${markers.end}\n`)
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-guest-'},
    )
  })

  test('a HOME that does not exist leaves the script in /', async () => {
    const argv = scriptArgv(markers)
    await withDir(
      async ({path}) => {
        await writeFile(join(path, 's.sh'), 'pwd\n')
        const run = await execa(argv[0], [argv[1], argv[2].replace('/dev/kmsg', join(path, 'kmsg')), argv[3], markers.start, join(path, 'nowhere'), join(path, 's.sh')])
        assert.equal(run.stdout, '/')
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-guest-'},
    )
  })

  test('the environment: HOME, the run, and each devdax device\'s character device', () => {
    const plan = parseRepro(
      ['version: 1', 'lab: {nvdimm: [512M, 512M], virtio-pmem: [256M]}', 'prepare:', '  nvdimm0: {mode: fsdax, mkfs: ext4}', '  nvdimm1: {mode: devdax}', '  virtio-pmem0: {mode: devdax}', 'run: ./t', 'expect: {exit: 0}', ''].join('\n'),
      'r.yaml',
    )
    const outputs = new Map([
      ['nvdimm0', 'ok 1 - mount\n'],
      ['nvdimm1', 'ok 1 - devdax\n# device /dev/dax1.0\n'],
      ['virtio-pmem0', 'not ok 1 - no device\n'],
    ])
    assert.deepEqual(scriptEnv(4, plan.prepare, outputs), {HOME: '/root', PMEMLAB_REPRO_RUN: '4', PMEMLAB_DEVDAX_NVDIMM1: '/dev/dax1.0'})
    assert.equal(devdaxVariable('virtio-pmem0'), 'PMEMLAB_DEVDAX_VIRTIO_PMEM0')
  })
})

describe('the console of the script', () => {
  test('is what lies between the start and end markers', () => {
    const text = log(...BOOT, ...WARNING, START, ...DURING, END, ...AFTER)
    assert.equal(scriptConsole(text, markers, 0), `${DURING.join('\n')}\n`)
    assert.equal(endMarkerShown(text, markers, 0), true)
    assert.equal(endMarkerShown(log(...BOOT, START, ...DURING), markers, 0), false)
  })

  test('a report printed before the start marker does not count, even when it reached the console after the script started', () => {
    // FROM is where the log stood when the script was started: the WARNING came later, but before the marker.
    const before = log(...BOOT)
    const text = log(...BOOT, ...WARNING, START, ...DURING, END)
    assert.equal(scriptConsole(text, markers, before.length), `${DURING.join('\n')}\n`)
    const expect = parseRepro('version: 1\nrun: ./t\nexpect: {must: [warning]}\n', 'r.yaml').expect
    const verdict = judgeRun(expect, {exit: 0, timedOut: false, console: scriptConsole(text, markers, before.length)})
    assert.equal(verdict.outcome, 'not reproduced')
    // The same WARNING after the marker is the script's.
    const during = log(...BOOT, START, ...WARNING, END)
    assert.equal(judgeRun(expect, {exit: 0, timedOut: false, console: scriptConsole(during, markers, before.length)}).outcome, 'reproduced')
  })

  test('without the end marker (the guest died or hung): to the end of the log', () => {
    const panic = ['[    5.000000] Kernel panic - not syncing: sysrq triggered crash', '[    5.000001] Kernel Offset: disabled']
    assert.equal(scriptConsole(log(...BOOT, START, ...panic), markers, 0), `${panic.join('\n')}\n`)
  })

  test('without the start marker (hidden by the log level): from where the log stood, less a line cut there', () => {
    const before = log(...BOOT)
    const text = log(...BOOT, ...DURING, END)
    assert.equal(scriptConsole(text, markers, before.length), `${DURING.join('\n')}\n`, 'at a line\'s start')
    // The log stopped in the middle of the WARNING line: that line began before the script.
    const cut = log(...BOOT, ...WARNING.slice(0, 1)).length + 20
    const withWarning = log(...BOOT, ...WARNING.slice(0, 2), ...DURING)
    assert.equal(scriptConsole(withWarning, markers, cut), `${DURING.join('\n')}\n`)
    assert.equal(scriptConsole(text, markers, text.length + 10), '', 'past the end (a log read short)')
  })

  test('text after a marker of another run, or a marker that only appears in the text before FROM, does not move the start', () => {
    const other = runMarkers(1, 'a1b2c3')
    const early = log(...BOOT, `[    3.5] ${markers.start}`)
    const text = log(...BOOT, `[    3.5] ${markers.start}`, ...WARNING, `[    4.0] ${other.end}`, START, ...DURING)
    assert.equal(scriptConsole(text, markers, early.length), `${DURING.join('\n')}\n`)
  })

  test('keeps characters of several bytes whole', () => {
    const text = log(START, '[    5.0] ext4: file «ä» ✓', END)
    assert.equal(scriptConsole(text, markers, 0), '[    5.0] ext4: file «ä» ✓\n')
  })
})

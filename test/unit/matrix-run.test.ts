import assert from 'node:assert/strict'
import {EventEmitter} from 'node:events'
import {describe, test} from 'node:test'
import {GiB, MiB} from '../../src/core/size.js'
import {cellMemoryBytes, defaultJobs, HOST_RESERVE, QEMU_OVERHEAD} from '../../src/matrix/jobs.js'
import {changeLine, countsText, LiveTable, renderLive, type LiveRow} from '../../src/matrix/live.js'
import {matrixExitCode} from '../../src/matrix/outputs.js'
import {Slots} from '../../src/matrix/slots.js'

const ESC = '\u001B['

describe('jobs: min(cores, (available RAM - reserve) / largest cell, cells), at least 1', () => {
  const cell = cellMemoryBytes({mem: '1G', memmap: ['256M'], nvdimm: ['512M'], virtioPmem: []})

  test("a cell costs its guest RAM with the memmap ranges carved from it, plus QEMU; backing files are not RAM", () => {
    assert.equal(cell, 1 * GiB + 256 * MiB + QEMU_OVERHEAD)
    // The NVDIMM's size changes nothing: its pages are the backing file's page cache.
    assert.equal(cellMemoryBytes({mem: '1G', memmap: ['256M'], nvdimm: ['16G'], virtioPmem: ['8G']}), cell)
    assert.equal(cellMemoryBytes({mem: '2G', memmap: [], nvdimm: ['512M'], virtioPmem: []}), 2 * GiB + QEMU_OVERHEAD)
  })

  test('the cores bound it on a roomy host, the memory on a small one, the cells on a short matrix', () => {
    assert.equal(defaultJobs({cores: 2, availableMemory: 22 * GiB}, [cell, cell, cell, cell]).jobs, 2)
    assert.equal(defaultJobs({cores: 16, availableMemory: HOST_RESERVE + 3 * cell + 1}, Array(10).fill(cell)).jobs, 3)
    assert.equal(defaultJobs({cores: 16, availableMemory: 64 * GiB}, [cell, cell]).jobs, 2)
  })

  test('the largest cell counts for every slot, and a host short of memory still runs one cell at a time', () => {
    const big = cellMemoryBytes({mem: '8G', memmap: [], nvdimm: ['512M'], virtioPmem: []})
    assert.equal(defaultJobs({cores: 8, availableMemory: HOST_RESERVE + 2 * big}, [cell, cell, cell, big]).jobs, 2)
    const starved = defaultJobs({cores: 8, availableMemory: 512 * MiB}, [cell, cell])
    assert.equal(starved.jobs, 1)
    assert.match(starved.why, /^1 at once \(the least of 8 cores, 512 MiB available \/ 1\.6 GiB per cell = 0, 2 cells; at least 1\)$/)
  })

  test('the reason names every figure', () => {
    assert.equal(defaultJobs({cores: 2, availableMemory: 22 * GiB}, [cell, cell, cell]).why, '2 at once (the least of 2 cores, 22 GiB available / 1.6 GiB per cell = 12, 3 cells)')
  })
})

describe('the live table', () => {
  const now = 1_000_000
  const rows: LiveRow[] = [
    {id: 'kernel 6.12', kind: 'kernel', status: 'booted', tone: 'good', note: '6.12.38+deb13-amd64', since: now - 20_000, until: now - 5000},
    {id: '6.12-pm-ext4-builtin', kind: 'cell', status: 'pass', tone: 'good', note: '127 passed', since: now - 5000, until: now - 1000},
    {id: '6.12-pm-xfs-builtin', kind: 'cell', status: 'running', tone: 'active', since: now - 3000},
    {id: '7-pm-ext4-builtin', kind: 'cell', status: 'waiting', tone: 'idle'},
  ]

  test('counts, then one row per kernel and cell: id, status, time, note, in columns', () => {
    assert.deepEqual(renderLive(rows, now, {color: false, columns: 200, maxLines: 40}), [
      '1 of 3 cells done: 1 pass; 1 running',
      '  kernel 6.12           booted   15.0 s  6.12.38+deb13-amd64',
      '  6.12-pm-ext4-builtin  pass      4.0 s  127 passed',
      '  6.12-pm-xfs-builtin   running   3.0 s',
      '  7-pm-ext4-builtin     waiting',
    ])
  })

  test('colour paints the status only and is left out without it (NO_COLOR, a log)', () => {
    const painted = renderLive(rows, now, {color: true, columns: 200, maxLines: 40})
    assert.equal(painted[1], `  kernel 6.12           ${ESC}32mbooted ${ESC}0m  15.0 s  6.12.38+deb13-amd64`)
    assert.ok(painted.slice(1).every((line) => line.includes(ESC)))
    assert.ok(renderLive(rows, now, {color: false, columns: 200, maxLines: 40}).every((line) => !line.includes('\u001B')))
    assert.equal(changeLine(rows[1], now), 'cell 6.12-pm-ext4-builtin pass 4.0 s: 127 passed')
    assert.equal(changeLine(rows[1], now, true), `cell 6.12-pm-ext4-builtin ${ESC}32mpass${ESC}0m 4.0 s: 127 passed`)
    assert.equal(changeLine(rows[2], now), 'cell 6.12-pm-xfs-builtin running')
  })

  test('lines fit the terminal: clipped to its width, and to its height with kernels and running cells kept', () => {
    const narrow = renderLive(rows, now, {color: false, columns: 40, maxLines: 40})
    assert.ok(narrow.every((line) => line.length <= 40), narrow.join('\n'))
    assert.equal(narrow[1], '  kernel 6.12           booted   15.0 s…')
    const many: LiveRow[] = [...rows, ...Array.from({length: 30}, (_, i): LiveRow => ({id: `c${i}`, kind: 'cell', status: 'waiting', tone: 'idle'}))]
    const short = renderLive(many, now, {color: false, columns: 100, maxLines: 8})
    assert.equal(short.length, 7)
    assert.deepEqual(short.slice(1, 5).map((l) => l.trim().split(/\s+/)[0]), ['kernel', '6.12-pm-ext4-builtin', '6.12-pm-xfs-builtin', '7-pm-ext4-builtin'])
    assert.equal(short.at(-1), '  … 29 more')
    assert.equal(countsText(many), '1 of 33 cells done: 1 pass; 1 running')
  })

  /** A stream standing in for stderr: what was written to it. */
  function fakeStream(tty: boolean): NodeJS.WriteStream & {text: () => string} {
    const chunks: string[] = []
    const stream = Object.assign(new EventEmitter(), {
      isTTY: tty,
      columns: 120,
      rows: 30,
      write(chunk: string) {
        chunks.push(chunk)
        return true
      },
      text: () => chunks.join(''),
    })
    return stream as unknown as NodeJS.WriteStream & {text: () => string}
  }

  test('in a log: one line per change of status or note, none for the same state again', () => {
    const stream = fakeStream(false)
    const table = new LiveTable(stream)
    table.start()
    table.set(rows[2])
    table.set({...rows[2], since: now - 1})
    table.set({...rows[2], status: 'pass', tone: 'good', note: '127 passed', until: now})
    table.stop()
    const lines = stream.text().trimEnd().split('\n')
    assert.equal(lines.length, 2)
    assert.equal(lines[0], 'pmemlab: matrix: cell 6.12-pm-xfs-builtin running')
    assert.match(lines[1], /^pmemlab: matrix: cell 6\.12-pm-xfs-builtin pass [\d.]+ s: 127 passed$/)
  })

  test('on a terminal: redrawn in place; what others write goes above the table, an unfinished line below it', () => {
    const saved = process.env.NO_COLOR
    process.env.NO_COLOR = '1'
    try {
      const stream = fakeStream(true)
      const table = new LiveTable(stream)
      table.start()
      table.set(rows[3])
      stream.write('pmemlab: building linux 6.12\n')
      stream.write('\r\u001B[2Kpmemlab: kernel: 120/1400 objects')
      table.set({...rows[3], status: 'running', tone: 'active', since: Date.now()})
      table.stop()
      const text = stream.text()
      // Each redraw first moves up over the lines it drew and clears them.
      assert.ok(text.includes(`${ESC}2A\r${ESC}0J`), JSON.stringify(text))
      const above = text.indexOf('pmemlab: building linux 6.12\n')
      const lastTable = text.lastIndexOf('0 of 1 cells done; 1 running')
      assert.ok(above >= 0 && lastTable > above, JSON.stringify(text))
      // The progress line was shown under the table while it lasted; stop() leaves the table alone.
      assert.ok(text.includes('  7-pm-ext4-builtin  waiting\npmemlab: kernel: 120/1400 objects\n'), JSON.stringify(text))
      assert.ok(text.endsWith('  7-pm-ext4-builtin  running  0.0 s\n'), JSON.stringify(text))
      // Writes go straight to the stream again after stop().
      stream.write('after\n')
      assert.ok(stream.text().endsWith('running  0.0 s\nafter\n'))
    } finally {
      if (saved === undefined) delete process.env.NO_COLOR
      else process.env.NO_COLOR = saved
    }
  })
})

test('exit codes: any fail is 1; else any error (the lab broke, a cell with no result) is 8; pass, flaky and skip are 0', () => {
  assert.equal(matrixExitCode({fail: 0, error: 0}), 0)
  assert.equal(matrixExitCode({fail: 1, error: 3}), 1)
  assert.equal(matrixExitCode({fail: 0, error: 1}), 8)
})

describe('slots', () => {
  const tick = () => new Promise((resolve) => setImmediate(resolve))

  test('at most N tasks at once, lower priority numbers first, then in arrival order', async () => {
    const slots = new Slots(2)
    const started: string[] = []
    let running = 0
    let most = 0
    const release = new Map<string, () => void>()
    const task = (name: string) => () =>
      new Promise<string>((resolve) => {
        started.push(name)
        running++
        most = Math.max(most, running)
        release.set(name, () => {
          running--
          resolve(name)
        })
      })
    const all = [slots.run(1, task('a')), slots.run(1, task('b')), slots.run(1, task('c')), slots.run(1, task('d')), slots.run(0, task('gate'))]
    await tick()
    assert.deepEqual(started, ['a', 'b'])
    release.get('a')!()
    await tick()
    assert.deepEqual(started, ['a', 'b', 'gate'])
    for (const name of ['b', 'gate', 'c', 'd']) {
      await tick()
      release.get(name)!()
    }
    assert.deepEqual(await Promise.all(all), ['a', 'b', 'c', 'd', 'gate'])
    assert.deepEqual(started, ['a', 'b', 'gate', 'c', 'd'])
    assert.equal(most, 2)
    assert.equal(slots.running, 0)
  })

  test('cancel() drops the waiting tasks and refuses new ones; the running ones finish', async () => {
    const slots = new Slots(1)
    let finish!: () => void
    const first = slots.run(0, () => new Promise<string>((resolve) => (finish = () => resolve('first'))))
    const waiting = slots.run(0, async () => 'never')
    await tick()
    slots.cancel()
    assert.equal(await waiting, undefined)
    assert.equal(await slots.run(0, async () => 'late'), undefined)
    finish()
    assert.equal(await first, 'first')
  })
})

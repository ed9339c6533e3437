import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {GiB, MiB} from '../../src/core/size.js'
import {
  FOUR_GIB,
  type Layout,
  type MachineType,
  pcRamSplit,
  planTopology,
  q35RamSplit,
  ramSplit,
  type TopologyRequest,
} from '../../src/lab/topology.js'

const MACHINES: MachineType[] = ['pc', 'q35']

function request(overrides: Partial<TopologyRequest> = {}): TopologyRequest {
  return {machine: 'q35', ramBytes: 1 * GiB, memmap: [], nvdimms: [], virtioPmem: [], ...overrides}
}

/** The invariants every layout must keep, whatever the request. */
function assertSound(layout: Layout, usable: number): void {
  // ramRanges are exactly what QEMU backs for -m totalRamBytes with the pinned max-ram-below-4g.
  const split = ramSplit(layout.machine, layout.totalRamBytes, layout.maxRamBelow4g)
  const expected = [{start: 0, end: split.below4g}]
  if (split.above4g > 0) expected.push({start: FOUR_GIB, end: FOUR_GIB + split.above4g})
  assert.deepEqual(layout.ramRanges, expected)
  // Both machine types split the same way.
  assert.deepEqual(pcRamSplit(layout.totalRamBytes, layout.maxRamBelow4g), q35RamSplit(layout.totalRamBytes, layout.maxRamBelow4g))

  const rangeBytes = layout.memmap.reduce((sum, m) => sum + m.size, 0)
  assert.ok(layout.totalRamBytes - rangeBytes >= usable, 'the guest keeps at least the usable RAM it asked for')
  for (const [i, m] of layout.memmap.entries()) {
    const end = m.start + m.size
    assert.ok(
      layout.ramRanges.some((r) => m.start >= r.start && end <= r.end),
      `memmap ${m.start.toString(16)}+${m.size.toString(16)} lies inside backed RAM`,
    )
    assert.equal(m.start % (128 * MiB), 0, 'range starts are 128 MiB aligned')
    assert.equal(m.size % (2 * MiB), 0)
    assert.ok(m.start >= 128 * MiB)
    for (const other of layout.memmap.slice(i + 1)) {
      assert.ok(end <= other.start || other.start + other.size <= m.start, 'memmap ranges do not overlap')
    }
  }
  assert.equal(layout.kernelArgs.length, layout.memmap.length)
}

/** Asserts a usage refusal whose one-line message contains every fragment. */
function assertRefused(fn: () => unknown, ...fragments: Array<string | RegExp>): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof PmemlabError, `expected a PmemlabError, got ${String(error)}`)
    assert.equal(error.exitCode, ExitCode.usage)
    const line = error.oneLine()
    assert.ok(!line.includes('\n'), 'the message is one line')
    for (const fragment of fragments) {
      if (typeof fragment === 'string') assert.ok(line.includes(fragment), `"${line}" mentions "${fragment}"`)
      else assert.match(line, fragment)
    }
    return true
  })
}

describe('QEMU RAM split (mirrors hw/i386/pc_q35.c pc_q35_init and hw/i386/pc_piix.c pc_init1, 7.2)', () => {
  // Each expectation below was also observed with `info mtree -f` on qemu-system-x86_64 7.2.
  test('q35 without a pin: 2 GiB below 4 GiB from 2.75 GiB of RAM on, everything below otherwise', () => {
    assert.deepEqual(q35RamSplit(3 * GiB), {below4g: 2 * GiB, above4g: 1 * GiB})
    assert.deepEqual(q35RamSplit(2.75 * GiB), {below4g: 2 * GiB, above4g: 0.75 * GiB})
    assert.deepEqual(q35RamSplit(2.5 * GiB), {below4g: 2.5 * GiB, above4g: 0})
    assert.deepEqual(q35RamSplit(2.75 * GiB - 2 * MiB), {below4g: 2.75 * GiB - 2 * MiB, above4g: 0})
  })

  test('pc without a pin: 3.5 GiB limit, gigabyte-aligned to 3 GiB once RAM reaches it', () => {
    assert.deepEqual(pcRamSplit(4 * GiB), {below4g: 3 * GiB, above4g: 1 * GiB})
    assert.deepEqual(pcRamSplit(3.5 * GiB), {below4g: 3 * GiB, above4g: 0.5 * GiB})
    assert.deepEqual(pcRamSplit(3.25 * GiB), {below4g: 3.25 * GiB, above4g: 0})
    assert.deepEqual(pcRamSplit(1 * GiB), {below4g: 1 * GiB, above4g: 0})
  })

  test('max-ram-below-4g caps lowmem on both machines', () => {
    // Examples from the comment in pc_init1
    assert.deepEqual(pcRamSplit(4 * GiB, 2 * GiB), {below4g: 2 * GiB, above4g: 2 * GiB})
    assert.deepEqual(pcRamSplit(3968 * MiB, 4 * GiB), {below4g: 3968 * MiB, above4g: 0})
    // pc still applies the 3 GiB gigabyte alignment to a larger pin
    assert.deepEqual(pcRamSplit(8 * GiB, 4 * GiB), {below4g: 3 * GiB, above4g: 5 * GiB})
    // q35 takes min(its own lowmem, the pin)
    assert.deepEqual(q35RamSplit(8 * GiB, 3 * GiB), {below4g: 2 * GiB, above4g: 6 * GiB})
    assert.deepEqual(q35RamSplit(1280 * MiB, 1 * GiB), {below4g: 1 * GiB, above4g: 256 * MiB})
    assert.deepEqual(pcRamSplit(1280 * MiB, 1 * GiB), {below4g: 1 * GiB, above4g: 256 * MiB})
    // RAM smaller than the pin stays entirely below 4 GiB
    assert.deepEqual(q35RamSplit(512 * MiB, 1 * GiB), {below4g: 512 * MiB, above4g: 0})
    assert.deepEqual(pcRamSplit(512 * MiB, 1 * GiB), {below4g: 512 * MiB, above4g: 0})
  })
})

describe('planTopology: default lab (1 GiB RAM, memmap 256M, NVDIMM 512M)', () => {
  for (const machine of MACHINES) {
    test(`on ${machine}`, () => {
      const layout = planTopology(request({machine, memmap: [{size: 256 * MiB}], nvdimms: [{size: 512 * MiB}]}))
      assertSound(layout, 1 * GiB)
      assert.equal(layout.machine, machine)
      assert.equal(layout.totalRamBytes, 1280 * MiB)
      assert.equal(layout.maxRamBelow4g, 1 * GiB)
      assert.deepEqual(layout.ramRanges, [
        {start: 0, end: 1 * GiB},
        {start: 4 * GiB, end: 4 * GiB + 256 * MiB},
      ])
      assert.deepEqual(layout.memmap, [{start: 4 * GiB, size: 256 * MiB}])
      assert.deepEqual(layout.kernelArgs, ['memmap=256M!4G'])
      assert.deepEqual(layout.nvdimms, [{id: 'nvdimm0', size: 512 * MiB, labelBytes: 0, pmemBytes: 512 * MiB}])
      assert.deepEqual(layout.virtioPmem, [])
      assert.equal(layout.slots, 1)
      assert.equal(layout.maxmemBytes, 1280 * MiB + 512 * MiB)
    })
  }

  test('pc and q35 give the same addresses', () => {
    const base = {memmap: [{size: 256 * MiB}, {size: 1 * GiB}], nvdimms: [{size: 512 * MiB}], virtioPmem: [{size: 256 * MiB}]}
    for (const ramBytes of [256 * MiB, 768 * MiB, 1 * GiB, 1100 * MiB, 1.5 * GiB, 2 * GiB, 3 * GiB, 6 * GiB]) {
      const pc = planTopology(request({...base, machine: 'pc', ramBytes}))
      const q35 = planTopology(request({...base, machine: 'q35', ramBytes}))
      assertSound(pc, ramBytes)
      assertSound(q35, ramBytes)
      assert.deepEqual({...pc, machine: 'q35'}, q35, `same layout for ${ramBytes / MiB}M`)
    }
  })
})

describe('planTopology: placement', () => {
  test('no ranges and no devices: plain RAM, no slots or maxmem', () => {
    const layout = planTopology(request({ramBytes: 2 * GiB}))
    assertSound(layout, 2 * GiB)
    assert.equal(layout.totalRamBytes, 2 * GiB)
    assert.deepEqual(layout.ramRanges, [{start: 0, end: 2 * GiB}])
    assert.equal(layout.slots, 0)
    assert.equal(layout.maxmemBytes, 0)
    assert.deepEqual(layout.kernelArgs, [])
  })

  test('usable RAM beyond 2 GiB goes above 4 GiB first, ranges after it', () => {
    const layout = planTopology(request({ramBytes: 3 * GiB, memmap: [{size: 256 * MiB}, {size: 512 * MiB}]}))
    assertSound(layout, 3 * GiB)
    assert.equal(layout.maxRamBelow4g, 2 * GiB)
    assert.deepEqual(layout.memmap, [
      {start: 5 * GiB, size: 256 * MiB},
      {start: 5 * GiB + 256 * MiB, size: 512 * MiB},
    ])
    assert.deepEqual(layout.kernelArgs, ['memmap=256M!5G', 'memmap=512M!5376M'])
    assert.equal(layout.totalRamBytes, 3 * GiB + 768 * MiB)
  })

  test('ranges start on 128 MiB boundaries; the gap is ordinary RAM counted in -m', () => {
    // 1100M: 1 GiB below 4 GiB (whole GiB pin), 76M above, the range at 4G+128M.
    const layout = planTopology(request({ramBytes: 1100 * MiB, memmap: [{size: 256 * MiB}]}))
    assertSound(layout, 1100 * MiB)
    assert.equal(layout.maxRamBelow4g, 1 * GiB)
    assert.deepEqual(layout.memmap, [{start: 4 * GiB + 128 * MiB, size: 256 * MiB}])
    assert.equal(layout.totalRamBytes, 1 * GiB + 128 * MiB + 256 * MiB)
  })

  test('the low-RAM pin is a whole GiB from 1 GiB on and never above 2 GiB', () => {
    assert.equal(planTopology(request({ramBytes: 512 * MiB})).maxRamBelow4g, 512 * MiB)
    assert.equal(planTopology(request({ramBytes: 1.5 * GiB})).maxRamBelow4g, 1 * GiB)
    assert.equal(planTopology(request({ramBytes: 16 * GiB})).maxRamBelow4g, 2 * GiB)
  })

  test('small RAM: ranges still go above 4 GiB, away from the kernel and initrd', () => {
    const layout = planTopology(request({machine: 'pc', ramBytes: 256 * MiB, memmap: [{size: 1 * GiB}]}))
    assertSound(layout, 256 * MiB)
    assert.deepEqual(layout.ramRanges, [{start: 0, end: 256 * MiB}, {start: 4 * GiB, end: 5 * GiB}])
    assert.deepEqual(layout.memmap, [{start: 4 * GiB, size: 1 * GiB}])
  })

  test('explicit and automatic ranges mix: automatic ones skip explicit ones', () => {
    const layout = planTopology(
      request({ramBytes: 1 * GiB, memmap: [{size: 256 * MiB}, {size: 256 * MiB, offset: 4 * GiB}, {size: 512 * MiB}]}),
    )
    assertSound(layout, 1 * GiB)
    assert.deepEqual(layout.memmap, [
      {start: 4 * GiB, size: 256 * MiB},
      {start: 4 * GiB + 256 * MiB, size: 256 * MiB},
      {start: 4 * GiB + 512 * MiB, size: 512 * MiB},
    ])
    assert.equal(layout.totalRamBytes, 2 * GiB)
    assert.deepEqual(layout.kernelArgs, ['memmap=256M!4G', 'memmap=256M!4352M', 'memmap=512M!4608M'])
  })

  test('an automatic range fills a gap before a later explicit range', () => {
    const layout = planTopology(request({memmap: [{size: 256 * MiB, offset: 4.5 * GiB}, {size: 256 * MiB}, {size: 256 * MiB}]}))
    assertSound(layout, 1 * GiB)
    assert.deepEqual(
      layout.memmap.map((m) => m.start),
      [4 * GiB, 4.25 * GiB, 4.5 * GiB],
    )
    assert.equal(layout.totalRamBytes, 1.75 * GiB)
  })

  test('an explicit range below 4 GiB is accepted inside low RAM, and the usable RAM it displaces moves up', () => {
    const layout = planTopology(request({ramBytes: 2 * GiB, memmap: [{size: 512 * MiB, offset: 512 * MiB}, {size: 256 * MiB}]}))
    assertSound(layout, 2 * GiB)
    assert.deepEqual(layout.memmap, [
      {start: 512 * MiB, size: 512 * MiB},
      {start: 4 * GiB, size: 256 * MiB},
    ])
    assert.deepEqual(layout.ramRanges, [{start: 0, end: 2 * GiB}, {start: 4 * GiB, end: 4 * GiB + 768 * MiB}])
    assert.deepEqual(layout.kernelArgs, ['memmap=512M!512M', 'memmap=256M!4G'])
  })
})

describe('planTopology: NVDIMM and virtio-pmem', () => {
  test('two NVDIMMs and a virtio-pmem device: one slot per NVDIMM, maxmem = RAM + devices', () => {
    const layout = planTopology(
      request({
        memmap: [{size: 256 * MiB}],
        nvdimms: [{size: 512 * MiB, file: '/data/a.img'}, {size: 1 * GiB}],
        virtioPmem: [{size: 512 * MiB, file: '/data/v.img'}],
      }),
    )
    assert.equal(layout.slots, 2)
    assert.equal(layout.maxmemBytes, layout.totalRamBytes + 2 * GiB)
    assert.deepEqual(
      layout.nvdimms.map((d) => [d.id, d.file]),
      [['nvdimm0', '/data/a.img'], ['nvdimm1', undefined]],
    )
    assert.deepEqual(layout.virtioPmem, [{id: 'vpmem0', size: 512 * MiB, file: '/data/v.img'}])
  })

  test('virtio-pmem alone still gets one slot and a maxmem', () => {
    const layout = planTopology(request({virtioPmem: [{size: 256 * MiB}]}))
    assert.equal(layout.slots, 1)
    assert.equal(layout.maxmemBytes, 1 * GiB + 256 * MiB)
  })

  test('a label area is added to the backend, so that the guest still gets SIZE of pmem', () => {
    // QEMU puts the label at the end and aligns the rest down to 2 MiB: 512M + 2M - 128K -> 512M.
    const layout = planTopology(request({nvdimms: [{size: 512 * MiB, labelBytes: 128 * 1024}]}))
    assert.equal(layout.nvdimms[0].labelBytes, 128 * 1024)
    assert.equal(layout.nvdimms[0].size, 514 * MiB)
    assert.equal(layout.nvdimms[0].pmemBytes, 512 * MiB)
    assert.equal(planTopology(request({nvdimms: [{size: 512 * MiB, labelBytes: 4 * MiB}]})).nvdimms[0].size, 516 * MiB)
  })

  test('device sizes must be 2 MiB multiples and non-zero', () => {
    assertRefused(() => planTopology(request({nvdimms: [{size: 511 * MiB}]})), 'NVDIMM #0', 'not a multiple of 2 MiB', 'use 512M')
    assertRefused(() => planTopology(request({virtioPmem: [{size: 100 * MiB + 4096}]})), 'virtio-pmem device #0', 'use 102M')
    assertRefused(() => planTopology(request({nvdimms: [{size: 0}]})), 'NVDIMM #0 size', 'positive')
    assertRefused(() => planTopology(request({virtioPmem: [{size: 0}]})), 'virtio-pmem device #0 size')
  })

  test('labels are per NVDIMM: one labelled and one label-less device side by side', () => {
    const layout = planTopology(request({nvdimms: [{size: 512 * MiB, labelBytes: 128 * 1024}, {size: 512 * MiB}]}))
    assert.deepEqual(
      layout.nvdimms.map((d) => [d.labelBytes, d.pmemBytes]),
      [
        [128 * 1024, 512 * MiB],
        [0, 512 * MiB],
      ],
    )
    assertRefused(() => planTopology(request({virtioPmem: [{size: 512 * MiB, labelBytes: 128 * 1024}]})), 'virtio-pmem #0 cannot have labels', '--nvdimm SIZE,labels')
  })

  test('label sizes QEMU refuses are refused', () => {
    assertRefused(() => planTopology(request({nvdimms: [{size: 512 * MiB, labelBytes: 96 * 1024}]})), '128 KiB')
    assertRefused(() => planTopology(request({nvdimms: [{size: 512 * MiB, labelBytes: 64 * 1024}]})), '128 KiB')
    assertRefused(() => planTopology(request({nvdimms: [{size: 512 * MiB, labelBytes: 130 * 1024}]})), 'not a multiple of 4 KiB', 'use 132K')
  })
})

describe('planTopology: refusals', () => {
  test('an explicit range in the q35 PCI hole', () => {
    assertRefused(
      () => planTopology(request({machine: 'q35', ramBytes: 1 * GiB, memmap: [{size: 256 * MiB, offset: 3 * GiB}]})),
      '256M!3G',
      '[0xc0000000, 0xd0000000)',
      'not inside guest RAM',
      '[0x0, 0x40000000)',
      'omit the offset',
    )
    // Even with plenty of RAM the hole between 2 GiB and 4 GiB is not RAM.
    assertRefused(
      () => planTopology(request({machine: 'q35', ramBytes: 4 * GiB, memmap: [{size: 256 * MiB, offset: 3 * GiB}]})),
      '[0xc0000000, 0xd0000000)',
      '[0x100000000, 0x190000000)',
    )
  })

  test('an explicit range past the end of RAM', () => {
    assertRefused(
      () => planTopology(request({machine: 'pc', memmap: [{size: 256 * MiB, offset: 5 * GiB}]})),
      '256M!5G',
      '[0x140000000, 0x150000000)',
      '[0x100000000, 0x110000000)',
    )
    // Straddling the end of RAM
    assertRefused(
      () => planTopology(request({memmap: [{size: 512 * MiB, offset: 4 * GiB + 128 * MiB}]})),
      '[0x108000000, 0x128000000)',
    )
  })

  test('two explicit ranges that overlap', () => {
    assertRefused(
      () =>
        planTopology(
          request({memmap: [{size: 256 * MiB, offset: 4 * GiB}, {size: 256 * MiB, offset: 4 * GiB + 128 * MiB}]}),
        ),
      'overlaps memmap range 256M!4G',
      '[0x108000000, 0x118000000)',
    )
  })

  test('misaligned offset and size', () => {
    assertRefused(
      () => planTopology(request({memmap: [{size: 256 * MiB, offset: 4 * GiB + 2 * MiB}]})),
      'not a multiple of 128 MiB',
      '0x100200000',
      'use an offset like 4224M',
    )
    assertRefused(() => planTopology(request({memmap: [{size: 255 * MiB}]})), 'memmap range #0 size', 'use 256M')
    assertRefused(() => planTopology(request({memmap: [{size: 256 * MiB + 4096, offset: 4 * GiB}]})), 'use 258M')
  })

  test('ranges over the kernel or the initrd area below 4 GiB', () => {
    assertRefused(() => planTopology(request({memmap: [{size: 64 * MiB, offset: 0}]})), 'first 128 MiB', '[0x0, 0x4000000)')
    assertRefused(
      () => planTopology(request({ramBytes: 1 * GiB, memmap: [{size: 256 * MiB, offset: 640 * MiB}]})),
      'initrd',
      'keep it inside [0x8000000, 0x30000000)',
    )
    assertRefused(() => planTopology(request({ramBytes: 256 * MiB, memmap: [{size: 2 * MiB, offset: 128 * MiB}]})), 'no room below 4 GiB')
    // A range that fits the window is fine.
    assertSound(planTopology(request({ramBytes: 1 * GiB, memmap: [{size: 256 * MiB, offset: 128 * MiB}]})), 1 * GiB)
  })

  test('bad RAM sizes', () => {
    assertRefused(() => planTopology(request({ramBytes: 128 * MiB})), 'too small', '256M')
    assertRefused(() => planTopology(request({ramBytes: 0})), 'positive')
    assertRefused(() => planTopology(request({ramBytes: Number.NaN})), 'positive')
    assertRefused(() => planTopology(request({ramBytes: 1025 * MiB})), 'not a multiple of 2 MiB', 'use 1026M')
  })

  test('an unknown machine type', () => {
    assertRefused(() => planTopology(request({machine: 'virt' as MachineType})), 'virt', 'pc or q35')
  })
})

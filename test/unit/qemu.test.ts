import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ExitCode, PmemlabError} from '../../src/core/errors.js'
import {buildQemuCommand, GUEST_AGENT_PORT, kernelCommandLine, qemuEscape, QUICK_BOOT_ARGS, type QemuSpec} from '../../src/lab/qemu.js'
import {GiB, MiB} from '../../src/core/size.js'
import {type MachineType, planTopology, type TopologyRequest} from '../../src/lab/topology.js'

const RUN = '/run/pmemlab/vms/lab1'

function layoutFor(overrides: Partial<TopologyRequest> = {}) {
  return planTopology({
    machine: 'q35',
    ramBytes: 1 * GiB,
    memmap: [{size: 256 * MiB}],
    nvdimms: [{size: 512 * MiB}],
    virtioPmem: [],
    ...overrides,
  })
}

function spec(overrides: Partial<QemuSpec> = {}): QemuSpec {
  const layout = overrides.layout ?? layoutFor()
  return {
    binary: 'qemu-system-x86_64',
    name: 'lab1',
    accel: 'tcg',
    cpus: 2,
    layout,
    kernel: '/boot/vmlinuz',
    initrd: '/boot/initrd.img',
    kernelArgs: ['root=/dev/vda', 'rw', 'init=/sbin/pmemlab-init'],
    rootDisk: '/cache/images/base.img',
    nvdimmFiles: layout.nvdimms.map((d) => `${RUN}/${d.id}.img`),
    virtioPmemFiles: layout.virtioPmem.map((d) => `${RUN}/${d.id}.img`),
    runDir: RUN,
    consoleLog: `${RUN}/console.log`,
    console: 'socket',
    ...overrides,
  }
}

/** Every value given to `flag`, in order. */
function values(argv: string[], flag: string): string[] {
  const out: string[] = []
  argv.forEach((arg, i) => {
    if (arg === flag) {
      assert.ok(i + 1 < argv.length, `${flag} has a value`)
      out.push(argv[i + 1])
    }
  })
  return out
}

/** The single value of `flag`. */
function value(argv: string[], flag: string): string {
  const all = values(argv, flag)
  assert.equal(all.length, 1, `${flag} given once: ${JSON.stringify(all)}`)
  return all[0]
}

/** An option string's comma-separated parts as a set, with `,,` escapes kept inside their part. */
function parts(option: string): Set<string> {
  return new Set(option.split(/(?<!,),(?!,)/))
}

function assertOption(actual: string, head: string, expected: string[]): void {
  const got = parts(actual)
  assert.equal(actual.split(',')[0], head, `${actual} starts with ${head}`)
  for (const part of expected) assert.ok(got.has(part), `${actual} has ${part}`)
}

describe('buildQemuCommand', () => {
  test('base flags: argv array, no defaults, no display, machine pinned, accel and CPU', () => {
    const cmd = buildQemuCommand(spec())
    assert.equal(cmd.binary, 'qemu-system-x86_64')
    assert.ok(Array.isArray(cmd.argv) && cmd.argv.every((a) => typeof a === 'string' && a.length > 0))
    for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) assert.ok(cmd.argv.includes(flag), flag)
    assert.equal(value(cmd.argv, '-display'), 'none')
    assert.equal(value(cmd.argv, '-vga'), 'none')
    assert.equal(value(cmd.argv, '-name'), 'guest=lab1')
    assertOption(value(cmd.argv, '-machine'), 'q35', ['nvdimm=on', 'max-ram-below-4g=1G'])
    assert.equal(value(cmd.argv, '-accel'), 'tcg')
    assert.equal(value(cmd.argv, '-cpu'), 'max')
    assert.equal(value(cmd.argv, '-smp'), '2')
  })

  test('kvm uses the host CPU', () => {
    const cmd = buildQemuCommand(spec({accel: 'kvm'}))
    assert.equal(value(cmd.argv, '-accel'), 'kvm')
    assert.equal(value(cmd.argv, '-cpu'), 'host')
  })

  for (const machine of ['pc', 'q35'] as MachineType[]) {
    test(`-m and -machine follow the layout on ${machine}`, () => {
      const layout = layoutFor({machine})
      const cmd = buildQemuCommand(spec({layout}))
      assertOption(value(cmd.argv, '-m'), 'size=1280M', ['slots=1', 'maxmem=1792M'])
      assertOption(value(cmd.argv, '-machine'), machine, ['nvdimm=on', 'max-ram-below-4g=1G'])
    })
  }

  test('no devices: no nvdimm=on, no slots, no maxmem', () => {
    const layout = layoutFor({nvdimms: [], memmap: [], ramBytes: 2 * GiB})
    const cmd = buildQemuCommand(spec({layout}))
    assert.equal(value(cmd.argv, '-m'), 'size=2G')
    assert.equal(value(cmd.argv, '-machine'), 'q35,max-ram-below-4g=2G')
    assert.ok(!values(cmd.argv, '-object').length)
    assert.ok(!cmd.argv.some((a) => a.startsWith('nvdimm')))
  })

  test('virtio-pmem only: maxmem and a slot, but no nvdimm=on', () => {
    const layout = layoutFor({nvdimms: [], virtioPmem: [{size: 256 * MiB}]})
    const cmd = buildQemuCommand(spec({layout}))
    assertOption(value(cmd.argv, '-m'), 'size=1280M', ['slots=1', 'maxmem=1536M'])
    assert.ok(!value(cmd.argv, '-machine').includes('nvdimm'))
  })

  test('kernel command line: console, panic=-1, memmap ranges, then the caller args; -no-reboot with it', () => {
    const cmd = buildQemuCommand(spec())
    assert.equal(value(cmd.argv, '-append'), cmd.kernelCmdline)
    const words = cmd.kernelCmdline.split(' ')
    for (const word of ['console=ttyS0', 'panic=-1', 'memmap=256M!4G', 'root=/dev/vda', 'init=/sbin/pmemlab-init']) {
      assert.ok(words.includes(word), `${cmd.kernelCmdline} has ${word}`)
    }
    // The caller's args come last, so an init `--` separator of theirs cannot swallow ours.
    assert.ok(words.indexOf('memmap=256M!4G') < words.indexOf('root=/dev/vda'))
    assert.ok(cmd.argv.includes('-no-reboot'))
    assert.equal(value(cmd.argv, '-kernel'), '/boot/vmlinuz')
    assert.equal(value(cmd.argv, '-initrd'), '/boot/initrd.img')
  })

  test('a quick boot: QEMU given the firmware, and the arguments that skip PS/2 and ACPI interrupt links before the memmap ranges and the caller\'s', () => {
    const quick = buildQemuCommand(spec({firmware: '/usr/share/qemu/qboot.rom', quickBoot: true, kernelArgs: ['acpi=on-the-callers-side']}))
    assert.equal(value(quick.argv, '-bios'), '/usr/share/qemu/qboot.rom')
    assert.ok(quick.argv.indexOf('-bios') < quick.argv.indexOf('-kernel'))
    const words = quick.kernelCmdline.split(' ')
    for (const word of QUICK_BOOT_ARGS) assert.ok(words.indexOf(word) > words.indexOf('panic=-1') && words.indexOf(word) < words.indexOf('memmap=256M!4G'), `${word} in place`)
    assert.equal(words.at(-1), 'acpi=on-the-callers-side', 'the caller has the last word')

    const plain = buildQemuCommand(spec())
    assert.deepEqual(values(plain.argv, '-bios'), [], 'no firmware given: QEMU\'s default')
    for (const word of QUICK_BOOT_ARGS) assert.ok(!plain.kernelCmdline.split(' ').includes(word))
  })

  test('no initrd: no -initrd flag', () => {
    const cmd = buildQemuCommand(spec({initrd: undefined}))
    assert.deepEqual(values(cmd.argv, '-initrd'), [])
  })

  test('bad kernel arguments are refused', () => {
    assert.throws(() => kernelCommandLine(layoutFor(), ['a\nb']), PmemlabError)
    assert.throws(() => kernelCommandLine(layoutFor(), ['']), PmemlabError)
    assert.throws(() => kernelCommandLine(layoutFor(), ['x'.repeat(2100)]), /2047/)
  })

  test('QMP and guest agent sockets', () => {
    const cmd = buildQemuCommand(spec())
    assert.deepEqual(cmd.sockets, {qmp: `${RUN}/qmp.sock`, qga: `${RUN}/qga.sock`, console: `${RUN}/console.sock`})
    const chardevs = values(cmd.argv, '-chardev')
    const qmp = chardevs.find((c) => c.includes('id=qmp'))
    assert.ok(qmp)
    assertOption(qmp, 'socket', [`path=${RUN}/qmp.sock`, 'server=on', 'wait=off'])
    assert.ok(values(cmd.argv, '-mon').includes('chardev=qmp,mode=control'))

    const qga = chardevs.find((c) => c.includes('id=qga0'))
    assert.ok(qga)
    assertOption(qga, 'socket', [`path=${RUN}/qga.sock`, 'server=on', 'wait=off'])
    const devices = values(cmd.argv, '-device')
    assert.ok(devices.includes('virtio-serial-pci,id=vser0'))
    const port = devices.find((d) => d.startsWith('virtserialport'))
    assert.ok(port)
    assertOption(port, 'virtserialport', ['chardev=qga0', `name=${GUEST_AGENT_PORT}`, 'bus=vser0.0'])
    assert.equal(GUEST_AGENT_PORT, 'org.qemu.guest_agent.0')
    assert.ok(devices.includes('virtio-rng-pci'))
  })

  test('root disk is raw, snapshot=on, on virtio-blk', () => {
    const cmd = buildQemuCommand(spec())
    assertOption(value(cmd.argv, '-drive'), 'if=none', ['id=root', 'file=/cache/images/base.img', 'format=raw', 'snapshot=on'])
    assert.ok(values(cmd.argv, '-device').includes('virtio-blk-pci,drive=root'))
  })

  test('NVDIMMs and virtio-pmem: shared file backends, 2M aligned, label-size only when asked', () => {
    const layout = layoutFor({
      nvdimms: [{size: 512 * MiB, labelBytes: 128 * 1024}, {size: 1 * GiB}],
      virtioPmem: [{size: 256 * MiB}],
    })
    const cmd = buildQemuCommand(spec({layout}))
    const objects = values(cmd.argv, '-object')
    assert.equal(objects.length, 3)
    // The label area is added to the backend (rounded up to 2M): the guest still gets 512M of pmem.
    assertOption(objects[0], 'memory-backend-file', ['id=nvmem0', 'share=on', `mem-path=${RUN}/nvdimm0.img`, 'size=514M', 'align=2M'])
    assertOption(objects[1], 'memory-backend-file', ['id=nvmem1', 'share=on', `mem-path=${RUN}/nvdimm1.img`, 'size=1G', 'align=2M'])
    assertOption(objects[2], 'memory-backend-file', ['id=vpmem0-mem', 'share=on', `mem-path=${RUN}/vpmem0.img`, 'size=256M'])
    const devices = values(cmd.argv, '-device')
    assert.ok(devices.includes('nvdimm,id=nvdimm0,memdev=nvmem0,label-size=128K'))
    assert.ok(devices.includes('nvdimm,id=nvdimm1,memdev=nvmem1'))
    assert.ok(devices.includes('virtio-pmem-pci,id=vpmem0,memdev=vpmem0-mem'))
    assertOption(value(cmd.argv, '-m'), 'size=1280M', ['slots=2', 'maxmem=3074M'])

    const labelless = buildQemuCommand(spec())
    assert.ok(values(labelless.argv, '-device').includes('nvdimm,id=nvdimm0,memdev=nvmem0'))
  })

  test('backing file lists must match the layout', () => {
    assert.throws(() => buildQemuCommand(spec({nvdimmFiles: []})), /1 NVDIMMs planned but 0/)
    assert.throws(() => buildQemuCommand(spec({virtioPmemFiles: ['/x']})), /virtio-pmem/)
  })
})

describe('console', () => {
  test('socket: console.sock with a logfile, no monitor on it', () => {
    const cmd = buildQemuCommand(spec({console: 'socket'}))
    const con = values(cmd.argv, '-chardev').find((c) => c.includes('id=con0'))
    assert.ok(con)
    assertOption(con, 'socket', [`path=${RUN}/console.sock`, 'server=on', 'wait=off', `logfile=${RUN}/console.log`])
    assert.equal(value(cmd.argv, '-serial'), 'chardev:con0')
    assert.deepEqual(values(cmd.argv, '-mon'), ['chardev=qmp,mode=control'])
    assert.equal(cmd.sockets.console, `${RUN}/console.sock`)
  })

  test('stdio: multiplexed with a readline monitor, signals to the guest, logged', () => {
    const cmd = buildQemuCommand(spec({console: 'stdio'}))
    const con = values(cmd.argv, '-chardev').find((c) => c.includes('id=con0'))
    assert.ok(con)
    assertOption(con, 'stdio', ['mux=on', 'signal=off', `logfile=${RUN}/console.log`])
    assert.equal(value(cmd.argv, '-serial'), 'chardev:con0')
    assert.deepEqual(new Set(values(cmd.argv, '-mon')), new Set(['chardev=con0,mode=readline', 'chardev=qmp,mode=control']))
    assert.equal(cmd.sockets.console, undefined)
  })
})

describe('escaping and socket paths', () => {
  test('qemuEscape doubles commas and leaves the rest', () => {
    assert.equal(qemuEscape('/tmp/a,b'), '/tmp/a,,b')
    assert.equal(qemuEscape('a,,b,'), 'a,,,,b,,')
    assert.equal(qemuEscape('/plain/path=x y'), '/plain/path=x y')
  })

  test('paths with commas are escaped in option values, but not in -kernel/-initrd/-append or returned sockets', () => {
    const dir = '/tmp/a,b'
    const layout = layoutFor({virtioPmem: [{size: 256 * MiB}]})
    const cmd = buildQemuCommand(
      spec({
        layout,
        name: 'lab,1',
        runDir: dir,
        consoleLog: `${dir}/console.log`,
        rootDisk: `${dir}/root,disk.img`,
        nvdimmFiles: [`${dir}/nv.img`],
        virtioPmemFiles: [`${dir}/vp.img`],
        kernel: `${dir}/vmlinuz`,
        initrd: `${dir}/initrd`,
      }),
    )
    assert.equal(value(cmd.argv, '-name'), 'guest=lab,,1')
    assertOption(value(cmd.argv, '-drive'), 'if=none', ['file=/tmp/a,,b/root,,disk.img'])
    const chardevs = values(cmd.argv, '-chardev')
    assert.ok(chardevs.some((c) => parts(c).has('path=/tmp/a,,b/qmp.sock')))
    assert.ok(chardevs.some((c) => parts(c).has('path=/tmp/a,,b/qga.sock')))
    assert.ok(chardevs.some((c) => parts(c).has('path=/tmp/a,,b/console.sock') && parts(c).has('logfile=/tmp/a,,b/console.log')))
    const objects = values(cmd.argv, '-object')
    assert.ok(parts(objects[0]).has('mem-path=/tmp/a,,b/nv.img'))
    assert.ok(parts(objects[1]).has('mem-path=/tmp/a,,b/vp.img'))
    assert.equal(value(cmd.argv, '-kernel'), '/tmp/a,b/vmlinuz')
    assert.equal(value(cmd.argv, '-initrd'), '/tmp/a,b/initrd')
    assert.equal(cmd.sockets.qmp, '/tmp/a,b/qmp.sock')
  })

  test('a socket path over 107 bytes is refused with a hint', () => {
    // console.sock is the longest name: /<dir>/console.sock
    const at = (bytes: number) => '/' + 'd'.repeat(bytes - '/'.length - '/console.sock'.length)
    assert.doesNotThrow(() => buildQemuCommand(spec({runDir: at(107)})))
    assert.throws(
      () => buildQemuCommand(spec({runDir: at(108)})),
      (error: unknown) =>
        error instanceof PmemlabError &&
        error.exitCode === ExitCode.usage &&
        error.oneLine().includes('108 bytes') &&
        error.oneLine().includes('PMEMLAB_STATE_DIR'),
    )
    // In stdio mode there is no console socket; qmp.sock is the longest.
    assert.doesNotThrow(() => buildQemuCommand(spec({runDir: at(108), console: 'stdio'})))
    // Multi-byte characters count as bytes.
    assert.throws(
      () => buildQemuCommand(spec({runDir: '/' + 'é'.repeat(50)})),
      (error: unknown) => error instanceof PmemlabError && error.oneLine().includes('110 bytes'),
    )
  })
})

/**
 * QEMU command builder: a VM spec and a planned memory layout in, an argv array out. Pure: no I/O,
 * no shell strings. The runtime (vm.ts) decides paths and files; this module only spells them the
 * way qemu-system-x86_64 7.2 parses them.
 */
import {join} from 'node:path'
import {ExitCode, PmemlabError, usageError} from '../core/errors.js'
import {formatSize} from '../core/size.js'
import type {Layout} from './topology.js'

export interface QemuSpec {
  binary: string // e.g. 'qemu-system-x86_64'
  name: string // VM name (for -name)
  accel: 'kvm' | 'tcg'
  cpus: number
  layout: Layout
  kernel: string
  initrd?: string
  kernelArgs: string[] // caller's args; the builder adds console=ttyS0, panic=-1, QUICK_BOOT_ARGS (with quickBoot) and layout.kernelArgs
  /** -bios FILE: the firmware, when not QEMU's default (SeaBIOS). */
  firmware?: string
  /** Leave out of the boot what a lab does not use (QUICK_BOOT_ARGS). */
  quickBoot?: boolean
  rootDisk: string // raw ext4 image, attached with snapshot=on (writes are disposable)
  nvdimmFiles: string[] // backing path per layout.nvdimms entry (same order)
  virtioPmemFiles: string[] // backing path per layout.virtioPmem entry
  runDir: string // qmp.sock, qga.sock, console.sock live here
  consoleLog: string // every byte of the serial console is logged here
  console: 'stdio' | 'socket' // stdio: the user's terminal (Ctrl-A X quits); socket: console.sock
}

export interface QemuCommand {
  binary: string
  argv: string[]
  kernelCmdline: string
  sockets: {qmp: string; qga: string; console?: string}
}

/** The name qemu-guest-agent looks for on the virtio-serial bus. */
export const GUEST_AGENT_PORT = 'org.qemu.guest_agent.0'
/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107
/** x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL. */
export const MAX_KERNEL_CMDLINE_BYTES = 2047
/** Backend alignment for NVDIMM and virtio-pmem memory: guest huge pages, and the planner's 2 MiB sizes. */
export const PMEM_BACKEND_ALIGN = '2M'

/**
 * Escapes a value for QEMU's option syntax (QemuOpts and keyval, used by -drive, -chardev, -object,
 * -device, -name): a comma ends the value unless doubled. `/tmp/a,b` -> `/tmp/a,,b`.
 * -kernel, -initrd and -append take their argument verbatim and must NOT be escaped.
 */
export function qemuEscape(value: string): string {
  return value.replaceAll(',', ',,')
}

/** `key=value` pairs joined with commas, values escaped. */
function opts(head: string, pairs: Array<[string, string | number]>): string {
  return [head, ...pairs.map(([key, value]) => `${key}=${qemuEscape(String(value))}`)].join(',')
}

function checkSocketPath(path: string): string {
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw usageError(
      `the UNIX socket path ${path} is ${bytes} bytes, longer than the ${MAX_SOCKET_PATH_BYTES} bytes a socket address holds`,
      'set PMEMLAB_STATE_DIR to a shorter directory, like /tmp/pmemlab',
    )
  }
  return path
}

function internal(message: string): PmemlabError {
  return new PmemlabError(`internal error: ${message}`, ExitCode.failure)
}

/**
 * Kernel arguments that leave out of a lab's boot what no lab uses, measured under TCG with the
 * built 6.1 kernel: probing the PS/2 keyboard and mouse (0.7 s; the console is the serial port)
 * and evaluating the ACPI PCI interrupt links in AML (about 0.25 s per PCI device; the virtio
 * devices use MSI-X, and acpi=noirq leaves every other ACPI table, the NVDIMMs' NFIT among
 * them, as it is).
 */
export const QUICK_BOOT_ARGS = ['i8042.noaux', 'i8042.nokbd', 'acpi=noirq']

/** The guest kernel command line: console and panic handling, QUICK_BOOT_ARGS, the layout's memmap ranges, then the caller's args. */
export function kernelCommandLine(layout: Layout, callerArgs: readonly string[], quickBoot = false): string {
  const args = ['console=ttyS0', 'panic=-1', ...(quickBoot ? QUICK_BOOT_ARGS : []), ...layout.kernelArgs, ...callerArgs]
  for (const arg of args) {
    if (arg === '' || /[\0\n\r]/.test(arg)) {
      throw usageError(`invalid kernel argument ${JSON.stringify(arg)}`, 'give non-empty arguments without newlines')
    }
  }
  const cmdline = args.join(' ')
  const bytes = Buffer.byteLength(cmdline)
  if (bytes > MAX_KERNEL_CMDLINE_BYTES) {
    throw usageError(
      `the kernel command line is ${bytes} bytes, more than the ${MAX_KERNEL_CMDLINE_BYTES} an x86 kernel accepts`,
      'pass fewer or shorter kernel arguments',
    )
  }
  return cmdline
}

export function buildQemuCommand(spec: QemuSpec): QemuCommand {
  const {layout} = spec
  if (!spec.binary) throw internal('no QEMU binary')
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw usageError(`invalid CPU count ${spec.cpus}`, 'give a whole number of at least 1')
  if (spec.nvdimmFiles.length !== layout.nvdimms.length) {
    throw internal(`${layout.nvdimms.length} NVDIMMs planned but ${spec.nvdimmFiles.length} backing files given`)
  }
  if (spec.virtioPmemFiles.length !== layout.virtioPmem.length) {
    throw internal(`${layout.virtioPmem.length} virtio-pmem devices planned but ${spec.virtioPmemFiles.length} backing files given`)
  }

  const sockets: QemuCommand['sockets'] = {
    qmp: checkSocketPath(join(spec.runDir, 'qmp.sock')),
    qga: checkSocketPath(join(spec.runDir, 'qga.sock')),
  }
  if (spec.console === 'socket') sockets.console = checkSocketPath(join(spec.runDir, 'console.sock'))

  const kernelCmdline = kernelCommandLine(layout, spec.kernelArgs, spec.quickBoot)
  const hasDevices = layout.nvdimms.length + layout.virtioPmem.length > 0

  const argv: string[] = [
    '-name', `guest=${qemuEscape(spec.name)}`,
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-vga', 'none',
    '-machine', opts(layout.machine, [
      ...(layout.nvdimms.length > 0 ? [['nvdimm', 'on'] as [string, string]] : []),
      ['max-ram-below-4g', formatSize(layout.maxRamBelow4g)],
    ]),
    '-accel', spec.accel,
    '-cpu', spec.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(spec.cpus),
    '-m', opts(`size=${formatSize(layout.totalRamBytes)}`, hasDevices
      ? [['slots', layout.slots], ['maxmem', formatSize(layout.maxmemBytes)]]
      : []),
    // A guest panic (panic=-1 reboots at once) or reboot ends QEMU instead of looping.
    '-no-reboot',
    ...(spec.firmware ? ['-bios', spec.firmware] : []),
    '-kernel', spec.kernel,
    ...(spec.initrd ? ['-initrd', spec.initrd] : []),
    '-append', kernelCmdline,
  ]

  // Serial console, always logged to a file.
  if (spec.console === 'stdio') {
    argv.push(
      '-chardev', opts('stdio', [['id', 'con0'], ['mux', 'on'], ['signal', 'off'], ['logfile', spec.consoleLog]]),
      '-serial', 'chardev:con0',
      '-mon', 'chardev=con0,mode=readline',
    )
  } else {
    argv.push(
      '-chardev', opts('socket', [['id', 'con0'], ['path', sockets.console!], ['server', 'on'], ['wait', 'off'], ['logfile', spec.consoleLog]]),
      '-serial', 'chardev:con0',
    )
  }

  argv.push(
    // QMP
    '-chardev', opts('socket', [['id', 'qmp'], ['path', sockets.qmp], ['server', 'on'], ['wait', 'off']]),
    '-mon', 'chardev=qmp,mode=control',
    // Guest agent on a virtio-serial port
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', opts('socket', [['id', 'qga0'], ['path', sockets.qga], ['server', 'on'], ['wait', 'off']]),
    '-device', opts('virtserialport', [['bus', 'vser0.0'], ['chardev', 'qga0'], ['name', GUEST_AGENT_PORT]]),
    '-device', 'virtio-rng-pci',
    // Root disk: writes go to a temporary overlay and vanish with the VM.
    '-drive', opts('if=none', [['id', 'root'], ['file', spec.rootDisk], ['format', 'raw'], ['snapshot', 'on']]),
    '-device', 'virtio-blk-pci,drive=root',
  )

  layout.nvdimms.forEach((device, i) => {
    const memdev = `nvmem${i}`
    argv.push(
      '-object', opts('memory-backend-file', [
        ['id', memdev], ['share', 'on'], ['mem-path', spec.nvdimmFiles[i]], ['size', formatSize(device.size)], ['align', PMEM_BACKEND_ALIGN],
      ]),
      '-device', opts('nvdimm', [
        ['id', device.id], ['memdev', memdev],
        ...(device.labelBytes > 0 ? [['label-size', formatSize(device.labelBytes)] as [string, string]] : []),
      ]),
    )
  })

  layout.virtioPmem.forEach((device, i) => {
    const memdev = `vpmem${i}-mem`
    argv.push(
      '-object', opts('memory-backend-file', [
        ['id', memdev], ['share', 'on'], ['mem-path', spec.virtioPmemFiles[i]], ['size', formatSize(device.size)], ['align', PMEM_BACKEND_ALIGN],
      ]),
      '-device', opts('virtio-pmem-pci', [['id', device.id], ['memdev', memdev]]),
    )
  })

  return {binary: spec.binary, argv, kernelCmdline, sockets}
}

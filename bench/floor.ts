/**
 * The floor of a boot (issue 14): the same kernel on the same QEMU, with nothing but an
 * initramfs whose /init powers the VM off at once. No devices, no root disk, no agent: what
 * is left is the firmware, the kernel's own start and its power-off. The argv keeps the lab's
 * accelerator, CPU model, CPU count and RAM, so the two differ only in what pmemlab adds.
 */
import {spawn} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {cpioNewc} from '../src/kernel/initramfs.js'

/** An initramfs of a static busybox whose /init powers off (poweroff -f: reboot(2), no init to ask). */
export async function makeFloorInitramfs(dir: string, busybox = process.env.PMEMLAB_BUSYBOX ?? '/bin/busybox'): Promise<string> {
  const path = join(dir, 'floor.cpio')
  const archive = cpioNewc([
    {path: 'bin/busybox', mode: 0o755, content: await readFile(busybox)},
    {path: 'bin/sh', mode: 0o777, target: 'busybox'},
    {path: 'bin/poweroff', mode: 0o777, target: 'busybox'},
    {path: 'init', mode: 0o755, content: Buffer.from('#!/bin/sh\nexec /bin/poweroff -f\n')},
  ])
  await writeFile(path, archive)
  return path
}

/** The options of LAB's argv (as up --dry-run prints it) that say how fast the guest runs. */
function machineOptions(lab: string[]): string[] {
  const kept: string[] = []
  for (let i = 1; i < lab.length; i++) {
    const [flag, value] = [lab[i], lab[i + 1]]
    if (flag === '-accel' || flag === '-cpu' || flag === '-smp') kept.push(flag, value)
    else if (flag === '-machine') kept.push(flag, value.split(',')[0]) // the type, without nvdimm=on
    else if (flag === '-m') kept.push(flag, /size=([^,]+)/.exec(value)?.[1] ?? value.split(',')[0])
  }
  return kept
}

export interface FloorBoot {
  /** The kernel file QEMU loads (a bzImage, or a PVH vmlinux). */
  kernel: string
  /** -bios FILE, when not QEMU's default (SeaBIOS). */
  bios?: string
}

/** The floor's QEMU argv: LAB's binary and machine options, KERNEL with INITRD, the console to CONSOLE_LOG. */
export function floorArgv(lab: string[], boot: FloorBoot, initrd: string, consoleLog: string): string[] {
  return [
    lab[0],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none', '-no-reboot'],
    ...machineOptions(lab),
    ...(boot.bios ? ['-bios', boot.bios] : []),
    ...['-kernel', boot.kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 rdinit=/init'],
    ...['-serial', `file:${consoleLog}`],
  ]
}

/** Boots ARGV to its power-off: the milliseconds from spawn to QEMU's exit. A floor that did not power off cleanly is an error, not a time. */
export async function timeFloor(argv: string[], consoleLog: string): Promise<number> {
  const [binary, ...args] = argv
  const start = performance.now()
  const code = await new Promise<number | null>((resolve, reject) => {
    const qemu = spawn(binary, args, {stdio: ['ignore', 'ignore', 'pipe']})
    qemu.once('error', reject)
    qemu.once('exit', resolve)
  })
  const ms = performance.now() - start
  const console = await readFile(consoleLog, 'utf8').catch(() => '')
  if (code !== 0 || !/reboot: Power down/.test(console)) {
    throw new Error(`the floor boot did not power off (exit ${code}): ${console.trim().split('\n').slice(-3).join(' | ')}`)
  }
  return ms
}

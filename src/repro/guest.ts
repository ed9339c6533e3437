/**
 * What one run of a reproducer does in the guest, as argv arrays, and the part of the console
 * that belongs to its script. Pure.
 *
 * The script is copied to SCRIPT_PATH and run as root under bash from /root. Just before it
 * starts, a start marker goes into the kernel log (/dev/kmsg); once it has ended (or was stopped),
 * an end marker follows. The serial console prints the kernel log in its order, so what the
 * console shows between the two markers was logged while the script ran: a report from the boot
 * or from preparing the devices, still on its way to the serial port when the script started,
 * comes before the start marker and cannot count as a reproduction.
 */
import {devdaxChardev} from '../suite/devices.js'
import type {DevicePreparation} from './prepare.js'

/** Where the script is copied: /run is a tmpfs in every guest image. */
export const SCRIPT_PATH = '/run/pmemlab-repro.sh'
/** The script's working directory and HOME. */
export const SCRIPT_HOME = '/root'
/** Seconds one device's preparation may take (mkfs and mount of a large device under TCG). */
export const PREPARE_TIMEOUT_SEC = 300
/** Seconds the end marker may take to reach the console once written. */
export const END_MARKER_WAIT_MS = 10_000

export interface Markers {
  start: string
  end: string
}

/** The markers of run N; TOKEN (random) keeps a script's own output from passing for one. */
export function runMarkers(run: number, token: string): Markers {
  return {start: `pmemlab-repro: run ${run} (${token}): the script starts`, end: `pmemlab-repro: run ${run} (${token}): the script has ended`}
}

// KERN_NOTICE: shown at the default console log level (7), and no kernel report starts with it.
const KMSG = 'printf "<5>%s\\n" "$1" >/dev/kmsg'

/**
 * The command that runs the script: the start marker, then bash on the copied file, from
 * SCRIPT_HOME. The marker is written by the same process that then becomes the script's bash, so
 * nothing of the run happens before it. (TestRun.guest puts it under timeout(1).)
 */
export function scriptArgv(markers: Markers): string[] {
  return ['/bin/bash', '-c', `${KMSG}; cd "$2" 2>/dev/null || cd /; exec /bin/bash "$3"`, 'pmemlab-repro', markers.start, SCRIPT_HOME, SCRIPT_PATH]
}

/** The command that writes the end marker. */
export function endMarkerArgv(markers: Markers): string[] {
  return ['/bin/sh', '-c', KMSG, 'pmemlab-repro', markers.end]
}

/**
 * The script's environment, beside the guest's own: HOME, the run's number, and the character
 * device of each devdax device (PMEMLAB_DEVDAX_NVDIMM1=/dev/dax1.0), as pmemlab-suite devdax named
 * it in its output (DEVDAX_OUTPUT, by device).
 */
export function scriptEnv(run: number, preparations: readonly DevicePreparation[], devdaxOutput: ReadonlyMap<string, string>): Record<string, string> {
  const env: Record<string, string> = {HOME: SCRIPT_HOME, PMEMLAB_REPRO_RUN: String(run)}
  for (const p of preparations) {
    const chardev = p.mode === 'devdax' ? devdaxChardev(devdaxOutput.get(p.device) ?? '') : undefined
    if (chardev) env[devdaxVariable(p.device)] = chardev
  }
  return env
}

/** "virtio-pmem0" -> PMEMLAB_DEVDAX_VIRTIO_PMEM0. */
export const devdaxVariable = (device: string) => `PMEMLAB_DEVDAX_${device.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`

const NEWLINE = 0x0a

/**
 * The console text of the script: after the start marker's line, up to the end marker's line.
 * LOG is the whole console log; FROM its length in bytes just before the script was started.
 *
 * Without the start marker (a console log level that hides notices: quiet, loglevel=), from FROM,
 * less the rest of a line cut there: that line began before the script. Without the end marker
 * (the guest died or hung, or it is hidden too), to the end of the log.
 */
export function scriptConsole(log: Buffer, markers: Markers, from: number): string {
  const startAt = log.indexOf(markers.start, from)
  let start: number
  if (startAt >= 0) start = lineEnd(log, startAt)
  else start = from > 0 && from <= log.length && log[from - 1] !== NEWLINE ? lineEnd(log, from) : Math.min(from, log.length)
  const endAt = log.indexOf(markers.end, start)
  const end = endAt >= 0 ? log.lastIndexOf(NEWLINE, endAt) + 1 : log.length
  return log.subarray(start, Math.max(start, end)).toString('utf8')
}

/** Whether the end marker has reached the console log. */
export const endMarkerShown = (log: Buffer, markers: Markers, from: number) => log.indexOf(markers.end, from) >= 0

/** The offset just past the newline that ends the line holding AT (the log's end when none does). */
function lineEnd(log: Buffer, at: number): number {
  const newline = log.indexOf(NEWLINE, at)
  return newline < 0 ? log.length : newline + 1
}

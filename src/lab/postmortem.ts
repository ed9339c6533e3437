import {ExitCode, type ExitCodeValue} from '../core/errors.js'
import {consoleExcerpt, describeFinding, messageOf, scanConsole} from './oops.js'

/**
 * Why a guest ended when nobody asked it to. Pure: the console text, QEMU's own log and how QEMU
 * exited go in; one line, a console excerpt and an exit code come out. `up -- CMD`, `exec`,
 * `test` and `ls` all explain a dead VM through this one function.
 */
export type GuestEndKind = 'panic' | 'oops' | 'reboot' | 'poweroff' | 'hang' | 'qemu-killed' | 'qemu-exited'

export interface GuestEnd {
  kind: GuestEndKind
  /** One line: what happened, e.g. "the guest kernel panicked: Kernel panic - not syncing: ...". */
  reason: string
  /** The console lines to show: the failing report, or the console's last lines. */
  excerpt: string[]
  exitCode: ExitCodeValue
  /** Whether the kernel under test is to blame (panic, Oops, reboot, hang) rather than the lab. */
  guestFault: boolean
}

export interface EndFacts {
  console: string
  qemuLog: string
  /** Set when pmemlab saw QEMU exit (its own child); a detached QEMU's end is not seen. */
  exit?: {code: number | null; signal: string | null}
  /** boot: before the guest agent first answered; run: afterwards. */
  phase: 'boot' | 'run'
  /** Set when the guest stopped answering while QEMU still ran: the time waited. */
  hungAfterMs?: number
}

const TAIL_LINES = 20
const REBOOT = /^reboot: Restarting system/
const POWER_DOWN = /^reboot: (Power down|System halted)/
const QEMU_SIGNAL = /terminating on signal (\d+)(?: from pid (\d+))?(?: \(([^)]*)\))?/

export function explainEnd(facts: EndFacts): GuestEnd {
  const fatal = scanConsole(facts.console).filter((f) => f.fails)
  const excerpt = consoleExcerpt(facts.console)
  const tail = consoleTail(facts.console, TAIL_LINES)
  const panic = fatal.find((f) => f.kind === 'panic')
  const first = fatal[0]
  const during = facts.phase === 'boot' ? ' during boot' : ''
  if (panic) {
    const after = first !== panic ? ` (after ${describeFinding(first)})` : ''
    return {kind: 'panic', reason: `the guest kernel panicked${during}: ${panic.title}${after}`, excerpt, exitCode: ExitCode.guestDied, guestFault: true}
  }
  if (facts.hungAfterMs !== undefined) {
    const seconds = Math.round(facts.hungAfterMs / 1000)
    const what = facts.phase === 'boot' ? `the guest agent did not answer within ${seconds} s of boot` : `the guest stopped answering for ${seconds} s`
    const seen = first ? ` after ${describeFinding(first)}` : ''
    return {
      kind: 'hang',
      reason: `${what}${seen}`,
      excerpt: excerpt.length > 0 ? excerpt : tail,
      exitCode: facts.phase === 'boot' ? ExitCode.bootFailed : ExitCode.guestDied,
      guestFault: true,
    }
  }
  const messages = facts.console.split('\n').map(messageOf)
  const after = first ? ` after ${describeFinding(first)}` : ''
  if (messages.some((m) => REBOOT.test(m))) {
    return {kind: 'reboot', reason: `the guest rebooted${during}${after} (QEMU runs with -no-reboot, so a reboot ends the VM)`, excerpt: excerpt.length > 0 ? excerpt : tail, exitCode: ExitCode.guestDied, guestFault: true}
  }
  if (messages.some((m) => POWER_DOWN.test(m))) {
    return {kind: 'poweroff', reason: `the guest powered itself off${during}${after}`, excerpt: excerpt.length > 0 ? excerpt : tail, exitCode: ExitCode.guestDied, guestFault: true}
  }
  if (first) {
    return {kind: 'oops', reason: `the guest died${during} ${after.trim()}`, excerpt, exitCode: ExitCode.guestDied, guestFault: true}
  }
  const labCode = facts.phase === 'boot' ? ExitCode.bootFailed : ExitCode.qemuDied
  const qemuLines = facts.qemuLog.replaceAll('\r', '').trimEnd().split('\n').filter(Boolean)
  const signalled = qemuLines.map((l) => QEMU_SIGNAL.exec(l)).find(Boolean)
  if (facts.exit?.signal || signalled) {
    const by = facts.exit?.signal ?? `signal ${signalled![1]}${signalled![2] ? ` from pid ${signalled![2]}${signalled![3] ? ` (${signalled![3]})` : ''}` : ''}`
    return {kind: 'qemu-killed', reason: `QEMU was killed by ${by}${during}`, excerpt: tail, exitCode: labCode, guestFault: false}
  }
  const said = qemuLines.at(-1)
  const status = facts.exit?.code !== undefined && facts.exit.code !== null ? ` with status ${facts.exit.code}` : ''
  const reason = said
    ? `QEMU exited${status}${during}: ${said.replace(/^qemu-system-x86_64: /, '')}`
    : `QEMU exited${status}${during} without a word from QEMU or the guest (killed, or crashed)`
  return {kind: 'qemu-exited', reason, excerpt: tail, exitCode: labCode, guestFault: false}
}

/** The console's last lines, without blank ones, as a user would see them. */
export function consoleTail(text: string, lines: number): string[] {
  return text
    .replaceAll('\r', '')
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean)
    .slice(-lines)
}

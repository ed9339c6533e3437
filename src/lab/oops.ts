/**
 * Finds kernel trouble in a guest's console text: Oops, BUG, WARNING splats, lockdep reports,
 * panics, general protection faults, KASAN/UBSAN reports. Each finding keeps its first lines,
 * which is what a user needs to see first. Pure: text in, findings out; scanning the same text
 * again gives the same findings, so a growing console log can be rescanned as it grows.
 */

import {KERNEL_STAMP} from '../kernel/stacktrace.js'

export type FindingKind = 'panic' | 'oops' | 'bug' | 'gpf' | 'kasan' | 'ubsan' | 'warning' | 'lockdep' | 'lockup' | 'hung-task' | 'rcu-stall'

export interface Finding {
  kind: FindingKind
  /** The line that starts the report, without the timestamp. */
  title: string
  /** 1-based line number in the scanned text. */
  line: number
  /** The report's first lines (as printed, timestamps kept). */
  lines: string[]
  /** Whether it fails a run. Hung-task and RCU-stall notices do not: under TCG a busy host can cause them. */
  fails: boolean
}

interface Pattern {
  kind: FindingKind
  test: RegExp
  fails?: boolean
}

/** Matched against a console line with its "[  12.345678]" timestamp (and "[T123]" caller id) removed. */
const PATTERNS: Pattern[] = [
  {kind: 'panic', test: /^Kernel panic - not syncing/},
  {kind: 'kasan', test: /^BUG: (KASAN|KFENCE|KCSAN): /},
  {kind: 'lockdep', test: /^(WARNING|INFO): (possible (circular|recursive) locking|inconsistent lock state|possible irq lock inversion|suspicious RCU usage|bad unlock balance|held lock freed|lock held when returning to user space|possible deadlock)/},
  {kind: 'oops', test: /^Oops(: |\[)/},
  {kind: 'gpf', test: /^general protection fault/},
  {kind: 'bug', test: /^(\w+: )?BUG: /},
  {kind: 'bug', test: /^kernel BUG at /},
  {kind: 'ubsan', test: /^UBSAN: /},
  // A WARN() splat; a bare "WARNING:" line (mitigation notices and the like) is not one.
  {kind: 'warning', test: /^WARNING: (CPU: \d+ PID: \d+ at |at )/},
  {kind: 'lockup', test: /^(\w+: )?Watchdog detected hard LOCKUP/i},
  {kind: 'hung-task', test: /^INFO: task .+ blocked for more than \d+ seconds/, fails: false},
  {kind: 'rcu-stall', test: /^(rcu: )?INFO: rcu_\w+ (self-)?detected stalls?/, fails: false},
]

// eslint-disable-next-line no-control-regex
const ANSI = /\u001B\[[0-9;?]*[A-Za-z]/g
// KERNEL_STAMP's lazy prefix: the kernel starts a message wherever the console's cursor is, so a
// shell prompt printed without a newline ("root@vm:~# ") can come first on the same line.
const TIMESTAMP = new RegExp(`^${KERNEL_STAMP}\\s*`)

/** A console line as a kernel message: no colour codes, no carriage return, no timestamp, nothing before it. */
export function messageOf(line: string): string {
  return line.replace(ANSI, '').replace(/\r/g, '').replace(TIMESTAMP, '').trim()
}

export function classify(line: string): Pattern | undefined {
  const message = messageOf(line)
  return PATTERNS.find((p) => p.test.test(message))
}

/**
 * All findings in text. A report that starts within the first lines of the previous one (the
 * "Oops" after its "BUG:") belongs to it; a panic is always a finding of its own.
 */
export function scanConsole(text: string, options: {contextLines?: number} = {}): Finding[] {
  const context = options.contextLines ?? 12
  const lines = text.split('\n').map((l) => l.replace(ANSI, '').replace(/\r/g, '').trimEnd())
  const findings: Finding[] = []
  for (let i = 0; i < lines.length; i++) {
    const pattern = classify(lines[i])
    if (!pattern) continue
    const previous = findings.at(-1)
    if (previous && pattern.kind !== 'panic' && i < previous.line - 1 + previous.lines.length) {
      previous.fails ||= pattern.fails !== false
      continue
    }
    const first: string[] = []
    for (let j = i; j < lines.length && first.length < context; j++) {
      if (j > i && lines[j] === '' && first.length > 1) break
      first.push(lines[j])
      if (/---\[ end (trace|Kernel panic)/.test(lines[j])) break
    }
    findings.push({kind: pattern.kind, title: messageOf(lines[i]), line: i + 1, lines: first, fails: pattern.fails !== false})
  }
  return findings
}

/** "panic: Kernel panic - not syncing: ..." */
export function describeFinding(finding: Finding): string {
  return `${finding.kind}: ${finding.title}`
}

const CUT_HERE = /-+\[ cut here \]-+/
const END_OF_REPORT = /---\[ end (trace|Kernel panic)/

/**
 * The part of the console a user reads first when a guest died: from the first failing report
 * (or the "cut here" line just above it) to the end of the last one ("---[ end Kernel panic"),
 * at most maxLines lines. Empty when the console holds no failing report.
 */
export function consoleExcerpt(text: string, maxLines = 60): string[] {
  const fatal = scanConsole(text).filter((f) => f.fails)
  if (fatal.length === 0) return []
  const lines = text.split('\n').map((l) => l.replace(ANSI, '').replace(/\r/g, '').trimEnd())
  let start = fatal[0].line - 1
  for (let back = 1; back <= 2 && start - back >= 0; back++) {
    if (CUT_HERE.test(lines[start - back])) {
      start -= back
      break
    }
  }
  const last = fatal.at(-1)!
  // A panic is the kernel's last word (panic=-1 reboots before any "end Kernel panic" line).
  let end = last.kind === 'panic' ? lines.length : last.line - 1 + last.lines.length
  for (let i = last.line - 1; i < lines.length; i++) {
    if (END_OF_REPORT.test(lines[i])) {
      end = i + 1
      break
    }
  }
  while (end > start && lines[end - 1] === '') end--
  if (end - start <= maxLines) return lines.slice(start, end)
  // Too long: the first report's opening and the last report (the panic that ended the guest),
  // with the gap between them named.
  const lastStart = last.line - 1
  const tailLines = Math.min(end - lastStart, Math.floor(maxLines / 2))
  const headLines = Math.max(1, Math.min(lastStart - start, maxLines - tailLines - 1))
  const gap = end - start - headLines - tailLines
  const head = lines.slice(start, start + headLines)
  if (lastStart <= start + headLines) return [...lines.slice(start, start + maxLines - 1), `[... ${end - start - maxLines + 1} more lines in the console log]`]
  return [...head, `[... ${gap} lines between]`, ...lines.slice(lastStart, lastStart + tailLines)]
}

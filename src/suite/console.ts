/**
 * The guest console watch of a test run: an Oops, BUG, WARNING, lockdep report or panic is
 * announced on stderr as soon as it appears, with the step that was running, and kept for the
 * report (where a failing one fails the run).
 */
import {readFile} from 'node:fs/promises'
import {log} from '../core/log.js'
import {describeFinding, scanConsole, type Finding} from '../lab/oops.js'
import type {ConsoleFinding} from './results.js'

/** Watches a console log file: rescans it as it grows and announces new findings at once. */
export class ConsoleWatcher {
  private text = ''
  private timer?: NodeJS.Timeout
  private polling?: Promise<void>
  private readonly during = new Map<number, string>()

  constructor(
    private readonly file: string,
    private readonly vm: string,
    private readonly current: () => string,
    private readonly findingsAre: FindingsAre = 'problems',
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), 500)
  }

  poll(): Promise<void> {
    this.polling ??= (async () => {
      try {
        const text = await readFile(this.file, 'utf8').catch(() => this.text)
        if (text.length >= this.text.length) this.text = text
        for (const finding of scanConsole(this.text)) {
          if (this.during.has(finding.line)) continue
          this.during.set(finding.line, this.current())
          announce(finding, this.vm, this.current(), this.findingsAre)
        }
      } finally {
        this.polling = undefined
      }
    })()
    return this.polling
  }

  /** A last scan (before the VM directory goes away), and no more polling. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.poll()
  }

  findings(): ConsoleFinding[] {
    return scanConsole(this.text).map((f) => ({...f, vm: this.vm, during: this.during.get(f.line) ?? this.current()}))
  }
}

/** problems: a test run's reports fail it (error, warn); evidence: a reproducer looks for them, and its verdict judges them. */
export type FindingsAre = 'problems' | 'evidence'

function announce(finding: Finding, vm: string, during: string, findingsAre: FindingsAre): void {
  const say = findingsAre === 'evidence' ? log.info : finding.fails ? log.error : log.warn
  say(`${findingsAre === 'evidence' ? 'the console shows a ' : ''}kernel ${describeFinding(finding)} (on ${vm}, during ${during})`)
  for (const line of finding.lines.slice(0, 4)) process.stderr.write(`    | ${line}\n`)
}

/**
 * What a reproducer series leaves behind, and says: each run's record (run.json), the series'
 * document (repro.json, also what --json prints), its JUnit (one test case per run), the progress
 * line of a run on stderr and the result line on stdout. Pure: records in, documents and text out.
 *
 * The files of the output directory, relative to it (bundle-files.ts adds input/, metadata.json,
 * reproduce.sh, SHA256SUMS and bundle.tar.gz):
 *
 *   OUTPUT/repro.json              the series (this module's ReproDocument)
 *   OUTPUT/junit.xml               one test case per run
 *   OUTPUT/reproducer.yaml         the reproducer file as it was run
 *   OUTPUT/kernel/                 a kernel pmemlab built: build.json, config, patches/
 *   OUTPUT/runs/N/run.json         run N's record (RunRecord)
 *   OUTPUT/runs/N/console.log      the guest console of run N, from boot to stop
 *   OUTPUT/runs/N/script.out, .err the script's stdout and stderr
 *   OUTPUT/runs/N/decoded-trace.txt with --with-vmlinux: the run's failing kernel reports, decoded (trace.ts)
 */
import {basename} from 'node:path'
import {renderJUnit, type JUnitCase} from '../suite/junit.js'
import {ExitCode} from '../core/errors.js'
import {nextRun, summarize, type Outcome, type RunFacts, type RunPolicy, type RunVerdict, type StopReason} from './verdict.js'

export const REPRO_DOCUMENT_FORMAT = 'pmemlab-repro'
export const REPRO_JSON = 'repro.json'
export const REPRO_JUNIT = 'junit.xml'
export const REPRODUCER_COPY = 'reproducer.yaml'
export const KERNEL_DIR = 'kernel'

/** A run's files, relative to the output directory. */
export function runFiles(run: number): {dir: string; record: string; console: string; stdout: string; stderr: string; decodedTrace: string} {
  const dir = `runs/${run}`
  return {dir, record: `${dir}/run.json`, console: `${dir}/console.log`, stdout: `${dir}/script.out`, stderr: `${dir}/script.err`, decodedTrace: `${dir}/decoded-trace.txt`}
}

/** The VM a run booted, as its record says. */
export interface RunLab {
  vm: string
  accel: string
  qemuArgv: string[]
  kernelCmdline: string
}

export interface RunRecord {
  run: number
  outcome: Outcome
  reason: string
  /** The console lines that decided it; with --with-vmlinux, their kernel frames decoded (see trace). */
  excerpt: string[]
  /** With --with-vmlinux and a kernel that has one: how the excerpt's frames were decoded. */
  trace?: TraceSummary
  startedAt: string
  durationMs: number
  /** The script's exit status, when it ended by itself. */
  exit?: number
  /** The script ran past expect.timeout. */
  timedOut: boolean
  /** How the guest ended under the script, when it did. */
  guestEnd?: {kind: string; reason: string}
  /** How the lab broke, when it did. */
  labError?: string
  lab?: RunLab
  /** Files of this run that exist, by role, relative to the output directory. */
  files: Record<string, string>
}

/** A run's record from its facts and verdict. */
export function runRecord(input: {run: number; facts: RunFacts; verdict: RunVerdict; startedAt: string; durationMs: number; lab?: RunLab; files: Record<string, string>; trace?: {excerpt: string[]; summary: TraceSummary}}): RunRecord {
  const {facts, verdict} = input
  return {
    run: input.run,
    outcome: verdict.outcome,
    reason: verdict.reason,
    excerpt: input.trace?.excerpt ?? verdict.excerpt,
    ...(input.trace ? {trace: input.trace.summary} : {}),
    startedAt: input.startedAt,
    durationMs: input.durationMs,
    ...(facts.exit !== undefined ? {exit: facts.exit} : {}),
    timedOut: facts.timedOut,
    ...(facts.guestEnd ? {guestEnd: {kind: facts.guestEnd.kind, reason: facts.guestEnd.reason}} : {}),
    ...(facts.labError !== undefined ? {labError: facts.labError} : {}),
    ...(input.lab ? {lab: input.lab} : {}),
    files: input.files,
  }
}

/** How a run's excerpt was decoded with --with-vmlinux (trace.ts). */
export interface TraceSummary {
  /** The vmlinux, relative to the output directory. */
  vmlinux: string
  /** Kernel frames in the excerpt, and how many of them were placed in the source. */
  frames: number
  decoded: number
  /** Said once for the whole run: "no debug info in vmlinux". */
  note?: string
}

/** The kernel a series booted. */
export interface SeriesKernel {
  /** The spec asked for, or "the recipe". */
  asked: string
  /** What the lab boots (a built kernel by its key). */
  spec: string
  /** Where the choice came from: --kernel, the file, or the default. */
  from: 'flag' | 'file' | 'default'
  version?: string
  /** A kernel pmemlab built for the file's recipe. */
  build?: {key: string; cacheHit: boolean}
}

/** Why the runs stopped: verdict.ts's reasons, an interrupt, or a setup that failed before any run; or that they go on. */
export type SeriesStop = StopReason | 'interrupted' | 'setup' | 'running'

export interface ReproDocument {
  format: typeof REPRO_DOCUMENT_FORMAT
  formatVersion: 1
  /** The reproducer file as given, and its copy in the output directory. */
  file: string
  copy: string
  outcome: Outcome
  /** "reproduced 3/10", as the result line says it. */
  rate: string
  exitCode: number
  runs: number
  reproduced: number
  errors: number
  /** The most runs, and whether the first reproduction stops them. */
  policy: RunPolicy
  stopped: SeriesStop
  /** Why there was no run at all (the kernel or image could not be made). */
  reason?: string
  kernel?: SeriesKernel
  image?: {name: string; hash: string}
  startedAt: string
  durationMs: number
  results: RunRecord[]
}

export interface SeriesInput {
  file: string
  policy: RunPolicy
  runs: RunRecord[]
  startedAt: string
  durationMs: number
  kernel?: SeriesKernel
  image?: {name: string; hash: string}
  interrupted?: boolean
  /** More runs are to come: the document of a series still running. */
  running?: boolean
  /** The one line of a setup failure that left no run. */
  setupError?: string
}

/** The series' document: verdict.ts's summary of the runs, why they stopped, and each run. */
export function reproDocument(input: SeriesInput): ReproDocument {
  const outcomes = input.runs.map((r) => r.outcome)
  const summary = summarize(outcomes, input.policy)
  const next = nextRun(outcomes, input.policy)
  const stopped: SeriesStop = input.interrupted ? 'interrupted' : input.setupError !== undefined ? 'setup' : next.again ? (input.running ? 'running' : 'done') : next.why
  return {
    format: REPRO_DOCUMENT_FORMAT,
    formatVersion: 1,
    file: input.file,
    copy: REPRODUCER_COPY,
    outcome: summary.outcome,
    rate: summary.rate,
    exitCode: input.interrupted ? ExitCode.interrupted : summary.exitCode,
    runs: summary.runs,
    reproduced: summary.reproduced,
    errors: summary.errors,
    policy: input.policy,
    stopped,
    ...(input.setupError !== undefined ? {reason: input.setupError} : {}),
    ...(input.kernel ? {kernel: input.kernel} : {}),
    ...(input.image ? {image: input.image} : {}),
    startedAt: input.startedAt,
    durationMs: input.durationMs,
    results: input.runs,
  }
}

/** The line on stdout: the rate, and why there was no run when there was none. */
export function resultLine(doc: ReproDocument): string {
  if (doc.stopped === 'interrupted') return `interrupted after ${doc.runs} run${doc.runs === 1 ? '' : 's'}: ${doc.rate}`
  return doc.reason !== undefined ? `${doc.rate}: ${doc.reason}` : doc.rate
}

/** The progress line of a finished run on stderr: "run 2/10: reproduced: warning: WARNING: ...". */
export const progressLine = (record: RunRecord, limit: number) => `run ${record.run}/${limit}: ${record.outcome}: ${record.reason}`

const JUNIT_STATUS: Record<Outcome, JUnitCase['status']> = {'not reproduced': 'pass', reproduced: 'fail', error: 'error'}

/**
 * The series as JUnit: one test case per run, named after the file. A CI job that guards a fix
 * reads it as the exit code does: a run that reproduced fails, one that gave no verdict is an
 * error, one that did not reproduce passes.
 */
export function reproJUnit(doc: ReproDocument): string {
  const name = basename(doc.file).replace(/\.ya?ml$/, '')
  const cases = doc.results.map((r): JUnitCase => {
    const status = JUNIT_STATUS[r.outcome]
    return {
      name: `run ${r.run}`,
      classname: `repro.${name}`,
      timeSec: r.durationMs / 1000,
      status,
      ...(status === 'pass' ? {} : {message: r.reason, type: r.outcome === 'error' ? 'no verdict' : 'reproduced'}),
      ...(status !== 'pass' && r.excerpt.length > 0 ? {details: r.excerpt.join('\n')} : {}),
      ...(status === 'pass' ? {systemOut: `${r.reason}\n`} : {}),
    }
  })
  const properties: Record<string, string> = {outcome: doc.outcome, rate: doc.rate, ...(doc.kernel ? {kernel: doc.kernel.spec} : {}), ...(doc.kernel?.version ? {'kernel-version': doc.kernel.version} : {})}
  if (doc.reason !== undefined) properties.reason = doc.reason
  return renderJUnit([{name, timestamp: doc.startedAt.replace(/\.\d+Z$/, ''), timeSec: doc.durationMs / 1000, properties, cases}], 'pmemlab repro')
}

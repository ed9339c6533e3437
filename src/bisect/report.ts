/**
 * The report of a bisect, as JSON (bisect.json, what --json prints) and Markdown (bisect.md, for
 * a mail, an issue or $GITHUB_STEP_SUMMARY). Pure: the state and what git says of the commits
 * in, the report out; the Markdown is rendered from the JSON alone.
 *
 * It says: the culprit (hash, author, subject), or the candidates when skipped commits leave the
 * range open, or the endpoint check that refused the bisect, or how far an unfinished one got;
 * how sure the result is (step-verdict.ts bisectConfidence); one row per tested commit (commit,
 * role, build, verdict, runs, time); the culprit's and its parent's repro bundles; a ready
 * `Fixes:` line (a normal bisect only: with --reverse the commit found is the fix, which a Fixes:
 * tag does not name); and the warnings:
 *   - the culprit's kernel image is byte for byte its parent's: the commit changes nothing the
 *     kernel runs, so it cannot be the cause (or the fix), and a flaky step misled the bisect
 *     (syzkaller's NoopChange). Made only for a culprit with one parent, both built;
 *   - the culprit is a merge: each side was good alone, the bug is in how they meet;
 *   - confidence under 90%: more --runs would firm it up.
 */
import {formatDuration} from '../kernel/make.js'
import type {CommitInfo} from './git-output.js'
import {gitEndpoints, stateTerms, stepOf, type BisectState, type StepRecord} from './state.js'
import {bisectConfidence, runsText, type Confidence, type Endpoint, type Terms} from './step-verdict.js'

export const REPORT_FORMAT = 'pmemlab-bisect'
export const REPORT_VERSION = 1
export const REPORT_JSON = 'bisect.json'
export const REPORT_MARKDOWN = 'bisect.md'
/** Under this, the report warns that the result is shaky. */
export const LOW_CONFIDENCE = 0.9

export interface ReportCommit {
  commit: string
  author?: string
  subject?: string
}

export interface ReportRow {
  commit: string
  subject?: string
  role: StepRecord['role']
  /** "built", "cached", "failed: ...". */
  build: string
  buildState: StepRecord['build']['state']
  /** What git was told: a term, or skip. */
  verdict: string
  /** "reproduced 2/3", "" when nothing ran. */
  runs: string
  reason: string
  durationMs: number
  bundle?: string
}

export interface BisectReport {
  format: typeof REPORT_FORMAT
  version: typeof REPORT_VERSION
  tree: string
  good: {ref: string; commit: string}
  bad: {ref: string; commit: string}
  reverse: boolean
  terms: Terms
  type: BisectState['type']
  runs: number
  badThreshold: number
  status: 'culprit' | 'candidates' | 'refused' | 'unfinished'
  /** One line: the result. */
  headline: string
  culprit?: ReportCommit & {parents: string[]; bundle?: string; imageHash?: string}
  /** `Fixes: 0123456789ab ("subject")`, for a culprit of a normal bisect. */
  fixes?: string
  parent?: ReportCommit & {bundle?: string; imageHash?: string}
  candidates?: ReportCommit[]
  refused?: {endpoint: Endpoint; commit: string; reason: string}
  confidence?: Pick<Confidence, 'value' | 'rate' | 'text'>
  warnings: string[]
  steps: ReportRow[]
  /** Commits git was told to skip. */
  skipped: string[]
  durationMs: number
  log: string
}

export interface ReportInput {
  state: BisectState
  /** `git show` of the culprit, its parents and the candidates (git-output.ts parseCommits); a commit missing here is named by its hash and recorded subject. */
  commits: readonly CommitInfo[]
  /** The culprit's parent, built only for the image check when no step had built it. */
  parentBuild?: {commit: string; imageHash?: string; bundle?: string}
}

const short = (commit: string) => commit.slice(0, 12)

/** The kernel's trailer for the commit that introduced a bug. */
export const fixesLine = (commit: string, subject: string) => `Fixes: ${short(commit)} ("${subject}")`

function buildText(build: StepRecord['build']): string {
  const time = build.durationMs !== undefined ? `, ${formatDuration(build.durationMs)}` : ''
  return build.state === 'failed' ? `failed${time}: ${build.reason ?? 'no reason recorded'}` : `${build.state}${time}`
}

function rowOf(step: StepRecord): ReportRow {
  return {
    commit: step.commit,
    ...(step.subject !== undefined ? {subject: step.subject} : {}),
    role: step.role,
    build: buildText(step.build),
    buildState: step.build.state,
    verdict: step.term,
    runs: step.runs.length > 0 ? runsText(step.runs.map((r) => r.outcome)) : '',
    reason: step.reason,
    durationMs: step.durationMs,
    ...(step.bundle !== undefined ? {bundle: step.bundle} : {}),
  }
}

/** The report of STATE: see the top of this file. */
export function bisectReport(input: ReportInput): BisectReport {
  const {state} = input
  const terms = stateTerms(state)
  const info = (commit: string): ReportCommit => {
    const shown = input.commits.find((c) => c.commit === commit)
    const subject = shown?.subject ?? stepOf(state, commit)?.subject
    return {commit, ...(shown ? {author: shown.author} : {}), ...(subject !== undefined ? {subject} : {})}
  }
  const named = (c: ReportCommit) => `${short(c.commit)}${c.subject !== undefined ? ` ("${c.subject}")` : ''}`
  const base = {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    tree: state.tree,
    good: state.good,
    bad: state.bad,
    reverse: state.reverse,
    terms,
    type: state.type,
    runs: state.runs,
    badThreshold: state.badThreshold,
    steps: state.steps.map(rowOf),
    skipped: state.steps.filter((s) => s.role === 'step' && s.side === 'skip').map((s) => s.commit),
    durationMs: state.steps.reduce((sum, s) => sum + s.durationMs, 0),
    log: state.log,
  } as const
  const warnings: string[] = []
  const result = state.result
  const confidenceOf = () => {
    const c = bisectConfidence(state.steps.map((s) => ({observation: s.observation, runs: s.runs.map((r) => r.outcome)})), state.type)
    if (c.value !== undefined && c.value < LOW_CONFIDENCE) warnings.push(`confidence is ${(c.value * 100).toFixed(1)}%: a clean step may have missed a reproduction; bisect again with more --runs`)
    return {...(c.value !== undefined ? {value: c.value} : {}), ...(c.rate ? {rate: c.rate} : {}), text: c.text}
  }

  if (!result) {
    const {newCommit, oldCommit} = gitEndpoints(state)
    const headline = `unfinished after ${state.steps.length} tested commit${state.steps.length === 1 ? '' : 's'} between ${short(oldCommit)} and ${short(newCommit)}: pmemlab bisect --resume goes on`
    return {...base, status: 'unfinished', headline, warnings}
  }
  if (result.kind === 'refused') {
    return {...base, status: 'refused', headline: result.reason, refused: {endpoint: result.endpoint, commit: result.commit, reason: result.reason}, warnings}
  }
  if (result.kind === 'candidates') {
    const candidates = result.commits.map(info)
    const confidence = confidenceOf()
    const headline = `the first ${terms.new} commit is one of ${candidates.length} that could not be told apart (skipped): ${candidates.map((c) => short(c.commit)).join(', ')}`
    return {...base, status: 'candidates', headline, candidates, confidence, warnings}
  }

  const shown = input.commits.find((c) => c.commit === result.commit)
  const step = stepOf(state, result.commit)
  const culprit = {...info(result.commit), parents: shown?.parents ?? [], ...(step?.bundle ? {bundle: step.bundle} : {}), ...(step?.build.imageHash ? {imageHash: step.build.imageHash} : {})}
  const confidence = confidenceOf()
  let parent: BisectReport['parent']
  const what = state.reverse ? 'fix' : 'cause'
  if (culprit.parents.length > 1) {
    warnings.push(`${short(culprit.commit)} is a merge: each side was ${terms.old} alone, so the ${what} is in how they meet; bisect the merged branch to go further`)
  } else if (culprit.parents.length === 1) {
    const commit = culprit.parents[0]
    const tested = stepOf(state, commit)
    const built = tested?.build.imageHash !== undefined ? {imageHash: tested.build.imageHash, bundle: tested.bundle} : input.parentBuild?.commit === commit ? input.parentBuild : undefined
    parent = {...info(commit), ...(built?.bundle ? {bundle: built.bundle} : {}), ...(built?.imageHash ? {imageHash: built.imageHash} : {})}
    if (culprit.imageHash !== undefined && parent.imageHash !== undefined && culprit.imageHash === parent.imageHash) {
      warnings.push(
        `the kernel image of ${short(culprit.commit)} is identical to its parent ${short(commit)}'s (sha256 ${culprit.imageHash.slice(0, 16)}): the commit changes nothing the kernel runs, so it cannot be the ${what}; a flaky step misled the bisect`,
      )
    } else if (culprit.imageHash === undefined || parent.imageHash === undefined) {
      warnings.push(`the image check was not made: ${culprit.imageHash === undefined ? short(culprit.commit) : short(commit)} has no recorded kernel image hash`)
    }
  }
  const by = culprit.author !== undefined ? ` by ${culprit.author}` : ''
  const headline = `first ${terms.new} commit: ${named(culprit)}${by}`
  const fixes = !state.reverse && culprit.subject !== undefined ? fixesLine(culprit.commit, culprit.subject) : undefined
  return {...base, status: 'culprit', headline, culprit, ...(fixes ? {fixes} : {}), ...(parent ? {parent} : {}), confidence, warnings}
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** Text for one table cell: no pipes, no line breaks, not endless. */
function cell(text: string, limit = 200): string {
  const flat = text.replace(/\s*\n\s*/g, ' ').replaceAll('\\', '\\\\').replaceAll('|', '\\|').replaceAll('<', '&lt;')
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat
}

const fence = (text: string) => ['```', ...text.trimEnd().split('\n').map((l) => l.replaceAll('```', "'''")), '```']

/** The report in GitHub-flavoured Markdown. */
export function renderReport(report: BisectReport): string {
  const direction = report.reverse ? ' --reverse' : ''
  const lines = [`### pmemlab bisect${direction}: ${report.status === 'culprit' ? `first ${report.terms.new} commit ${short(report.culprit!.commit)}` : report.status}`, '']
  lines.push(`**${cell(report.headline, 1000)}**`, '')
  if (report.fixes) lines.push('```', report.fixes, '```', '')
  if (report.candidates) {
    lines.push(...report.candidates.map((c) => `- \`${short(c.commit)}\` ${cell(c.subject ?? '')}${c.author ? ` (${cell(c.author)})` : ''}`), '')
  }
  for (const warning of report.warnings) lines.push(`> **Warning:** ${cell(warning, 1000)}`, '')
  if (report.confidence) lines.push(`Confidence: ${cell(report.confidence.text, 1000)}.`, '')
  const runs = report.type === 'build' ? 'one build a commit' : `${report.runs} run${report.runs === 1 ? '' : 's'} a commit, reproduced at ${report.badThreshold} or more`
  lines.push(`Tree \`${cell(report.tree)}\`, good \`${cell(report.good.ref)}\` (${short(report.good.commit)}), bad \`${cell(report.bad.ref)}\` (${short(report.bad.commit)}), --type ${report.type}, ${runs}; ${formatDuration(report.durationMs)} in all.`, '')
  if (report.steps.length > 0) {
    lines.push('| commit | role | build | verdict | runs | time |', '|---|---|---|---|---|---:|')
    for (const row of report.steps) {
      const verdict = row.verdict === report.terms.new ? `**${row.verdict}**` : row.verdict
      lines.push(`| \`${short(row.commit)}\` ${cell(row.subject ?? '', 80)} | ${row.role} | ${cell(row.build, 120)} | ${verdict} | ${cell(row.runs)} | ${formatDuration(row.durationMs)} |`)
    }
    lines.push('')
  }
  const bundles = [
    ...(report.culprit?.bundle ? [`- culprit ${short(report.culprit.commit)}: \`${cell(report.culprit.bundle)}\``] : []),
    ...(report.parent?.bundle ? [`- parent ${short(report.parent.commit)}: \`${cell(report.parent.bundle)}\``] : []),
  ]
  if (bundles.length > 0) lines.push('Repro bundles:', '', ...bundles, '')
  if (report.log.trim() !== '') lines.push('<details><summary>git bisect log</summary>', '', ...fence(report.log), '</details>', '')
  return `${lines.join('\n').trimEnd()}\n`
}

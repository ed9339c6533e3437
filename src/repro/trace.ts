/**
 * A run's kernel stack traces, decoded with the vmlinux that --with-vmlinux put into OUTPUT/kernel/
 * (kernel/symbolize.ts): the excerpt that run.json, JUnit and the progress lines show, and the
 * run's failing reports whole, as runs/N/decoded-trace.txt. One addr2line run decodes both.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {TraceDecoder, type DecodedTraces} from '../kernel/symbolize.js'
import type {BuildJson} from '../kernel/store.js'
import {consoleExcerpt} from '../lab/oops.js'
import {KERNEL_DIR, type TraceSummary} from './document.js'

/** Where the vmlinux is, relative to the output directory. */
export const VMLINUX = `${KERNEL_DIR}/vmlinux`

export interface RunTrace {
  excerpt: string[]
  summary: TraceSummary
  /** decoded-trace.txt, when the run's console holds a failing report with frames. */
  file?: string
}

/**
 * The decoder for a series, given the output directory: the source tree a kernel built from a
 * user's tree names absolutely (build.json), so that places read "fs/dax.c:1234" there too.
 */
export async function traceDecoder(output: string): Promise<TraceDecoder> {
  const build = await readFile(join(output, KERNEL_DIR, 'build.json'), 'utf8').then((text) => JSON.parse(text) as Pick<BuildJson, 'source'>, () => undefined)
  const roots = build?.source.kind === 'tree' && build.source.ref === undefined ? [build.source.dir] : []
  return new TraceDecoder(join(output, VMLINUX), roots)
}

/** The failing reports of a run's console, whole: from the first to the end of the last (lab/oops.ts consoleExcerpt). */
export const failingReports = (console: string) => consoleExcerpt(console, Number.MAX_SAFE_INTEGER)

/** Decodes run N's excerpt and failing reports; undefined when neither holds a kernel frame. */
export async function decodeRun(decoder: Pick<TraceDecoder, 'decode'>, run: number, console: string, excerpt: string[]): Promise<RunTrace | undefined> {
  const reports = failingReports(console)
  const {traces, note} = await decoder.decode([excerpt, reports])
  const [inExcerpt, inReports] = traces
  if (inExcerpt.frames === 0 && inReports.frames === 0) return undefined
  const summary: TraceSummary = {vmlinux: VMLINUX, frames: inExcerpt.frames, decoded: inExcerpt.decoded, ...(note === undefined ? {} : {note})}
  return {excerpt: inExcerpt.lines, summary, ...(inReports.frames > 0 ? {file: decodedTraceText(run, inReports, note)} : {})}
}

/** decoded-trace.txt: what it is in one line, the note if any, then the reports with their places. */
export function decodedTraceText(run: number, trace: DecodedTraces['traces'][number], note?: string): string {
  const head = `# run ${run}: the failing kernel reports, decoded with ${VMLINUX} (${trace.decoded} of ${trace.frames} frames placed)`
  return `${[head, ...(note === undefined ? [] : [`# ${note}`]), ...trace.lines].join('\n')}\n`
}

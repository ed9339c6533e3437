/**
 * Decodes kernel stack traces against a vmlinux: `nm` once for its function symbols, then one
 * `addr2line` for every address of a batch of traces (a debug vmlinux is hundreds of MB, and
 * addr2line reads its DWARF again on every start). stacktrace.ts and symbols.ts do the rest.
 */
import {PmemlabError} from '../core/errors.js'
import {run} from '../core/exec.js'
import {requireProgram} from '../core/which.js'
import {renderDecoded, traceFrames} from './stacktrace.js'
import {addressArgs, decodeFrames, parseAddr2line, parseNm, type SymbolTable} from './symbols.js'

/** One trace decoded: its lines with places added, and how many frames it had and how many were placed. */
export interface DecodedTrace {
  lines: string[]
  frames: number
  decoded: number
}

export interface DecodedTraces {
  traces: DecodedTrace[]
  /** Said once for them all: "no debug info in vmlinux". */
  note?: string
}

/** nm and addr2line, or exit 3 naming binutils. */
export async function symbolTools(): Promise<{nm: string; addr2line: string}> {
  return {nm: await requireProgram('nm', 'binutils'), addr2line: await requireProgram('addr2line', 'binutils')}
}

/** How long addr2line may take over a batch: reading a debug vmlinux's DWARF takes seconds, not minutes. */
const ADDR2LINE_TIMEOUT_MS = 180_000

export class TraceDecoder {
  private table?: Promise<SymbolTable>

  /** ROOTS: absolute kernel source trees, stripped from the paths addr2line prints (see stacktrace.ts sourcePath). */
  constructor(
    readonly vmlinux: string,
    private readonly roots: readonly string[] = [],
  ) {}

  /** Decodes the frames of each of TEXTS (console lines), with one addr2line run for all of them. */
  async decode(texts: ReadonlyArray<readonly string[]>): Promise<DecodedTraces> {
    const framesOf = texts.map((lines) => traceFrames(lines))
    const all = framesOf.flat()
    if (all.length === 0) return {traces: texts.map((lines) => ({lines: [...lines], frames: 0, decoded: 0}))}
    const tools = await symbolTools()
    const table = await this.symbols(tools.nm)
    const addresses = addressArgs(all, table)
    const answers = addresses.length === 0 ? new Map() : parseAddr2line(await this.addr2line(tools.addr2line, addresses))
    let note: string | undefined
    const traces = texts.map((lines, i) => {
      const decoded = decodeFrames(framesOf[i], table, answers, this.roots)
      note ??= decoded.note
      return {
        lines: renderDecoded(lines, framesOf[i], decoded.decodings),
        frames: framesOf[i].length,
        decoded: decoded.decodings.filter((d) => d.kind === 'decoded').length,
      }
    })
    return note === undefined ? {traces} : {traces, note}
  }

  private symbols(nm: string): Promise<SymbolTable> {
    this.table ??= (async () => {
      const result = await run(nm, ['--defined-only', '-S', this.vmlinux], {reject: false, stdin: 'ignore'})
      // A stripped vmlinux: nm says "no symbols" and the table stays empty (decodeFrames says so).
      if (result.exitCode !== 0 && !/no symbols/.test(String(result.stderr))) throw toolFailed('nm', this.vmlinux, result.stderr)
      return parseNm(String(result.stdout))
    })()
    return this.table
  }

  private async addr2line(addr2line: string, addresses: string[]): Promise<string> {
    const result = await run(addr2line, ['-a', '-f', '-i', '-e', this.vmlinux, ...addresses], {reject: false, stdin: 'ignore', timeout: ADDR2LINE_TIMEOUT_MS})
    if (result.exitCode !== 0 || result.timedOut) throw toolFailed('addr2line', this.vmlinux, result.timedOut ? `no answer in ${ADDR2LINE_TIMEOUT_MS / 1000} s` : result.stderr)
    return String(result.stdout)
  }
}

function toolFailed(tool: string, vmlinux: string, stderr: unknown): PmemlabError {
  const why = String(stderr).trim().split('\n').at(-1) || 'it failed'
  return new PmemlabError(`${tool} could not read ${vmlinux}: ${why}`)
}

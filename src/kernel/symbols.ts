/**
 * From frames to source places, as data: the function symbols of `nm -S` output, the address each
 * frame stands for, and addr2line's answers (`addr2line -a -f -i`) turned into each frame's
 * decoding. Pure: symbolize.ts runs the programs.
 */
import {sourcePath, type FrameDecoding, type InlinedFrame, type TraceFrame} from './stacktrace.js'

export interface FunctionSymbol {
  address: bigint
  /** Bytes, when nm knows it. */
  size?: number
}

/** Function symbols by name (local ones included: a name may have several). */
export type SymbolTable = Map<string, FunctionSymbol[]>

/**
 * The function symbols of `nm -S` (or `nm`) output: text symbols, global or local, and weak ones.
 * Kernel addresses pass 2^53, hence bigint.
 */
export function parseNm(text: string): SymbolTable {
  const table: SymbolTable = new Map()
  for (const line of text.split('\n')) {
    const match = /^([0-9a-f]+)(?: ([0-9a-f]+))? ([tTwW]) (\S+)$/.exec(line.trim())
    if (!match) continue
    const [, address, size, , name] = match
    const symbol: FunctionSymbol = {address: BigInt(`0x${address}`), ...(size === undefined ? {} : {size: Number.parseInt(size, 16)})}
    const known = table.get(name)
    if (!known) table.set(name, [symbol])
    else if (!known.some((s) => s.address === symbol.address)) known.push(symbol)
  }
  return table
}

/**
 * The address a frame stands for, or why it has none. A return address points after its call,
 * which may already be the next line or, after a call that does not return, the next function:
 * one byte back is inside the call (decode_stacktrace.sh does the same). The RIP frame is the
 * instruction itself, and an offset of 0 is no return address.
 */
export function frameAddress(frame: TraceFrame, table: SymbolTable): {address: bigint} | FrameDecoding {
  if (frame.module !== undefined) return {kind: 'module', module: frame.module}
  const candidates = table.get(frame.symbol) ?? []
  if (candidates.length === 0) return {kind: 'not in vmlinux'}
  // Static functions share names across files; the printed length tells them apart.
  const chosen = candidates.length === 1 ? candidates : candidates.filter((s) => s.size === frame.length)
  if (chosen.length !== 1) return {kind: 'ambiguous', count: candidates.length}
  const back = frame.rip || frame.offset === 0 ? 0n : 1n
  return {address: chosen[0].address + BigInt(frame.offset) - back}
}

export interface Place {
  function: string
  /** As addr2line prints it; "??" when it does not know. */
  file: string
  /** "1234", or "?" when it does not know. */
  line: string
}

/**
 * `addr2line -a -f -i` output: per address its line ("0x..."), then a function and a FILE:LINE
 * line for the place, and one more pair for each function it was inlined into, outwards.
 */
export function parseAddr2line(text: string): Map<bigint, Place[]> {
  const answers = new Map<bigint, Place[]>()
  let current: Place[] | undefined
  const lines = text.split('\n').map((l) => l.trimEnd())
  for (let i = 0; i < lines.length; i++) {
    if (/^0x[0-9a-f]+$/.test(lines[i])) {
      current = []
      answers.set(BigInt(lines[i]), current)
      continue
    }
    if (current === undefined || lines[i] === '' || i + 1 >= lines.length) continue
    // "fs/dax.c:1234 (discriminator 2)": the discriminator tells basic blocks apart, not lines.
    const place = /^(.*):(\d+|\?)(?: \(discriminator \d+\))?$/.exec(lines[i + 1])
    if (!place) continue
    current.push({function: lines[i], file: place[1], line: place[2]})
    i++
  }
  return answers
}

const known = (place: Place) => place.file !== '??' && place.file !== ''
const at = (place: Place, roots: readonly string[]) => `${sourcePath(place.file, roots)}:${place.line}`

/** What each frame decodes to, and the one note for the whole trace (no debug info in the vmlinux). */
export interface Decodings {
  decodings: FrameDecoding[]
  note?: string
}

/**
 * Each frame's decoding from its address and addr2line's ANSWERS. When addr2line knew no place
 * for any address, the vmlinux has no debug info: the frames stay as printed and one note says so.
 */
export function decodeFrames(frames: readonly TraceFrame[], table: SymbolTable, answers: ReadonlyMap<bigint, readonly Place[]>, roots: readonly string[] = []): Decodings {
  if (table.size === 0) return {decodings: frames.map((f) => (f.module === undefined ? {kind: 'as printed'} : {kind: 'module', module: f.module})), note: 'no symbols in vmlinux'}
  const targets = frames.map((frame) => frameAddress(frame, table))
  const looked = targets.filter((t): t is {address: bigint} => 'address' in t)
  const noDebugInfo = looked.length > 0 && looked.every((t) => !(answers.get(t.address) ?? []).some(known))
  const decodings = targets.map((target): FrameDecoding => {
    if (!('address' in target)) return target
    if (noDebugInfo) return {kind: 'as printed'}
    const places = answers.get(target.address) ?? []
    if (places.length === 0 || !known(places.at(-1)!)) return {kind: 'no line'}
    const inlined: InlinedFrame[] = places.slice(0, -1).filter(known).map((p) => ({function: p.function, at: at(p, roots)}))
    return {kind: 'decoded', at: at(places.at(-1)!, roots), inlined}
  })
  return noDebugInfo ? {decodings, note: 'no debug info in vmlinux'} : {decodings}
}

/** The distinct addresses to ask addr2line about, as it takes them. */
export function addressArgs(frames: readonly TraceFrame[], table: SymbolTable): string[] {
  const addresses = new Set<bigint>()
  for (const frame of frames) {
    const target = frameAddress(frame, table)
    if ('address' in target) addresses.add(target.address)
  }
  return [...addresses].map((a) => `0x${a.toString(16)}`)
}

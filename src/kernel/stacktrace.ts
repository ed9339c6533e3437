/**
 * Kernel stack traces as text: the frames in console lines, and the lines again with each frame's
 * source place added, as the kernel's scripts/decode_stacktrace.sh adds it. Pure: lines in, frames
 * out; frames and their decodings in, lines out. symbols.ts finds the addresses and reads
 * addr2line's answers, symbolize.ts runs nm and addr2line.
 *
 * The frames read:
 *   [    4.709288]  sysrq_handle_crash+0x16/0x20              a return address of the call trace
 *   [    4.709288]  ? _printk+0x68/0x83                       an unreliable one (the unwinder guessed)
 *   [    4.709288]  nd_pmem_probe+0x4c/0x90 [nd_pmem]         in a module (a build id may follow its name)
 *   [    4.709288] RIP: 0010:dax_iomap_rw+0x3a2/0x3d0         the faulting instruction itself
 * with a "[T123]" caller id after the timestamp, none at all, or a shell prompt before it. A user
 * space RIP ("RIP: 0033:0x7f25...") names no symbol and is no frame.
 */
import {posix} from 'node:path'

export interface TraceFrame {
  /** Index of its line in the lines read. */
  line: number
  symbol: string
  /** Bytes into the symbol, and the symbol's length, as printed. */
  offset: number
  length: number
  /** The module it is in; undefined for the kernel image itself. */
  module?: string
  /** False for a "? " frame: the unwinder found the address on the stack but not in the chain. */
  reliable: boolean
  /** The RIP line: the instruction that faulted, not a return address. */
  rip: boolean
  /** The line up to the frame's message (timestamp and caller id, a prompt before them), for lines added under it. */
  stamp: string
}

/**
 * What comes before a kernel message on a console line: anything before the timestamp (a prompt
 * the message landed after), an optional "<4>" level, the timestamp and an optional caller id.
 * The one grammar of it: lab/oops.ts strips it to read the message.
 */
export const KERNEL_STAMP = String.raw`.*?(?:<\d+>)?\[\s*\d+\.\d+\](?:\s*\[\s*[TC]\d+\])?`
const STAMP = `(${KERNEL_STAMP})?`
const SYMBOL = String.raw`([A-Za-z_.$][\w.$]*)\+0x([0-9a-f]+)\/0x([0-9a-f]+)`
const MODULE = String.raw`(?: \[([\w-]+)(?: [^\]]*)?\])?`
const CALL_FRAME = new RegExp(`^${STAMP}(\\s+)(\\? )?${SYMBOL}${MODULE}$`)
const RIP_FRAME = new RegExp(`^${STAMP}(\\s*)RIP: [0-9a-f]{4}:${SYMBOL}${MODULE}$`)

/** The frame one console line holds, if it holds one. */
export function parseFrame(text: string, line = 0): TraceFrame | undefined {
  const clean = text.replace(/\r/g, '').trimEnd()
  const call = CALL_FRAME.exec(clean)
  if (call) {
    const [, stamp, , unreliable, symbol, offset, length, module] = call
    return frameOf({line, symbol, offset, length, module, reliable: unreliable === undefined, rip: false, stamp: stamp ?? ''})
  }
  const rip = RIP_FRAME.exec(clean)
  if (rip) {
    const [, stamp, , symbol, offset, length, module] = rip
    return frameOf({line, symbol, offset, length, module, reliable: true, rip: true, stamp: stamp ?? ''})
  }
  return undefined
}

function frameOf(parts: {line: number; symbol: string; offset: string; length: string; module?: string; reliable: boolean; rip: boolean; stamp: string}): TraceFrame {
  const {module, ...rest} = parts
  return {...rest, offset: Number.parseInt(parts.offset, 16), length: Number.parseInt(parts.length, 16), ...(module === undefined ? {} : {module})}
}

/** Every frame in LINES, in their order. */
export function traceFrames(lines: readonly string[]): TraceFrame[] {
  return lines.flatMap((text, i) => parseFrame(text, i) ?? [])
}

/** A source place, relative to the kernel tree where it could be made so: "fs/dax.c:1234". */
export interface InlinedFrame {
  function: string
  at: string
}

/** What became of one frame. */
export type FrameDecoding =
  /** AT is the place in the frame's own function; INLINED the functions inlined there, innermost first. */
  | {kind: 'decoded'; at: string; inlined: InlinedFrame[]}
  | {kind: 'module'; module: string}
  | {kind: 'not in vmlinux'}
  /** More than one function has the name and none alone has the printed length. */
  | {kind: 'ambiguous'; count: number}
  /** addr2line knew the function but not the line. */
  | {kind: 'no line'}
  /** Left as printed, the reason given once for the whole trace (no debug info in vmlinux). */
  | {kind: 'as printed'}

/** What a decoding adds to the frame's line. */
function suffix(decoding: FrameDecoding, frame: TraceFrame): string {
  switch (decoding.kind) {
    case 'decoded':
      return ` (${decoding.at})`
    case 'module':
      return ` (module ${decoding.module}: not decoded)`
    case 'not in vmlinux':
      return ' (not in vmlinux)'
    case 'ambiguous':
      return ` (${decoding.count} functions named ${frame.symbol} in vmlinux: not decoded)`
    case 'no line':
      return ' (no line information)'
    case 'as printed':
      return ''
  }
}

/**
 * LINES again, each frame's line with its source place added. Functions inlined at that place
 * come as lines of their own just above it, innermost first and marked "inlined", so that the
 * trace still reads from the innermost call outwards, as addr2line -i and gdb list them.
 * DECODINGS go with FRAMES, one each.
 */
export function renderDecoded(lines: readonly string[], frames: readonly TraceFrame[], decodings: readonly FrameDecoding[]): string[] {
  const byLine = new Map(frames.map((frame, i) => [frame.line, {frame, decoding: decodings[i]}]))
  return lines.flatMap((text, i) => {
    const clean = text.replace(/\r/g, '').trimEnd()
    const entry = byLine.get(i)
    if (!entry?.decoding) return [clean]
    const {frame, decoding} = entry
    const lead = `${timestampOf(frame.stamp)}  ${frame.reliable ? '' : '? '}`
    const inlined = decoding.kind === 'decoded' ? decoding.inlined.map((f) => `${lead}${f.function} (${f.at}) inlined`) : []
    return [...inlined, `${clean}${suffix(decoding, frame)}`]
  })
}

/** The stamp without a prompt that came before the timestamp. */
const timestampOf = (stamp: string) => /(?:<\d+>)?\[\s*\d+\.\d+\].*$/.exec(stamp)?.[0] ?? ''

/**
 * make's O= directory of a pmemlab kernel build (kernel/build.ts): ".out-KEY16-PID" inside a source
 * pmemlab owns, where kbuild names sources "../fs/dax.c" from it; "out-KEY16-PID" under the cache
 * when a user's tree is built in place (its sources named by their absolute paths).
 */
const BUILD_OUT_DIR = /\/\.?out-[0-9a-f]{16}-\d+\/(.*)$/
const OWNED_SOURCE = /\/\.out-[0-9a-f]{16}-\d+\/\.\.\/(.*)$/

/**
 * A source path as addr2line prints it, relative to the kernel tree: a generated file inside a
 * pmemlab build's O= directory, or a source of the tree around it, from there; under one of ROOTS
 * (absolute source trees), what follows the root; a relative path without its "./" or "../".
 * Anything else is returned as it is.
 */
export function sourcePath(path: string, roots: readonly string[] = []): string {
  const normal = posix.normalize(path)
  const generated = BUILD_OUT_DIR.exec(normal)
  if (generated) return generated[1]
  const owned = OWNED_SOURCE.exec(path)
  if (owned) return posix.normalize(owned[1]).replace(/^(\.\.\/)+/, '')
  if (!posix.isAbsolute(normal)) return normal.replace(/^(\.\.?\/)+/, '')
  for (const root of roots) {
    const prefix = posix.normalize(`${root}/`)
    if (normal.startsWith(prefix)) return normal.slice(prefix.length)
  }
  return normal
}

/**
 * A small C program compiled with gcc, standing in for a vmlinux: its calls are marked with
 * comments, and nm and objdump give the true return addresses of those calls, so that a decoded
 * frame can be checked against the line its mark is on.
 */
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'
import {withDir} from 'tmp-promise'

export const FIXTURE_C = `/* Each call is marked; the test looks for the marks. */
volatile int sink_value;
__attribute__((noinline)) void sink(int x) { sink_value = x; } /* SINK */
static inline void helper(int x) {
  sink(x * 3); /* HELPER-CALLS-SINK */
}
__attribute__((noinline)) void middle(int x) {
  sink(x + 1); /* MIDDLE-CALLS-SINK */
  helper(x); /* MIDDLE-CALLS-HELPER */
  sink(x + 2); /* MIDDLE-CALLS-SINK-AGAIN */
}
int main(int argc, char **argv) {
  (void)argv;
  middle(argc); /* MAIN-CALLS-MIDDLE */
  return 0;
}
`
/** pmemlab's O= directory inside the source (kernel/build.ts): sources are named "../trace.c" from it. */
export const OUT_DIR = '.out-0123456789abcdef-4242'
export const STAMP = '[  100.000001]'

/** The 1-based line of FIXTURE_C that holds MARK. */
export const lineOf = (mark: string) => FIXTURE_C.split('\n').findIndex((l) => l.includes(`/* ${mark} */`)) + 1

export interface Fn {
  address: number
  size: number
}

/** The function symbols of ELF, with their sizes. */
export async function functions(elf: string): Promise<Map<string, Fn>> {
  const {stdout} = await execa('nm', ['-S', '--defined-only', elf])
  const map = new Map<string, Fn>()
  for (const m of stdout.matchAll(/^([0-9a-f]+) ([0-9a-f]+) [tT] (\w+)$/gm)) map.set(m[3], {address: Number.parseInt(m[1], 16), size: Number.parseInt(m[2], 16)})
  return map
}

/** The return address of each call in function NAME, as offsets into it (objdump's next instruction). */
export async function callReturns(elf: string, name: string): Promise<number[]> {
  const {stdout} = await execa('objdump', ['-d', '--no-show-raw-insn', elf])
  const body = stdout.split(`<${name}>:\n`)[1].split('\n\n')[0]
  const instructions = [...body.matchAll(/^\s*([0-9a-f]+):\s+(\S+)/gm)].map((m) => ({address: Number.parseInt(m[1], 16), mnemonic: m[2]}))
  const start = instructions[0].address
  return instructions.flatMap((insn, i) => (insn.mnemonic.startsWith('call') && i + 1 < instructions.length ? [instructions[i + 1].address - start] : []))
}

/** A call-trace line for NAME+OFFSET, "? " in LEAD for an unreliable one. */
export const frameLine = (fns: Map<string, Fn>, name: string, offset: number, lead = ' ') => `${STAMP} ${lead}${name}+0x${offset.toString(16)}/0x${fns.get(name)!.size.toString(16)}`

/** gcc FLAGS SOURCE -o OUT, run in CWD; the ELF's path. */
export async function compile(cwd: string, source: string, flags: string[], out: string): Promise<string> {
  await execa('gcc', [...flags, source, '-o', out], {cwd})
  return join(cwd, out)
}

/** A temporary directory holding trace.c and an empty OUT_DIR in it. */
export async function withFixture(body: (dir: string) => Promise<void>): Promise<void> {
  await withDir(
    async ({path}) => {
      await mkdir(join(path, OUT_DIR))
      await writeFile(join(path, 'trace.c'), FIXTURE_C)
      await body(path)
    },
    {unsafeCleanup: true, prefix: 'pmemlab-stacktrace-'},
  )
}

/** A minimal ELF64 whose one PT_NOTE holds the note NAME/TYPE (Xen/18: a PVH entry point). */
export function elfWithNote(name: string, type: number): Buffer {
  const elf = Buffer.alloc(200)
  elf.write('\x7fELF', 0, 'latin1')
  elf[4] = 2 // 64-bit
  elf[5] = 1 // little-endian
  elf.writeBigUInt64LE(64n, 0x20) // e_phoff
  elf.writeUInt16LE(56, 0x36) // e_phentsize
  elf.writeUInt16LE(1, 0x38) // e_phnum
  elf.writeUInt32LE(4, 64) // PT_NOTE
  elf.writeBigUInt64LE(120n, 64 + 8) // p_offset
  elf.writeBigUInt64LE(24n, 64 + 32) // p_filesz
  elf.writeUInt32LE(4, 120) // namesz
  elf.writeUInt32LE(4, 124) // descsz
  elf.writeUInt32LE(type, 128)
  elf.write(`${name}\0`, 132, 'latin1')
  return elf
}

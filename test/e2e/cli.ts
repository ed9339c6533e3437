import assert from 'node:assert/strict'
import {execa, type ResultPromise} from 'execa'
import {mkdtemp, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** Drives bin/run.js as a user would: a child process, stdout and stderr kept apart. */
export const root = fileURLToPath(new URL('../../../', import.meta.url))
const runJs = join(root, 'bin', 'run.js')

export interface Lab {
  env: Record<string, string>
  stateDir: string
  pmemlab(args: string[], options?: {timeout?: number; env?: Record<string, string>}): Promise<{exitCode: number; stdout: string; stderr: string}>
  start(args: string[], options?: {env?: Record<string, string>}): ResultPromise
  /** QEMU processes started from this lab's state directory (of one VM, when named). */
  qemuProcesses(vm?: string): Promise<string[]>
  vmDirs(): Promise<string[]>
  dispose(): Promise<void>
}

/**
 * A private state directory per test file, so tests see only their own VMs. The cache (guest
 * image, initramfs) is shared: PMEMLAB_CACHE_DIR when set (CI sets a fresh one), else the user's.
 */
export async function makeLab(): Promise<Lab> {
  const stateDir = await mkdtemp(join(tmpdir(), 'pmemlab-e2e-'))
  const env: Record<string, string> = {PMEMLAB_STATE_DIR: stateDir, NO_COLOR: '1'}
  const qemuProcesses = async (vm?: string) => {
    const result = await execa('pgrep', ['-af', vm ? join(stateDir, 'vms', vm) + '/' : stateDir], {reject: false})
    return result.stdout.split('\n').filter((line) => line.includes('qemu-system'))
  }
  const vmDirs = async () => readdir(join(stateDir, 'vms')).catch(() => [] as string[])
  return {
    env,
    stateDir,
    async pmemlab(args, options = {}) {
      const result = await execa(process.execPath, [runJs, ...args], {
        env: {...env, ...options.env},
        reject: false,
        timeout: options.timeout ?? 600_000,
        stdin: 'ignore',
      })
      return {exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr)}
    },
    start(args, options = {}) {
      return execa(process.execPath, [runJs, ...args], {env: {...env, ...options.env}, reject: false, stdin: 'ignore'})
    },
    qemuProcesses,
    vmDirs,
    async dispose() {
      for (const line of await qemuProcesses()) {
        const pid = Number(line.split(' ')[0])
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
      }
      await rm(stateDir, {recursive: true, force: true})
    },
  }
}

/** Lines of a guest script that prints "NAME KIND BYTES" for every /dev/pmem block device. */
export const LIST_PMEM = `for d in /sys/block/pmem*; do
  n=\${d##*/}; path=$(readlink -f $d/device)
  case $path in *e820*) kind=memmap;; *ACPI0012*) kind=nvdimm;; *virtio*) kind=virtio-pmem;; *) kind=unknown;; esac
  echo "$n $kind $(( $(cat $d/size) * 512 ))"
done`

/** Parses LIST_PMEM output into kind -> [{dev, bytes}]. */
export function parsePmemList(text: string): Map<string, Array<{dev: string; bytes: number}>> {
  const byKind = new Map<string, Array<{dev: string; bytes: number}>>()
  for (const line of text.trim().split('\n')) {
    const [dev, kind, bytes] = line.split(' ')
    if (!dev) continue
    byKind.set(kind, [...(byKind.get(kind) ?? []), {dev, bytes: Number(bytes)}])
  }
  return byKind
}

/**
 * Writes 4 MiB of random data to the device, drops the page cache, reads it back and compares.
 * Prints "same" or "differ". A memmap range outside backed RAM passes mkfs but fails this.
 */
export const readbackScript = (dev: string) => `set -e
dd if=/dev/urandom of=/tmp/pattern bs=1M count=4 status=none
dd if=/tmp/pattern of=/dev/${dev} bs=1M oflag=direct conv=fsync status=none
sync; echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/${dev} of=/tmp/back bs=1M count=4 iflag=direct status=none
if cmp -s /tmp/pattern /tmp/back; then echo same; else echo differ; fi`

/** stderr ends with the one error line, and it is the only one; it matches expected. */
export function assertOneErrorLine(stderr: string, expected: RegExp): void {
  const lines = stderr.trim().split('\n')
  const errors = lines.filter((line) => line.startsWith('pmemlab: error:'))
  assert.equal(errors.length, 1, stderr)
  assert.equal(lines.at(-1), errors[0], `stderr ends with the error:\n${stderr}`)
  assert.match(errors[0], expected)
}

/** A cell of matrix.json (or a cell.json), as far as the tests read it. */
export interface MatrixCellJson {
  id: string
  state: string
  reason: string
  kernel: {name: string; label: string; version?: string}
  filesystem: string
  tests: Array<{id: string; group: string; status: string}>
  attempts: Array<{verdict: string; command?: string[]; boot?: {cells: string[]; command: string[]}}>
  artifacts: Record<string, string>
}

/** The parts of `pmemlab test --json` the upstream-suite tests read. */
export interface UpstreamReport {
  ok: boolean
  exitCode: number
  summary: {total: number; passed: number; failed: number; skipped: number; timedOut: number; errors: number}
  suites: Array<{name: string; kind: string; tests: Array<{id: string; group: string; name: string; status: string; message?: string; details?: string[]}>}>
}

/** The ndctl suite's tests, and a line per test that did not pass (for assertion messages). */
export function ndctlTests(report: UpstreamReport) {
  const tests = report.suites.find((s) => s.name === 'ndctl')?.tests ?? []
  const notPassed = tests.filter((t) => t.status !== 'pass').map((t) => `${t.id}: ${t.status}: ${t.message ?? ''} ${(t.details ?? []).join(' | ')}`)
  return {tests, notPassed: notPassed.join('\n')}
}

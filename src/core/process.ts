import {readFile} from 'node:fs/promises'

/**
 * Whether pid is a live process whose command line mentions marker (the VM's QMP socket path),
 * so a recycled pid is never mistaken for our QEMU. Zombies count as dead.
 */
export async function processAlive(pid: number, marker?: string): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    if (state === 'Z' || state === 'X') return false
    if (marker === undefined) return true
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    return cmdline.includes(marker)
  } catch {
    return false
  }
}

/** Waits until the process is gone; false on timeout. */
export async function waitForExit(pid: number, timeoutMs: number, marker?: string): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (await processAlive(pid, marker)) {
    if (Date.now() > deadline) return false
    await sleep(100)
  }
  return true
}

export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Exit codes are part of pmemlab's interface: scripts and CI branch on them.
 * The README documents the same table.
 */
export const ExitCode = {
  ok: 0,
  failure: 1, // a guest check or test failed, or an unexpected error
  usage: 2, // bad flags or input: fix the command line
  missingDependency: 3, // QEMU, mmdebstrap, a kernel... is not installed
  notFound: 4, // the named VM, kernel or image does not exist
  conflict: 5, // the name is taken, or a resource is in use
  bootFailed: 6, // the lab could not start: QEMU exited or the guest never answered
  guestDied: 7, // the guest kernel panicked, died after an Oops, rebooted or powered off, or hung
  qemuDied: 8, // QEMU itself died (killed, or crashed) under a running guest: the lab, not the kernel
  timeout: 124, // a guest command ran past its --timeout and was killed (as timeout(1))
  noVerdict: 125, // repro: no run reproduced and some broke, so neither verdict holds (git bisect run skips the commit)
  stopsBisectRun: 128, // bisect step: no verdict could be given (bad input, a missing program, an error): git bisect run stops
  interrupted: 130, // SIGINT/SIGTERM: everything was cleaned up
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

/** An error meant for the user: one line saying what is wrong and how to fix it. */
export class PmemlabError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.failure,
    readonly hint?: string,
    /** Lines shown after the one line (a console excerpt): evidence, not instructions. */
    readonly details: readonly string[] = [],
  ) {
    super(message)
    this.name = 'PmemlabError'
  }

  /** The single line shown on stderr. */
  oneLine(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message
  }
}

export const usageError = (message: string, hint?: string) => new PmemlabError(message, ExitCode.usage, hint)
export const missingDependency = (message: string, hint?: string) =>
  new PmemlabError(message, ExitCode.missingDependency, hint)
export const notFound = (message: string, hint?: string) => new PmemlabError(message, ExitCode.notFound, hint)

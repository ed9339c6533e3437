/**
 * At most N tasks at once (the matrix's --jobs: VMs running side by side), lower priority numbers
 * first and in arrival order within one priority, so that a kernel's sanity gate does not wait
 * behind the cells of kernels gated before it. cancel() drops every waiting task (an interrupt).
 */
export class Slots {
  private busy = 0
  private order = 0
  private cancelled = false
  private readonly waiting: Array<{priority: number; order: number; start: () => void; drop: () => void}> = []

  constructor(readonly size: number) {}

  /** Runs TASK when a slot is free; undefined when cancelled before it could start. */
  async run<T>(priority: number, task: () => Promise<T>): Promise<T | undefined> {
    if (this.cancelled) return undefined
    if (this.busy >= this.size) {
      const started = await new Promise<boolean>((resolve) => {
        this.waiting.push({priority, order: this.order++, start: () => resolve(true), drop: () => resolve(false)})
        this.waiting.sort((a, b) => a.priority - b.priority || a.order - b.order)
      })
      if (!started) return undefined
    } else this.busy++
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      // The slot passes to the next task as it is; with none waiting it is freed.
      if (next) next.start()
      else this.busy--
    }
  }

  cancel(): void {
    this.cancelled = true
    for (const entry of this.waiting.splice(0)) entry.drop()
  }

  get running(): number {
    return this.busy
  }
}

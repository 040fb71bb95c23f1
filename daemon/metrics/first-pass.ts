// First-pass yield needs parts, not requests: where a rule names `trace:` (a part serial), a part is a distinct
// trace value and only its first verdict counts; a later verdict of the same part is a re-inspection (after
// rework, say) and is neither a new part nor a first pass. Without a trace every request is a part.
// flashcheck_parts_total{inspection, first_pass} counts each part once, when it is first seen, so a window's
// first-pass yield is the increase of first_pass="true" over the increase of both: the share of the parts
// first inspected in the window whose first verdict was the rule's passing label.
import type { Counter } from 'prom-client'

/** Traced parts remembered (first-seen order); a part seen again after being forgotten counts anew. */
export const REMEMBERED_PARTS = 100_000

type Child = { inc: () => void }

export class FirstPassCounter {
  private readonly seen = new Set<string>()
  private readonly children = new Map<string, [pass: Child, fail: Child]>()

  constructor(private readonly counter: Counter<'inspection' | 'first_pass'>, private readonly remember = REMEMBERED_PARTS) {}

  /** One verdict: `passed` when it is the rule's passing label. Counts a part unless its trace was seen. */
  record(inspection: string, trace: string | undefined, passed: boolean): void {
    if (trace !== undefined) {
      // Per inspection: the same serial at two stations is a part at each.
      const key = `${inspection}\n${trace}`
      if (this.seen.has(key)) return
      this.seen.add(key)
      if (this.seen.size > this.remember) this.seen.delete(this.seen.values().next().value!)
    }
    let c = this.children.get(inspection)
    if (c === undefined) this.children.set(inspection, (c = [this.counter.labels(inspection, 'true'), this.counter.labels(inspection, 'false')]))
    c[passed ? 0 : 1].inc()
  }

  /** Parts remembered now (for tests and status). */
  get remembered(): number {
    return this.seen.size
  }
}

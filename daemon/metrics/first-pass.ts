// First-pass yield needs parts, not requests: where a rule names `trace:` (a part serial), a part is a distinct
// trace value and only its first verdict counts; a later verdict of the same part is a re-inspection (after
// rework, say) and is neither a new part nor a first pass. Without a trace every request is a part. Error
// verdicts (bad payload, overload: nothing was inspected) are not offered.
// flashcheck_parts_total{inspection, first_pass} counts each part once, when it is first seen, so a window's
// first-pass yield is the increase of first_pass="true" over the increase of both: the share of the parts
// first inspected in the window whose first verdict was the rule's passing label.

/** Traced parts remembered (first-seen order); a part seen again after being forgotten counts anew. */
export const REMEMBERED_PARTS = 100_000

export class FirstPassCounter {
  /** Per inspection, the traces seen (the same serial at two stations is a part at each). */
  private readonly seen = new Map<string, Set<string>>()
  // The traces in first-seen order, all inspections together, as a ring: the oldest is forgotten first.
  private readonly ringSets: (Set<string> | undefined)[]
  private readonly ringTraces: (string | undefined)[]
  private next = 0
  private size = 0

  /** `counts`: Metrics.partCounts, per inspection [first passed, not]; labelled for Prometheus at scrape time. */
  constructor(private readonly counts: Map<string, [number, number]>, private readonly remember = REMEMBERED_PARTS) {
    this.ringSets = new Array<Set<string> | undefined>(remember)
    this.ringTraces = new Array<string | undefined>(remember)
  }

  /** One verdict: `passed` when it is the rule's passing label. Counts a part unless its trace was seen. */
  record(inspection: string, trace: string | undefined, passed: boolean): void {
    if (trace !== undefined) {
      let set = this.seen.get(inspection)
      if (set === undefined) this.seen.set(inspection, (set = new Set()))
      if (set.has(trace)) return
      set.add(trace)
      const i = this.next
      if (this.size === this.remember) this.ringSets[i]!.delete(this.ringTraces[i]!)
      else this.size++
      this.ringSets[i] = set
      this.ringTraces[i] = trace
      this.next = i + 1 === this.remember ? 0 : i + 1
    }
    // A plain increment: prom-client would hash the labels on every inc.
    let c = this.counts.get(inspection)
    if (c === undefined) this.counts.set(inspection, (c = [0, 0]))
    c[passed ? 0 : 1]++
  }

  /** Parts remembered now (for tests and status). */
  get remembered(): number {
    return this.size
  }
}

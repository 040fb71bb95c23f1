// Every verdict is counted by inspection and verdict and timed into a latency histogram. prom-client's
// observe() and inc() hash and validate their label objects on each call, which measured ~10 µs of the
// daemon's CPU per request through a broker; here the per-message path is one map lookup and a few additions,
// and the numbers become prom-client metrics only when scraped (or read by the status page and systemd).

/** One inspection's counts. Buckets are per bound (not cumulative); the last one is +Inf. */
interface Slot {
  readonly verdicts: Map<string, number>
  readonly buckets: number[]
  sum: number
  count: number
}

export class VerdictTally {
  private readonly slots = new Map<string, Slot>()

  constructor(readonly bounds: readonly number[]) {}

  /** One verdict of `inspection`, published `seconds` after its request arrived. */
  record(inspection: string, verdict: string, seconds: number): void {
    let s = this.slots.get(inspection)
    if (s === undefined) {
      s = { verdicts: new Map(), buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }
      this.slots.set(inspection, s)
    }
    s.verdicts.set(verdict, (s.verdicts.get(verdict) ?? 0) + 1)
    // A clock that went backwards or a NaN would poison the sum for good (prom-client throws on them).
    if (!Number.isFinite(seconds)) return
    const b = this.bounds
    let i = 0
    while (i < b.length && seconds > b[i]!) i++
    s.buckets[i]!++
    s.sum += seconds
    s.count++
  }

  /** [inspection, verdict, count] for every pair seen. */
  *verdicts(): Iterable<[string, string, number]> {
    for (const [inspection, s] of this.slots) for (const [verdict, n] of s.verdicts) yield [inspection, verdict, n]
  }

  /** Per inspection: cumulative bucket counts (the last is +Inf), the sum and the count. */
  *histograms(): Iterable<{ inspection: string; cumulative: number[]; sum: number; count: number }> {
    for (const [inspection, s] of this.slots) {
      let acc = 0
      yield { inspection, cumulative: s.buckets.map((n) => (acc += n)), sum: s.sum, count: s.count }
    }
  }

  clear(): void {
    this.slots.clear()
  }
}

/** One series of a scraped metric, as prom-client's get() gives them. */
export interface SeriesValue {
  labels: Record<string, string | number>
  value: number
  metricName: string
}

/** What a prom-client Registry reads from a metric to format it (registry.getMetricsAsString). */
interface Scraped<V> {
  name: string
  help: string
  type: 'histogram'
  aggregator: 'sum'
  values: V[]
}

/**
 * The tally's latency histogram as a prom-client metric (what a Registry formats, and what Histogram.get()
 * returns): the same series and exposition lines as a prom-client Histogram fed the same observations.
 */
export class TallyHistogram {
  readonly type = 'histogram' as const
  readonly aggregator = 'sum' as const

  constructor(readonly name: string, readonly help: string, private readonly tally: VerdictTally) {}

  /** The series with the inspection apart (sharedLabels), as the registry's exposition reads them. */
  async getForPromString(): Promise<Scraped<SeriesValue & { sharedLabels: Record<string, string> }>> {
    const values: (SeriesValue & { sharedLabels: Record<string, string> })[] = []
    const bounds = this.tally.bounds
    const bucket = `${this.name}_bucket`
    for (const h of this.tally.histograms()) {
      const shared = { inspection: h.inspection }
      bounds.forEach((le, i) => values.push({ labels: { le }, sharedLabels: shared, value: h.cumulative[i]!, metricName: bucket }))
      values.push({ labels: { le: '+Inf' }, sharedLabels: shared, value: h.count, metricName: bucket })
      values.push({ labels: {}, sharedLabels: shared, value: h.sum, metricName: `${this.name}_sum` })
      values.push({ labels: {}, sharedLabels: shared, value: h.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  /** As prom-client's Histogram.get(): every series with its inspection among its labels. */
  async get(): Promise<Scraped<SeriesValue>> {
    const m = await this.getForPromString()
    return { ...m, values: m.values.map(({ sharedLabels, labels, ...v }) => ({ ...v, labels: { ...labels, ...sharedLabels } })) }
  }

  reset(): void {
    this.tally.clear()
  }
}

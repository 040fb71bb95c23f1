// Per-inspection figures for the page over the last 5 minutes and hour, read from the Prometheus metrics the
// service keeps anyway: a snapshot of the counters every sampleMs (off the hot path), and the difference
// between now and the snapshot at the start of the window. Percentiles come from the latency histogram's
// buckets (interpolated within the bucket, as Prometheus' histogram_quantile does).
import { LATENCY_BUCKETS_S, type Metrics } from '../metrics/metrics.js'

/** Cumulative counts of one inspection at one moment. */
interface Counts {
  verdicts: Record<string, number>
  /** Cumulative histogram bucket counts, one per LATENCY_BUCKETS_S bound, then +Inf. */
  buckets: number[]
  missed: number
  fallbacks: number
}

interface Snapshot {
  t: number
  by: Map<string, Counts>
}

export interface WindowStats {
  /** Seconds the window actually covers (shorter while the daemon is younger than the window). */
  seconds: number
  requests: number
  per_min: number
  verdicts: Record<string, number>
  /** Share of the verdicts in the window that are the rule's first (passing) label: each request counts as one part. */
  first_pass_yield: number | null
  p50_ms: number | null
  p99_ms: number | null
  deadline_missed: number
  fallbacks: number
}

export interface InspectionStats {
  inspection: string
  budget_ms: number | null
  /** The rule's least severe verdict label (PASS unless the rule names its own, e.g. OK). */
  pass_label: string
  m5: WindowStats
  h1: WindowStats
  /** Latency histogram over the last 5 minutes: non-cumulative count per bucket upper bound (ms; null = +Inf). */
  histogram: { le_ms: number | null; n: number }[]
}

const WINDOWS = { m5: 300_000, h1: 3_600_000 }

function emptyCounts(): Counts {
  return { verdicts: {}, buckets: new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0), missed: 0, fallbacks: 0 }
}

export class StatsSampler {
  private readonly ring: Snapshot[] = []
  private timer?: NodeJS.Timeout
  private readonly keep: number

  constructor(private readonly metrics: Metrics, private readonly sampleMs = 10_000) {
    this.keep = Math.ceil(WINDOWS.h1 / sampleMs) + 2
  }

  async start(): Promise<void> {
    this.ring.push(await this.read())
    this.timer = setInterval(() => void this.sample(), this.sampleMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  private async sample(): Promise<void> {
    this.ring.push(await this.read())
    if (this.ring.length > this.keep) this.ring.shift()
  }

  /** The metrics' cumulative values now, per inspection. */
  async read(): Promise<Snapshot> {
    const by = new Map<string, Counts>()
    const of = (insp: unknown) => {
      const k = String(insp ?? '(unknown)')
      let c = by.get(k)
      if (!c) by.set(k, (c = emptyCounts()))
      return c
    }
    for (const v of (await this.metrics.requests.get()).values) of(v.labels.inspection).verdicts[String(v.labels.verdict)] = v.value
    for (const v of (await this.metrics.latency.get()).values) {
      if (v.metricName !== 'flashcheck_request_latency_seconds_bucket') continue
      const le = (v.labels as Record<string, string | number | undefined>).le
      const i = le === '+Inf' ? LATENCY_BUCKETS_S.length : LATENCY_BUCKETS_S.indexOf(Number(le))
      if (i >= 0) of(v.labels.inspection).buckets[i] = v.value
    }
    for (const v of (await this.metrics.deadlineMissed.get()).values) of(v.labels.inspection).missed = v.value
    for (const v of (await this.metrics.modelFallbacks.get()).values) of(v.labels.inspection).fallbacks += v.value
    return { t: Date.now(), by }
  }

  /** Figures per inspection: every inspection of the rule set, and any other that answered in the last hour. */
  async summary(inspections: { id: string; budgetMs: number; passLabel: string }[]): Promise<InspectionStats[]> {
    const now = await this.read()
    const budgets = new Map(inspections.map((r) => [r.id, r.budgetMs]))
    const pass = new Map(inspections.map((r) => [r.id, r.passLabel]))
    const ids = [...inspections.map((r) => r.id)]
    for (const k of now.by.keys()) if (!budgets.has(k)) ids.push(k)
    const base = (ms: number) => this.ring.find((s) => s.t >= now.t - ms) ?? this.ring[this.ring.length - 1] ?? now
    const b5 = base(WINDOWS.m5)
    const b1 = base(WINDOWS.h1)
    return ids.map((id) => {
      const cur = now.by.get(id) ?? emptyCounts()
      const d5 = diff(cur, b5.by.get(id))
      const h = d5.buckets.map((n, i) => ({ le_ms: i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i] * 1000 : null, n: n - (i > 0 ? d5.buckets[i - 1] : 0) }))
      const ok = pass.get(id) ?? 'PASS'
      return { inspection: id, budget_ms: budgets.get(id) ?? null, pass_label: ok, m5: windowOf(d5, now.t - b5.t, ok), h1: windowOf(diff(cur, b1.by.get(id)), now.t - b1.t, ok), histogram: h }
    })
  }

  /** Verdicts per sampling interval over the last `points` intervals (all inspections), oldest first. */
  timeline(points = 60): { t: number; verdicts: Record<string, number> }[] {
    const snaps = this.ring.slice(-(points + 1))
    const out: { t: number; verdicts: Record<string, number> }[] = []
    for (let i = 1; i < snaps.length; i++) {
      const verdicts: Record<string, number> = {}
      for (const [id, c] of snaps[i].by) {
        const prev = snaps[i - 1].by.get(id)
        for (const [v, n] of Object.entries(c.verdicts)) {
          const d = n - (prev?.verdicts[v] ?? 0)
          if (d > 0) verdicts[v] = (verdicts[v] ?? 0) + d
        }
      }
      out.push({ t: snaps[i].t, verdicts })
    }
    return out
  }
}

function diff(cur: Counts, old: Counts | undefined): Counts {
  if (!old) return cur
  const verdicts: Record<string, number> = {}
  for (const [v, n] of Object.entries(cur.verdicts)) verdicts[v] = n - (old.verdicts[v] ?? 0)
  return { verdicts, buckets: cur.buckets.map((n, i) => n - old.buckets[i]), missed: cur.missed - old.missed, fallbacks: cur.fallbacks - old.fallbacks }
}

function windowOf(d: Counts, spanMs: number, passLabel: string): WindowStats {
  let requests = 0
  const verdicts: Record<string, number> = {}
  for (const [v, n] of Object.entries(d.verdicts)) if (n > 0) { verdicts[v] = n; requests += n }
  const seconds = Math.max(1, Math.round(spanMs / 1000))
  return {
    seconds,
    requests,
    per_min: Math.round((requests / seconds) * 60 * 10) / 10,
    verdicts,
    first_pass_yield: requests > 0 ? Math.round(((verdicts[passLabel] ?? 0) / requests) * 10000) / 10000 : null,
    p50_ms: quantileMs(d.buckets, 0.5),
    p99_ms: quantileMs(d.buckets, 0.99),
    deadline_missed: d.missed,
    fallbacks: d.fallbacks,
  }
}

/** q-quantile in ms from cumulative bucket counts; in the +Inf bucket, the largest finite bound. */
export function quantileMs(buckets: number[], q: number): number | null {
  const total = buckets[buckets.length - 1]
  if (!(total > 0)) return null
  const rank = q * total
  for (let i = 0; i < buckets.length; i++) {
    if (buckets[i] >= rank) {
      if (i >= LATENCY_BUCKETS_S.length) return LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.length - 1] * 1000
      const lo = i === 0 ? 0 : LATENCY_BUCKETS_S[i - 1]
      const below = i === 0 ? 0 : buckets[i - 1]
      const inBucket = buckets[i] - below
      const frac = inBucket > 0 ? (rank - below) / inBucket : 1
      return Math.round((lo + (LATENCY_BUCKETS_S[i] - lo) * frac) * 1000 * 1000) / 1000
    }
  }
  return null
}

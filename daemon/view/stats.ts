// Per-inspection figures for the page over the last 5 minutes and hour, and the model's over the last minute,
// read from the Prometheus metrics the service keeps anyway: a snapshot of the counters every sampleMs (off
// the hot path), and the difference between now and the snapshot at the start of the window. Percentiles
// come from the histograms' buckets (interpolated within the bucket, as Prometheus' histogram_quantile does).
// First-pass yield counts parts (flashcheck_parts_total, see metrics/first-pass.ts), not requests.
import { LATENCY_BUCKETS_S, type Metrics } from '../metrics/metrics.js'

/** Cumulative counts of one inspection at one moment. */
interface Counts {
  verdicts: Record<string, number>
  /** Cumulative histogram bucket counts, one per LATENCY_BUCKETS_S bound, then +Inf. */
  buckets: number[]
  missed: number
  fallbacks: number
  /** Model fallbacks by reason (deadline, queue_full, decoder_error, low_confidence, ...). */
  reasons: Record<string, number>
  /** Parts first inspected, and of those the ones whose first verdict passed. */
  parts: number
  passed: number
  /** Scored model choices, and their arrival-to-choice histogram (cumulative, like `buckets`). */
  modelOk: number
  modelBuckets: number[]
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
  /** Parts first inspected in the window: distinct trace values where the rule names trace:, else requests. */
  parts: number
  /** Share of those parts whose first verdict was the rule's passing label; null without parts. */
  first_pass_yield: number | null
  p50_ms: number | null
  p99_ms: number | null
  deadline_missed: number
  fallbacks: number
  fallback_reasons: Record<string, number>
}

/** What the decoder did over the last minute (all inspections). */
export interface ModelWindow {
  seconds: number
  /** Model steps that ended in a verdict: scored choices plus those that fell back without one. */
  verdicts: number
  /** Verdicts that went out with the rule's fallback instead of the model's choice. */
  fell_back: number
  fallback_share: number | null
  /** Fallbacks by reason: deadline, budget, overload, queue_full, decoder_error, prompt, low_confidence, shutdown. */
  fallback_reasons: Record<string, number>
  /** Request arrival to scored choice (flashcheck_model_latency_seconds), ms. */
  p50_ms: number | null
  p99_ms: number | null
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

const WINDOWS = { m1: 60_000, m5: 300_000, h1: 3_600_000 }

function emptyCounts(): Counts {
  const b = () => new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0)
  return { verdicts: {}, buckets: b(), missed: 0, fallbacks: 0, reasons: {}, parts: 0, passed: 0, modelOk: 0, modelBuckets: b() }
}

/** Bucket index of a histogram sample's `le` label, or -1. */
function bucketOf(labels: object): number {
  const le = (labels as Record<string, string | number | undefined>).le
  return le === '+Inf' ? LATENCY_BUCKETS_S.length : LATENCY_BUCKETS_S.indexOf(Number(le))
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
      const i = bucketOf(v.labels)
      if (i >= 0) of(v.labels.inspection).buckets[i] = v.value
    }
    for (const v of (await this.metrics.deadlineMissed.get()).values) of(v.labels.inspection).missed = v.value
    for (const v of (await this.metrics.modelFallbacks.get()).values) {
      const c = of(v.labels.inspection)
      const r = String(v.labels.reason)
      c.fallbacks += v.value
      c.reasons[r] = (c.reasons[r] ?? 0) + v.value
    }
    for (const v of (await this.metrics.parts.get()).values) {
      const c = of(v.labels.inspection)
      c.parts += v.value
      if (v.labels.first_pass === 'true') c.passed += v.value
    }
    for (const v of (await this.metrics.modelLatency.get()).values) {
      if (v.metricName === 'flashcheck_model_latency_seconds_count') of(v.labels.inspection).modelOk = v.value
      else if (v.metricName === 'flashcheck_model_latency_seconds_bucket') {
        const i = bucketOf(v.labels)
        if (i >= 0) of(v.labels.inspection).modelBuckets[i] = v.value
      }
    }
    return { t: Date.now(), by }
  }

  /** Figures per inspection (every inspection of the rule set, and any other that answered in the last hour) and the model's over the last minute, from one reading of the metrics. */
  async figures(inspections: { id: string; budgetMs: number; passLabel: string }[]): Promise<{ inspections: InspectionStats[]; model: ModelWindow }> {
    const now = await this.read()
    const budgets = new Map(inspections.map((r) => [r.id, r.budgetMs]))
    const pass = new Map(inspections.map((r) => [r.id, r.passLabel]))
    const ids = [...inspections.map((r) => r.id)]
    for (const k of now.by.keys()) if (!budgets.has(k)) ids.push(k)
    const base = (ms: number) => this.ring.find((s) => s.t >= now.t - ms) ?? this.ring[this.ring.length - 1] ?? now
    const b5 = base(WINDOWS.m5)
    const b1 = base(WINDOWS.h1)
    const bm = base(WINDOWS.m1)
    let all = emptyCounts()
    for (const [id, c] of now.by) all = add(all, diff(c, bm.by.get(id)))
    const model = modelWindow(all, now.t - bm.t)
    const list = ids.map((id) => {
      const cur = now.by.get(id) ?? emptyCounts()
      const d5 = diff(cur, b5.by.get(id))
      const h = d5.buckets.map((n, i) => ({ le_ms: i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i] * 1000 : null, n: n - (i > 0 ? d5.buckets[i - 1] : 0) }))
      const ok = pass.get(id) ?? 'PASS'
      return { inspection: id, budget_ms: budgets.get(id) ?? null, pass_label: ok, m5: windowOf(d5, now.t - b5.t), h1: windowOf(diff(cur, b1.by.get(id)), now.t - b1.t), histogram: h }
    })
    return { inspections: list, model }
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

function combine(a: Counts, b: Counts | undefined, sign: 1 | -1): Counts {
  if (!b) return a
  const merge = (x: Record<string, number>, y: Record<string, number>) => {
    const out: Record<string, number> = { ...x }
    for (const [k, n] of Object.entries(y)) out[k] = (out[k] ?? 0) + sign * n
    return out
  }
  return {
    verdicts: merge(a.verdicts, b.verdicts),
    buckets: a.buckets.map((n, i) => n + sign * b.buckets[i]),
    missed: a.missed + sign * b.missed,
    fallbacks: a.fallbacks + sign * b.fallbacks,
    reasons: merge(a.reasons, b.reasons),
    parts: a.parts + sign * b.parts,
    passed: a.passed + sign * b.passed,
    modelOk: a.modelOk + sign * b.modelOk,
    modelBuckets: a.modelBuckets.map((n, i) => n + sign * b.modelBuckets[i]),
  }
}

const diff = (cur: Counts, old: Counts | undefined): Counts => combine(cur, old, -1)
const add = (a: Counts, b: Counts): Counts => combine(a, b, 1)

const positive = (x: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(x).filter(([, n]) => n > 0))
const ratio = (a: number, b: number): number | null => (b > 0 ? Math.round((a / b) * 10000) / 10000 : null)

function modelWindow(d: Counts, spanMs: number): ModelWindow {
  const reasons = positive(d.reasons)
  const fellBack = Object.values(reasons).reduce((a, n) => a + n, 0)
  // A low-confidence choice is a scored choice (in modelOk) that fell back: count it once.
  const verdicts = d.modelOk + fellBack - (reasons.low_confidence ?? 0)
  return {
    seconds: Math.max(1, Math.round(spanMs / 1000)),
    verdicts,
    fell_back: fellBack,
    fallback_share: ratio(fellBack, verdicts),
    fallback_reasons: reasons,
    p50_ms: quantileMs(d.modelBuckets, 0.5),
    p99_ms: quantileMs(d.modelBuckets, 0.99),
  }
}

/** How an operator would put the model's last minute in a word. */
export function modelStatus(loaded: boolean, w: ModelWindow): 'not loaded' | 'idle' | 'answering' | 'partly falling back' | 'falling back' {
  if (!loaded) return 'not loaded'
  if (w.verdicts === 0 || w.fallback_share === null) return 'idle'
  if (w.fallback_share === 0) return 'answering'
  return w.fallback_share < 0.5 ? 'partly falling back' : 'falling back'
}

function windowOf(d: Counts, spanMs: number): WindowStats {
  let requests = 0
  const verdicts: Record<string, number> = {}
  for (const [v, n] of Object.entries(d.verdicts)) if (n > 0) { verdicts[v] = n; requests += n }
  const seconds = Math.max(1, Math.round(spanMs / 1000))
  return {
    seconds,
    requests,
    per_min: Math.round((requests / seconds) * 60 * 10) / 10,
    verdicts,
    parts: d.parts,
    first_pass_yield: ratio(d.passed, d.parts),
    p50_ms: quantileMs(d.buckets, 0.5),
    p99_ms: quantileMs(d.buckets, 0.99),
    deadline_missed: d.missed,
    fallbacks: d.fallbacks,
    fallback_reasons: positive(d.reasons),
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

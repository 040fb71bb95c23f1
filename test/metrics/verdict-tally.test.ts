// The verdict tally against prom-client itself: the same observations fed to a prom-client Counter and
// Histogram must scrape to the same exposition lines and the same get() series.
import t from 'tap'
import { Counter, Histogram, Registry } from 'prom-client'
import { LATENCY_BUCKETS_S, Metrics } from '../../daemon/metrics/metrics.js'

function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1664525 + 1013904223) >>> 0
    return seed / 2 ** 32
  }
}

/** A registry holding prom-client's own metrics, under the daemon's names. */
function peer() {
  const registry = new Registry()
  const requests = new Counter({ name: 'flashcheck_requests_total', help: 'Inspections answered, by inspection and verdict', labelNames: ['inspection', 'verdict'] as const, registers: [registry] })
  const latency = new Histogram({ name: 'flashcheck_request_latency_seconds', help: 'Receive to publish latency of verdicts', labelNames: ['inspection'] as const, buckets: LATENCY_BUCKETS_S, registers: [registry] })
  return { registry, requests, latency }
}

const lines = (text: string) => text.trim().split('\n').sort()
const series = (vs: { labels: object; value: number; metricName?: string }[]) =>
  vs.map((v) => `${v.metricName} ${JSON.stringify(Object.entries(v.labels).sort())} ${v.value}`).sort()

t.test('5,000 verdicts scrape as prom-client scrapes them', async (t) => {
  const m = new Metrics()
  const p = peer()
  const rnd = prng(7)
  const inspections = ['torque-joint', 'weigh', 'label "quoted"', 'back\\slash', 'ünïcode', '(unknown)']
  const verdicts = ['PASS', 'FAIL', 'REWORK', 'ERROR', 'WARN']
  for (let i = 0; i < 5000; i++) {
    const inspection = inspections[Math.floor(rnd() * inspections.length)]!
    const verdict = verdicts[Math.floor(rnd() * verdicts.length)]!
    const r = rnd()
    // Exactly on a bound, just above one, zero, past the last bound, and anything in between.
    const s = r < 0.2 ? LATENCY_BUCKETS_S[Math.floor(rnd() * LATENCY_BUCKETS_S.length)]! : r < 0.3 ? LATENCY_BUCKETS_S[Math.floor(rnd() * LATENCY_BUCKETS_S.length)]! + 1e-12 : r < 0.35 ? 0 : r < 0.4 ? 1 + rnd() * 10 : rnd() * 0.08
    m.verdicts.record(inspection, verdict, s)
    p.requests.inc({ inspection, verdict })
    p.latency.observe({ inspection }, s)
  }
  for (const name of ['flashcheck_requests_total', 'flashcheck_request_latency_seconds']) {
    const got = await m.registry.getSingleMetricAsString(name)
    const want = await p.registry.getSingleMetricAsString(name)
    t.same(lines(got), lines(want), `${name}: the same exposition lines`)
    t.equal(got.split('\n').slice(0, 2).join('\n'), want.split('\n').slice(0, 2).join('\n'), `${name}: the same HELP and TYPE`)
  }
  t.same(series((await m.latency.get()).values), series((await p.latency.get()).values), 'latency get(): the same series, the inspection among the labels')
  t.same(series((await m.requests.get()).values), series((await p.requests.get()).values), 'requests get(): the same series')
  t.match(await m.registry.metrics(), /# TYPE flashcheck_requests_total counter\n[^]*# TYPE flashcheck_request_latency_seconds histogram\n/, 'both in the full scrape, in their place')
  // Scraping twice counts nothing twice.
  t.same(lines(await m.registry.getSingleMetricAsString('flashcheck_requests_total')), lines(await p.registry.getSingleMetricAsString('flashcheck_requests_total')))
})

t.test('a latency that is not a number is counted as a verdict but kept out of the histogram', async (t) => {
  const m = new Metrics()
  m.verdicts.record('weigh', 'PASS', 0.001)
  m.verdicts.record('weigh', 'PASS', NaN)
  m.verdicts.record('weigh', 'FAIL', -Infinity)
  const text = await m.registry.metrics()
  t.match(text, /flashcheck_requests_total\{inspection="weigh",verdict="PASS"\} 2\n/)
  t.match(text, /flashcheck_requests_total\{inspection="weigh",verdict="FAIL"\} 1\n/)
  t.match(text, /flashcheck_request_latency_seconds_count\{inspection="weigh"\} 1\n/)
  t.match(text, /flashcheck_request_latency_seconds_sum\{inspection="weigh"\} 0.001\n/)
  t.match(text, /flashcheck_request_latency_seconds_bucket\{le="0.001",inspection="weigh"\} 1\n/)
})

t.test('a registry reset clears the tally', async (t) => {
  const m = new Metrics()
  m.verdicts.record('weigh', 'PASS', 0.001)
  m.registry.resetMetrics()
  t.notMatch(await m.registry.metrics(), /inspection="weigh"/)
  m.verdicts.record('weigh', 'FAIL', 0.002)
  t.match(await m.registry.metrics(), /flashcheck_requests_total\{inspection="weigh",verdict="FAIL"\} 1\n/)
})

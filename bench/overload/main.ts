// bench/overload: measures the rate the daemon serves within budget (capacity), then offers 10x that for
// 30 s. Requests carry `sent-at`; the daemon answers those already older than budget x limits.maxAgeFactor with
// an immediate OVERLOADED error. Reports per 5 s: requests sent, verdicts, OVERLOADED answers, late verdicts
// (normal verdicts arriving after sent-at + budget), verdict p99, the daemon's and mosquitto's RSS, loop lag.
// During the overload requests carry a 1 s MQTT 5 message expiry (--expiry; 0 = none), so that the broker drops
// what it could not deliver within a second instead of queueing without bound.
//   node dist/bench/overload/main.js [--capacity N] [--factor 10] [--seconds 30] [--max-age-factor 0.5] [--clients 8] [--expiry 1]
import { parseArgs } from 'node:util'
import { rssMiB } from '../../harness/proc.js'
import { metric, startRig, type Window } from '../../harness/rig.js'
import { f } from '../format.js'

const { values } = parseArgs({
  options: {
    capacity: { type: 'string', default: '' },
    factor: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '30' },
    'max-age-factor': { type: 'string', default: '0.5' },
    clients: { type: 'string', default: '8' },
    expiry: { type: 'string', default: '1' },
  },
})
const BUDGET_MS = 50 // the torque-joint example rule's budget_ms

async function main(): Promise<void> {
  const rig = await startRig(['--limits-max-age-factor', values['max-age-factor']!], Number(values.clients), BUDGET_MS)
  const { broker, daemon, metricsPort, load } = rig
  const row = (label: string, w: Window, extra = '') =>
    console.log(`${label.padEnd(10)} sent ${String(w.sent).padStart(7)}  verdicts ${String(w.verdicts).padStart(7)}  OVERLOADED ${String(w.overloaded).padStart(7)}  late ${String(w.late).padStart(5)} (flagged ${w.flagged})  p50 ${f(w.p50)} ms  p99 ${f(w.p99)} ms  max ${f(w.max)} ms  OVERLOADED after p50 ${f(w.shedP50, 0)} / p99 ${f(w.shedP99, 0)} ms${extra}`)
  try {
    console.log(`bench/overload: budget ${BUDGET_MS} ms, limits.maxAgeFactor ${values['max-age-factor']}, ${values.clients} MQTT 5 requesters, QoS 1, sent-at on every request`)
    await load.run(500, 2, 2, () => {}) // warm-up
    await load.drain(2000)
    await load.take()

    let capacity = Number(values.capacity)
    if (!capacity) {
      // Capacity: the highest step whose every request got a normal verdict within budget (p99 and none late).
      for (const rate of [500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000]) {
        await load.run(rate, 4, 1000, () => {})
        const missing = await load.drain(2000)
        const w = await load.take()
        const ok = missing === 0 && w.overloaded === 0 && w.late === 0 && w.p99 <= BUDGET_MS
        row(`${rate}/s`, w, `  unanswered ${missing}${ok ? '' : '  <- over capacity'}`)
        if (!ok) break
        capacity = rate
      }
    }
    const offered = capacity * Number(values.factor)
    console.log(`\ncapacity ${capacity} req/s; offering ${values.factor}x = ${offered} req/s for ${values.seconds} s`)
    load.expiryS = Number(values.expiry)
    const rss: number[] = []
    const brokerRss: number[] = []
    const lags: number[] = []
    const sentBefore = load.sentTotal
    const t0 = Date.now()
    const windows: Window[] = []
    await load.run(offered, Number(values.seconds), 5, async (w, t) => {
      windows.push(w)
      const r = rssMiB(daemon.pid!)
      const b = rssMiB(broker.pid!)
      const lag = (await metric(metricsPort, 'nodejs_eventloop_lag_p99_seconds')) * 1000
      rss.push(r)
      brokerRss.push(b)
      lags.push(lag)
      row(`t=${t.toFixed(0)}s`, w, `  daemon RSS ${f(r, 0)} MiB  mosquitto RSS ${f(b, 0)} MiB  loop lag p99 ${f(lag, 1)} ms`)
    })
    const actual = (load.sentTotal - sentBefore) / ((Date.now() - t0) / 1000)
    const unanswered = await load.drain(30_000)
    const tail = await load.take()
    windows.push(tail)
    row('drain', tail)
    const sum = (k: 'sent' | 'verdicts' | 'overloaded' | 'late' | 'flagged') => windows.reduce((a, w) => a + w[k], 0)
    console.log('')
    console.log('| figure | value |')
    console.log('|---|---|')
    console.log(`| measured capacity (all within budget) | ${capacity} req/s |`)
    console.log(`| offered | ${offered} req/s (generator achieved ${f(actual, 0)} req/s) for ${values.seconds} s |`)
    console.log(`| requests sent | ${sum('sent')} |`)
    console.log(`| normal verdicts | ${sum('verdicts')} |`)
    console.log(`| OVERLOADED answers | ${sum('overloaded')} |`)
    console.log(`| late verdicts (normal, arriving after sent-at + ${BUDGET_MS} ms at the requester) | ${sum('late')} |`)
    console.log(`| verdicts the daemon flagged deadline_missed | ${sum('flagged')} |`)
    console.log(`| unanswered (expired in the broker after ${values.expiry} s, MQTT 5 message expiry) | ${unanswered} |`)
    console.log(`| daemon RSS during overload (min / max) | ${f(Math.min(...rss), 0)} / ${f(Math.max(...rss), 0)} MiB |`)
    console.log(`| mosquitto RSS (max) | ${f(Math.max(...brokerRss), 0)} MiB |`)
    console.log(`| daemon event-loop lag p99 (max over windows) | ${f(Math.max(...lags), 1)} ms |`)
  } finally {
    await rig.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

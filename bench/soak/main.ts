// bench/soak: the benchmark rate (bench/latency's 2,000 requests/s) for 10 minutes against one daemon
// process, with live vibration samples at 50 Hz. Every 30 s: the daemon's RSS and heap, its event-loop lag
// p99 (from its /metrics), and the round-trip p50/p99/max of that window; at the end the RSS growth from the
// first minute to the last and the overall counts.
//   node dist/bench/soak/main.js [--rate 2000] [--minutes 10] [--clients 8] [--window 30]
import { parseArgs } from 'node:util'
import { rssMiB } from '../../harness/proc.js'
import { metric, startRig } from '../../harness/rig.js'
import { f } from '../format.js'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    minutes: { type: 'string', default: '10' },
    clients: { type: 'string', default: '8' },
    window: { type: 'string', default: '30' },
  },
})
const BUDGET_MS = 50

async function main(): Promise<void> {
  const rig = await startRig([], Number(values.clients), BUDGET_MS)
  const { daemon, metricsPort, load } = rig
  const rate = Number(values.rate)
  const seconds = Number(values.minutes) * 60
  const rows: { t: number; rss: number; heap: number; lag: number; p50: number; p99: number; max: number; late: number; overloaded: number; sent: number; verdicts: number }[] = []
  try {
    console.log(`bench/soak: ${rate} req/s for ${values.minutes} min, ${values.clients} MQTT 5 requesters, QoS 1, windows of ${values.window} s`)
    console.log('| t s | sent | verdicts | OVERLOADED | late | p50 ms | p99 ms | max ms | loop lag p99 ms | RSS MiB | heap MiB |')
    console.log('|---|---|---|---|---|---|---|---|---|---|---|')
    await load.run(rate, seconds, Number(values.window), async (w, t) => {
      const [lag, heap] = await Promise.all([metric(metricsPort, 'nodejs_eventloop_lag_p99_seconds'), metric(metricsPort, 'nodejs_heap_size_used_bytes')])
      const r = { t, rss: rssMiB(daemon.pid!), heap: heap / (1 << 20), lag: lag * 1000, ...w }
      rows.push(r)
      console.log(`| ${t.toFixed(0)} | ${r.sent} | ${r.verdicts} | ${r.overloaded} | ${r.late} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${f(r.lag, 1)} | ${f(r.rss, 0)} | ${f(r.heap, 1)} |`)
    })
    const unanswered = await load.drain(5000)
    const firstMin = rows.filter((r) => r.t <= 60)
    const lastMin = rows.filter((r) => r.t > seconds - 60)
    const avg = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length
    const sorted = rows.map((r) => r.p99).sort((a, b) => a - b)
    console.log('')
    console.log(`sent ${load.sentTotal}, answered ${await load.answered()}, unanswered ${unanswered}, late ${rows.reduce((a, r) => a + r.late, 0)}, OVERLOADED ${rows.reduce((a, r) => a + r.overloaded, 0)}`)
    console.log(`RSS: first minute ${f(avg(firstMin.map((r) => r.rss)), 0)} MiB, last minute ${f(avg(lastMin.map((r) => r.rss)), 0)} MiB, growth ${f(avg(lastMin.map((r) => r.rss)) - avg(firstMin.map((r) => r.rss)), 1)} MiB; max ${f(Math.max(...rows.map((r) => r.rss)), 0)} MiB`)
    console.log(`heap used: first minute ${f(avg(firstMin.map((r) => r.heap)), 1)} MiB, last minute ${f(avg(lastMin.map((r) => r.heap)), 1)} MiB`)
    console.log(`event-loop lag p99: median over windows ${f(rows.map((r) => r.lag).sort((a, b) => a - b)[Math.floor(rows.length / 2)]!, 1)} ms, max ${f(Math.max(...rows.map((r) => r.lag)), 1)} ms`)
    console.log(`round-trip p99 per window: median ${f(sorted[Math.floor(sorted.length / 2)]!)} ms, worst ${f(sorted[sorted.length - 1]!)} ms; max ${f(Math.max(...rows.map((r) => r.max)))} ms`)
  } finally {
    await rig.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

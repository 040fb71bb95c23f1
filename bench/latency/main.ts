// bench/latency: request → verdict round trips through a real mosquitto, the daemon against a trivial echo
// responder measured in the same run, alternating rounds so that machine noise hits both alike.
//   node dist/bench/latency/main.js [--rate 2000] [--seconds 5] [--rounds 4] [--clients 8] [--warmup 2] [--view-clients N]
// --view-clients N adds rounds of the same daemon with N status pages open: each follows /events (the live
// verdict stream) and polls /api/summary every 2 s, as the page does; compared with the rounds without.
import { fork, type ChildProcess } from 'node:child_process'
import { get, type ClientRequest } from 'node:http'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { spawnDaemon, stopProcess } from '../../harness/daemon-process.js'
import { LatencyLoad, type LoadResult } from '../../harness/load.js'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'
import { cpuSplit, wakeups, writeCalls } from '../../harness/proc.js'
import { cpuInfo, vectorIsa } from '../kernel/cpu-peak.js'
import { summarize } from '../kernel/stats.js'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '4' },
    clients: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    rules: { type: 'string', default: join(PACKAGE_ROOT, 'rules', 'examples') },
    'view-clients': { type: 'string', default: '0' },
  },
})
const rate = Number(values.rate)
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const nClients = Number(values.clients)
const warmup = Number(values.warmup)
const viewClients = Number(values['view-clients'])

const REQUEST_TOPIC = 'flashcheck/inspect/st1/torque'
const ECHO_TOPIC = 'bench/echo/st1/torque'
const PAYLOAD = JSON.stringify({ torque_nm: 11.2, angle_deg: 720, serial: 'SN-0001' })

async function startEcho(url: string): Promise<ChildProcess> {
  const p = fork(join(PACKAGE_ROOT, 'dist', 'bench', 'latency', 'echo.js'), [url], { stdio: 'inherit', execArgv: (process.env.BENCH_ECHO_NODE_ARGS ?? '').split(' ').filter(Boolean) })
  await new Promise<void>((resolve, reject) => {
    p.once('message', () => resolve())
    p.once('exit', (c) => reject(new Error(`echo exited ${c}`)))
  })
  return p
}

const median = (xs: number[]): number => summarize(xs).median

const f = (x: number) => x.toFixed(3)

/** N open status pages: each follows the SSE stream and polls the summary; close() returns the events they read. */
function openPages(port: number, n: number): { close: () => number } {
  let events = 0
  const reqs: ClientRequest[] = []
  const polls: NodeJS.Timeout[] = []
  for (let i = 0; i < n; i++) {
    reqs.push(get({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { for (let j = chunk.indexOf('data: '); j >= 0; j = chunk.indexOf('data: ', j + 6)) events++ })
    }).on('error', () => {}))
    polls.push(setInterval(() => get({ host: '127.0.0.1', port, path: '/api/summary' }, (res) => res.resume()).on('error', () => {}), 2000))
  }
  return { close: () => { for (const r of reqs) r.destroy(); for (const t of polls) clearInterval(t); return events } }
}

async function main(): Promise<void> {
  const broker = await Mosquitto.start()
  const echo = await startEcho(broker.url)
  // BENCH_DAEMON_NODE_ARGS='--cpu-prof' profiles the daemon alone.
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean)
  const metricsPort = viewClients > 0 ? await freePort() : 0
  const daemon = await spawnDaemon({ url: broker.url, args: ['--rules-dir', values.rules!, '--metrics-port', String(metricsPort)], nodeArgs })
  // Live vibration samples so the example rule's signal window is realistic (50 Hz).
  const sensor = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  const feed = setInterval(() => sensor.publish('plant/st1/spindle/vibration', JSON.stringify({ rms: 1.1 + Math.random() * 0.2 })), 20)
  const load = await LatencyLoad.connect(broker.url, nClients)
  try {
    const cpu0 = cpuInfo()
    const isa = vectorIsa(cpu0)
    console.log(`machine: ${cpu0.model}, ${cpu0.arch}, ISA ${isa}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
    console.log(`bench/latency: ${rate} req/s, ${nClients} MQTT 5 requesters, QoS 1, ${rounds} alternating rounds of ${seconds} s after ${warmup} s warm-up each`)
    await load.run(ECHO_TOPIC, PAYLOAD, rate, warmup)
    await load.run(REQUEST_TOPIC, PAYLOAD, rate, warmup)
    type Which = 'echo' | 'daemon' | 'view'
    const res: Record<Which, LoadResult[]> = { echo: [], daemon: [], view: [] }
    const cpu: Record<Which, number> = { echo: 0, daemon: 0, view: 0 }
    const sys: Record<Which, number> = { echo: 0, daemon: 0, view: 0 }
    const writes: Record<Which, number> = { echo: 0, daemon: 0, view: 0 }
    const woken: Record<Which, { main: number; all: number }> = { echo: { main: 0, all: 0 }, daemon: { main: 0, all: 0 }, view: { main: 0, all: 0 } }
    const pids: Record<Which, number> = { echo: echo.pid!, daemon: daemon.pid!, view: daemon.pid! }
    const order: Which[] = viewClients > 0 ? ['echo', 'daemon', 'view'] : ['echo', 'daemon']
    let streamed = 0
    for (let r = 0; r < rounds; r++) {
      // Rotate the order so that drift over the run hits every responder alike.
      for (const which of order.map((_, i) => order[(i + r) % order.length])) {
        const pages = which === 'view' ? openPages(metricsPort, viewClients) : undefined
        const c0 = cpuSplit(pids[which])
        const w0 = writeCalls(pids[which])
        const k0 = wakeups(pids[which])
        const x = await load.run(which === 'echo' ? ECHO_TOPIC : REQUEST_TOPIC, PAYLOAD, rate, seconds)
        const c1 = cpuSplit(pids[which])
        cpu[which] += c1.user + c1.sys - c0.user - c0.sys
        sys[which] += c1.sys - c0.sys
        writes[which] += writeCalls(pids[which]) - w0
        const k1 = wakeups(pids[which])
        woken[which].main += k1.main - k0.main
        woken[which].all += k1.all - k0.all
        if (pages) streamed += pages.close()
        res[which].push(x)
        console.log(`round ${r + 1} ${which.padEnd(6)} sent ${x.sent} recv ${x.received}  p50 ${f(x.p50)} ms  p99 ${f(x.p99)} ms  max ${f(x.max)} ms`)
      }
    }
    const agg = (xs: LoadResult[]) => ({ p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), max: Math.max(...xs.map((x) => x.max)), lost: xs.reduce((a, x) => a + x.sent - x.received, 0) })
    const e = agg(res.echo)
    const d = agg(res.daemon)
    console.log('')
    console.log('| responder | p50 ms | p99 ms | max ms | lost |')
    console.log('|---|---|---|---|---|')
    console.log(`| echo (baseline) | ${f(e.p50)} | ${f(e.p99)} | ${f(e.max)} | ${e.lost} |`)
    console.log(`| flashcheck daemon | ${f(d.p50)} | ${f(d.p99)} | ${f(d.max)} | ${d.lost} |`)
    const v = viewClients > 0 ? agg(res.view) : undefined
    if (v) console.log(`| flashcheck daemon, ${viewClients} status page(s) streaming | ${f(v.p50)} | ${f(v.p99)} | ${f(v.max)} | ${v.lost} |`)
    console.log('')
    console.log(`p99 ratio daemon/echo: ${(d.p99 / e.p99).toFixed(2)}x (goal <= 1.5x)`)
    console.log(`p50 daemon - echo: ${f(d.p50 - e.p50)} ms (goal <= 0.300 ms)`)
    const answered = (which: Which) => res[which].reduce((a, x) => a + x.received, 0)
    const perReq = (which: Which) => (cpu[which] / answered(which)) * 1e6
    console.log(`responder CPU per request: echo ${perReq('echo').toFixed(1)} µs, daemon ${perReq('daemon').toFixed(1)} µs (ratio ${(perReq('daemon') / perReq('echo')).toFixed(2)}x)`)
    // Where the CPU went (kernel: the socket writes and reads, on loopback the broker's receive path too).
    // Wakeups: each costs a return from epoll_wait, and on a virtual machine often more CPU than the work it wakes for.
    const split = (which: Which) =>
      `${((sys[which] / answered(which)) * 1e6).toFixed(1)} µs in the kernel, ${(writes[which] / answered(which)).toFixed(2)} socket writes, ` +
      `${(woken[which].main / answered(which)).toFixed(2)} event-loop wakeups (${(woken[which].all / answered(which)).toFixed(2)} all threads)`
    console.log(`per request: echo ${split('echo')}; daemon ${split('daemon')}`)
    if (v) {
      console.log(`page open/closed: p99 ${(v.p99 / d.p99).toFixed(2)}x, p50 ${f(v.p50 - d.p50)} ms, daemon CPU per request ${perReq('view').toFixed(1)} vs ${perReq('daemon').toFixed(1)} µs (${(perReq('view') / perReq('daemon')).toFixed(2)}x); ${streamed} verdict events streamed to the pages`)
    }
    console.log('(medians over rounds of the per-round p50 and p99; max over all rounds)')
  } finally {
    clearInterval(feed)
    await load.close()
    await sensor.endAsync()
    await Promise.all([daemon, echo].map(stopProcess))
    await broker.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

// What the live verdict stream (/events) costs the daemon per verdict: the VerdictTap behind a real HTTP server
// in this process, N status pages as real SSE clients in a child process (their reading is not counted), and
// verdict JSON of the example torque rule's shape offered at a fixed rate. CPU of this process per verdict with
// the pages streaming, against the same loop with no page (the tap idle, as the service runs it), alternating
// rounds measured in the same run.
//   node dist/bench/view/stream-cost.js [--rate 1000] [--seconds 4] [--rounds 3] [--pages 2]
import { fork } from 'node:child_process'
import { createServer, get } from 'node:http'
import type { AddressInfo } from 'node:net'
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { VerdictTap } from '../../daemon/view/tap.js'
import { cpuInfo } from '../kernel/cpu-peak.js'

const TOPIC = 'flashcheck/inspect/st1/torque'

/** Child: N pages following /events; answers the number of events read when asked. */
function pages(port: number, n: number): void {
  let events = 0
  let tail = ''
  for (let i = 0; i < n; i++) {
    get({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        const s = tail + chunk
        for (let j = s.indexOf('\ndata: '); j >= 0; j = s.indexOf('\ndata: ', j + 7)) events++
        tail = s.slice(-6)
      })
    })
  }
  process.on('message', () => process.send!(events, () => process.exit(0)))
}

/** A published response of the example torque rule (one in 7 a FAIL with its reason). */
function response(i: number): string {
  const fail = i % 7 === 0
  return JSON.stringify({
    verdict_id: `0190c3a2-7b1e-7c3d-9f00-${String(i).padStart(12, '0')}`, ts: new Date().toISOString(), inspection: 'torque-joint', verdict: fail ? 'FAIL' : 'PASS',
    checks: [{ id: 'torque-in-spec', ok: !fail, ...(fail ? { reason: 'torque 9.1 Nm outside 10.0..12.0' } : {}) }, { id: 'angle-window', ok: true }, { id: 'spindle-calm', ok: true }],
    inputs: { torque: fail ? 9.1 : 11.2, angle: 720, station: 'st1' }, latency_ms: 0.412, deadline_missed: false, rules_rev: 'a1b2c3d4e5f6', node: 'line3-gw01',
  })
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '4' }, rounds: { type: 'string', default: '3' }, pages: { type: 'string', default: '2' } } })
  const rate = Number(values.rate)
  const seconds = Number(values.seconds)
  const rounds = Number(values.rounds)
  const nPages = Number(values.pages)
  const tap = new VerdictTap()
  const server = createServer((_req, res) => { tap.attach(res) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  let seq = 0

  // The service's side of a verdict: its JSON exists (it was published); the tap is offered it while active.
  const run = () => new Promise<number>((resolve) => {
    const perTick = rate / 100
    const c0 = process.cpuUsage()
    const t0 = Date.now()
    const timer = setInterval(() => {
      for (let k = 0; k < perTick; k++) {
        const json = response(seq++)
        if (tap.active) tap.push(json, TOPIC)
      }
      if (Date.now() - t0 >= seconds * 1000) {
        clearInterval(timer)
        const c = process.cpuUsage(c0)
        resolve((c.user + c.system) / 1000)
      }
    }, 10)
  })

  const cpu0 = cpuInfo()
  console.log(`machine: ${cpu0.model}, ${cpu0.arch}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
  console.log(`bench/view/stream-cost: ${rate} verdicts/s, ${nPages} page(s), ${rounds} alternating rounds of ${seconds} s; ${response(1).length} bytes of verdict JSON each`)
  const closed: number[] = []
  const open: number[] = []
  let streamed = 0
  await run() // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const withPages of r % 2 ? [true, false] : [false, true]) {
      if (!withPages) {
        closed.push(await run())
        continue
      }
      const child = fork(fileURLToPath(import.meta.url), ['--child', String(port), String(nPages)])
      const deadline = Date.now() + 5000
      while (tap.clientCount < nPages && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10))
      open.push(await run())
      await new Promise((res) => setTimeout(res, 400))
      streamed += await new Promise<number>((res) => { child.once('message', (n) => res(Number(n))); child.send('count') })
      await new Promise((res) => child.once('exit', res))
      while (tap.active) await new Promise((res) => setTimeout(res, 10))
    }
    console.log(`round ${r + 1}: no page ${closed.at(-1)!.toFixed(0)} ms CPU, ${nPages} page(s) streaming ${open.at(-1)!.toFixed(0)} ms CPU`)
  }
  server.close()
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const n = rate * seconds
  const c = median(closed)
  const o = median(open)
  console.log('')
  console.log(`CPU per verdict: no page ${((c / n) * 1000).toFixed(2)} µs (baseline: building the verdict JSON), ${nPages} page(s) ${((o / n) * 1000).toFixed(2)} µs (${(o / c).toFixed(2)}x); the stream adds ${(((o - c) / n) * 1000).toFixed(2)} µs per verdict`)
  console.log(`${streamed} events read by the pages (of ${n * rounds * nPages} offered; the last flush of a round may be cut off)`)
  console.log('(medians over rounds; CPU of this process: user + system)')
}

if (process.argv[2] === '--child') pages(Number(process.argv[3]), Number(process.argv[4]))
else main().catch((e) => { console.error(e); process.exit(1) })

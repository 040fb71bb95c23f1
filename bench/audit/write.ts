// bench/audit/write: the journal's own CPU cost per verdict on the write path (record built from a published
// response, queued, written in one transaction per event-loop turn, its callback run), in one process with no
// MQTT around it, against a baseline measured in the same run: the same loop with the journal off (the record
// still built, the callback run at once). Rounds alternate between the two so that machine noise hits both.
// Besides CPU per verdict it reports what the loop's stalls would cost a message arriving at a random moment
// (a 1 ms ticker's gaps, each wait uniform within its gap: p99 and max), the way a verdict waits behind a write
// that blocks (a checkpoint's fsync).
//   node dist/bench/audit/write.js [--rows 20000] [--batch 20] [--rounds 4] [--sync normal|full]
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { Journal } from '../../daemon/audit/journal.js'
import { auditRecord, verdictId } from '../../daemon/audit/record.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import type { Response } from '../../daemon/service/response.js'

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '4' },
    sync: { type: 'string', default: 'normal' },
  },
})
const rows = Number(values.rows)
const batch = Number(values.batch)
const rounds = Number(values.rounds)
const sync = values.sync === 'full' ? 'full' : 'normal'

const dir = mkdtempSync(join(tmpdir(), 'flashcheck-bench-write-'))
const metrics = new Metrics()
const journal = new Journal(dir, { enabled: true, retentionDays: 400, maxBytes: 2 ** 31, sync }, createLogger('silent'), metrics)
journal.start()
const correlation = Buffer.from('0123456789ab')

function response(i: number): { res: Response; json: string } {
  const now = Date.now()
  const res: Response = {
    verdict_id: verdictId(now),
    ts: new Date(now).toISOString(),
    inspection: 'torque-joint',
    verdict: 'PASS',
    checks: [{ id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque: 11.2 } }, { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle: 720 } }],
    inputs: { torque: 11.2, angle: 720, station: 'st1', serial: `SN-${i}` },
    latency_ms: 0.412,
    deadline_missed: false,
    rules_rev: '45c7560e8666',
    node: 'bench',
  } as Response
  res.trace = `SN-${i}`
  return { res, json: JSON.stringify(res) }
}

interface Round {
  cpu: number
  p99: number
  max: number
}

/** CPU µs per row for `n` rows appended `batch` per event-loop turn, and the loop's stalls in ms; `on` false: the same with no database. */
async function run(n: number, on: boolean): Promise<Round> {
  const gaps: number[] = []
  let last = performance.now()
  const ticker = setInterval(() => { const now = performance.now(); gaps.push(now - last); last = now }, 1)
  const c0 = process.cpuUsage()
  let done = 0
  for (let i = 0; i < n; i += batch) {
    await new Promise<void>((resolve) => {
      let left = Math.min(batch, n - i)
      for (let k = 0; k < Math.min(batch, n - i); k++) {
        const { res, json } = response(i + k)
        const rec = auditRecord(res, json, { requestTopic: 'flashcheck/inspect/st1/torque', responseTopic: 'plc/st1/reply', correlationData: correlation, dedupeKey: `plc/st1/reply\u0000d${i + k}`, payloadSum: i + k })
        const then = () => { done++; if (--left === 0) resolve() }
        if (on) journal.append(rec, then)
        else setImmediate(then)
      }
    })
  }
  // The ingest worker's share (a thread of this process) counts too: the round ends when every row is in the database.
  if (on) await journal.settled(60_000)
  const c = process.cpuUsage(c0)
  clearInterval(ticker)
  if (done !== n) throw new Error(`${done} of ${n} callbacks ran`)
  // Waits of a message arriving at a uniformly random moment: within a gap of g ms, uniform on [0, g].
  const total = gaps.reduce((a, g) => a + g, 0)
  const sorted = [...gaps].sort((a, b) => b - a)
  let acc = 0
  let p99 = 0
  for (const g of sorted) {
    // The longest gaps hold the worst waits; the 1 % of time with the longest waits ends inside gap g.
    if (acc + g >= 0.01 * total) { p99 = g * (1 - (0.01 * total - acc) / g); break }
    acc += g
  }
  return { cpu: (c.user + c.system) / n, p99, max: sorted[0] ?? 0 }
}

await run(Math.min(rows, 5000), true)
await run(Math.min(rows, 5000), false)
const on: Round[] = []
const off: Round[] = []
for (let r = 0; r < rounds; r++) {
  off.push(await run(rows, false))
  on.push(await run(rows, true))
}
await journal.close()
rmSync(dir, { recursive: true, force: true })
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const line = (rs: Round[]) => `${median(rs.map((r) => r.cpu)).toFixed(2)} µs CPU per verdict [${rs.map((r) => r.cpu.toFixed(2)).join(' ')}]; wait behind the loop p99 ${median(rs.map((r) => r.p99)).toFixed(2)} ms, max ${Math.max(...rs.map((r) => r.max)).toFixed(2)} ms`
console.log(`cpu: ${cpus()[0]?.model ?? '?'} (${process.arch}), node ${process.version}, audit.sync ${sync}, ${batch} rows per event-loop turn, ${rounds} rounds of ${rows} rows, state in ${tmpdir()}`)
console.log(`journal off (baseline): ${line(off)}`)
console.log(`journal on:             ${line(on)}`)
const cOn = median(on.map((r) => r.cpu))
const cOff = median(off.map((r) => r.cpu))
console.log(`journal cost: ${(cOn - cOff).toFixed(2)} µs CPU per verdict (on/off ${(cOn / cOff).toFixed(2)}x)`)

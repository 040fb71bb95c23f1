// Sparkplug B costs, each against a JSON baseline measured in the same run (the machine is shared: compare
// the ratios). (1) Decoding a DDATA of 50 Double metrics given by alias, and the whole host path (decode,
// alias resolution, 50 samples stored), against JSON.parse of the same 50 values. (2) Rules-only latency of
// one inspection reading a signal: a signal sample arrives (Sparkplug DDATA vs JSON message) and the rule
// is evaluated against the store, per iteration, p50/p99 over alternating rounds.
// Run after a build: node dist/bench/sparkplug.js [--rounds 5] [--iterations 20000]
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { compileSources } from '../daemon/rules/load.js'
import { SignalStore } from '../daemon/signals/store.js'
import { decodePayload, encodePayload, type Metric } from '../daemon/sparkplug/codec.js'
import { SparkplugHost } from '../daemon/sparkplug/host.js'
import { DataType } from '../daemon/sparkplug/schema.js'
import { Metrics } from '../daemon/metrics/metrics.js'
import { createLogger } from '../daemon/log/logger.js'
import { cpuInfo, vectorIsa } from './kernel/cpu-peak.js'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, iterations: { type: 'string', default: '20000' } } })
const rounds = Number(values.rounds)
const iterations = Number(values.iterations)

const cpu0 = cpuInfo()
const isa = vectorIsa(cpu0)
console.log(`machine: ${cpu0.model}, ${cpu0.arch}, ISA ${isa} (JavaScript only: no kernel dispatch here), ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}, node ${process.version}`)

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

// ── (1) decode cost per DDATA with 50 metrics ───────────────────────────────────────────────────────────
const N = 50
const t0 = 1_764_633_600_000
const ddataOf = (i: number): Uint8Array =>
  encodePayload({ timestamp: t0 + i, seq: (i % 255) + 1, metrics: Array.from({ length: N }, (_, k): Metric => ({ alias: k + 1, timestamp: t0 + i, datatype: DataType.Double, value: 20 + k + (i % 10) / 10 })) })
const jsonOf = (i: number): Buffer => Buffer.from(JSON.stringify({ timestamp: t0 + i, seq: (i % 255) + 1, metrics: Object.fromEntries(Array.from({ length: N }, (_, k) => [`Line/Sensor${k}`, 20 + k + (i % 10) / 10])) }))
const spMsgs = Array.from({ length: 256 }, (_, i) => Buffer.from(ddataOf(i)))
const jsonMsgs = Array.from({ length: 256 }, (_, i) => jsonOf(i))
console.log(`payloads: Sparkplug DDATA ${spMsgs[0]!.length} bytes, JSON equivalent ${jsonMsgs[0]!.length} bytes, ${N} Double metrics each`)

const quiet = createLogger('silent')
const birth = (host: SparkplugHost, set: Parameters<SparkplugHost['handle']>[3]) => {
  host.handle('spBv1.0/plant/NBIRTH/n1', Buffer.from(encodePayload({ seq: 0, metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 0 }] })), t0, set)
  host.handle('spBv1.0/plant/DBIRTH/n1/d1', Buffer.from(encodePayload({ seq: 1, metrics: Array.from({ length: N }, (_, k): Metric => ({ name: `Line/Sensor${k}`, alias: k + 1, datatype: DataType.Double, value: 0 })) })), t0, set)
}

// A rule set reading all 50 metrics both ways, so the host path stores every sample (as a real one would).
const signalsYaml = (sp: boolean) =>
  Array.from({ length: N }, (_, k) => sp ? `  s${k}: {sparkplug: {group: plant, node: n1, device: d1, metric: "Line/Sensor${k}"}, keep: 10s}` : `  s${k}: {topic: plant/n1/d1, value: payload.metrics.Line/Sensor${k}, keep: 10s}`).join('\n')
function ruleSet(sp: boolean) {
  const r = compileSources([{ file: 'b.yaml', src: `id: b\nrequest: q/{station}\nsignals:\n${signalsYaml(sp)}\nchecks:\n  - { id: c, expr: 'last(s0) < 100.0', on_fail: FAIL }\n` }], { defaultBudgetMs: 50 })
  if (!r.rules) throw new Error(r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n'))
  return r
}

function decodeRounds(): void {
  const rows: Record<string, number[]> = { 'JSON.parse (baseline)': [], 'Sparkplug decode': [], 'JSON ingest, 50 signals': [], 'Sparkplug host path, 50 signals': [] }
  const jr = ruleSet(false)
  const sr = ruleSet(true)
  const jstore = new SignalStore()
  jstore.configure(jr.signals)
  const sstore = new SignalStore()
  sstore.configure(sr.signals)
  const set = { rules: sr.rules!, signals: sr.signals } as unknown as Parameters<SparkplugHost['handle']>[3]
  const host = new SparkplugHost({ log: quiet, metrics: new Metrics(), signals: sstore, maxPayloadBytes: 1 << 20, publish: () => true })
  let sink = 0
  const time = (name: string, fn: (i: number) => void) => {
    const s = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) fn(i)
    rows[name]!.push(Number(process.hrtime.bigint() - s) / iterations / 1000)
  }
  for (let r = 0; r < rounds + 1; r++) {
    const keep = r > 0 // round 0 warms up
    time('JSON.parse (baseline)', (i) => { sink += (JSON.parse(jsonMsgs[i & 255]!.toString('utf8')) as { seq: number }).seq })
    time('Sparkplug decode', (i) => { sink += decodePayload(spMsgs[i & 255]!).metrics.length })
    time('JSON ingest, 50 signals', (i) => { jstore.ingest('plant/n1/d1', jsonMsgs[i & 255]!, t0 + i) })
    // seq must follow on: rebirth once per lap of 255 messages keeps the node's state valid.
    time('Sparkplug host path, 50 signals', (i) => {
      if (i % 255 === 0) birth(host, set)
      host.handle('spBv1.0/plant/DDATA/n1/d1', Buffer.from(encodePayloadCached(i % 255)), t0 + i, set)
    })
    if (!keep) for (const k of Object.keys(rows)) rows[k]!.pop()
  }
  if (sink === 42) console.log('')
  console.log(`\n(1) per message, median of ${rounds} rounds × ${iterations} messages:`)
  console.log('| path | µs/message | ratio to JSON.parse |\n|---|---|---|')
  const base = median(rows['JSON.parse (baseline)']!)
  for (const [k, v] of Object.entries(rows)) console.log(`| ${k} | ${median(v).toFixed(2)} | ${(median(v) / base).toFixed(2)}× |`)
}

// DDATA with seq 2.. (following the DBIRTH's seq 1), precomputed so encoding is not timed.
const seqd: Uint8Array[] = Array.from({ length: 255 }, (_, i) =>
  encodePayload({ timestamp: t0 + i, seq: (i + 2) % 256, metrics: Array.from({ length: N }, (_, k): Metric => ({ alias: k + 1, timestamp: t0 + i, datatype: DataType.Double, value: 20 + k + (i % 10) / 10 })) }))
function encodePayloadCached(i: number): Uint8Array {
  return seqd[i]!
}

// ── (2) rules-only latency: one signal sample in, one evaluation ─────────────────────────────────────────
function latencyRounds(): void {
  const mk = (sp: boolean) => {
    const sig = sp ? `sparkplug: {group: plant, node: "press-{station}", device: spindle, metric: "Spindle/Temperature"}` : `topic: "plant/{station}/spindle/temperature", value: payload.t`
    const r = compileSources([{ file: 'l.yaml', src: `id: l\nrequest: q/{station}\nsignals:\n  temp: {${sig}, keep: 10s}\nchecks:\n  - { id: hot, expr: 'avg(temp, "5s") < 80.0 && last(temp) < 90.0', on_fail: FAIL }\n` }], { defaultBudgetMs: 50 })
    if (!r.rules) throw new Error(r.errors.map((e) => e.message).join('\n'))
    const store = new SignalStore()
    store.configure(r.signals)
    return { rule: r.rules[0]!, store, set: { rules: r.rules, signals: r.signals } as unknown as Parameters<SparkplugHost['handle']>[3] }
  }
  const j = mk(false)
  const s = mk(true)
  const host = new SparkplugHost({ log: quiet, metrics: new Metrics(), signals: s.store, maxPayloadBytes: 1 << 20, publish: () => true })
  // No timestamps: the sample time falls back to arrival, as for the JSON signal.
  const spSample = Array.from({ length: 255 }, (_, i) => Buffer.from(encodePayload({ seq: (i + 2) % 256, metrics: [{ alias: 7, datatype: DataType.Double, value: 60 + (i % 10) }] })))
  const jsonSample = Array.from({ length: 255 }, (_, i) => Buffer.from(JSON.stringify({ t: 60 + (i % 10) })))
  const spBirth = () => {
    host.handle('spBv1.0/plant/NBIRTH/press-3', Buffer.from(encodePayload({ seq: 0, metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 0 }] })), t0, s.set)
    host.handle('spBv1.0/plant/DBIRTH/press-3/spindle', Buffer.from(encodePayload({ seq: 1, metrics: [{ name: 'Spindle/Temperature', alias: 7, datatype: DataType.Double, value: 60 }] })), t0, s.set)
  }
  const req = (now: number) => ({ topic: 'q/3', params: { station: '3' }, payload: {}, now })
  const res: Record<string, { p50: number[]; p99: number[] }> = { 'JSON signal (baseline)': { p50: [], p99: [] }, 'Sparkplug signal': { p50: [], p99: [] } }
  const lat = new Float64Array(iterations)
  let clock = t0
  for (let r = 0; r < rounds + 1; r++) {
    for (const name of r % 2 === 0 ? Object.keys(res) : Object.keys(res).reverse()) {
      const sp = name.startsWith('Sparkplug')
      for (let i = 0; i < iterations; i++) {
        // One clock over all rounds: histories only move forward in time.
        const now = (clock += 20)
        if (sp && i % 255 === 0) spBirth()
        const a = process.hrtime.bigint()
        if (sp) host.handle('spBv1.0/plant/DDATA/press-3/spindle', spSample[i % 255]!, now, s.set)
        else j.store.ingest('plant/3/spindle/temperature', jsonSample[i % 255]!, now)
        const v = (sp ? s : j).rule.evaluate(req(now), (sp ? s : j).store)
        lat[i] = Number(process.hrtime.bigint() - a) / 1000
        if (v.verdict !== 'PASS') throw new Error(`${name}: ${JSON.stringify(v)}`)
      }
      if (r === 0) continue
      const sorted = [...lat].sort((x, y) => x - y)
      res[name]!.p50.push(pct(sorted, 50))
      res[name]!.p99.push(pct(sorted, 99))
    }
  }
  console.log(`\n(2) rules-only latency, one sample in then one evaluation (avg over 5 s + last), median over ${rounds} alternating rounds × ${iterations}:`)
  console.log('| signal source | p50 µs | p99 µs | p50 ratio | p99 ratio |\n|---|---|---|---|---|')
  const b = res['JSON signal (baseline)']!
  for (const [k, v] of Object.entries(res)) {
    console.log(`| ${k} | ${median(v.p50).toFixed(2)} | ${median(v.p99).toFixed(2)} | ${(median(v.p50) / median(b.p50)).toFixed(2)}× | ${(median(v.p99) / median(b.p99)).toFixed(2)}× |`)
  }
}

decodeRounds()
latencyRounds()

// Microbenchmark of rule evaluation: the torque-joint example with a live vibration signal, as the
// service calls it per request. Run after a build: node dist/bench/rules-evaluate.js [iterations]
import { fileURLToPath } from 'node:url'
import { loadRuleDir } from '../daemon/rules/load.js'
import { SignalStore } from '../daemon/signals/store.js'

const dir = fileURLToPath(new URL('../../rules/examples', import.meta.url))
const n = Number(process.argv[2] ?? 1_000_000)
const res = await loadRuleDir(dir, { defaultBudgetMs: 50 })
if (!res.ok) throw new Error(res.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join('\n'))
const store = new SignalStore()
store.configure(res.set.signals)
const now = Date.now()
for (let i = 0; i < 200; i++) store.ingest('plant/st3/spindle/vibration', Buffer.from(JSON.stringify({ rms: 2 + (i % 7) * 0.1 })), now - 10_000 + i * 50)
const topic = 'flashcheck/inspect/st3/torque'
const m = res.set.matchRequest(topic)
if (!m) throw new Error('no rule for ' + topic)
const req = { topic, params: m.params, payload: { torque_nm: 11.2, angle_deg: 720 }, now }
if (m.rule.evaluate(req, store).verdict !== 'PASS') throw new Error('expected PASS')
for (let round = 0; round < 3; round++) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) m.rule.evaluate(req, store)
  const perCall = Number(process.hrtime.bigint() - t0) / n / 1000
  console.log(`evaluate torque-joint: ${perCall.toFixed(2)} µs/call (${n} calls, round ${round + 1})`)
}
const t1 = process.hrtime.bigint()
for (let i = 0; i < n; i++) res.set.matchRequest(topic)
console.log(`matchRequest: ${(Number(process.hrtime.bigint() - t1) / n / 1000).toFixed(3)} µs/call`)
const payload = Buffer.from('{"rms":2.5}')
const t2 = process.hrtime.bigint()
for (let i = 0; i < n; i++) store.ingest('plant/st3/spindle/vibration', payload, now + i / 100)
console.log(`signal ingest (JSON parse + push): ${(Number(process.hrtime.bigint() - t2) / n / 1000).toFixed(3)} µs/message`)

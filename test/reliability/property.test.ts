// Property-based tests (fast-check): random payloads through the live daemon against an oracle of the rule,
// random inputs and thresholds through compiled rules, random topics through bindings, and the dedupe table
// against a plain Map. A failing property prints its shrunk counterexample and seed.
import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import { compileOne } from '../rules/helpers.js'
import { bindingProblem, parseFilter, TopicFilter, TopicTemplate } from '../../daemon/rules/topic.js'
import { Dedupe } from '../../daemon/service/dedupe.js'
import { SignalStore } from '../../daemon/signals/store.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE_SRC = readFileSync(join(RULES, 'torque.yaml'), 'utf8')

/** What the torque fixture must answer, derived from its text by hand (no vibration samples: spindle-calm fails). */
function oracle(body: unknown): { verdict: string; code?: string } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { verdict: 'ERROR', code: 'NOT_OBJECT' }
  const o = body as Record<string, unknown>
  // Inputs are read in declaration order; the first one missing or mistyped decides the error.
  for (const k of ['torque_nm', 'angle_deg']) {
    const v = Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined
    if (v === undefined || v === null) return { verdict: 'ERROR', code: 'MISSING_INPUT' }
    if (typeof v !== 'number' || !Number.isFinite(v)) return { verdict: 'ERROR', code: 'BAD_INPUT' }
  }
  const torque = o.torque_nm as number
  const angle = o.angle_deg as number
  if (!(torque >= 10 && torque <= 12)) return { verdict: 'FAIL' }
  if (!(angle >= 540 && angle <= 900)) return { verdict: 'REWORK' }
  return { verdict: 'WARN' }
}

const jsonValue = fc.jsonValue({ maxDepth: 4 })
const number = fc.oneof(fc.double({ noNaN: true }), fc.integer(), fc.constantFrom(10, 12, 540, 900, 9.999999, 12.000001, -0, 1e308))
const torquePayload = fc.record(
  { torque_nm: fc.oneof(number, jsonValue), angle_deg: fc.oneof(number, jsonValue), extra: jsonValue },
  { requiredKeys: [] },
)
const payload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 5, arbitrary: torquePayload.map((v) => Buffer.from(JSON.stringify(v))) },
  { weight: 2, arbitrary: jsonValue.map((v) => Buffer.from(JSON.stringify(v))) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }).map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
)

t.test('live daemon: every random payload gets exactly the verdict the oracle predicts', async (t) => {
  const broker = await Mosquitto.start()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false']))
  const req = await Requester.connect(broker.url, 5)
  t.teardown(async () => { await req.end(); await d.stop(); await broker.stop() })
  let n = 0
  await fc.assert(
    fc.asyncProperty(payload, async (buf) => {
      let body: unknown
      let parses = true
      try { body = JSON.parse(buf.toString('utf8')) } catch { parses = false }
      const want = parses ? oracle(body) : { verdict: 'ERROR', code: 'BAD_JSON' }
      const r = await req.request5('flashcheck/inspect/st1/torque', buf, {}, Buffer.from(`p${n++}`))
      if (r.body.verdict !== want.verdict || r.body.error?.code !== want.code) {
        throw new Error(`payload ${JSON.stringify(buf.toString('utf8'))}: want ${JSON.stringify(want)}, got ${JSON.stringify(r.body).slice(0, 300)}`)
      }
    }),
    { numRuns: 200 },
  )
  t.equal(d.daemon.connected, true)
  t.ok(n >= 200, `${n} requests checked`)
})

t.test('compiled rule: a range check matches JavaScript on random inputs and thresholds', async (t) => {
  await fc.assert(
    fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 1e6 }), (x, lo, width) => {
      const hi = lo + width
      const src = `id: r\nrequest: a/{s}\ninputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: x >= ${lo.toExponential()} && x <= ${hi.toExponential()}\n    on_fail: FAIL\n`
      const { rule, store } = compileOne(src)
      const res = rule.evaluate({ topic: 'a/s', params: { s: 's' }, payload: { x }, now: 0 }, store)
      const want = x >= Number(lo.toExponential()) && x <= Number(hi.toExponential()) ? 'PASS' : 'FAIL'
      return res.verdict === want
    }),
    { numRuns: 200 },
  )
  t.pass('200 random rules agreed with JavaScript')
})

t.test('compiled rule: any JSON value for a typed input gives a verdict or BAD_INPUT/MISSING_INPUT, never a throw', async (t) => {
  const src = TORQUE_SRC
  const { rule } = compileOne(src)
  const store = new SignalStore()
  await fc.assert(
    fc.property(jsonValue, jsonValue, fc.string({ minLength: 1, maxLength: 8 }).filter((s) => bindingProblem(s) === undefined), (a, b, station) => {
      const payload = { torque_nm: a, angle_deg: b }
      const res = rule.evaluate({ topic: `flashcheck/inspect/${station}/torque`, params: { station }, payload, now: 1 }, store)
      const want = oracle(payload)
      return res.verdict === want.verdict && res.error?.code === want.code
    }),
    { numRuns: 500 },
  )
  t.pass('500 random input pairs')
})

t.test('topic bindings: whatever the topic, a bound value renders to exactly one level', async (t) => {
  const filter = TopicFilter.parse('plant/{line}/press/{press}/cycle')
  const r = parseFilter('flashcheck/verdict/{line}/{press}')
  if ('problem' in r) throw new Error('unexpected')
  const tpl = new TopicTemplate('flashcheck/verdict/{line}/{press}', r.levels)
  const level = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('+', '#', '', '/', 'a/b', '$SYS', '\u0000'))
  await fc.assert(
    fc.property(level, level, (line, press) => {
      const m = filter.match(`plant/${line}/press/${press}/cycle`)
      if (m === null) return true
      const out = tpl.render(m)
      const parts = out.split('/')
      return parts.length === 4 && !out.includes('+') && !out.includes('#') && parts.every((p) => p !== '') && parts[2] === line && parts[3] === press
    }),
    { numRuns: 2000 },
  )
  t.pass('2000 random topics')
})

t.test('dedupe agrees with a Map of (key, payload) inside the window', async (t) => {
  const op = fc.record({ key: fc.integer({ min: 0, max: 30 }), body: fc.integer({ min: 0, max: 2 }), dt: fc.integer({ min: 0, max: 400 }) })
  await fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const windowMs = 1000
      const d = new Dedupe(windowMs, 1024)
      const ref = new Map<number, { body: number; at: number }>()
      let now = 1
      for (const o of ops) {
        now += o.dt
        const prev = ref.get(o.key)
        const want = prev !== undefined && now - prev.at <= windowMs && prev.body === o.body
        if (!want) ref.set(o.key, { body: o.body, at: now })
        if (d.check(`k${o.key}`, Buffer.from(String(o.body)), now) !== want) return false
      }
      return true
    }),
    { numRuns: 300 },
  )
  t.pass('300 random operation sequences')
})

import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { parse } from 'yaml'
import Ajv2020 from 'ajv/dist/2020.js'
import { loadRuleDir } from '../../daemon/rules/load.js'
import { SignalStore } from '../../daemon/signals/store.js'
import { json } from './helpers.js'

const EXAMPLES = new URL('../../rules/examples/', import.meta.url).pathname
const SCHEMA = new URL('../../rules/schema.json', import.meta.url).pathname
const NOW = 1_700_000_000_000

t.test('the shipped examples load as one valid set', async (t) => {
  const res = await loadRuleDir(EXAMPLES, { defaultBudgetMs: 50 })
  t.same(res.ok ? [] : res.errors, [])
  if (!res.ok) return
  t.same(res.set.rules.map((r) => [r.id, r.mode]).sort(), [
    ['bore-gauge', 'request'],
    ['press-cycle', 'stream'],
    ['spindle-temp-trend', 'request'],
    ['torque-joint', 'request'],
  ])
  t.same(res.set.signals.map((s) => s.filter).sort(), ['plant/+/spindle/temperature', 'plant/+/spindle/vibration'])
})

t.test('the examples validate against rules/schema.json, and the schema rejects what the loader rejects', async (t) => {
  const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ allErrors: true, strict: true, strictRequired: false })
  const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')))
  for (const f of readdirSync(EXAMPLES).filter((n) => /\.ya?ml$/.test(n))) {
    t.ok(validate(parse(readFileSync(EXAMPLES + f, 'utf8'))), `${f}: ${JSON.stringify(validate.errors)}`)
  }
  const base = { id: 'x', request: 'a/{s}', checks: [{ id: 'c', expr: 'true', on_fail: 'FAIL' }] }
  t.ok(validate(base))
  t.notOk(validate({ ...base, colour: 'red' }), 'unknown key')
  t.notOk(validate({ ...base, trigger: 'a/b', publish: 'c' }), 'request and trigger')
  t.notOk(validate({ ...base, request: 'a/#/b' }), 'bad filter')
  t.notOk(validate({ ...base, signals: { v: { topic: 'p/{s}', keep: '10 s' } } }), 'bad duration')
  t.notOk(validate({ ...base, inputs: { x: 'body.x' } }), 'bad source')
  t.notOk(validate({ ...base, verdicts: ['OK', 'ERROR'] }), 'ERROR label')
  const reason = { prompt: 'x {s}', choices: ['PASS', 'FAIL'], fallback: 'FAIL' }
  t.ok(validate({ ...base, reason }))
  t.notOk(validate({ ...base, reason: { ...reason, temperature: 0.1 } }), 'unknown reason key')
  t.notOk(validate({ ...base, reason: { ...reason, min_confidence: 2 } }), 'min_confidence above 1')
  t.notOk(validate({ ...base, reason: { prompt: 'x', choices: ['PASS', 'FAIL'] } }), 'reason without fallback')
})

t.test('the model-assisted example validates and loads when a model is configured, and only then', async (t) => {
  const dir = EXAMPLES + 'model/'
  const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ allErrors: true, strict: true, strictRequired: false })
  const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')))
  for (const f of ['torque-joint-ai.yaml', 'weld-seam.yaml']) t.ok(validate(parse(readFileSync(dir + f, 'utf8'))), `${f}: ${JSON.stringify(validate.errors)}`)
  const ok = await loadRuleDir(dir, { defaultBudgetMs: 50, model: true })
  t.same(ok.ok ? ok.set.rules.map((r) => [r.id, r.reason?.choices]).sort() : ok.errors, [
    ['torque-joint-ai', ['PASS', 'REWORK', 'FAIL']],
    ['weld-seam', ['PASS', 'REWORK', 'FAIL']],
  ])
  const refused = await loadRuleDir(dir, { defaultBudgetMs: 50, model: false })
  t.equal(refused.ok, false)
})

t.test('streaming example: verdict topic rendered from the trigger', async (t) => {
  const res = await loadRuleDir(EXAMPLES, { defaultBudgetMs: 50 })
  if (!res.ok) throw new Error('examples invalid')
  const [m] = res.set.matchTrigger('plant/L1/press/p4/cycle')
  t.equal(m!.rule.publishTopic!(m!.params), 'flashcheck/verdict/L1/press/p4')
  const r = m!.rule.evaluate({ topic: 'plant/L1/press/p4/cycle', params: m!.params, payload: { peak_kn: 230, cycle_ms: 900 }, now: NOW }, new SignalStore())
  t.equal(r.verdict, 'FAIL')
  t.equal(r.checks[0]!.reason, 'peak force 230 kN outside 180..220 (die unknown)')
})

t.test('spindle temperature trend: slope catches a heating spindle', async (t) => {
  const res = await loadRuleDir(EXAMPLES, { defaultBudgetMs: 50 })
  if (!res.ok) throw new Error('examples invalid')
  const store = new SignalStore()
  store.configure(res.set.signals)
  const m = res.set.matchRequest('flashcheck/inspect/st2/spindle-temp')!
  // 30 samples over the last minute, rising 0.1 °C per second
  for (let i = 0; i < 30; i++) store.ingest('plant/st2/spindle/temperature', Buffer.from(String(40 + i * 0.2)), NOW - 58_000 + i * 2000)
  const r = m.rule.evaluate({ topic: 'flashcheck/inspect/st2/spindle-temp', params: m.params, payload: {}, now: NOW }, store)
  t.equal(r.verdict, 'WARN')
  const trend = r.checks.find((c) => c.id === 'not-heating-up')!
  t.equal(trend.ok, false)
  t.equal(Math.round((trend.values['slope(temp, "1m")'] as number) * 1e6) / 1e6, 0.1)
  t.equal(store.ingest('plant/st2/spindle/temperature', json({ t: 1 }), NOW), false, 'a JSON object is not a bare number')
})

t.test('gauge example: own verdict labels and a defaulted temperature', async (t) => {
  const res = await loadRuleDir(EXAMPLES, { defaultBudgetMs: 50 })
  if (!res.ok) throw new Error('examples invalid')
  const m = res.set.matchRequest('flashcheck/inspect/st1/bore')!
  const ev = (payload: Record<string, unknown>) => m.rule.evaluate({ topic: 'flashcheck/inspect/st1/bore', params: m.params, payload, now: NOW }, new SignalStore())
  t.equal(ev({ diameter_mm: 25.01, part_id: 'AB123456' }).verdict, 'OK')
  const nok = ev({ diameter_mm: 25.03, part_id: 'AB123456' })
  t.equal(nok.verdict, 'NOK')
  t.equal(nok.checks[0]!.reason, 'bore 25.03 mm at 20 °C out of 25.00 ± 0.02 (part AB123456)')
  t.equal(ev({ diameter_mm: 25.03, part_id: 'AB123456', temp_c: 60 }).verdict, 'OK', 'thermal compensation')
  t.equal(ev({ diameter_mm: 25.0, part_id: 'x' }).verdict, 'NOK')
})

import t from 'tap'
import { readFileSync } from 'node:fs'
import { compileOne, json } from './helpers.js'
import type { InspectionRequest } from '../../daemon/rules/types.js'

const TORQUE = readFileSync(new URL('../../rules/examples/torque-joint.yaml', import.meta.url), 'utf8')
const NOW = 1_700_000_000_000
const req = (payload: Record<string, unknown>, params: Record<string, string> = { station: 'st3' }): InspectionRequest => ({
  topic: `flashcheck/inspect/${params.station}/torque`,
  params,
  payload,
  now: NOW,
})

function calmSpindle(store: { ingest(t: string, p: Buffer, n: number): boolean }, station = 'st3', rms = [2.0, 2.25, 2.5]) {
  rms.forEach((v, i) => store.ingest(`plant/${station}/spindle/vibration`, json({ rms: v }), NOW - 900 + i * 300))
}

t.test('torque-joint: PASS with values, inputs, and signal summaries of the request station', async (t) => {
  const { rule, store } = compileOne(TORQUE)
  calmSpindle(store)
  calmSpindle(store, 'st4', [9, 9, 9]) // another station's spindle must not leak in
  const res = rule.evaluate(req({ torque_nm: 11, angle_deg: 600 }), store)
  t.equal(res.verdict, 'PASS')
  t.same(res.inputs, { torque: 11, angle: 600, station: 'st3' })
  t.same(res.checks, [
    { id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque: 11 } },
    { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle: 600 } },
    { id: 'spindle-calm', ok: true, on_fail: 'WARN', values: { 'count(vib, "2s")': 3, 'avg(vib, "2s")': 2.25, 'age_ms(vib)': 300 } },
  ])
  t.equal(res.error, undefined)
})

t.test('verdict is the most severe failing on_fail; reason renders inputs', async (t) => {
  const { rule, store } = compileOne(TORQUE)
  calmSpindle(store)
  const rework = rule.evaluate(req({ torque_nm: 11, angle_deg: 1000 }), store)
  t.equal(rework.verdict, 'REWORK')
  t.equal(rework.checks[1]!.reason, undefined, 'no reason template: none rendered')
  const both = rule.evaluate(req({ torque_nm: 12.5, angle_deg: 1000 }), store)
  t.equal(both.verdict, 'FAIL', 'FAIL outranks REWORK regardless of check order')
  t.equal(both.checks[0]!.reason, 'torque 12.5 Nm outside 10.0..12.0')
  t.equal(both.checks[0]!.ok, false)
})

t.test('a quiet station: count is 0, so the guarded check fails (WARN) without an evaluation error', async (t) => {
  const { rule, store } = compileOne(TORQUE)
  const res = rule.evaluate(req({ torque_nm: 11, angle_deg: 600 }), store)
  t.equal(res.verdict, 'WARN')
  t.same(res.checks[2]!.values, { 'count(vib, "2s")': 0 })
})

t.test('missing and mistyped inputs give ERROR naming the input; defaults fill in', async (t) => {
  const { rule, store } = compileOne(TORQUE)
  const missing = rule.evaluate(req({ angle_deg: 600 }), store)
  t.equal(missing.verdict, 'ERROR')
  t.same(missing.error, { code: 'MISSING_INPUT', message: 'input torque (payload.torque_nm) is missing' })
  t.same(rule.evaluate(req({ torque_nm: null, angle_deg: 600 }), store).error?.code, 'MISSING_INPUT', 'null counts as missing')
  const bad = rule.evaluate(req({ torque_nm: '11', angle_deg: 600 }), store)
  t.same(bad.error, { code: 'BAD_INPUT', message: 'input torque (payload.torque_nm) must be a number, got string "11"' })

  const d = compileOne(`id: d
request: a/{s}
inputs:
  x: { from: payload.m.x, type: number, default: 2.5 }
  tag: { from: payload.tag, type: string, default: none }
  on: { from: payload.flags.0, type: bool }
checks:
  - id: c
    expr: x > 2.0 && on
    on_fail: FAIL
    reason: "x={x} tag={tag} on={on}"
`)
  const r = d.rule.evaluate({ topic: 'a/1', params: { s: '1' }, payload: { flags: [false] }, now: NOW }, d.store)
  t.equal(r.verdict, 'FAIL')
  t.same(r.inputs, { x: 2.5, tag: 'none', on: false })
  t.equal(r.checks[0]!.reason, 'x=2.5 tag=none on=false')
  const wrongBool = d.rule.evaluate({ topic: 'a/1', params: { s: '1' }, payload: { flags: [1] }, now: NOW }, d.store)
  t.same(wrongBool.error, { code: 'BAD_INPUT', message: 'input on (payload.flags.0) must be a bool, got number 1' })
  const mistyped = d.rule.evaluate({ topic: 'a/1', params: { s: '1' }, payload: { flags: [true], m: { x: 'n/a' }, tag: 7 }, now: NOW }, d.store)
  t.same(mistyped.inputs, { x: 2.5, tag: 'none', on: true }, 'a default also replaces a mistyped value')
  t.equal(mistyped.verdict, 'PASS')
})

t.test('custom verdict lists: lowest label when nothing fails, order defines severity', async (t) => {
  const { rule, store } = compileOne(`id: g
request: g/{s}
verdicts: [GOOD, MINOR, SCRAP]
inputs: { a: payload.a, b: payload.b }
checks:
  - { id: scrap, expr: a < 10.0, on_fail: SCRAP }
  - { id: minor, expr: b < 10.0, on_fail: MINOR }
`)
  const ev = (a: number, b: number) => rule.evaluate({ topic: 'g/1', params: { s: '1' }, payload: { a, b }, now: NOW }, store).verdict
  t.equal(ev(1, 1), 'GOOD')
  t.equal(ev(1, 20), 'MINOR')
  t.equal(ev(20, 1), 'SCRAP')
  t.equal(ev(20, 20), 'SCRAP')
  t.same(rule.verdicts, ['GOOD', 'MINOR', 'SCRAP'])
})

const SIG = `id: s
request: s/{station}
signals:
  temp:
    topic: plant/{station}/temp
    value: payload
    keep: 10s
checks:
`
const one = (expr: string) => compileOne(`${SIG}  - id: c\n    expr: '${expr}'\n    on_fail: FAIL\n`)
const at = (station = 'st1') => ({ topic: `s/${station}`, params: { station }, payload: {}, now: NOW })

t.test('every signal function, numerically', async (t) => {
  const { rule, store } = one('last(temp) > 0.0 && avg(temp, "3s") > 0.0 && min(temp, "3s") > 0.0 && max(temp, "3s") > 0.0 && count(temp, "3s") > 0 && slope(temp, "3s") > 0.0 && age_ms(temp) >= 0.0')
  // 4 samples 1 s apart ending 500 ms before now; the first is outside the 3 s window
  const pts = [[NOW - 3500, 10], [NOW - 2500, 20], [NOW - 1500, 22], [NOW - 500, 30]] as const
  for (const [tm, v] of pts) store.ingest('plant/st1/temp', Buffer.from(String(v)), tm)
  const res = rule.evaluate(at(), store)
  t.equal(res.verdict, 'PASS')
  const v = res.checks[0]!.values
  t.equal(v['last(temp)'], 30)
  t.equal(v['avg(temp, "3s")'], 24)
  t.equal(v['min(temp, "3s")'], 20)
  t.equal(v['max(temp, "3s")'], 30)
  t.equal(v['count(temp, "3s")'], 3)
  // least squares over (−2.5 s, 20), (−1.5 s, 22), (−0.5 s, 30): slope = 5 per second
  t.equal(Math.round((v['slope(temp, "3s")'] as number) * 1e9) / 1e9, 5)
  t.equal(v['age_ms(temp)'], 500)
})

t.test('empty windows: count 0, age_ms infinite, the others EVAL_ERROR naming signal and topic', async (t) => {
  for (const [expr, msg] of [
    ['avg(temp, "2s") > 0.0', 'no samples of temp on plant/st9/temp within 2s'],
    ['min(temp, "2s") > 0.0', 'no samples of temp on plant/st9/temp within 2s'],
    ['max(temp, "2s") > 0.0', 'no samples of temp on plant/st9/temp within 2s'],
    ['last(temp) > 0.0', 'no samples of temp on plant/st9/temp within its keep'],
    ['slope(temp, "2s") > 0.0', 'slope of temp on plant/st9/temp needs 2 samples at distinct times within 2s, has 0'],
  ]) {
    const { rule, store } = one(expr!)
    const res = rule.evaluate(at('st9'), store)
    t.equal(res.verdict, 'ERROR', expr)
    t.same(res.error, { code: 'EVAL_ERROR', message: `check c: ${msg}` }, expr)
    t.equal(res.checks[0]!.error, msg)
  }
  const c = one('count(temp, "2s") == 0 && age_ms(temp) > 1000000.0').rule.evaluate(at('st9'), one('true').store)
  t.equal(c.verdict, 'PASS')
  t.same(c.checks[0]!.values, { 'count(temp, "2s")': 0, 'age_ms(temp)': null }, 'infinite age is reported as null')
})

t.test('a count guard in front keeps a thin window from erroring; windows never reach past keep', async (t) => {
  const { rule, store } = one('count(temp, "10s") >= 2 && slope(temp, "10s") < 1.0')
  store.ingest('plant/st1/temp', Buffer.from('20'), NOW - 100)
  t.equal(rule.evaluate(at(), store).verdict, 'FAIL', 'guard false: no slope evaluated')
  const late = { ...at(), now: NOW + 20_000 }
  store.ingest('plant/st1/temp', Buffer.from('21'), NOW - 50)
  t.equal(rule.evaluate(late, store).checks[0]!.values['count(temp, "10s")'], 0, 'samples older than keep are not seen')
})

t.test('evaluation errors: all checks still run; first error is reported; other verdicts are withheld', async (t) => {
  const { rule, store } = compileOne(`id: e
request: e/{s}
inputs:
  x: payload.x
  m: { from: payload, type: any }
checks:
  - { id: first, expr: x > 100.0, on_fail: FAIL }
  - { id: boom, expr: m.nope > 1.0, on_fail: WARN }
  - { id: last, expr: x > 0.0, on_fail: WARN }
`)
  const res = rule.evaluate({ topic: 'e/1', params: { s: '1' }, payload: { x: 5 }, now: NOW }, store)
  t.equal(res.verdict, 'ERROR')
  t.equal(res.error?.code, 'EVAL_ERROR')
  t.match(res.error?.message, /^check boom: /)
  t.same(res.checks.map((c) => [c.id, c.ok]), [['first', false], ['boom', false], ['last', true]])
  t.type(res.checks[1]!.error, 'string')
})

t.test('evaluate never throws, even for a malformed payload', async (t) => {
  const { rule, store } = compileOne(TORQUE)
  const res = rule.evaluate({ topic: 'x', params: {}, payload: null as unknown as Record<string, unknown>, now: NOW }, store)
  t.equal(res.verdict, 'ERROR')
  t.equal(res.error?.code, 'MISSING_INPUT')
})

t.test('inputs of type any: maps with has(), and a non-bool result is an evaluation error', async (t) => {
  const { rule, store } = compileOne(`id: a
request: a/{s}
inputs:
  p: { from: payload, type: any }
checks:
  - { id: opt, expr: '!has(p.extra) || p.extra.size() < 3', on_fail: WARN }
  - { id: dyn, expr: p.flag, on_fail: FAIL }
`)
  const ev = (payload: Record<string, unknown>) => rule.evaluate({ topic: 'a/1', params: { s: '1' }, payload, now: NOW }, store)
  t.equal(ev({ flag: true }).verdict, 'PASS')
  t.equal(ev({ flag: true, extra: 'long' }).verdict, 'WARN')
  t.equal(ev({ flag: false }).verdict, 'FAIL')
  const notBool = ev({ flag: 5 })
  t.equal(notBool.verdict, 'ERROR')
  t.same(notBool.error, { code: 'EVAL_ERROR', message: 'check dyn: expression gave number 5, not true/false' })
  t.same(ev({ flag: true }).inputs, { p: { flag: true } })
})

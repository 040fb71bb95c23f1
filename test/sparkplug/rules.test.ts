// Sparkplug signals and triggers in rule files: validation with positions, the schema, and evaluation over
// samples fed the way the service feeds them (decoded payload → host state → signal store).
import t from 'tap'
import { readFileSync } from 'node:fs'
import Ajv2020 from 'ajv/dist/2020.js'
import { compileOne, errorsOf } from '../rules/helpers.js'
import { compileSources } from '../../daemon/rules/load.js'
import { SignalStore } from '../../daemon/signals/store.js'
import { HostState } from '../../daemon/sparkplug/host-state.js'
import { numericValue, type Payload } from '../../daemon/sparkplug/codec.js'
import { DataType } from '../../daemon/sparkplug/schema.js'

const RULE = `id: press-temp
request: plant1/inspect/{station}
signals:
  spindle_temp:
    sparkplug: {group: plant1, node: "press-{station}", device: spindle, metric: "Spindle/Temperature"}
    keep: 30s
  line_speed:
    sparkplug: {group: plant1, node: "press-{station}", metric: Line/Speed}
    keep: 30s
checks:
  - { id: hot, expr: 'last(spindle_temp) < 80.0', on_fail: FAIL }
  - { id: speed, expr: 'avg(line_speed, "10s") > 0.5', on_fail: WARN }
`

function feed(state: HostState, store: SignalStore, type: 'NBIRTH' | 'NDATA' | 'DBIRTH' | 'DDATA' | 'NDEATH' | 'DDEATH', node: string, device: string | undefined, p: Payload, now: number) {
  const out = state.apply('plant1', type, node, device, p, now)
  if (out.died) store.forgetSparkplug('plant1', node, out.died.device)
  for (const s of out.samples) store.pushSparkplug('plant1', node, s.device, s.metric, s.time, numericValue(s.value)!)
  return out
}

t.test('a rule reads Sparkplug metrics by name, then by alias only, bound to the request topic', async (t) => {
  const { rule, signals, store } = compileOne(RULE)
  t.same(signals.map((s) => [s.key, s.filter]), [
    ['sparkplug spBv1.0/plant1/press-{station}/spindle:Spindle/Temperature', 'spBv1.0/plant1/+/+/#'],
    ['sparkplug spBv1.0/plant1/press-{station}:Line/Speed', 'spBv1.0/plant1/+/+/#'],
  ])
  const st = new HostState()
  const now = 1_764_633_600_000
  feed(st, store, 'NBIRTH', 'press-3', undefined, { seq: 0, timestamp: now - 5000, metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 4 }, { name: 'Line/Speed', alias: 1, datatype: DataType.Float, value: 1.5 }] }, now)
  feed(st, store, 'DBIRTH', 'press-3', 'spindle', { seq: 1, timestamp: now - 4000, metrics: [{ name: 'Spindle/Temperature', alias: 2, datatype: DataType.Double, value: 60 }] }, now)
  const out = feed(st, store, 'DDATA', 'press-3', 'spindle', { seq: 2, timestamp: now - 1000, metrics: [{ alias: 2, datatype: DataType.Double, value: 85.5, timestamp: now - 500 }] }, now)
  t.same(out.samples.map((s) => [s.metric, s.time]), [['Spindle/Temperature', now - 500]], 'alias resolved; the metric timestamp is the sample time')
  t.equal(out.rebirth, undefined)
  let r = rule.evaluate({ topic: 'plant1/inspect/3', params: { station: '3' }, payload: {}, now }, store)
  t.equal(r.verdict, 'FAIL')
  t.same(r.checks.map((c) => [c.id, c.ok, c.values]), [['hot', false, { 'last(spindle_temp)': 85.5 }], ['speed', true, { 'avg(line_speed, "10s")': 1.5 }]])
  // Another station's data does not leak in.
  r = rule.evaluate({ topic: 'plant1/inspect/4', params: { station: '4' }, payload: {}, now }, store)
  t.equal(r.verdict, 'ERROR')
  t.match(r.error?.message, /no samples of spindle_temp on spBv1\.0\/plant1\/press-4\/spindle:Spindle\/Temperature/)
})

t.test('death makes samples stale, bdSeq must match, and data without a birth asks for a rebirth', async (t) => {
  const { rule, store } = compileOne(RULE)
  const st = new HostState()
  const now = 1_764_633_600_000
  feed(st, store, 'NBIRTH', 'press-3', undefined, { seq: 0, metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 7 }, { name: 'Line/Speed', alias: 1, datatype: DataType.Float, value: 1 }] }, now)
  feed(st, store, 'DBIRTH', 'press-3', 'spindle', { seq: 1, metrics: [{ name: 'Spindle/Temperature', alias: 2, datatype: DataType.Double, value: 60 }] }, now)
  const old = feed(st, store, 'NDEATH', 'press-3', undefined, { metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 6 }] }, now)
  t.match(old.ignored, /bdSeq 6 does not match the birth's 7/)
  t.equal(rule.evaluate({ topic: 'x', params: { station: '3' }, payload: {}, now }, store).verdict, 'PASS', 'an old session\'s Will does not kill the node')
  const death = feed(st, store, 'NDEATH', 'press-3', undefined, { metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 7 }] }, now)
  t.same(death.died, {})
  const r = rule.evaluate({ topic: 'x', params: { station: '3' }, payload: {}, now }, store)
  t.equal(r.verdict, 'ERROR', 'stale after death')
  const after = feed(st, store, 'DDATA', 'press-3', 'spindle', { seq: 2, metrics: [{ alias: 2, datatype: DataType.Double, value: 61 }] }, now)
  t.equal(after.rebirth, 'no_birth')
  t.same(after.samples, [], 'data after death is not used')
  feed(st, store, 'NBIRTH', 'press-3', undefined, { seq: 0, metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: 8 }] }, now)
  const gap = feed(st, store, 'NDATA', 'press-3', undefined, { seq: 5, metrics: [] }, now)
  t.equal(gap.rebirth, 'seq_gap')
  const unknown = st.apply('plant1', 'NDATA', 'press-3', undefined, { seq: 6, metrics: [{ alias: 99, datatype: DataType.Double, value: 1 }] }, now)
  t.equal(unknown.rebirth, 'unknown_alias', 'an alias no birth declared asks for a rebirth')
  t.same(unknown.skipped, [{ metric: 'alias 99', why: 'unknown alias' }])
  const wrap = new HostState()
  wrap.apply('g', 'NBIRTH', 'n', undefined, { seq: 255, metrics: [] }, now)
  t.equal(wrap.apply('g', 'NDATA', 'n', undefined, { seq: 0, metrics: [] }, now).rebirth, undefined, 'seq wraps 255 → 0')
})

t.test('a trigger can name a Sparkplug metric and binds names from its address', async (t) => {
  const r = compileSources([{ file: 'trig.yaml', src: `id: cycle
trigger:
  sparkplug: {group: plant1, node: "press-{station}", device: spindle, metric: "Cycle/Done"}
publish: plant1/verdicts/{station}
inputs:
  done: payload.value
checks:
  - { id: ok, expr: 'done > 0.0', on_fail: FAIL }
` }], { defaultBudgetMs: 50 })
  t.same(r.errors, [])
  const rule = r.rules![0]!
  t.equal(rule.filter, 'spBv1.0/plant1/+/+/#')
  t.same(rule.sparkplugTrigger!.bind('plant1', 'press-9', 'spindle', 'Cycle/Done'), { station: '9' })
  t.equal(rule.sparkplugTrigger!.bind('plant1', 'press-9', 'spindle', 'Cycle/Other'), null)
  t.equal(rule.publishTopic!({ station: '9' }), 'plant1/verdicts/9')
  t.equal(rule.match('plant1/verdicts/9'), null, 'no MQTT topic reaches it')
})

t.test('mistakes in sparkplug addresses are reported at file:line:col', async (t) => {
  const errs = errorsOf({
    'a.yaml': `id: a
request: r/{station}
signals:
  s1:
    sparkplug: {group: plant1, node: "press-{line}", metric: x}
    keep: 10s
  s2:
    sparkplug: {group: "pl/ant", node: n, metric: x}
    keep: 10s
  s3:
    sparkplug: {group: g, metric: x, colour: red}
    keep: 10s
  s4:
    sparkplug: {group: g, node: n, metric: x}
    topic: a/b
    keep: 10s
checks:
  - { id: c, expr: 'true', on_fail: FAIL }
`,
  })
  t.same(errs, [
    "a.yaml:5:45: signal s1: sparkplug.node: {line} is not bound by the rule's topic r/{station} (bound: {station})",
    "a.yaml:8:27: signal s2: sparkplug.group: Sparkplug ids must not contain '+', '/' or '#'",
    "a.yaml:11:38: signal s3: sparkplug: unknown key 'colour' (allowed: group, node, device, metric)",
    "a.yaml:11:16: signal s3: sparkplug: missing 'node'",
    "a.yaml:15:5: signal s4: give either 'topic' (JSON) or 'sparkplug' (Sparkplug B metric), not both",
  ])
})

t.test('rules/schema.json accepts sparkplug signals and triggers and rejects malformed ones', async (t) => {
  const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ allErrors: true, strict: true, strictRequired: false })
  const validate = ajv.compile(JSON.parse(readFileSync(new URL('../../rules/schema.json', import.meta.url), 'utf8')))
  const base = { id: 'x', request: 'a/{s}', checks: [{ id: 'c', expr: 'true', on_fail: 'FAIL' }] }
  const sp = { group: 'g', node: 'n-{s}', metric: 'M/x' }
  t.ok(validate({ ...base, signals: { v: { sparkplug: sp, keep: '10s' } } }), JSON.stringify(validate.errors))
  t.ok(validate({ id: 'y', trigger: { sparkplug: { ...sp, device: 'd' } }, publish: 'o/{s}', checks: base.checks }), JSON.stringify(validate.errors))
  t.notOk(validate({ ...base, signals: { v: { sparkplug: sp, topic: 'a/b', keep: '10s' } } }), 'topic and sparkplug')
  t.notOk(validate({ ...base, signals: { v: { sparkplug: { group: 'g', metric: 'm' }, keep: '10s' } } }), 'no node')
  t.notOk(validate({ ...base, signals: { v: { sparkplug: { ...sp, group: 'a/b' }, keep: '10s' } } }), 'slash in group')
})

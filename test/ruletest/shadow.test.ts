// Shadow rules: a second rule set judges the live traffic, never publishes, counts agreement per inspection
// and logs the first disagreements; invalid shadow rules leave serving alone; reason rules share the serving
// model answer only for an identical prompt.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { loadRuleDir } from '../../daemon/rules/load.js'
import { SignalStore } from '../../daemon/signals/store.js'
import { LOGGED_PER_MINUTE, ShadowRules, shadowVerdict } from '../../daemon/shadow/shadow.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const A = join(import.meta.dirname, '..', 'fixtures', 'ruletest', 'replay-a')
const B = join(import.meta.dirname, '..', 'fixtures', 'ruletest', 'replay-b')
const MODEL_RULES = join(import.meta.dirname, '..', '..', 'rules', 'examples', 'model')
const N = 40
const torque = (i: number) => Math.round((10 + i * 0.05) * 100) / 100

async function shadowCounts(metrics: Metrics): Promise<Record<string, number>> {
  const m = await metrics.registry.getSingleMetric('flashcheck_shadow_verdicts_total')!.get()
  return Object.fromEntries(m.values.map((v) => [`${v.labels.inspection}:${v.labels.agree}`, v.value]))
}

t.test('shadow counts under live traffic; the shadow set never publishes', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', A, '--rules-shadow-dir', B, '--rules-watch', 'false']))
  t.teardown(() => d.stop())
  const plc = await Requester.connect(broker.url, 5)
  t.teardown(() => plc.end())
  const minuteAtStart = Math.floor(Date.now() / 60_000)
  for (let i = 0; i < 3; i++) await plc.client.publishAsync('plant/st1/spindle/vibration', JSON.stringify({ rms: 0.4 }), { qos: 1 })
  for (let i = 0; i < N; i++) {
    await plc.client.publishAsync('plant/st1/spindle/vibration', JSON.stringify({ rms: 0.5 }), { qos: 1 })
    const r = await plc.request5('flashcheck/inspect/st1/torque', { torque_nm: torque(i), angle_deg: 720 })
    t.equal(r.body.verdict, 'PASS', `serving verdict ${i}`)
  }
  await new Promise((r) => setTimeout(r, 200))
  t.equal(plc.replies.length, N, 'one answer per request: the shadow set publishes nothing')
  const disagree = Array.from({ length: N }, (_, i) => torque(i)).filter((x) => x > 11.5).length
  t.same(await shadowCounts(d.daemon.metrics), { 'torque-joint:true': N - disagree, 'torque-joint:false': disagree })
  const logged = d.logs.filter((l) => l.msg === 'shadow rule disagrees with the serving verdict')
  const sameMinute = Math.floor(Date.now() / 60_000) === minuteAtStart
  if (sameMinute) t.equal(logged.length, LOGGED_PER_MINUTE, 'the first disagreements of the minute are logged')
  else t.ok(logged.length >= LOGGED_PER_MINUTE && logged.length <= disagree)
  t.same(logged.map((l) => [l.inspection, l.serving, l.shadow]), logged.map(() => ['torque-joint', 'PASS', 'FAIL']))
})

t.test('invalid shadow rules never affect serving', async (t) => {
  const bad = mkdtempSync(join(tmpdir(), 'flashcheck-shadow-bad-'))
  t.teardown(() => rmSync(bad, { recursive: true, force: true }))
  writeFileSync(join(bad, 'broken.yaml'), 'id: broken\nrequest: flashcheck/inspect/{station}/torque\nchecks:\n  - id: c\n    expr: torque >\n    on_fail: FAIL\n')
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', A, '--rules-shadow-dir', bad, '--rules-watch', 'false']))
  t.teardown(() => d.stop())
  const plc = await Requester.connect(broker.url, 5)
  t.teardown(() => plc.end())
  const r = await plc.request5('flashcheck/inspect/st1/torque', { torque_nm: 13, angle_deg: 720 })
  t.equal(r.body.verdict, 'FAIL')
  t.ok(d.logs.some((l) => typeof l.msg === 'string' && /^shadow rules rejected: .*broken\.yaml:5:\d+: /.test(l.msg)), 'the error is logged with its location')
  t.same(await shadowCounts(d.daemon.metrics), {})
})

t.test('a shadow reason rule takes the serving model answer only for an identical prompt, else its fallback', async (t) => {
  const log = createLogger('silent')
  const metrics = new Metrics()
  const shadow = new ShadowRules(MODEL_RULES, { defaultBudgetMs: 50 }, metrics, log, () => 1_000)
  t.teardown(() => shadow.close())
  t.same(await shadow.load(), [])
  const serving = await loadRuleDir(MODEL_RULES, { defaultBudgetMs: 50, model: true })
  if (!serving.ok) throw new Error('model example invalid')
  const store = new SignalStore()
  store.configure(serving.set.signals)
  for (let k = 0; k < 5; k++) {
    const msg = Buffer.from(JSON.stringify({ rms: 1.5 }))
    store.ingest('plant/st1/spindle/vibration', msg, 500 + k * 100)
    shadow.sample('plant/st1/spindle/vibration', msg, 500 + k * 100)
  }
  const topic = 'flashcheck/inspect/st1/torque-ai'
  const m = serving.set.matchRequest(topic)!
  const payload = { torque_nm: 11, angle_deg: 700 }
  const result = m.rule.evaluate({ topic, params: m.params, payload, now: 1_000 }, store)
  t.type(result.prompt, 'string')
  const model = { status: 'ok' as const, choice: 'PASS', confidence: 0.9, scores: { PASS: 0.9 }, ms: 3, prefix_cached: true, tokens: { prompt: 40, cached: 30, computed: 13 }, calls: 2 }
  const same = shadow.evaluate(m.rule, topic, payload, 1_000, false, result)!
  t.equal(same.result.prompt, result.prompt)
  t.equal(shadowVerdict(same, { verdict: 'PASS', model }), 'PASS', 'identical prompt: the serving answer')
  const other = shadow.evaluate(m.rule, topic, payload, 1_000, false, { ...result, prompt: result.prompt + ' (other)' })!
  t.equal(shadowVerdict(other, { verdict: 'PASS', model }), 'REWORK', 'another prompt: the fallback')
  shadow.compare(same, { verdict: 'PASS', model })
  shadow.compare(other, { verdict: 'PASS', model })
  t.same(await shadowCounts(metrics), { 'torque-joint-ai:true': 1, 'torque-joint-ai:false': 1 })
})

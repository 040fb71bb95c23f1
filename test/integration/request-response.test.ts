// End to end through a real mosquitto: MQTT 5 and 3.1.1 requesters, the daemon in-process, live signals.
import t from 'tap'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon, type Running } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import mqtt from 'mqtt'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'

let broker: Mosquitto
let d: Running
let v5: Requester
let v3: Requester
let sensor: mqtt.MqttClient

t.before(async () => {
  broker = await Mosquitto.start()
  d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false', '--limits-max-payload-bytes', '2048']))
  v5 = await Requester.connect(broker.url, 5)
  v3 = await Requester.connect(broker.url, 4)
  sensor = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
})

t.teardown(async () => {
  await v5?.end()
  await v3?.end()
  await sensor?.endAsync(true)
  await d?.stop()
  await broker?.stop()
})

async function vibration(station: string, ...rms: number[]): Promise<void> {
  for (const r of rms) await sensor.publishAsync(`plant/${station}/spindle/vibration`, JSON.stringify({ rms: r }), { qos: 1 })
}

t.test('PASS with a calm spindle, over MQTT 5: correlation data and content type echoed', async (t) => {
  await vibration('st1', 1.0, 1.2, 0.9)
  const corr = Buffer.from('plc-req-0001')
  const r = await v5.request5(TORQUE, { torque_nm: 11.2, angle_deg: 720 }, {}, corr)
  t.equal(r.topic, v5.replyTo)
  t.same(r.correlationData, corr)
  t.equal(r.contentType, 'application/json')
  const b = r.body
  t.equal(b.inspection, 'torque-joint')
  t.equal(b.verdict, 'PASS')
  t.same(b.checks.map((c: { id: string; ok: boolean }) => [c.id, c.ok]), [['torque-in-spec', true], ['angle-window', true], ['spindle-calm', true]])
  t.equal(b.checks[0].on_fail, 'FAIL')
  t.notOk('reason' in b.checks[0], 'no reason on a passing check')
  t.equal(b.checks[0].values.torque, 11.2)
  t.equal(b.inputs.torque, 11.2)
  t.equal(b.inputs.angle, 720)
  t.equal(b.inputs.station, 'st1')
  t.type(b.latency_ms, 'number')
  t.ok(b.latency_ms >= 0 && b.latency_ms < 1000)
  t.equal(b.deadline_missed, false)
  t.equal(b.rules_rev, d.daemon.rulesRev)
  t.match(b.rules_rev, /^[0-9a-f]{12}$/)
  t.equal(b.node, 'test-node')
  t.notOk('error' in b)
})

t.test('the most severe failing check decides: FAIL over REWORK, with the rendered reason', async (t) => {
  const r = await v5.request5(TORQUE, { torque_nm: 13.5, angle_deg: 1000 })
  t.equal(r.body.verdict, 'FAIL')
  const [torque, angle] = r.body.checks
  t.equal(torque.ok, false)
  t.equal(torque.reason, 'torque 13.5 Nm outside 10.0..12.0')
  t.equal(angle.ok, false)
  t.equal(angle.on_fail, 'REWORK')
})

t.test('REWORK when only the angle is out of its window', async (t) => {
  const r = await v5.request5(TORQUE, { torque_nm: 11, angle_deg: 400 })
  t.equal(r.body.verdict, 'REWORK')
})

t.test('WARN from the signal window: a rough spindle, and a station with no samples at all', async (t) => {
  await vibration('st2', 5.0, 5.5, 6.0)
  const rough = await v5.request5('flashcheck/inspect/st2/torque', { torque_nm: 11, angle_deg: 700 })
  t.equal(rough.body.verdict, 'WARN')
  t.equal(rough.body.checks[2].ok, false)
  const silent = await v5.request5('flashcheck/inspect/st9/torque', { torque_nm: 11, angle_deg: 700 })
  t.equal(silent.body.verdict, 'WARN', 'count(vib) is 0 for a station that never reported')
  t.equal(silent.body.inputs.station, 'st9')
})

t.test('MQTT 3.1.1 convention: reply_to and correlation_id in the payload', async (t) => {
  await vibration('st1', 1.0, 1.1, 1.0)
  const r = await v3.request311(TORQUE, { torque_nm: 11.9, angle_deg: 600 }, 'job-77')
  t.equal(r.topic, v3.replyTo)
  t.equal(r.body.correlation_id, 'job-77')
  t.equal(r.body.verdict, 'PASS')
  const f = await v3.request311(TORQUE, { torque_nm: 9.9, angle_deg: 600 }, 'job-78')
  t.equal(f.body.verdict, 'FAIL')
  t.equal(f.body.correlation_id, 'job-78')
})

t.test('error verdicts, and the daemon keeps serving after each', async (t) => {
  const cases: [string, unknown, string, RegExp][] = [
    ['non-JSON', Buffer.from('torque=11'), 'BAD_JSON', /not JSON/],
    ['JSON array', [1, 2], 'NOT_OBJECT', /object/],
    ['JSON number', 42, 'NOT_OBJECT', /object/],
    ['oversized', { torque_nm: 11, angle_deg: 700, blob: 'x'.repeat(4096) }, 'TOO_LARGE', /limit is 2048/],
    ['missing input', { angle_deg: 700 }, 'MISSING_INPUT', /torque/],
    ['mistyped input', { torque_nm: 'eleven', angle_deg: 700 }, 'BAD_INPUT', /torque/],
  ]
  for (const [name, payload, code, msg] of cases) {
    const r = await v5.request5(TORQUE, payload)
    t.equal(r.body.verdict, 'ERROR', name)
    t.equal(r.body.error?.code, code, name)
    t.match(r.body.error?.message, msg, name)
    t.equal(r.body.node, 'test-node', name)
  }
  const unknown = await v5.request5('flashcheck/inspect/st1/paint', { thickness: 3 })
  t.equal(unknown.body.verdict, 'ERROR')
  t.equal(unknown.body.error.code, 'UNKNOWN_INSPECTION')
  t.equal(unknown.body.inspection, null)
  const ok = await v5.request5(TORQUE, { torque_nm: 11, angle_deg: 700 })
  t.not(ok.body.verdict, 'ERROR', 'still serving')
})

t.test('a request with no response topic is logged and counted, not answered', async (t) => {
  const before = (await d.daemon.metrics.noResponseTopic.get()).values[0]?.value ?? 0
  await v5.client.publishAsync(TORQUE, JSON.stringify({ torque_nm: 11, angle_deg: 700 }), { qos: 1 })
  await v5.client.publishAsync(TORQUE, 'not json either', { qos: 1 })
  const r = await v5.request5(TORQUE, { torque_nm: 11, angle_deg: 700 }) // ordered after the two above
  t.ok(r)
  const after = (await d.daemon.metrics.noResponseTopic.get()).values[0]?.value ?? 0
  t.equal(after - before, 2)
  t.ok(d.logs.some((l) => /no usable response topic/.test(String(l.msg))), 'logged')
})

t.test('a QoS 1 redelivery (same correlation and payload) is answered once', async (t) => {
  const corr = Buffer.from('dup-1')
  const payload = JSON.stringify({ torque_nm: 11, angle_deg: 700 })
  const n = v5.replies.length
  for (let i = 0; i < 3; i++) {
    await v5.client.publishAsync(TORQUE, payload, { qos: 1, properties: { responseTopic: v5.replyTo, correlationData: corr } })
  }
  await v5.request5(TORQUE, { torque_nm: 11, angle_deg: 700 }) // a fence: answered after the duplicates were handled
  const got = v5.replies.slice(n).filter((r) => r.correlationData?.equals(corr))
  t.equal(got.length, 1)
  const dups = (await d.daemon.metrics.duplicates.get()).values[0]?.value
  t.equal(dups, 2)
  const other = await v5.request5(TORQUE, { torque_nm: 13, angle_deg: 700 }, {}, corr)
  t.equal(other.body.verdict, 'FAIL', 'same correlation with a different payload is a new request')
})

t.test('deadline-ms user property tightens the budget', async (t) => {
  const past = await v5.request5(TORQUE, { torque_nm: 11, angle_deg: 700 }, { userProperties: { 'deadline-ms': String(Date.now() - 10) } })
  t.equal(past.body.deadline_missed, true)
  // Arriving after its own deadline, a request gets an immediate OVERLOADED answer instead of a late verdict.
  t.equal(past.body.verdict, 'ERROR')
  t.equal(past.body.error?.code, 'OVERLOADED')
  const future = await v5.request5(TORQUE, { torque_nm: 11, angle_deg: 700 }, { userProperties: { 'deadline-ms': String(Date.now() + 60_000) } })
  t.equal(future.body.deadline_missed, false)
})

t.test('retained presence and info topics', async (t) => {
  const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  const got = new Map<string, string>()
  const both = new Promise<void>((resolve) => c.on('message', (topic, p) => { got.set(topic, String(p)); if (got.size === 2) resolve() }))
  await c.subscribeAsync(['flashcheck/test-node/status', 'flashcheck/test-node/info'])
  await both
  t.equal(got.get('flashcheck/test-node/status'), 'online')
  const info = JSON.parse(got.get('flashcheck/test-node/info')!)
  t.equal(info.rules_rev, d.daemon.rulesRev)
  t.same(info.rules.map((r: { id: string }) => r.id).sort(), ['oven-temp', 'torque-joint'])
  await c.endAsync()
})

t.test('metrics count requests by inspection and verdict', async (t) => {
  const m = await d.daemon.metrics.registry.getSingleMetricAsString('flashcheck_requests_total')
  t.match(m, /flashcheck_requests_total\{inspection="torque-joint",verdict="PASS"\} \d+/)
  t.match(m, /verdict="ERROR"/)
  const e = await d.daemon.metrics.registry.getSingleMetricAsString('flashcheck_errors_total')
  for (const code of ['BAD_JSON', 'NOT_OBJECT', 'TOO_LARGE', 'UNKNOWN_INSPECTION', 'MISSING_INPUT', 'BAD_INPUT', 'NO_RESPONSE_TOPIC']) t.match(e, new RegExp(`code="${code}"`))
  const h = await d.daemon.metrics.registry.getSingleMetricAsString('flashcheck_request_latency_seconds')
  t.match(h, /le="0.05"/)
})

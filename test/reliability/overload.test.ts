// Overload shedding: a request that arrives older than its budget allows (sent-at / sent_at / deadline-ms) is
// answered at once with OVERLOADED, before its payload is parsed; fresh requests are served as usual.
import t from 'tap'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon, type Running } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'
const OK = { torque_nm: 11, angle_deg: 700 }

let broker: Mosquitto
let d: Running
let off: Running
let req: Requester

t.before(async () => {
  broker = await Mosquitto.start()
  d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false']))
  req = await Requester.connect(broker.url, 5)
})

t.teardown(async () => {
  await req?.end()
  await d?.stop()
  await off?.stop()
  await broker?.stop()
})

t.test('stale requests get OVERLOADED at once; fresh ones a verdict', async (t) => {
  const old = String(Date.now() - 5000)
  const r1 = await req.request5(TORQUE, OK, { userProperties: { 'sent-at': old } })
  t.equal(r1.body.verdict, 'ERROR')
  t.equal(r1.body.error.code, 'OVERLOADED')
  t.match(r1.body.error.message, /arrived \d+ ms after it was sent; the budget is 50 ms/)
  t.equal(r1.body.deadline_missed, true, 'flagged: its budget was gone on arrival')
  t.equal(r1.body.inspection, 'torque-joint')

  const r2 = await req.request5(TORQUE, Buffer.from('not even JSON'), { userProperties: { 'sent-at': old } })
  t.equal(r2.body.error.code, 'OVERLOADED', 'shed before parsing: a stale request costs no JSON parse')

  const r3 = await req.request5(TORQUE, { ...OK, sent_at: Date.now() - 5000 })
  t.equal(r3.body.error?.code, 'OVERLOADED', 'a sent_at field works for requesters without user properties')

  const r4 = await req.request5(TORQUE, OK, { userProperties: { 'deadline-ms': String(Date.now() - 1) } })
  t.equal(r4.body.error?.code, 'OVERLOADED', 'a deadline already past')

  const fresh = await req.request5(TORQUE, OK, { userProperties: { 'sent-at': String(Date.now()) } })
  t.not(fresh.body.verdict, 'ERROR', 'a fresh request is inspected')
  t.equal(fresh.body.deadline_missed, false)

  const m = await d.daemon.metrics.registry.getSingleMetricAsString('flashcheck_overloaded_total')
  t.match(m, /flashcheck_overloaded_total\{inspection="torque-joint"\} 4/)
})

t.test('limits.maxAgeFactor 0 turns shedding off: the late verdict goes out, flagged', async (t) => {
  off = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false', '--limits-max-age-factor', '0', '--mqtt-client-id', 'no-shed', '--mqtt-request-filter', 'noshed/#']))
  // Both daemons subscribe to the fixture's request topic; ask the one that does not shed through a topic only it serves.
  const r = await req.request5('noshed/x', OK, { userProperties: { 'sent-at': String(Date.now() - 5000) } })
  t.equal(r.body.error?.code, 'UNKNOWN_INSPECTION', 'inspected, not shed')
  t.equal(r.body.deadline_missed, true, 'its budget counted from sent-at')
})

// Broker stop/start mid-run: the daemon reconnects with backoff, resubscribes and answers again.
import t from 'tap'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { once, startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'

t.test('daemon survives a broker restart', async (t) => {
  const broker = await Mosquitto.start()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false', '--mqtt-reconnect-min-ms', '100', '--mqtt-reconnect-max-ms', '400']))
  t.teardown(async () => { await d.stop(); await broker.stop() })
  let req = await Requester.connect(broker.url, 5)
  t.equal((await req.request5(TORQUE, { torque_nm: 11, angle_deg: 700 })).body.inspection, 'torque-joint')
  await req.end()

  const down = once(d.daemon, 'disconnected')
  await broker.stopProcess()
  await down
  t.equal(d.daemon.connected, false)
  // Stay down for a few backoff rounds, then come back on the same port.
  await new Promise((r) => setTimeout(r, 700))
  const up = once(d.daemon, 'connected', 15_000)
  await broker.startProcess()
  await up
  t.equal(d.daemon.connected, true)
  req = await Requester.connect(broker.url, 5)
  const r = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
  t.equal(r.body.verdict, 'FAIL', 'answers again after resubscribing')
  const reconnects = (await d.daemon.metrics.reconnects.get()).values[0]?.value ?? 0
  t.ok(reconnects >= 2, `reconnect attempts counted (${reconnects})`)
  await req.end()
})

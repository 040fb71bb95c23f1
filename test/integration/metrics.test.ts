// The Prometheus endpoint serves the daemon's metrics and a health probe.
import t from 'tap'
import { join } from 'node:path'
import { freePort } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

t.test('/metrics and /healthz over HTTP', async (t) => {
  const [bport, mport] = [await freePort(), await freePort()]
  const d = await startDaemon(testConfig(['--mqtt-url', 'embedded', '--mqtt-embedded-port', String(bport), '--metrics-port', String(mport), '--rules-dir', join(import.meta.dirname, '..', 'fixtures', 'service'), '--rules-watch', 'false']))
  t.teardown(() => d.stop())
  const req = await Requester.connect(`mqtt://127.0.0.1:${bport}`, 4)
  await req.request311('flashcheck/inspect/st4/torque', { torque_nm: 11, angle_deg: 700 })
  await req.end()
  const res = await fetch(`http://127.0.0.1:${mport}/metrics`)
  t.equal(res.status, 200)
  const text = await res.text()
  t.match(text, /flashcheck_requests_total\{inspection="torque-joint",verdict="WARN"\} 1/)
  t.match(text, /flashcheck_request_latency_seconds_bucket\{le="0\.05",inspection="torque-joint"\} 1/)
  t.match(text, /nodejs_eventloop_lag_seconds/)
  t.match(text, /flashcheck_mqtt_connected 1/)
  t.match(text, /flashcheck_rules_active 2/)
  const h = await fetch(`http://127.0.0.1:${mport}/healthz`)
  t.equal(h.status, 200)
  t.same(await h.json(), { connected: true, rules_rev: d.daemon.rulesRev, node: 'test-node' })
  t.equal((await fetch(`http://127.0.0.1:${mport}/other`)).status, 404)
})

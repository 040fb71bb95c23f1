// Streaming mode: every message on a trigger topic is inspected and its verdict published.
import t from 'tap'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')

t.test('trigger → publish, with topic names bound, over MQTT 5 and 3.1.1 publishers', async (t) => {
  const broker = await Mosquitto.start()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false']))
  const watch = await Requester.connect(broker.url, 5, 'flashcheck/verdict/#')
  t.teardown(async () => { await watch.end(); await d.stop(); await broker.stop() })

  await watch.client.publishAsync('plant/L2/oven/temp', JSON.stringify({ celsius: 180 }), { qos: 1 })
  await watch.client.publishAsync('plant/L2/oven/temp', JSON.stringify({ celsius: 260 }), { qos: 1 })
  await watch.client.publishAsync('plant/L3/oven/temp', 'garbage', { qos: 1 })
  const got = await watch.waitFor(3)
  t.same(got.map((r) => r.topic), ['flashcheck/verdict/L2/oven', 'flashcheck/verdict/L2/oven', 'flashcheck/verdict/L3/oven'])
  t.equal(got[0].body.verdict, 'PASS')
  t.equal(got[0].body.inspection, 'oven-temp')
  t.equal(got[0].body.trigger_topic, 'plant/L2/oven/temp')
  t.equal(got[1].body.verdict, 'FAIL')
  t.equal(got[1].body.checks[0].reason, 'oven at 260 C')
  t.equal(got[2].body.verdict, 'ERROR')
  t.equal(got[2].body.error.code, 'BAD_JSON')
})

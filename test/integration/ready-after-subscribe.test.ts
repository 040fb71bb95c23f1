// "Connected" means serving: the daemon announces itself (log line, 'connected' event, systemd READY) only
// once the broker has granted its subscriptions. A broker answers SUBSCRIBE asynchronously; a request sent
// in between would be dropped by the broker (no subscriber yet) and never answered. Here the broker (aedes,
// in-process) holds each SUBSCRIBE for 600 ms, and a request sent the moment the daemon says it is connected
// must be answered.
import t from 'tap'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Aedes } from 'aedes'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const HOLD_MS = 600

t.test('the daemon says it is connected only after its subscriptions are granted', async (t) => {
  const granted: number[] = []
  let delayed = true
  const broker = await Aedes.createBroker({
    authorizeSubscribe: (_client, sub, cb) => {
      // Only the daemon's subscriptions are held (the requester's reply topic is granted at once).
      if (!delayed || !sub.topic.startsWith('flashcheck/inspect')) return cb(null, sub)
      setTimeout(() => { granted.push(Date.now()); cb(null, sub) }, HOLD_MS)
    },
  })
  const server = createServer((s) => broker.handle(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  const url = `mqtt://127.0.0.1:${port}`
  t.teardown(() => new Promise<void>((r) => broker.close(() => server.close(() => r()))))

  const t0 = Date.now()
  const d = await startDaemon(testConfig(['--mqtt-url', url, '--mqtt-protocol-version', '4', '--rules-dir', RULES, '--rules-watch', 'false']))
  const readyAt = Date.now()
  t.teardown(() => d.stop())
  delayed = false
  t.ok(granted.length > 0, 'the broker granted the subscriptions')
  t.ok(readyAt >= Math.max(...granted), `connected announced after the last grant (${readyAt - t0} ms after start; grants held ${HOLD_MS} ms)`)
  const line = d.logs.findIndex((l) => l.msg === 'connected to broker')
  t.ok(line >= 0, 'the log says so')

  const req = await Requester.connect(url, 4)
  t.teardown(() => req.end())
  const r = await req.request311('flashcheck/inspect/st1/torque', { torque_nm: 11, angle_deg: 700 })
  t.equal(r.body.inspection, 'torque-joint', 'a request sent right after is answered')
})

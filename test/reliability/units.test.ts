// Unit tests of the reliability parts: the bounded outbox, the redelivery memory kept across restarts,
// shared request subscriptions, and the session options the daemon connects with.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Outbox, type OutboxItem } from '../../daemon/service/outbox.js'
import { Dedupe, readSnapshot, saveSnapshot } from '../../daemon/service/dedupe.js'
import { unshared } from '../../daemon/mqtt/topic-filter.js'
import { desiredFilters } from '../../daemon/service/subscriptions.js'
import { clientOptions } from '../../daemon/mqtt/options.js'
import { loadConfig } from '../../daemon/config/load.js'
import type { RuleSet } from '../../daemon/rules/types.js'

const item = (n: number, log?: string[]): OutboxItem => ({ topic: `t/${n}`, payload: String(n), opts: { qos: 1 }, done: (dropped) => log?.push(`${n}:${dropped ? 'dropped' : 'sent'}`) })

t.test('outbox: FIFO, bounded, drops the oldest and counts them', async (t) => {
  const log: string[] = []
  const o = new Outbox(3)
  for (let i = 1; i <= 5; i++) o.push(item(i, log))
  t.equal(o.size, 3)
  t.equal(o.dropped, 2)
  t.same(log, ['1:dropped', '2:dropped'])
  const sent: string[] = []
  t.equal(o.flush(() => true, (it) => sent.push(it.payload)), 3)
  t.same(sent, ['3', '4', '5'], 'oldest first')
  t.equal(o.size, 0)
  for (let i = 0; i < 100_000; i++) o.push(item(i))
  t.equal(o.size, 3, 'never more than its capacity')
  t.equal(o.dropped, 2 + 99_997)
})

t.test('outbox: a flush that loses the connection midway stops and keeps the rest in order', async (t) => {
  const o = new Outbox(10)
  for (let i = 1; i <= 6; i++) o.push(item(i))
  let up = 3
  const sent: string[] = []
  t.equal(o.flush(() => up-- > 0, (it) => sent.push(it.payload)), 3)
  t.same(sent, ['1', '2', '3'])
  // An item re-queued by send while flushing goes to the back and is not sent twice by the same flush.
  const again: string[] = []
  t.equal(o.flush(() => true, (it) => { again.push(it.payload); if (it.payload === '4') o.push(it) }), 3)
  t.same(again, ['4', '5', '6'])
  t.equal(o.size, 1)
  t.equal(o.shift()?.payload, '4')
  const none = new Outbox(0)
  const l: string[] = []
  none.push(item(1, l))
  t.same(l, ['1:dropped'], 'capacity 0 drops at once')
})

t.test('dedupe snapshot: survives a restart, leaves out expired and in-flight entries', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-state-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const a = new Dedupe(10_000, 1024)
  const p = Buffer.from('{"x":1}')
  for (let i = 0; i < 500; i++) a.check(`r\u0000d${i}`, p, 1000 + i)
  a.check('old', p, 1)
  a.check('pending', p, 2000)
  const file = join(dir, 'dedupe.bin')
  await saveSnapshot(file, a.snapshot(10_500, ['pending']))
  const b = new Dedupe(10_000, 1024)
  t.equal(b.restore((await readSnapshot(file))!, 10_600), 500, '500 live entries restored; the expired and the pending one not')
  let dups = 0
  for (let i = 0; i < 500; i++) if (b.check(`r\u0000d${i}`, p, 10_700)) dups++
  t.equal(dups, 500, 'every restored request is recognised as a redelivery')
  t.equal(b.check('pending', p, 10_700), false, 'an in-flight request is answered after a restart')
  t.equal(b.check('r\u0000d1', Buffer.from('other'), 10_700), false, 'other content is a new request')
  t.equal(await readSnapshot(join(dir, 'missing.bin')), undefined)
  writeFileSync(join(dir, 'bad.bin'), 'garbage that is no snapshot')
  t.equal(new Dedupe(1000).restore((await readSnapshot(join(dir, 'bad.bin')))!, 0), 0, 'a corrupt file is ignored')
  const c = new Dedupe(1000, 1024)
  t.equal(c.restore(a.snapshot(10_500), 20_000), 0, 'entries past the window after a long downtime are dropped')
})

t.test('shared subscriptions: request filters shared, signals and triggers plain', async (t) => {
  const set = {
    rules: [{ mode: 'request', filter: 'flashcheck/inspect/+/torque' }, { mode: 'request', filter: 'line/+/gauge' }, { mode: 'stream', filter: 'plant/+/press/+/cycle' }],
    signals: [{ filter: 'plant/+/spindle/vibration' }, { filter: 'flashcheck/inspect/sensor' }],
  } as unknown as RuleSet
  t.same(desiredFilters(set, 'flashcheck/inspect/#', 'g1'), [
    '$share/g1/flashcheck/inspect/#',
    '$share/g1/line/+/gauge',
    'flashcheck/inspect/sensor',
    'plant/+/press/+/cycle',
    'plant/+/spindle/vibration',
  ])
  t.same(desiredFilters(set, 'flashcheck/inspect/#'), ['flashcheck/inspect/#', 'line/+/gauge', 'plant/+/press/+/cycle', 'plant/+/spindle/vibration'], 'unshared as before')
  t.equal(unshared('$share/g1/a/+/b'), 'a/+/b')
  t.equal(unshared('a/b'), 'a/b')
  t.throws(() => loadConfig({ args: ['--mqtt-share-group', 'a/#'], env: {} }), /share/)
  t.throws(() => loadConfig({ args: ['--mqtt-share-group', '+'], env: {} }), /share/)
})

t.test('connect options: a kept session by default, MQTT 5 expiry and receive maximum', async (t) => {
  const cfg = loadConfig({ args: ['--node-id', 'n1'], env: {} })
  const o = clientOptions(cfg, 5)
  t.equal(o.clean, false)
  t.equal(o.clientId, 'flashcheck-n1', 'a stable client id: the session is found again')
  t.same(o.properties, { sessionExpiryInterval: 3600, receiveMaximum: 1000 })
  const c = clientOptions(loadConfig({ args: ['--node-id', 'n1', '--mqtt-clean', 'true'], env: {} }), 5)
  t.equal(c.clean, true)
  t.equal(c.properties?.sessionExpiryInterval, 0)
  t.equal(clientOptions(cfg, 4).properties, undefined)
  const shared = clientOptions(loadConfig({ args: ['--node-id', 'n1', '--mqtt-share-group', 'g'], env: {} }), 5)
  t.equal(shared.properties?.sessionExpiryInterval, 0, 'a share-group member keeps no session')
  t.equal(shared.clean, true, '... and starts without an old one')
})

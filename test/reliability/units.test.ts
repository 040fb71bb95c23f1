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

t.test('dedupe snapshot: the key hashes it stores are FNV-1a and murmur3 of the key, as every version wrote them', async (t) => {
  // References written apart from the table's own code, in plain float64 arithmetic as murmur3's reference
  // states the step `h = h * 5 + c`: a snapshot written by one version must be read by the next.
  const fnv1a = (s: string): number => {
    let h = 0x811c9dc5
    for (let i = 0; i < s.length; i++) h = Number((BigInt((h ^ s.charCodeAt(i)) >>> 0) * 0x01000193n) & 0xffffffffn)
    return h
  }
  const murmur = (s: string): number => {
    const u32 = (x: bigint | number): bigint => BigInt.asUintN(32, BigInt(x))
    const rotl = (x: bigint, r: bigint): bigint => u32((x << r) | (x >> (32n - r)))
    let h = u32(0x9747b28c ^ s.length)
    for (let i = 0; i < s.length; i++) {
      const k = u32(rotl(u32(BigInt(s.charCodeAt(i)) * 0xcc9e2d51n), 15n) * 0x1b873593n)
      h = u32(rotl(h ^ k, 13n) * 5n + 0xe6546b64n)
    }
    h ^= h >> 16n
    h = u32(h * 0x85ebca6bn)
    h ^= h >> 13n
    return Number(h)
  }
  const keys = ['', 'a', 'bench/reply/1\u0000c42', 'r/\u00e9t\u00e9\u0000\ud83d\ude00', 'x'.repeat(300), ...Array.from({ length: 200 }, (_, i) => `plant/line${i % 7}/reply\u0000${(i * 2654435761) >>> 0}`)]
  let same = 0
  for (const k of keys) {
    const d = new Dedupe(10_000, 16)
    d.check(k, Buffer.from('p'), 1000)
    const snap = d.snapshot(1000)
    if (snap.readUInt32LE(8) === fnv1a(k) && snap.readUInt32LE(12) === murmur(k)) same++
    else t.fail(`key ${JSON.stringify(k)}: stored ${snap.readUInt32LE(8)}/${snap.readUInt32LE(12)}, reference ${fnv1a(k)}/${murmur(k)}`)
  }
  t.equal(same, keys.length, `${keys.length} keys hashed as the references hash them`)
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

import t from 'tap'
import { Dedupe, checksum } from '../../daemon/service/dedupe.js'
import { addPayloadEnvelope, dedupeKey, envelopeFromPacket, validReplyTopic } from '../../daemon/service/envelope.js'
import { compileFilter, covers, filterMatches, filtersOverlap } from '../../daemon/mqtt/topic-filter.js'
import { desiredFilters } from '../../daemon/service/subscriptions.js'
import type { IPublishPacket } from 'mqtt'
import type { RuleSet } from '../../daemon/rules/types.js'

t.test('dedupe answers a redelivery once, but a reused correlation with new content is a new request', async (t) => {
  const d = new Dedupe(1000)
  const a = Buffer.from('{"x":1}')
  t.equal(d.check('k', a, 0), false)
  t.equal(d.check('k', a, 500), true, 'same key and payload within the window')
  t.equal(d.check('k', Buffer.from('{"x":2}'), 600), false, 'same key, other payload')
  t.equal(d.check('k', Buffer.from('{"x":2}'), 1700), false, 'outside the window it is new again')
  t.equal(d.check('other', a, 1700), false)
  t.not(checksum(Buffer.from('ab')), checksum(Buffer.from('ba')))
})

t.test('dedupe forgets entries past the window and stays bounded when full', async (t) => {
  const d = new Dedupe(100, 64)
  for (let i = 0; i < 200; i++) d.check(`k${i}`, Buffer.from('x'), 1000 + i)
  t.ok(d.size(1199) <= 64, `bounded by capacity (${d.size(1199)})`)
  t.equal(d.check('k199', Buffer.from('x'), 1200), true, 'the newest entries survive a full table')
  t.equal(d.size(10_000), 0, 'nothing is live after the window')
  t.equal(d.check('k199', Buffer.from('x'), 10_000), false, 'expired: a new request again')
  const big = new Dedupe(60_000)
  let fresh = 0
  for (let i = 0; i < 50_000; i++) if (!big.check(`reply/${i % 7}\u0000d${i}`, Buffer.from('p'), 5000)) fresh++
  t.equal(fresh, 50_000, 'no false duplicates among 50,000 distinct requests')
  let dups = 0
  for (let i = 0; i < 50_000; i++) if (big.check(`reply/${i % 7}\u0000d${i}`, Buffer.from('p'), 6000)) dups++
  t.equal(dups, 50_000, 'every one of 50,000 live requests is recognised when redelivered')
})

t.test('envelope from MQTT 5 properties and the 3.1.1 payload convention', async (t) => {
  const p = { cmd: 'publish', topic: 't', payload: '', qos: 1, dup: false, retain: false, properties: { responseTopic: 'r/1', correlationData: Buffer.from('c1'), userProperties: { 'deadline-ms': '1700000000000' } } } as unknown as IPublishPacket
  const env = envelopeFromPacket(p)
  t.equal(env.replyTo, 'r/1')
  t.same(env.correlationData, Buffer.from('c1'))
  t.equal(env.deadlineMs, 1700000000000)
  addPayloadEnvelope(env, { reply_to: 'other', correlation_id: 'x' })
  t.equal(env.replyTo, 'r/1', 'the MQTT 5 response topic wins')
  t.match(dedupeKey(env)!, /^r\/1\u0000d/)

  const v3 = envelopeFromPacket({ cmd: 'publish', topic: 't', payload: '', qos: 1, dup: false, retain: false } as unknown as IPublishPacket)
  addPayloadEnvelope(v3, { reply_to: 'plc/7/reply', correlation_id: 42 })
  t.equal(v3.replyTo, 'plc/7/reply')
  t.equal(v3.correlationId, '42')
  t.equal(dedupeKey(v3), 'plc/7/reply\u0000i42')
  t.equal(dedupeKey({ replyTo: 'x' }), undefined, 'no correlation, no dedupe')

  const bad = envelopeFromPacket({ cmd: 'publish', topic: 't', payload: '', qos: 1, dup: false, retain: false, properties: { userProperties: { 'deadline-ms': 'soon' } } } as unknown as IPublishPacket)
  t.equal(bad.deadlineMs, undefined, 'a non-numeric deadline is ignored')
  t.ok(validReplyTopic('a/b'))
  t.notOk(validReplyTopic('a/+'))
  t.notOk(validReplyTopic('a/#'))
  t.notOk(validReplyTopic(''))
})

t.test('topic filters', async (t) => {
  t.ok(filterMatches('a/+/c', 'a/b/c'))
  t.notOk(filterMatches('a/+/c', 'a/b/d'))
  t.ok(filterMatches('a/#', 'a'))
  t.ok(filterMatches('a/#', 'a/b/c'))
  t.notOk(filterMatches('#', '$SYS/x'))
  t.notOk(filterMatches('a/b', 'a/b/c'))
  const f = compileFilter('flashcheck/inspect/#')
  t.ok(f('flashcheck/inspect/st1/torque'))
  t.ok(f('flashcheck/inspect'))
  t.notOk(f('flashcheck/inspector/x'))
  t.notOk(f('plant/x'))
  const g = compileFilter('a/+/#')
  t.ok(g('a/x/y'))
  t.notOk(g('b/x/y'))
})

t.test("one '$' rule for every filter check: a leading wildcard never reaches a reserved topic", async (t) => {
  for (const f of ['#', '+/x', '+/+']) {
    t.notOk(filterMatches(f, '$SYS/x'), `${f} does not match $SYS/x`)
    t.notOk(compileFilter(f)('$SYS/x'), `${f} (compiled) does not match $SYS/x`)
    t.notOk(covers(f, '$SYS/x'), `${f} does not cover $SYS/x`)
    t.notOk(filtersOverlap(f, '$SYS/x'), `${f} does not overlap $SYS/x`)
    t.notOk(filtersOverlap('$SYS/x', f), `$SYS/x does not overlap ${f}`)
  }
  t.ok(filterMatches('$SYS/#', '$SYS/x'), 'a literal $ level matches')
  t.ok(covers('$SYS/#', '$SYS/+'))
  t.ok(filtersOverlap('$SYS/+', '$SYS/#'))
  t.ok(filtersOverlap('a/+/c', 'a/b/#'))
  t.notOk(filtersOverlap('a/+', 'a/b/c'))
})

t.test('covers and desired filters drop subscriptions a broader one already has', async (t) => {
  t.ok(covers('flashcheck/inspect/#', 'flashcheck/inspect/+/torque'))
  t.ok(covers('a/+', 'a/b'))
  t.notOk(covers('a/+', 'a/#'))
  t.notOk(covers('a/b', 'a/+'))
  t.notOk(covers('a/+/c', 'a/b/d'))
  t.notOk(covers('#', '$SYS/x'))
  const set = {
    rules: [{ filter: 'flashcheck/inspect/+/torque' }, { filter: 'plant/+/oven/temp' }],
    signals: [{ filter: 'plant/+/spindle/vibration' }, { filter: 'plant/+/oven/temp' }],
  } as unknown as RuleSet
  t.same(desiredFilters(set, 'flashcheck/inspect/#'), ['flashcheck/inspect/#', 'plant/+/oven/temp', 'plant/+/spindle/vibration'])
  t.same(desiredFilters(undefined, 'flashcheck/inspect/#'), ['flashcheck/inspect/#'])
})

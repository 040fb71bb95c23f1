// Publisher: a verdict's dedupe key is closed only once the broker has it (or it can never be sent), the outbox
// keeps verdicts in order while the broker is away and drops the oldest when full, OVERLOADED answers go at
// QoS 0 or are dropped when the socket is backed up. The MQTT client is a recording stand-in: what is checked
// is what the publisher asks of it.
import t from 'tap'
import type { IClientPublishOptions, MqttClient } from 'mqtt'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { Publisher, type DurableOutbox } from '../../daemon/service/publisher.js'

interface Sent {
  topic: string
  payload: string
  opts: IClientPublishOptions
  ack?: (err?: Error) => void
}

function rig(o: { protocolVersion?: 4 | 5; outboxSize?: number; durable?: DurableOutbox } = {}) {
  const sent: Sent[] = []
  const closed: string[] = []
  const stub = {
    connected: true,
    stream: { writableLength: 0 },
    publish(topic: string, payload: string, opts: IClientPublishOptions, cb?: (err?: Error) => void) {
      sent.push({ topic, payload, opts, ack: cb })
    },
  }
  const metrics = new Metrics()
  const pub = new Publisher(() => stub as unknown as MqttClient, { qos: 1, protocolVersion: o.protocolVersion ?? 5, outboxSize: o.outboxSize ?? 4, closeKey: (k) => closed.push(k), durable: o.durable }, metrics)
  return { pub, stub, sent, closed, metrics }
}

const value = async (m: { get(): Promise<{ values: { value: number }[] }> }) => (await m.get()).values[0]?.value ?? 0

t.test('a QoS 1 verdict closes its key on the broker acknowledgement, not before', async (t) => {
  const { pub, sent, closed } = rig()
  pub.send('r/1', '{"v":1}', pub.replyOptions({ correlationData: Buffer.from('c1') }), 'key-1')
  t.equal(sent.length, 1)
  t.same(closed, [], 'still open while the broker has not acknowledged')
  sent[0]!.ack!()
  t.same(closed, ['key-1'])
  t.same(sent[0]!.opts.properties, { correlationData: Buffer.from('c1'), contentType: 'application/json' })
  pub.send('r/1', '{"v":2}', { qos: 0 }, 'key-2')
  t.same(closed, ['key-1', 'key-2'], 'QoS 0: no acknowledgement will come, closed at once')
  pub.send('r/1', '{"v":3}', { qos: 1 })
  t.equal(sent[2]!.ack, undefined, 'no key, no callback')
})

t.test('reply options: MQTT 3.1.1 carries only the QoS; each call gets its own object', async (t) => {
  const { pub } = rig({ protocolVersion: 4 })
  t.same(pub.replyOptions({ correlationData: Buffer.from('x') }), { qos: 1 })
  const v5 = rig().pub
  const a = v5.replyOptions({})
  t.same(a, { qos: 1, properties: { contentType: 'application/json' } })
  t.not(a, v5.replyOptions({}), 'mqtt.js keeps a QoS 1 publish\'s options until acknowledged: never shared')
})

t.test('while the broker is away verdicts wait in order; a full outbox drops the oldest and closes its key', async (t) => {
  const { pub, stub, sent, closed, metrics } = rig({ outboxSize: 2 })
  stub.connected = false
  pub.send('r/a', 'A', { qos: 1 }, 'ka')
  pub.send('r/b', 'B', { qos: 1 }, 'kb')
  pub.send('r/c', 'C', { qos: 1 }, 'kc')
  t.equal(sent.length, 0)
  t.equal(pub.waiting, 2)
  t.same(closed, ['ka'], 'the dropped verdict will never be sent: its request may be answered on redelivery')
  t.equal(await value(metrics.outboxDropped), 1)
  stub.connected = true
  t.equal(pub.flush(), 2)
  t.same(sent.map((s) => s.payload), ['B', 'C'], 'oldest first')
  t.equal(pub.waiting, 0)
  t.equal(await value(metrics.outboxDepth), 0)
  for (const s of sent) s.ack!()
  t.same(closed, ['ka', 'kb', 'kc'])
})

t.test('a verdict mqtt.js fails unsent because the connection closed goes back to the outbox (kept on disk), not forgotten', async (t) => {
  const rows = new Map<number, string>()
  let seq = 0
  const durable: DurableOutbox = { add: (id, _topic, payload) => { rows.set(++seq, `${id} ${payload}`); return seq }, remove: (s) => { rows.delete(s) } }
  const { pub, stub, sent, closed } = rig({ durable })
  pub.send('r/1', 'A', { qos: 1 }, 'ka', 'id-a')
  pub.send('r/1', 'B', { qos: 1 }, 'kb', 'id-b')
  t.equal(sent.length, 2)
  t.same([...rows.values()], [], 'sent at once: nothing on disk')
  // mqtt.js queued both behind its store resend; the connection closes and it fails them.
  stub.connected = false
  sent[0]!.ack!(new Error('Connection closed'))
  sent[1]!.ack!(new Error('Connection closed'))
  t.same(closed, [], 'their requests stay open')
  t.equal(pub.waiting, 2, 'back in the outbox')
  t.same([...rows.values()], ['id-a A', 'id-b B'], 'and in the durable outbox, in order')
  stub.connected = true
  t.equal(pub.flush(), 2)
  t.same(sent.slice(2).map((s) => s.payload), ['A', 'B'], 'sent again on reconnect, in order')
  sent[2]!.ack!()
  // Connected when it fails: the broker refused it (MQTT 5 reason code), sending it again would not help.
  sent[3]!.ack!(new Error('Not authorized'))
  t.same(closed, ['ka', 'kb'])
  t.same([...rows.values()], [], 'both rows gone')
  t.equal(pub.waiting, 0)
})

t.test('OVERLOADED answers go at QoS 0, or are dropped while the socket is backed up; either way the key closes', async (t) => {
  const { pub, stub, sent, closed, metrics } = rig()
  pub.shed('r/x', 'X', { qos: 1, properties: { contentType: 'application/json' } }, 'kx')
  t.equal(sent[0]!.opts.qos, 0)
  t.same(closed, ['kx'])
  stub.stream.writableLength = 8 << 20
  pub.shed('r/y', 'Y', { qos: 1 }, 'ky')
  t.equal(sent.length, 1, 'not queued behind megabytes')
  t.same(closed, ['kx', 'ky'])
  t.equal(await value(metrics.shedDropped), 1)
})

t.test('explanations are dropped while the broker is away, never queued', async (t) => {
  const { pub, stub, sent, metrics } = rig()
  pub.explain('e/1', { correlationId: 'c-7' }, { inspection: 'j', text: 'ok' })
  t.same(JSON.parse(sent[0]!.payload), { inspection: 'j', text: 'ok', correlation_id: 'c-7' })
  stub.connected = false
  pub.explain('e/1', {}, { inspection: 'j', text: 'late' })
  t.equal(sent.length, 1)
  t.equal(pub.waiting, 0)
  t.equal((await metrics.modelExplains.get()).values.find((v) => v.labels.result === 'dropped')?.value, 1)
})

t.test('a publish mqtt.js fails as the connection closes goes back to the outbox, in order; one refused on a live connection is not retried', async (t) => {
  const { pub, stub, sent, closed } = rig({ outboxSize: 8 })
  pub.send('r/a', 'A', { qos: 1 }, 'ka')
  pub.send('r/b', 'B', { qos: 1 }, 'kb')
  t.equal(sent.length, 2)
  // The connection closes: mqtt.js fails what it had queued but not sent ('Connection closed').
  stub.connected = false
  pub.send('r/c', 'C', { qos: 1 }, 'kc')
  sent[0]!.ack!(new Error('Connection closed'))
  sent[1]!.ack!(new Error('Connection closed'))
  t.same(closed, [], 'nothing counts as delivered')
  t.equal(pub.waiting, 3)
  stub.connected = true
  t.equal(pub.flush(), 3)
  t.same(sent.slice(2).map((s) => s.payload), ['C', 'A', 'B'], 'all go out again once the session is back')
  for (const s of sent.slice(2)) s.ack!()
  t.same(closed, ['kc', 'ka', 'kb'])
  pub.send('r/d', 'D', { qos: 1 }, 'kd')
  sent[5]!.ack!(new Error('Packet too large'))
  t.equal(sent.length, 6, 'refused on a live connection: not sent again (it would be refused again)')
  t.same(closed.at(-1), 'kd')
})

// The adapter around mqtt.js's ack hook (client.handleMessage), against a real mosquitto with a kept session,
// over MQTT 3.1.1 and MQTT 5: a message whose PUBACK is withheld is redelivered to the next connection; once
// released, it is acknowledged and never comes back; a hold released only after the connection was replaced
// sends nothing on the new one; a withheld PUBACK does not hold back the messages behind it.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Socket } from 'node:net'
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt'
import { Mosquitto } from '../../harness/mosquitto.js'
import { AckHook, HeldAck } from '../../daemon/service/ack-hook.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

let broker: Mosquitto
t.before(async () => {
  broker = await Mosquitto.start()
})
t.teardown(() => broker?.stop())

interface Seen {
  topic: string
  payload: string
  dup: boolean
}

type Version = 4 | 5

/** Connect options of a client whose session the broker keeps while it is away. */
function keptSession(v: Version, clientId: string): mqtt.IClientOptions {
  return v === 5
    ? { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 60 }, reconnectPeriod: 0 }
    : { protocolVersion: 4, clientId, clean: false, reconnectPeriod: 0 }
}

/** A kept-session subscriber whose messages go through AckHook into `onMessage`. */
async function subscriber(v: Version, clientId: string, topic: string, onMessage: (s: Seen) => HeldAck | undefined): Promise<{ client: MqttClient; errors: Error[]; hook: AckHook }> {
  const client = mqtt.connect(broker.url, keptSession(v, clientId))
  const hook = new AckHook(() => client)
  hook.install(client, (tp: string, payload: Buffer, packet: IPublishPacket) => onMessage({ topic: tp, payload: payload.toString(), dup: packet.dup }))
  const errors: Error[] = []
  client.on('error', (e) => errors.push(e))
  client.on('close', () => hook.disconnected())
  await new Promise<void>((resolve) => client.once('connect', () => resolve()))
  await client.subscribeAsync(topic, { qos: 1 })
  return { client, errors, hook }
}

/**
 * Reconnects to the kept session `clientId` after its first client ended: nothing may be redelivered within
 * 0.5 s, and neither connection may have reported a protocol error.
 */
async function nothingRedelivered(t: Test, v: Version, clientId: string, topic: string, earlierErrors: Error[], what: string): Promise<void> {
  const again: string[] = []
  const second = await subscriber(v, clientId, topic, (s) => {
    again.push(s.payload)
    return undefined
  })
  await sleep(500)
  t.same(again, [], what)
  t.same([...earlierErrors, ...second.errors], [], 'no protocol errors')
  await second.client.endAsync()
}

async function publish(topic: string, ...payloads: string[]): Promise<void> {
  const p = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  for (const payload of payloads) await p.publishAsync(topic, payload, { qos: 1 })
  await p.endAsync()
}

async function waitFor(pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!pred() && Date.now() < end) await sleep(20)
}

t.test('HeldAck settles when every hold is released, once each', async (t) => {
  const a = new HeldAck()
  let settled = 0
  a.whenSettled(() => settled++)
  t.equal(a.settled, true, 'nothing held')
  const r1 = a.hold()
  const r2 = a.hold()
  r1()
  r1()
  t.equal(a.settled, false, 'one release twice does not count twice')
  t.equal(settled, 0)
  r2()
  t.equal(a.settled, true)
  t.equal(settled, 1)
})

for (const v of [4, 5] as const) t.test(`MQTT ${v === 4 ? '3.1.1' : '5'}: a withheld PUBACK: the message comes back on the next connection; released, it does not`, async (t) => {
  const id = `ackhook${v}-${randomBytes(4).toString('hex')}`
  const topic = `test/${id}/in`
  let release: (() => void) | undefined
  const seen: Seen[] = []
  const first = await subscriber(v, id, topic, (s) => {
    seen.push(s)
    const held = new HeldAck()
    release = held.hold()
    return held
  })
  await publish(topic, 'held-forever')
  await waitFor(() => seen.length === 1)
  t.equal(seen[0]?.payload, 'held-forever')
  t.same(first.errors, [], 'the deferral is not reported as an error')
  // Drop the connection without the PUBACK: the kept session must deliver the message again.
  await first.client.endAsync(true)
  const seen2: Seen[] = []
  const second = await subscriber(v, id, topic, (s) => {
    seen2.push(s)
    return undefined // acknowledged at once
  })
  release!() // the old connection's hold, released late: nothing may go out on the new connection
  await waitFor(() => seen2.length >= 1)
  t.equal(seen2.length, 1, 'redelivered once')
  t.equal(seen2[0]?.payload, 'held-forever')
  t.equal(seen2[0]?.dup, true, 'flagged as a redelivery')
  await second.client.endAsync()

  // Released before the connection closes: acknowledged, never redelivered.
  const seen3: Seen[] = []
  const third = await subscriber(v, id, topic, (s) => {
    seen3.push(s)
    const held = new HeldAck()
    const r = held.hold()
    setTimeout(r, 50) // the verdict goes out a little later
    return held
  })
  await publish(topic, 'released')
  await waitFor(() => seen3.length === 1)
  await sleep(300)
  await third.client.endAsync()
  const seen4: Seen[] = []
  const fourth = await subscriber(v, id, topic, (s) => {
    seen4.push(s)
    return undefined
  })
  await sleep(500)
  t.same(seen4, [], 'nothing redelivered after the late PUBACK')
  t.same([...first.errors, ...second.errors, ...third.errors, ...fourth.errors], [], 'no protocol errors')
  await fourth.client.endAsync()
})

for (const v of [4, 5] as const) t.test(`MQTT ${v === 4 ? '3.1.1' : '5'}: withheld PUBACKs do not hold back the messages behind them; released out of order, none comes back`, async (t) => {
  const id = `ackflow${v}-${randomBytes(4).toString('hex')}`
  const topic = `test/${id}/in`
  const releases: (() => void)[] = []
  const seen: string[] = []
  const first = await subscriber(v, id, topic, (s) => {
    seen.push(s.payload)
    const held = new HeldAck()
    releases.push(held.hold())
    return held
  })
  const sent = Array.from({ length: 20 }, (_, i) => `m${i}`)
  await publish(topic, ...sent)
  await waitFor(() => seen.length === sent.length)
  t.same(seen, sent, 'every message handled, in order, while the PUBACKs of the earlier ones are still withheld')
  t.equal(first.hook.withheld, sent.length, 'all of them withheld')
  for (const r of [...releases].reverse()) r()
  t.equal(first.hook.withheld, 0)
  await sleep(300)
  await first.client.endAsync()
  await nothingRedelivered(t, v, id, topic, first.errors, 'all acknowledged: nothing redelivered')
})

for (const v of [4, 5] as const) t.test(`MQTT ${v === 4 ? '3.1.1' : '5'}: a burst of requests is answered and acknowledged in fewer socket writes than messages`, async (t) => {
  const id = `ackbatch${v}-${randomBytes(4).toString('hex')}`
  const topic = `test/${id}/in`
  const replyTopic = `test/${id}/out`
  // Register the session, then queue a burst at the broker while the subscriber is away.
  const setup = await subscriber(v, id, topic, () => undefined)
  await setup.client.endAsync()
  const sent = Array.from({ length: 40 }, (_, i) => `m${i}`)
  await publish(topic, ...sent)
  const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  const replies: string[] = []
  watcher.on('message', (_tp, p) => replies.push(p.toString()))
  await watcher.subscribeAsync(replyTopic, { qos: 1 })
  // Count the subscriber's system calls: Socket's _write (one chunk) and _writev (several).
  let writes = 0
  let mine: unknown
  const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>
  const orig = { _write: proto._write, _writev: proto._writev }
  for (const k of ['_write', '_writev'] as const) {
    proto[k] = function (this: unknown, ...a: unknown[]) {
      if (this === mine) writes++
      return orig[k].apply(this, a)
    }
  }
  t.teardown(() => Object.assign(proto, orig))
  const handled: string[] = []
  // Connected here rather than through subscriber(): the queued burst follows the CONNACK at once, and the
  // writes are counted from the first.
  const client = mqtt.connect(broker.url, keptSession(v, id))
  mine = client.stream
  new AckHook(() => client).install(client, (_tp, payload) => {
    handled.push(payload.toString())
    client.publish(replyTopic, `re:${payload.toString()}`, { qos: 1 })
    return undefined
  })
  const errors: Error[] = []
  client.on('error', (e) => errors.push(e))
  await waitFor(() => replies.length === sent.length)
  t.same(handled, sent, 'every queued request handled, in order')
  t.same(replies, sent.map((m) => `re:${m}`), 'every answer published, in order')
  t.ok(writes < sent.length / 2, `${writes} socket writes for ${sent.length} answers and PUBACKs (CONNECT included)`)
  await sleep(200)
  await client.endAsync()
  await nothingRedelivered(t, v, id, topic, errors, 'every request acknowledged: nothing redelivered')
  await watcher.endAsync()
})

t.test('a client that would accept topic aliases is refused (the hook reads the topic from the packet)', async (t) => {
  const client = mqtt.connect(broker.url, { protocolVersion: 5, properties: { topicAliasMaximum: 10 }, reconnectPeriod: 0, manualConnect: true })
  t.throws(() => new AckHook(() => client).install(client, () => undefined), /topic aliases/)
})

t.test('a hold released after its connection closed sends no PUBACK on the next connection of the same client', async (t) => {
  const id = `ackgen-${randomBytes(4).toString('hex')}`
  const topic = `test/${id}/in`
  const releases: (() => void)[] = []
  const seen: Seen[] = []
  const s = await subscriber(4, id, topic, (m) => {
    seen.push(m)
    if (m.dup) return undefined // the redelivery on the new connection is acknowledged at once
    const held = new HeldAck()
    releases.push(held.hold())
    return held
  })
  const sentAcks: number[] = []
  const c = s.client as unknown as { _sendPacket(p: { cmd: string; messageId?: number }, ...rest: unknown[]): void }
  const send = c._sendPacket.bind(c)
  c._sendPacket = (p, ...rest) => {
    if (p.cmd === 'puback') sentAcks.push(p.messageId!)
    send(p, ...rest)
  }
  await publish(topic, 'held')
  await waitFor(() => seen.length === 1)
  t.same(sentAcks, [], 'withheld')
  // The connection drops (the client object stays); the kept session redelivers the message on the next one.
  s.client.stream.destroy()
  await waitFor(() => !s.client.connected)
  s.client.reconnect()
  await waitFor(() => seen.length === 2)
  t.equal(seen[1]?.dup, true, 'redelivered on the new connection')
  await waitFor(() => sentAcks.length === 1)
  t.equal(sentAcks.length, 1, 'the redelivery acknowledged')
  releases[0]!()
  await sleep(200)
  t.equal(sentAcks.length, 1, 'the old hold, released now, sends nothing on the new connection')
  t.same(s.errors, [], 'no protocol errors')
  await s.client.endAsync()
})

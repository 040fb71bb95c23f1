// The adapter around mqtt.js's ack hook, against a real mosquitto over MQTT 5 with a kept session: a message
// whose PUBACK is withheld is redelivered to the next connection; once released, it is acknowledged and never
// comes back; a hold released only after the connection was replaced sends nothing on the new one.
import t from 'tap'
import { randomBytes } from 'node:crypto'
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

/** A kept-session MQTT 5 subscriber whose QoS 1 messages go through AckHook into `onMessage`. */
async function subscriber(clientId: string, topic: string, onMessage: (s: Seen) => HeldAck | undefined): Promise<{ client: MqttClient; errors: Error[]; hook: AckHook }> {
  let client: MqttClient | undefined
  const hook = new AckHook(() => client)
  const opts: mqtt.IClientOptions = { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 60 }, reconnectPeriod: 0 }
  hook.install(opts, (tp: string, payload: Buffer, packet: IPublishPacket) => onMessage({ topic: tp, payload: payload.toString(), dup: packet.dup }))
  client = mqtt.connect(broker.url, opts)
  const errors: Error[] = []
  client.on('error', (e) => { if (!AckHook.isDeferral(e)) errors.push(e) })
  await new Promise<void>((resolve) => client!.once('connect', () => resolve()))
  hook.connected()
  await client.subscribeAsync(topic, { qos: 1 })
  return { client, errors, hook }
}

async function publish(topic: string, payload: string): Promise<void> {
  const p = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  await p.publishAsync(topic, payload, { qos: 1 })
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

t.test('a withheld PUBACK: the message comes back on the next connection; released, it does not', async (t) => {
  const id = `ackhook-${randomBytes(4).toString('hex')}`
  const topic = `test/${id}/in`
  let release: (() => void) | undefined
  const seen: Seen[] = []
  const first = await subscriber(id, topic, (s) => {
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
  const second = await subscriber(id, topic, (s) => {
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
  const third = await subscriber(id, topic, (s) => {
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
  const fourth = await subscriber(id, topic, (s) => {
    seen4.push(s)
    return undefined
  })
  await sleep(500)
  t.same(seen4, [], 'nothing redelivered after the late PUBACK')
  t.same([...first.errors, ...second.errors, ...third.errors, ...fourth.errors], [], 'no protocol errors')
  await fourth.client.endAsync()
})

// writeWholePackets: every packet an mqtt.js client sends is one chunk on its socket, and the client behaves as
// before. Checked against mqtt-packet's parser as the peer (each chunk alone must parse to exactly one packet),
// against a real mosquitto with a second, unmodified client on the other end (MQTT 3.1.1 and 5, QoS 0-2), and
// for the contract of the method it replaces (back-pressure, refused packets, 'packetsend').
import t from 'tap'
import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import mqtt, { type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { writeWholePackets } from '../../daemon/mqtt/whole-packets.js'
import { Mosquitto } from '../../harness/mosquitto.js'
import { parseAll } from '../helpers/packets.js'

/** Each chunk written to the client's socket, as it was handed to write(). */
function recordWrites(client: MqttClient): Buffer[] {
  const chunks: Buffer[] = []
  const s = client.stream as unknown as { write: (c: Buffer, ...rest: unknown[]) => boolean }
  const write = s.write.bind(s)
  s.write = (c, ...rest) => {
    chunks.push(Buffer.from(c))
    return write(c, ...rest)
  }
  return chunks
}

t.test('through mosquitto: one chunk per packet, and an unmodified client receives every message', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  for (const v of [4, 5] as const) {
    const receiver = await mqtt.connectAsync(broker.url, { protocolVersion: v, reconnectPeriod: 0 })
    await receiver.subscribeAsync(`wp/${v}/#`, { qos: 2 })
    const got: { topic: string; payload: string; qos: number; contentType?: string }[] = []
    receiver.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), qos: packet.qos, ...(packet.properties?.contentType ? { contentType: packet.properties.contentType } : {}) }))

    const client = mqtt.connect(broker.url, { protocolVersion: v, reconnectPeriod: 0 })
    writeWholePackets(client)
    await new Promise<void>((r) => client.once('connect', () => r()))
    const chunks = recordWrites(client)
    const sent: (typeof got)[number][] = []
    for (let i = 0; i < 30; i++) {
      const qos = (i % 3) as 0 | 1 | 2
      const payload = i % 5 === 0 ? `größe ${i} ✓` : JSON.stringify({ i, verdict: 'PASS', checks: [{ id: 'x', ok: true }] })
      const m = { topic: `wp/${v}/t${i % 4}`, payload, qos, ...(v === 5 ? { contentType: 'application/json' } : {}) }
      sent.push(m)
      await client.publishAsync(m.topic, payload, { qos, ...(v === 5 ? { properties: { contentType: 'application/json', correlationData: Buffer.from([i, 0, 255]) } } : {}) })
    }
    while (got.length < sent.length) await new Promise((r) => setTimeout(r, 10))
    // The receiver hands over a QoS 2 message on PUBREL, after later QoS 0/1 ones: compared in publish order.
    const order = (m: (typeof got)[number]) => Number(/\d+/.exec(m.payload)![0])
    t.same([...got].sort((a, b) => order(a) - order(b)), sent, `MQTT ${v}: every message arrived as sent`)
    const packets = chunks.map((c) => parseAll(c, v))
    t.equal(chunks.length, 30 + 10, `MQTT ${v}: 30 publishes and 10 PUBRELs, one chunk each`)
    t.same(packets.filter((p) => p.length !== 1).length, 0, `MQTT ${v}: each chunk is exactly one whole packet`)
    t.same(packets.map((p) => p[0]!.cmd).filter((c) => c === 'publish').length, 30, 'one chunk per publish')
    t.same(packets.map((p) => p[0]!.cmd).filter((c) => c === 'pubrel').length, 10, 'one chunk per PUBREL (QoS 2)')
    await client.endAsync()
    await receiver.endAsync()
  }
})

/** The parts of a client the replaced method uses, around a Writable of our choosing. */
function fakeClient(stream: Writable): MqttClient & { sent: mqttPacket.Packet[] } {
  const sent: mqttPacket.Packet[] = []
  const c = Object.assign(new EventEmitter(), {
    stream,
    options: { protocolVersion: 5 },
    noop: () => {},
    sent,
    _writePacket: () => {
      throw new Error('not replaced')
    },
  })
  c.on('packetsend', (p: mqttPacket.Packet) => sent.push(p))
  return c as unknown as MqttClient & { sent: mqttPacket.Packet[] }
}
type Writer = { _writePacket(p: object, cb?: () => void): void }

t.test('packets of one turn leave in one socket write; a later turn writes again', async (t) => {
  const calls: Buffer[][] = []
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) { calls.push([chunk]); cb() },
    writev(chunks, cb) { calls.push(chunks.map((c) => c.chunk as Buffer)); cb() },
  })
  const c = fakeClient(stream)
  writeWholePackets(c)
  const w = c as unknown as Writer
  w._writePacket({ cmd: 'publish', topic: 'a', payload: 'x', qos: 1, messageId: 1, dup: false, retain: false })
  w._writePacket({ cmd: 'puback', messageId: 7 })
  t.same(calls.length, 0, 'held until the end of the turn')
  await new Promise<void>((r) => process.nextTick(r))
  t.same(calls.map((k) => k.length), [2], 'then one write of two chunks')
  t.same(calls[0]!.map((b) => parseAll(b, 5).map((p) => p.cmd)), [['publish'], ['puback']])
  t.same(c.sent.map((p) => p.cmd), ['publish', 'puback'], "'packetsend' for each, in order")
  await new Promise((r) => setImmediate(r))
  w._writePacket({ cmd: 'pingreq' })
  await new Promise<void>((r) => process.nextTick(r))
  t.same(calls.length, 2, 'a packet of a later turn is its own write')
  t.same(parseAll(calls[1]![0]!, 5).map((p) => p.cmd), ['pingreq'])
})

t.test("the callback waits for 'drain' when the socket's buffer is full", async (t) => {
  let release: (() => void) | undefined
  const stream = new Writable({
    highWaterMark: 16,
    write(_chunk, _e, cb) { release = cb },
  })
  const c = fakeClient(stream)
  writeWholePackets(c)
  let called = 0
  ;(c as unknown as Writer)._writePacket({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(100), qos: 0, dup: false, retain: false }, () => called++)
  await new Promise((r) => setImmediate(r))
  t.equal(called, 0, 'not while the write is pending')
  release!()
  await new Promise((r) => setImmediate(r))
  t.equal(called, 1, "after 'drain'")
  let quick = 0
  ;(c as unknown as Writer)._writePacket({ cmd: 'pingreq' }, () => quick++)
  t.equal(quick, 1, 'at once when the buffer has room')
})

t.test('a packet mqtt-packet refuses destroys the stream with its error, as writeToStream does', async (t) => {
  for (const [packet, message] of [
    [{ cmd: 'bogus' }, 'Unknown command'],
    [{ cmd: 'publish', topic: 5, payload: 'x', qos: 0, dup: false, retain: false }, 'Invalid topic'],
  ] as const) {
    const stream = new Writable({ write(_c, _e, cb) { cb() } })
    let err: Error | undefined
    stream.on('error', (e) => { err = e })
    const c = fakeClient(stream)
    writeWholePackets(c)
    let called = 0
    ;(c as unknown as Writer)._writePacket(packet as object, () => called++)
    await new Promise((r) => setImmediate(r))
    t.equal(stream.destroyed, true, `${packet.cmd}: stream destroyed`)
    t.match(err?.message, message, `${packet.cmd}: with mqtt-packet's error`)
    t.equal(called, 0, `${packet.cmd}: the callback is not called`)
    // The same packet through mqtt-packet's own stream path, for comparison.
    const ref = new Writable({ write(_c, _e, cb) { cb() } })
    let refErr: Error | undefined
    ref.on('error', (e) => { refErr = e })
    mqttPacket.writeToStream(packet as unknown as mqttPacket.Packet, ref)
    await new Promise((r) => setImmediate(r))
    t.equal(refErr?.message, err?.message, `${packet.cmd}: the error writeToStream gives`)
  }
})

t.test('a client without the private method is refused, not silently left as it was', async (t) => {
  t.throws(() => writeWholePackets({} as MqttClient), /no _writePacket/)
})

// packetBytes: the verdict PUBLISH and the PUBACK encoded directly are byte for byte what mqtt-packet's
// generate makes (the peer), for MQTT 3.1.1 and 5, and parse back to the packet with mqtt-packet's parser;
// every shape it does not take is left to mqtt-packet (undefined).
import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { packetBytes } from '../../daemon/mqtt/packet-bytes.js'
import { Prng } from '../../daemon/model/offline/prng.js'
import { parseAll, randomBytes } from '../helpers/packets.js'

/** The one packet `b` holds, by mqtt-packet's parser. */
function parseOne(b: Buffer, protocolVersion: 4 | 5): mqttPacket.Packet {
  const out = parseAll(b, protocolVersion)
  if (out.length !== 1) throw new Error(`${out.length} packets in ${b.length} bytes`)
  return out[0]!
}

const rng = new Prng(20261204)
const pick = <T>(xs: readonly T[]): T => xs[rng.nextU32() % xs.length]!
const size = (): number => pick([0, 1, 2, 100, 127, 128, 300, 16_383, 16_384, 70_000, 2_100_000])
const TOPICS = ['r', 'plant/st1/reply/0193a3c4', 'größe/✓/station', 'x'.repeat(300), '€'.repeat(21_000)]
const text = (n: number) => (rng.nextU32() % 2 ? 'a'.repeat(n) : 'ü✓'.repeat(Math.ceil(n / 5)).slice(0, n))
const binary = (n: number): Buffer => randomBytes(rng, n)

t.test('PUBLISH: the same bytes as mqtt-packet, over topics, payloads, QoS, flags and properties', async (t) => {
  let encoded = 0
  for (let i = 0; i < 600; i++) {
    const v = pick([4, 5] as const)
    const qos = pick([0, 1, 2] as const)
    const n = size()
    const payload: string | Buffer = rng.nextU32() % 2 ? text(n) : binary(n)
    const packet: mqttPacket.IPublishPacket = {
      cmd: 'publish', topic: pick(TOPICS), payload, qos, retain: rng.nextU32() % 2 === 0, dup: rng.nextU32() % 3 === 0,
      ...(qos > 0 ? { messageId: pick([1, 2, 255, 256, 4242, 65535]) } : {}),
    }
    const props: Record<string, unknown> = {}
    // Both orders of the two properties, either alone, and none.
    const which = rng.nextU32() % 5
    const ct = pick(['application/json', '', 'text/plain; charset=utf-8', 'ä'.repeat(200)])
    const cd = binary(pick([0, 1, 16, 300]))
    if (which === 1) Object.assign(props, { contentType: ct, correlationData: cd })
    if (which === 2) Object.assign(props, { correlationData: cd, contentType: ct })
    if (which === 3) props.contentType = ct
    if (which === 4) Object.assign(props, { correlationData: cd, unset: undefined })
    if (which > 0) packet.properties = props as mqttPacket.IPublishPacket['properties']
    const expected = mqttPacket.generate(packet, { protocolVersion: v })
    const got = packetBytes(packet, v)
    if (got === undefined) {
      t.fail(`case ${i} (MQTT ${v}) was left to mqtt-packet`)
      continue
    }
    encoded++
    if (!got.equals(expected)) {
      t.fail(`case ${i}: MQTT ${v} QoS ${qos} topic ${packet.topic.length} chars, payload ${n} bytes, properties ${JSON.stringify(Object.keys(props))}: bytes differ`)
      continue
    }
    const back = parseOne(got, v) as mqttPacket.IPublishPacket
    if (back.topic !== packet.topic || !Buffer.from(back.payload).equals(Buffer.from(payload)) || back.qos !== qos) t.fail(`case ${i}: does not parse back`)
  }
  t.equal(encoded, 600, 'every plain PUBLISH was encoded here and matched mqtt-packet byte for byte')
})

t.test('PUBLISH in the shape the daemon sends a verdict: matches, and the 3.1.1 form ignores properties as mqtt-packet does', async (t) => {
  const verdict: mqttPacket.IPublishPacket = {
    cmd: 'publish', topic: 'bench/reply/1234/3', payload: JSON.stringify({ verdict: 'PASS', latency_ms: 0.12 }), qos: 1, retain: false, dup: false,
    messageId: 7, properties: { correlationData: Buffer.from([0, 1, 2]), contentType: 'application/json' },
  }
  for (const v of [4, 5] as const) t.same(packetBytes(verdict, v), mqttPacket.generate(verdict, { protocolVersion: v }), `MQTT ${v}`)
  // mqtt-packet treats anything but protocolVersion 5 (also none) as 3.1.1.
  t.same(packetBytes(verdict, undefined), mqttPacket.generate(verdict, {} as never))
  const empty: mqttPacket.IPublishPacket = { cmd: 'publish', topic: 'e', payload: '', qos: 0, retain: false, dup: false }
  t.same(packetBytes(empty, 5), mqttPacket.generate(empty, { protocolVersion: 5 }), 'empty payload, no properties')
})

t.test('PUBACK: the same bytes as mqtt-packet, with and without reason codes', async (t) => {
  const cases: mqttPacket.IPubackPacket[] = [
    { cmd: 'puback', messageId: 1 },
    { cmd: 'puback', messageId: 65535, reasonCode: 0 },
    { cmd: 'puback', messageId: 300, reasonCode: 16 },
    { cmd: 'puback', messageId: 4242, reasonCode: 0x87 },
  ]
  for (const p of cases) {
    for (const v of [4, 5] as const) {
      const got = packetBytes(p, v)
      t.ok(got, `encoded here: id ${p.messageId} code ${p.reasonCode} MQTT ${v}`)
      t.same(got, mqttPacket.generate(p, { protocolVersion: v }), `id ${p.messageId} code ${p.reasonCode} MQTT ${v}`)
      t.equal((parseOne(got!, v) as mqttPacket.IPubackPacket).messageId, p.messageId)
    }
  }
  // The bytes themselves, not only agreement: an absent code is written as 0 with an empty property length.
  t.same([...packetBytes({ cmd: 'puback', messageId: 258 }, 5)!], [0x40, 4, 1, 2, 0, 0])
  t.same([...packetBytes({ cmd: 'puback', messageId: 258, reasonCode: 0 }, 5)!], [0x40, 2, 1, 2])
})

t.test('every other shape is left to mqtt-packet', async (t) => {
  const base = { cmd: 'publish', topic: 't', payload: 'p', qos: 1, retain: false, dup: false, messageId: 1 } as const
  const others: [string, mqttPacket.Packet, 4 | 5][] = [
    ['another property', { ...base, properties: { contentType: 'a', messageExpiryInterval: 10 } }, 5],
    ['user properties', { ...base, properties: { userProperties: { a: 'b' } } }, 5],
    ['a string as correlation data', { ...base, properties: { correlationData: 'abc' as unknown as Buffer } }, 5],
    ['null properties', { ...base, properties: null as never }, 5],
    ['a Buffer topic', { ...base, topic: Buffer.from('t') as unknown as string }, 5],
    ['no message id at QoS 1', { ...base, messageId: undefined }, 4],
    ['a message id past 65535', { ...base, messageId: 70_000 }, 4],
    ['QoS 3', { ...base, qos: 3 as never }, 4],
    ['a topic longer than 65535 bytes', { ...base, topic: 'x'.repeat(70_000) }, 4],
    ['a payload that is neither string nor Buffer', { ...base, payload: 42 as never }, 4],
    ['a PUBACK with properties', { cmd: 'puback', messageId: 1, properties: { reasonString: 'x' } }, 5],
    ['a PUBACK with a reason code past 255', { cmd: 'puback', messageId: 1, reasonCode: 300 }, 5],
    ['a PUBACK without an id', { cmd: 'puback' } as mqttPacket.IPubackPacket, 4],
    ['a PUBREC', { cmd: 'pubrec', messageId: 1 }, 4],
    ['a SUBSCRIBE', { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] }, 4],
  ]
  for (const [what, p, v] of others) t.equal(packetBytes(p, v), undefined, what)
  // The 3.1.1 form has no properties, so none of them turns a PUBLISH away there.
  t.ok(packetBytes({ ...base, properties: { userProperties: { a: 'b' } } }, 4), 'properties of a 3.1.1 PUBLISH are ignored, as mqtt-packet does')
})

// The parser's fast path: for any byte stream, cut into chunks anywhere, a parser with it emits the same packets
// (same class, same fields in the same order, same values) and the same errors as mqtt-packet's own parser
// (the peer), for MQTT 3.1.1 and 5; and it does take the plain PUBLISH and PUBACK packets itself.
import t from 'tap'
import mqttPacket from 'mqtt-packet'
import mqtt from 'mqtt'
import { decodePacket, installFastParse, uninstallFastParse, withFastPath, type Parse } from '../../daemon/mqtt/packet-parse.js'
import { Prng } from '../../daemon/model/offline/prng.js'
import { Mosquitto } from '../../harness/mosquitto.js'
import { randomBytes } from '../helpers/packets.js'

const proto = Object.getPrototypeOf(mqttPacket.parser({})) as { parse: Parse }
const original = proto.parse
const fast = withFastPath(original)

interface Seen { packets: Record<string, unknown>[]; errors: string[] }

function run(parse: Parse, chunks: Buffer[], protocolVersion: 4 | 5): Seen {
  const parser = mqttPacket.parser({ protocolVersion })
  const seen: Seen = { packets: [], errors: [] }
  parser.on('packet', (p) => seen.packets.push(p as unknown as Record<string, unknown>))
  parser.on('error', (e) => seen.errors.push(e.message))
  for (const c of chunks) parse.call(parser as never, c)
  return seen
}

/** What must agree: class, field order, and values (Buffers by content). */
const shape = (s: Seen) => ({ errors: s.errors, packets: s.packets.map((p) => ({ class: p.constructor.name, keys: Object.keys(p), ...p })) })

const rng = new Prng(4122026)
const int = (n: number) => rng.nextU32() % n
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
const bytes = (n: number): Buffer => randomBytes(rng, n)
const TOPICS = ['t', 'plant/st1/inspect/torque', 'größe/✓', 'r/'.repeat(100), '']

function randomProperties(): Record<string, unknown> | undefined {
  if (int(4) === 0) return undefined
  const all: [string, () => unknown][] = [
    ['payloadFormatIndicator', () => int(2) === 0],
    ['messageExpiryInterval', () => pick([0, 1, 60, 0xffffffff])],
    ['contentType', () => pick(['application/json', '', 'ü'])],
    ['responseTopic', () => pick(['reply/1', 'r/ä/✓'])],
    ['correlationData', () => bytes(pick([0, 1, 16, 40]))],
    ['userProperties', () => pick([{ 'sent-at': '1733300000000' }, { a: ['1', '2', '3'], b: '' }, { '': 'x', 'deadline-ms': '5' }, { dup: ['', 'then'] }])],
    // Two the fast path leaves to mqtt-packet.
    ['topicAlias', () => 1 + int(10)],
    ['subscriptionIdentifier', () => 1 + int(300)],
  ]
  const props: Record<string, unknown> = {}
  for (const [name, value] of all) if (int(3) === 0) props[name] = value()
  return props
}

function randomPacket(v: 4 | 5): mqttPacket.Packet {
  const kind = int(10)
  if (kind < 5) {
    const qos = int(3) as 0 | 1 | 2
    const props = v === 5 ? randomProperties() : undefined
    return {
      cmd: 'publish', topic: pick(TOPICS), payload: int(2) ? bytes(pick([0, 1, 60, 127, 128, 600, 20_000])) : JSON.stringify({ n: int(1000), s: 'ünï' }),
      qos, retain: int(2) === 0, dup: int(4) === 0, ...(qos > 0 ? { messageId: 1 + int(65535) } : {}), ...(props ? { properties: props } : {}),
    } as mqttPacket.IPublishPacket
  }
  if (kind < 8) {
    const code = pick([undefined, 0, 0x10, 0x80, 0x87, 0x99])
    return { cmd: 'puback', messageId: int(65536), ...(v === 5 && code !== undefined ? { reasonCode: code } : {}), ...(v === 5 && int(5) === 0 ? { properties: { reasonString: 'busy' } } : {}) }
  }
  return pick<mqttPacket.Packet>([
    { cmd: 'pingresp' },
    { cmd: 'suback', messageId: 1 + int(100), granted: [0, 1] },
    { cmd: 'pubrec', messageId: 1 + int(100) },
    { cmd: 'pubrel', messageId: 1 + int(100) },
    { cmd: 'pubcomp', messageId: 1 + int(100) },
    { cmd: 'connack', returnCode: 0, sessionPresent: false, ...(v === 5 ? { reasonCode: 0 } : {}) } as mqttPacket.IConnackPacket,
  ])
}

/**
 * Bytes no encoder makes: reserved flags, a bad reason code, QoS 3, a topic running past its packet, a length
 * that never ends, a length of five bytes in front of a whole packet.
 */
const MALFORMED = [
  Buffer.from([0x41, 2, 0, 1]),
  Buffer.from([0x40, 3, 0, 1, 0x42]),
  Buffer.from([0x36, 5, 0, 1, 0x74, 0, 1]),
  Buffer.from([0x30, 3, 0, 9, 0x74]),
  Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
  Buffer.from([0x32, 4, 0, 1, 0x74, 0]),
  Buffer.from([0x30, 0x84, 0x80, 0x80, 0x80, 0x00, 0, 1, 0x74, 0x78]),
]

/** Cuts `b` into chunks: whole, one byte each, or at random places. */
function cut(b: Buffer): Buffer[] {
  const how = int(3)
  if (how === 0) return [b]
  const out: Buffer[] = []
  for (let i = 0; i < b.length;) {
    const n = how === 1 ? 1 : 1 + int(Math.min(b.length, 700))
    out.push(b.subarray(i, i + n))
    i += n
  }
  return out
}

t.test('any stream, any cuts: the same packets and errors as mqtt-packet alone', async (t) => {
  let packets = 0
  let streams = 0
  for (let i = 0; i < 1500; i++) {
    const v = pick([4, 5] as const)
    const parts: Buffer[] = []
    for (let k = 1 + int(8); k > 0; k--) parts.push(mqttPacket.generate(randomPacket(v), { protocolVersion: v }))
    if (int(6) === 0) parts.splice(int(parts.length + 1), 0, pick(MALFORMED))
    const chunks = cut(Buffer.concat(parts))
    const want = run(original, chunks, v)
    const got = run(fast, chunks, v)
    packets += want.packets.length
    streams++
    // Compared field by field only on a difference: 1,500 streams of t.same would bury the report.
    const a = shape(got)
    const b = shape(want)
    if (JSON.stringify(a, bufferReplacer) !== JSON.stringify(b, bufferReplacer)) {
      t.same(a, b, `stream ${i} (MQTT ${v}, ${chunks.length} chunks)`)
      break
    }
  }
  t.equal(streams, 1500, 'every stream agreed')
  t.ok(packets > 5000, `${packets} packets compared`)
})

function bufferReplacer(this: unknown, _k: string, v: unknown): unknown {
  return v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? `buf:${Buffer.from((v as { data: number[] }).data).toString('hex')}` : v
}

t.test('the fast path takes plain PUBLISH and PUBACK packets itself, and leaves the rest', async (t) => {
  const take = (p: mqttPacket.Packet, v: 4 | 5) => {
    const b = mqttPacket.generate(p, { protocolVersion: v })
    return decodePacket(b, 0, v === 5, [undefined]) === b.length
  }
  const request: mqttPacket.IPublishPacket = {
    cmd: 'publish', topic: 'flashcheck/inspect/st1/torque', payload: '{"torque_nm":11.2}', qos: 1, retain: false, dup: false, messageId: 9,
    properties: { responseTopic: 'reply/1', correlationData: Buffer.from([1, 2]), userProperties: { 'sent-at': '1' }, contentType: 'application/json', messageExpiryInterval: 5, payloadFormatIndicator: true },
  }
  for (const v of [4, 5] as const) {
    t.ok(take(request, v), `a request, MQTT ${v}`)
    t.ok(take({ cmd: 'puback', messageId: 3 }, v), `a PUBACK, MQTT ${v}`)
    t.notOk(take({ cmd: 'pingresp' }, v), `PINGRESP left to mqtt-packet, MQTT ${v}`)
  }
  t.ok(take({ cmd: 'puback', messageId: 3, reasonCode: 0x10 }, 5), 'a PUBACK with "no matching subscribers"')
  t.notOk(take({ cmd: 'puback', messageId: 3, reasonCode: 0x10, properties: { reasonString: 'x' } }, 5), 'a PUBACK with properties')
  t.notOk(take({ ...request, properties: { topicAlias: 2 } }, 5), 'a topic alias')
  t.notOk(take({ ...request, properties: { contentType: 'a', userProperties: { a: 'b' }, subscriptionIdentifier: 4 } }, 5), 'a subscription identifier')
  const b = mqttPacket.generate(request, { protocolVersion: 5 })
  t.equal(decodePacket(b.subarray(0, b.length - 1), 0, true, [undefined]), -1, 'a packet cut short waits for mqtt-packet')
  // A request's payload is a view of the chunk, as mqtt-packet's BufferList gives it for a packet in one chunk.
  const out: [Record<string, unknown> | undefined] = [undefined]
  decodePacket(b, 0, true, out)
  t.equal((out[0]!.payload as Buffer).buffer, b.buffer, 'payload shares the chunk')
  t.same(out[0]!.properties, request.properties)
})

t.test('installed: mqtt.js clients through mosquitto, MQTT 3.1.1 and 5, receive every message as sent', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  installFastParse()
  installFastParse() // idempotent
  t.teardown(uninstallFastParse)
  t.not(proto.parse, original, 'installed on the prototype')
  for (const v of [4, 5] as const) {
    const rx = await mqtt.connectAsync(broker.url, { protocolVersion: v, reconnectPeriod: 0 })
    await rx.subscribeAsync(`pp/${v}/#`, { qos: 2 })
    const got: string[] = []
    rx.on('message', (topic, payload, packet) => got.push(`${topic} q${packet.qos} ${payload.toString()} ${packet.properties?.responseTopic ?? ''} ${packet.properties?.correlationData?.toString('hex') ?? ''}`))
    const tx = await mqtt.connectAsync(broker.url, { protocolVersion: v, reconnectPeriod: 0 })
    const sent: string[] = []
    for (let i = 0; i < 200; i++) {
      const qos = (i % 3) as 0 | 1 | 2
      // Some span several socket reads.
      const payload = `{"i":${i},"s":"größe ✓","pad":"${i % 7 === 0 ? 'x'.repeat(70_000) : ''}"}`
      const props = { responseTopic: `reply/${i}`, correlationData: Buffer.from([i & 0xff, 7]) }
      sent.push(`pp/${v}/t${i % 5} q${qos} ${payload} ${v === 5 ? props.responseTopic : ''} ${v === 5 ? props.correlationData.toString('hex') : ''}`)
      // Acknowledgements for QoS 1 and 2 publishes come back through the same parser.
      await tx.publishAsync(`pp/${v}/t${i % 5}`, payload, { qos, ...(v === 5 ? { properties: props } : {}) })
    }
    while (got.length < sent.length) await new Promise((r) => setTimeout(r, 10))
    const key = (s: string) => Number(/"i":(\d+)/.exec(s)![1])
    // QoS 2 messages are handed over on PUBREL, after later ones: compared in publish order.
    t.same([...got].sort((a, b) => key(a) - key(b)), sent, `MQTT ${v}: every message arrived as sent`)
    await Promise.all([rx.endAsync(), tx.endAsync()])
  }
  uninstallFastParse()
  t.equal(proto.parse, original, 'uninstalled')
})

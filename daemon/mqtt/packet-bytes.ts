// The two packets every answered request costs the daemon, its verdict PUBLISH and the request's PUBACK,
// encoded straight into one Buffer. mqtt-packet's `generate` builds the same bytes through its stream writer: an
// EventEmitter per packet, a chunk per field (and a fresh Buffer for each property id), two passes over the
// properties, then a concat. On the verdict path that was the largest single cost of the daemon's own
// packets (bench/latency/packet-writes.ts).
//
// Only the plain shapes are encoded here: a string topic, a string or Buffer payload, MQTT 5 properties limited
// to contentType and correlationData, a PUBACK without properties. Anything else (other properties, Buffer
// topics, out-of-range ids or lengths, other packet kinds) gives undefined and goes to mqtt-packet, which also
// reports what is wrong with a packet. The bytes are mqtt-packet's, quirks included (the order of properties
// is the object's, a PUBACK without a reason code carries a 0 code and an empty property length):
// test/mqtt/packet-bytes.test.ts compares the two byte for byte.
import type mqttPacket from 'mqtt-packet'

const EMPTY = Buffer.alloc(0)
/** The largest remaining length MQTT's variable byte integer can state. */
const VARBYTEINT_MAX = 268_435_455
const PUBLISH = 0x30
const PUBACK = 0x40
const PROP_CONTENT_TYPE = 0x03
const PROP_CORRELATION_DATA = 0x09

/** The packet's bytes, or undefined when mqtt-packet should encode it. `protocolVersion` as mqtt-packet reads it from the client's options. */
export function packetBytes(packet: mqttPacket.Packet, protocolVersion: number | undefined): Buffer | undefined {
  if (packet.cmd === 'publish') return publishBytes(packet, protocolVersion === 5)
  if (packet.cmd === 'puback') return pubackBytes(packet, protocolVersion === 5)
  return undefined
}

function varLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

function writeVar(buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    buf[at++] = byte
  } while (n > 0)
  return at
}

function isMessageId(id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff
}

function publishBytes(p: mqttPacket.IPublishPacket, v5: boolean): Buffer | undefined {
  const topic = p.topic
  const qos = p.qos || 0
  const id = p.messageId
  const payload = p.payload || EMPTY
  if (typeof topic !== 'string' || (qos !== 0 && qos !== 1 && qos !== 2) || (qos > 0 && !isMessageId(id))) return undefined
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return undefined
  const topicLen = Buffer.byteLength(topic)
  if (topicLen > 0xffff) return undefined
  const payloadLen = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length

  // MQTT 5 properties: at most a content type and correlation data, in the object's own order.
  let contentType: string | undefined
  let contentTypeLen = 0
  let correlation: Buffer | undefined
  let contentTypeFirst = false
  let propsLen = 0
  if (v5) {
    const props = p.properties as Record<string, unknown> | undefined
    if (props !== undefined) {
      if (props === null || typeof props !== 'object' || Array.isArray(props)) return undefined
      for (const name in props) {
        const value = props[name]
        if (value === undefined) continue
        if (name === 'contentType' && typeof value === 'string') {
          contentType = value
          contentTypeLen = Buffer.byteLength(value)
          if (contentTypeLen > 0xffff) return undefined
          contentTypeFirst = correlation === undefined
          propsLen += 3 + contentTypeLen
        } else if (name === 'correlationData' && Buffer.isBuffer(value) && value.length <= 0xffff) {
          correlation = value
          propsLen += 3 + value.length
        } else return undefined
      }
    }
  }

  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + (v5 ? varLength(propsLen) + propsLen : 0) + payloadLen
  if (remaining > VARBYTEINT_MAX) return undefined
  const buf = Buffer.allocUnsafe(1 + varLength(remaining) + remaining)
  buf[0] = PUBLISH | (p.dup ? 0x08 : 0) | (qos << 1) | (p.retain ? 0x01 : 0)
  let at = writeVar(buf, 1, remaining)
  at = writeField(buf, at, topic, topicLen)
  if (qos > 0) {
    buf[at++] = id! >> 8
    buf[at++] = id! & 0xff
  }
  if (v5) {
    at = writeVar(buf, at, propsLen)
    if (contentTypeFirst) at = writeField(buf, at, contentType!, contentTypeLen, PROP_CONTENT_TYPE)
    if (correlation !== undefined) at = writeField(buf, at, correlation, correlation.length, PROP_CORRELATION_DATA)
    if (contentType !== undefined && !contentTypeFirst) at = writeField(buf, at, contentType, contentTypeLen, PROP_CONTENT_TYPE)
  }
  if (typeof payload === 'string') buf.write(payload, at)
  else payload.copy(buf, at)
  return buf
}

/** A length-prefixed field (`len` bytes), after its property id when it is a property; the offset after it. */
function writeField(buf: Buffer, at: number, value: string | Buffer, len: number, propertyId?: number): number {
  if (propertyId !== undefined) buf[at++] = propertyId
  buf[at++] = len >> 8
  buf[at++] = len & 0xff
  return at + (typeof value === 'string' ? buf.write(value, at) : value.copy(buf, at))
}

function pubackBytes(p: mqttPacket.IPubackPacket, v5: boolean): Buffer | undefined {
  const id = p.messageId
  if (!isMessageId(id)) return undefined
  const code = p.reasonCode
  // MQTT 3.1.1 has no properties (mqtt-packet ignores them there).
  if (v5 && p.properties !== undefined) return undefined
  // A reason code of 0 may be left out (MQTT 5 3.4.2.1); mqtt-packet writes any other, an absent one as 0.
  if (!v5 || code === 0) return Buffer.from([PUBACK, 2, id >> 8, id & 0xff])
  if (code !== undefined && !(Number.isInteger(code) && code > 0 && code <= 0xff)) return undefined
  return Buffer.from([PUBACK, 4, id >> 8, id & 0xff, code ?? 0, 0])
}

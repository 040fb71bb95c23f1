// The two packets every request brings the daemon, its PUBLISH and the PUBACK of its verdict, read straight
// from the socket's chunk. mqtt-packet's parser keeps each chunk in a BufferList and reads every field
// through it (each integer read a fresh Buffer view, each state step a `debug` call): on the verdict path that
// was the largest single cost of reading a request (bench/latency/packet-parse.ts).
//
// The fast path takes a chunk only when the parser holds nothing (no partial packet), and takes whole packets
// from its start while they are plain ones: PUBLISH with at most the usual MQTT 5 properties (payload format,
// message expiry, content type, response topic, correlation data, user properties), PUBACK without properties.
// The rest of the chunk, from the first packet it does not take (another kind, a packet cut at the chunk's end,
// anything malformed), goes to mqtt-packet's own parser, which also reports what is wrong. The packets are
// mqtt-packet's: its Packet class, the same fields in the same order, payloads and correlation data as views of
// the chunk as its parser gives them, its quirks kept (test/mqtt/packet-parse.test.ts compares the two).
import mqttPacket from 'mqtt-packet'

export interface ParserState {
  settings: { protocolVersion?: number }
  error: Error | null
  _stateCounter: number
  _list: { length: number }
  emit(event: 'packet', packet: object): boolean
}
export type Parse = (this: ParserState, buf: Buffer) => number

/** A parser of mqtt-packet's own: its prototype is where the fast path goes, its empty packet gives the Packet class. */
const probe = mqttPacket.parser({}) as unknown as { packet: object }
const parserPrototype = Object.getPrototypeOf(probe) as { parse: Parse }
const Packet = probe.packet.constructor as new () => Record<string, unknown>

const PUBLISH = 3
const PUBACK = 4
/** Reason codes mqtt-packet accepts on a PUBACK (MQTT 5 3.4.2.1). */
const PUBACK_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])
const PROP_PAYLOAD_FORMAT = 0x01
const PROP_MESSAGE_EXPIRY = 0x02
const PROP_CONTENT_TYPE = 0x03
const PROP_RESPONSE_TOPIC = 0x08
const PROP_CORRELATION_DATA = 0x09
const PROP_USER = 0x26

/**
 * Decodes the packet at `off` into `out[0]`; gives the offset after it, or -1 when the packet is not one the
 * fast path takes (or not all in `buf`).
 */
export function decodePacket(buf: Buffer, off: number, v5: boolean, out: [Record<string, unknown> | undefined]): number {
  const b0 = buf[off]!
  const type = b0 >> 4
  if (type !== PUBLISH && type !== PUBACK) return -1
  const at = varInt(buf, off + 1, buf.length)
  if (at < 0) return -1
  const length = varValue
  const end = at + length
  if (end > buf.length) return -1
  if (type === PUBLISH) return publish(buf, b0, at, end, length, v5, out)
  return puback(buf, b0, at, end, length, v5, out)
}

function publish(buf: Buffer, b0: number, at: number, end: number, length: number, v5: boolean, out: [Record<string, unknown> | undefined]): number {
  const qos = (b0 >> 1) & 3
  const topicEnd = fieldEnd(buf, at, end)
  if (qos === 3 || topicEnd < 0) return -1
  const p = new Packet()
  p.cmd = 'publish'
  p.retain = (b0 & 0x01) !== 0
  p.qos = qos
  p.dup = (b0 & 0x08) !== 0
  p.length = length
  p.topic = buf.toString('utf8', at + 2, topicEnd)
  at = topicEnd
  if (qos > 0) {
    if (at + 2 > end) return -1
    p.messageId = (buf[at]! << 8) | buf[at + 1]!
    at += 2
  }
  if (v5) {
    at = properties(buf, at, end, p)
    if (at < 0) return -1
  }
  p.payload = buf.subarray(at, end)
  out[0] = p
  return end
}

function puback(buf: Buffer, b0: number, at: number, end: number, length: number, v5: boolean, out: [Record<string, unknown> | undefined]): number {
  // Header flags must be 0; a PUBACK with properties (reason string, user properties) is left to mqtt-packet.
  if ((b0 & 0x0f) !== 0 || length < 2 || (v5 ? length > 4 || (length === 4 && buf[at + 3] !== 0) : length !== 2)) return -1
  const p = new Packet()
  p.cmd = 'puback'
  p.retain = false
  p.qos = 0
  p.dup = false
  p.length = length
  p.messageId = (buf[at]! << 8) | buf[at + 1]!
  if (v5) {
    const code = length > 2 ? buf[at + 2]! : 0
    if (!PUBACK_CODES.has(code)) return -1
    p.reasonCode = code
  }
  out[0] = p
  return end
}

/** MQTT 5 properties at `at` into `p.properties` (when there are any); the offset after them, or -1. */
function properties(buf: Buffer, at: number, end: number, p: Record<string, unknown>): number {
  at = varInt(buf, at, end)
  if (at < 0) return -1
  const length = varValue
  const stop = at + length
  if (stop > end) return -1
  if (length === 0) return at
  const props: Record<string, unknown> = {}
  while (at < stop) {
    const id = buf[at++]!
    let name: string
    let value: unknown
    if (id === PROP_USER) {
      const keyEnd = fieldEnd(buf, at, stop)
      if (keyEnd < 0) return -1
      const valueEnd = fieldEnd(buf, keyEnd, stop)
      if (valueEnd < 0) return -1
      const key = buf.toString('utf8', at + 2, keyEnd)
      const text = buf.toString('utf8', keyEnd + 2, valueEnd)
      at = valueEnd
      const user = (props.userProperties ??= Object.create(null)) as Record<string, string | string[]>
      // mqtt-packet's rule: a name seen with a truthy value gathers an array; otherwise the value replaces it.
      const seen = user[key]
      if (Array.isArray(seen)) seen.push(text)
      else if (seen) user[key] = [seen, text]
      else user[key] = text
      continue
    }
    if (id === PROP_PAYLOAD_FORMAT) {
      if (at + 1 > stop) return -1
      name = 'payloadFormatIndicator'
      value = buf[at++] !== 0
    } else if (id === PROP_MESSAGE_EXPIRY) {
      if (at + 4 > stop) return -1
      name = 'messageExpiryInterval'
      value = buf.readUInt32BE(at)
      at += 4
    } else if (id === PROP_CONTENT_TYPE || id === PROP_RESPONSE_TOPIC) {
      const next = fieldEnd(buf, at, stop)
      if (next < 0) return -1
      name = id === PROP_CONTENT_TYPE ? 'contentType' : 'responseTopic'
      value = buf.toString('utf8', at + 2, next)
      at = next
    } else if (id === PROP_CORRELATION_DATA) {
      const next = fieldEnd(buf, at, stop)
      if (next < 0) return -1
      name = 'correlationData'
      value = buf.subarray(at + 2, next)
      at = next
    } else return -1
    // A repeated property becomes an array in mqtt-packet: left to it.
    if (props[name] !== undefined) return -1
    props[name] = value
  }
  if (at !== stop) return -1
  p.properties = props
  return at
}

/** The value of the last `varInt` read (a module-level slot: the reader sits on the hot path and allocates nothing). */
let varValue = 0

/**
 * Reads MQTT's variable byte integer (at most four bytes) at `at`, before `stop`, into `varValue`; gives the
 * offset after it, or -1.
 */
function varInt(buf: Buffer, at: number, stop: number): number {
  let value = 0
  let mul = 1
  for (let n = 0; ; n++) {
    if (n === 4 || at >= stop) return -1
    const c = buf[at++]!
    value += (c & 0x7f) * mul
    mul *= 0x80
    if ((c & 0x80) === 0) break
  }
  varValue = value
  return at
}

/** The end of the length-prefixed field (two-byte length, then that many bytes) at `at`, when it ends by `stop`; else -1. */
function fieldEnd(buf: Buffer, at: number, stop: number): number {
  if (at + 2 > stop) return -1
  const next = at + 2 + buf.readUInt16BE(at)
  return next > stop ? -1 : next
}

/** `original` (mqtt-packet's Parser.prototype.parse) with the fast path in front of it. */
export function withFastPath(original: Parse): Parse {
  const out: [Record<string, unknown> | undefined] = [undefined]
  return function parse(this: ParserState, buf: Buffer): number {
    // Only between packets: a parser in the middle of one (or after an error) goes on as before.
    if (this.error !== null || this._stateCounter !== 0 || this._list.length !== 0) return original.call(this, buf)
    const v5 = this.settings.protocolVersion === 5
    let off = 0
    while (off < buf.length) {
      const next = decodePacket(buf, off, v5, out)
      if (next < 0) break
      const packet = out[0]!
      out[0] = undefined
      off = next
      this.emit('packet', packet)
    }
    if (off === buf.length) return 0
    return original.call(this, off === 0 ? buf : buf.subarray(off))
  }
}

let original: Parse | undefined

/**
 * Makes every mqtt-packet parser of this process (mqtt.js creates one per connection; the embedded broker one
 * per client) take plain PUBLISH and PUBACK packets through the fast path. Idempotent; `uninstallFastParse`
 * restores mqtt-packet's own.
 */
export function installFastParse(): void {
  if (original !== undefined) return
  original = parserPrototype.parse
  parserPrototype.parse = withFastPath(original)
}

export function uninstallFastParse(): void {
  if (original === undefined) return
  parserPrototype.parse = original
  original = undefined
}

// Each MQTT packet the client sends goes to the socket as one chunk. mqtt.js writes a packet through
// mqtt-packet's writeToStream, which hands the socket every field as its own write (fixed header, length,
// topic length, topic, packet id, each property, payload: about ten for a verdict) and corks the socket with a
// process.nextTick per packet; each write() is a trip through Node's stream machinery, on the hot path of every
// verdict and PUBACK. Here each packet is built into one Buffer and written once: the verdict PUBLISH and the
// PUBACK by packet-bytes.ts, every other packet by mqtt-packet's own `generate`.
// Packets of one turn of the event loop still leave together: the socket is corked until the next tick, as
// mqtt-packet does, but once per turn rather than once per packet.
//
// The replaced method is mqtt.js's private `_writePacket(packet, cb)`; this module is the one place that knows
// it. Its contract is kept: 'packetsend' first, `cb` once the packet is written (after 'drain' when the
// socket's buffer is full), and a packet mqtt-packet refuses destroys the stream with its error, as before.
import type { MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { packetBytes } from './packet-bytes.js'

/** The parts of mqtt.js's client this module uses. */
interface PacketWriter {
  _writePacket(packet: mqttPacket.Packet, cb?: () => void): void
  emit(event: 'packetsend', packet: mqttPacket.Packet): boolean
  readonly options: { protocolVersion?: number }
  readonly noop: () => void
  readonly stream: unknown
}

interface Socketish {
  cork?(): void
  uncork?(): void
  write(chunk: Buffer): boolean
  destroy(err?: Error): void
  once(event: 'drain', cb: () => void): void
  readonly writableCorked?: number
}

const uncork = (s: Socketish): void => s.uncork!()

/** Makes `client` write each packet as one chunk, on every connection it makes (the stream is read per packet). */
export function writeWholePackets(client: MqttClient): void {
  const c = client as unknown as PacketWriter
  if (typeof c._writePacket !== 'function') throw new Error('writeWholePackets: this mqtt.js has no _writePacket to replace')
  c._writePacket = (packet, cb) => {
    c.emit('packetsend', packet)
    const stream = c.stream as unknown as Socketish
    let ok: boolean
    let bytes: Buffer | undefined
    try {
      bytes = packetBytes(packet, c.options.protocolVersion) ?? mqttPacket.generate(packet, c.options)
    } catch (err) {
      // writeToStream destroys the stream with the same error (unknown command, invalid topic, …).
      stream.destroy(err instanceof Error ? err : new Error(String(err)))
    }
    // No bytes: refused (and the stream destroyed); mqtt.js's callback then waits for a 'drain' that never comes, as before.
    if (bytes === undefined || bytes.length === 0) ok = false
    else {
      if (!stream.writableCorked && typeof stream.cork === 'function') {
        stream.cork()
        process.nextTick(uncork, stream)
      }
      ok = stream.write(bytes)
    }
    if (!ok && cb && cb !== c.noop) stream.once('drain', cb)
    else if (cb) cb()
  }
}


// MQTT packet helpers for the codec tests: mqtt-packet's own parser as the peer, and seeded random bytes.
import mqttPacket from 'mqtt-packet'
import type { Prng } from '../../daemon/model/offline/prng.js'

/** The packets in `b`, parsed by mqtt-packet's parser; a parse error or bytes left after the last packet throw. */
export function parseAll(b: Buffer, protocolVersion: 4 | 5): mqttPacket.Packet[] {
  const out: mqttPacket.Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion })
  parser.on('packet', (p) => out.push(p))
  parser.on('error', (e) => { throw e })
  const left = parser.parse(b)
  if (left !== 0) throw new Error(`${left} of ${b.length} bytes left after ${out.length} packets`)
  return out
}

/** `n` bytes from `rng`. */
export function randomBytes(rng: Prng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff
  return b
}

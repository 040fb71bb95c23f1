// bench/latency/packet-parse: what reading one request and one PUBACK costs, through mqtt-packet's parser alone
// (mqtt.js's way, the baseline) against the daemon's fast path in front of it (daemon/mqtt/packet-parse.ts).
// The stream is what the daemon reads under load: MQTT 5 requests (response topic, correlation data, a user
// property) and PUBACKs of its verdicts, several to a chunk as the socket delivers them in bursts. Alternating
// rounds, CPU time of this process; the parsed packets are only counted.
//   node dist/bench/latency/packet-parse.js [--packets 200000] [--rounds 5] [--per-chunk 2]
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { withFastPath, type Parse } from '../../daemon/mqtt/packet-parse.js'
import { cpuInfo, vectorIsa } from '../kernel/cpu-peak.js'
import { summarize } from '../kernel/stats.js'

const { values } = parseArgs({ options: { packets: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' }, 'per-chunk': { type: 'string', default: '2' } } })
const n = Number(values.packets)
const rounds = Number(values.rounds)
const perChunk = Number(values['per-chunk'])

const OPTS = { protocolVersion: 5 as const }
const request = (id: number) => mqttPacket.generate({
  cmd: 'publish', topic: 'flashcheck/inspect/st1/torque', payload: JSON.stringify({ torque_nm: 11.2, angle_deg: 720, serial: 'SN-0001' }), qos: 1, retain: false, dup: false, messageId: id,
  properties: { responseTopic: 'bench/reply/1234/3', correlationData: Buffer.from([0, 0, 1, id & 0xff]), userProperties: { 'sent-at': '1733300000000' } },
}, OPTS)
const puback = (id: number) => mqttPacket.generate({ cmd: 'puback', messageId: id }, OPTS)
// 256 distinct chunks, each `perChunk` requests and as many PUBACKs, reused round after round.
const chunks: Buffer[] = []
for (let c = 0; c < 256; c++) {
  const parts: Buffer[] = []
  for (let k = 0; k < perChunk; k++) parts.push(request(c * perChunk + k + 1), puback(c * perChunk + k + 1))
  chunks.push(Buffer.concat(parts))
}

const proto = Object.getPrototypeOf(mqttPacket.parser({})) as { parse: Parse }
const parsers = { mqttPacket: proto.parse, fast: withFastPath(proto.parse) }
type Way = keyof typeof parsers

function round(way: Way): number {
  const parser = mqttPacket.parser(OPTS)
  let seen = 0
  parser.on('packet', () => seen++)
  const parse = parsers[way]
  const c0 = process.cpuUsage()
  for (let i = 0; seen < 2 * n; i++) parse.call(parser as never, chunks[i & 255]!)
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / n
}

const cpu = cpuInfo()
console.log(`machine: ${cpu.model}, ${cpu.arch}, ISA ${vectorIsa(cpu)} (JavaScript only), ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
console.log(`bench/latency/packet-parse: ${n} requests + PUBACKs a round, ${perChunk} of each to a chunk, ${rounds} alternating rounds after one warm-up round each`)
const res: Record<Way, number[]> = { mqttPacket: [], fast: [] }
for (let r = -1; r < rounds; r++) {
  for (const way of ['mqttPacket', 'fast'] as const) {
    const us = round(way)
    if (r >= 0) res[way].push(us)
  }
}
const median = (xs: number[]): number => summarize(xs).median
console.log(`per round, mqtt-packet's parser (mqtt.js's way, baseline) µs per request + PUBACK: ${res.mqttPacket.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`per round, fast path (the daemon's way) µs per request + PUBACK: ${res.fast.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`request + PUBACK read: baseline ${median(res.mqttPacket).toFixed(2)} µs, fast path ${median(res.fast).toFixed(2)} µs (ratio ${(median(res.fast) / median(res.mqttPacket)).toFixed(2)}x)`)

// bench/latency/packet-writes: what writing one verdict and one PUBACK costs on a real loopback socket, as
// mqtt.js does it (mqtt-packet's writeToStream: every field its own write()) against building each packet whole
// (mqtt-packet's generate, one write() per packet) and the daemon's way (daemon/mqtt/packet-bytes.ts: encoded
// straight into one Buffer, one write() per packet; daemon/mqtt/whole-packets.ts). Bursts of 8 verdicts share
// one corked socket write in both, as under load (daemon/mqtt/write-batch.ts). Alternating rounds, CPU time of
// this process (the socket's system calls included; the reading side is a sink in the same process).
//   node dist/bench/latency/packet-writes.js [--packets 200000] [--rounds 5]
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { packetBytes } from '../../daemon/mqtt/packet-bytes.js'
import { cpuInfo, vectorIsa } from '../kernel/cpu-peak.js'
import { summarize } from '../kernel/stats.js'

const { values } = parseArgs({ options: { packets: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } } })
const n = Number(values.packets)
const rounds = Number(values.rounds)

// A verdict of the example rule's size (~480 bytes), MQTT 5 with correlation data and content type.
const PAYLOAD = JSON.stringify({
  verdict_id: '0193a3c4-1d2e-7abc-8def-0123456789ab', ts: '2026-12-04T20:00:00.000Z', inspection: 'torque-joint', verdict: 'PASS',
  checks: [
    { id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque: 11.2 } },
    { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle: 720 } },
    { id: 'spindle-calm', ok: true, on_fail: 'WARN', values: { 'count(vib, "2s")': 100, 'avg(vib, "2s")': 1.2, 'age_ms(vib)': 7 } },
  ],
  inputs: { torque: 11.2, angle: 720, station: 'st1' }, latency_ms: 0.123, deadline_missed: false, rules_rev: 'abc123', node: 'bench',
})
const OPTS = { protocolVersion: 5 as const }
const CORRELATION = Buffer.from([0, 0, 1, 2])

const server = createServer((s) => s.resume()).listen(0, '127.0.0.1')
await new Promise((r) => server.once('listening', r))
const sock: Socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
await new Promise((r) => sock.once('connect', r))
sock.setNoDelay(true)

let id = 0
const verdict = (): mqttPacket.IPublishPacket => ({
  cmd: 'publish', topic: 'bench/reply/1234/3', payload: PAYLOAD, qos: 1, retain: false, dup: false, messageId: (id = (id % 65535) + 1),
  properties: { correlationData: CORRELATION, contentType: 'application/json' },
})
const puback = (): mqttPacket.IPubackPacket => ({ cmd: 'puback', messageId: id })

type Way = 'fields' | 'whole' | 'direct'
function round(way: Way): number {
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i += 8) {
    sock.cork()
    for (let j = 0; j < 8; j++) {
      if (way === 'fields') {
        mqttPacket.writeToStream(verdict(), sock, OPTS)
        mqttPacket.writeToStream(puback(), sock, OPTS)
      } else if (way === 'whole') {
        sock.write(mqttPacket.generate(verdict(), OPTS))
        sock.write(mqttPacket.generate(puback(), OPTS))
      } else {
        sock.write(packetBytes(verdict(), 5)!)
        sock.write(packetBytes(puback(), 5)!)
      }
    }
    sock.uncork()
  }
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / n
}
const drained = () => (sock.writableLength > 0 ? new Promise((r) => sock.once('drain', r)) : Promise.resolve())

const cpu = cpuInfo()
console.log(`machine: ${cpu.model}, ${cpu.arch}, ISA ${vectorIsa(cpu)} (JavaScript and the socket only), ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
console.log(`bench/latency/packet-writes: ${n} verdicts + PUBACKs a round (~${Buffer.byteLength(PAYLOAD)}-byte payload), ${rounds} alternating rounds after one warm-up round each`)
const res: Record<Way, number[]> = { fields: [], whole: [], direct: [] }
for (let r = -1; r < rounds; r++) {
  for (const way of ['fields', 'whole', 'direct'] as const) {
    await drained()
    // Let the kernel's socket buffers empty between rounds.
    await new Promise((r) => setTimeout(r, 20))
    const us = round(way)
    if (r >= 0) res[way].push(us)
  }
}
const median = (xs: number[]): number => summarize(xs).median
console.log(`per round, writeToStream (mqtt.js's way, baseline) µs per verdict + PUBACK: ${res.fields.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`per round, generate + one write µs per verdict + PUBACK: ${res.whole.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`per round, packet-bytes + one write (the daemon's way) µs per verdict + PUBACK: ${res.direct.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`verdict + PUBACK written: baseline ${median(res.fields).toFixed(2)} µs, whole packets ${median(res.whole).toFixed(2)} µs (ratio ${(median(res.whole) / median(res.fields)).toFixed(2)}x)`)
console.log(`verdict + PUBACK written: baseline ${median(res.fields).toFixed(2)} µs, encoded directly ${median(res.direct).toFixed(2)} µs (ratio ${(median(res.direct) / median(res.fields)).toFixed(2)}x)`)
sock.destroy()
server.close()

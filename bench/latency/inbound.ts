// bench/latency/inbound: the daemon's own work per request, without broker or sockets: the torque-joint example
// request (with its vibration signal fed at one sample per 40 requests) through Inbound.handle, the live message
// path, into a client stub that only measures the answer's bytes. Baseline in the same run: a stand-in responder
// doing the least any responder does (parse the payload, publish a fixed answer through the same stub).
// Profiles and A/B comparisons of the message path are steadier here than through mosquitto, where the broker,
// the load and the kernel's network path share the cores.
//   node dist/bench/latency/inbound.js [--requests 100000] [--rounds 5]
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { IPublishPacket, MqttClient } from 'mqtt'
import { loadConfig } from '../../daemon/config/load.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { loadRuleDir } from '../../daemon/rules/load.js'
import { Inbound } from '../../daemon/service/inbound.js'
import { Publisher } from '../../daemon/service/publisher.js'
import { RedeliveryMemory } from '../../daemon/service/redelivery.js'
import { SignalStore } from '../../daemon/signals/store.js'
import { cpuInfo, vectorIsa } from '../kernel/cpu-peak.js'
import { summarize } from '../kernel/stats.js'

const { values } = parseArgs({ options: { requests: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '5' } } })
const n = Number(values.requests)
const rounds = Number(values.rounds)

const config = loadConfig({ args: [], env: {} })
const loaded = await loadRuleDir(join(PACKAGE_ROOT, 'rules', 'examples'), { defaultBudgetMs: config.budget.defaultMs })
if (!loaded.ok) throw new Error(loaded.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join('\n'))
const log = createLogger('silent')
const metrics = new Metrics()
const memory = new RedeliveryMemory(config.limits.dedupeWindowS * 1000, config.limits.dedupeEntries, log)
let bytes = 0
const client = {
  connected: true,
  stream: { writableLength: 0 },
  publish(_topic: string, payload: string | Buffer, _opts: unknown, cb?: (err?: Error) => void) {
    bytes += Buffer.byteLength(payload)
    cb?.()
    return client
  },
} as unknown as MqttClient
const publisher = new Publisher(() => client, { qos: 1, protocolVersion: 5, outboxSize: 16, closeKey: memory.closeKey }, metrics)
const signals = new SignalStore()
signals.configure(loaded.set.signals)
const inbound = new Inbound({ config, log, metrics, signals, memory, publisher, rules: () => loaded.set })

const TOPIC = 'flashcheck/inspect/st1/torque'
const SIGNAL = 'plant/st1/spindle/vibration'
let seq = 0

function request(i: number): { payload: Buffer; packet: IPublishPacket } {
  const payload = Buffer.from(`{"torque_nm":11.${i % 10},"angle_deg":${700 + (i % 50)}}`)
  const properties = { responseTopic: 'bench/reply/1', correlationData: Buffer.from(String(seq++)) }
  return { payload, packet: { cmd: 'publish', topic: TOPIC, payload, qos: 1, dup: false, retain: false, messageId: (seq % 65535) + 1, properties } }
}

function daemonRound(): number {
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    if (i % 40 === 0) {
      const sample = Buffer.from(`{"rms":${(1.1 + (i % 7) * 0.03).toFixed(2)}}`)
      inbound.handle(SIGNAL, sample, { cmd: 'publish', topic: SIGNAL, payload: sample, qos: 0, dup: false, retain: false })
    }
    const { payload, packet } = request(i)
    inbound.handle(TOPIC, payload, packet)
  }
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / n
}

function echoRound(): number {
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const { payload, packet } = request(i)
    JSON.parse(payload.toString('utf8'))
    client.publish(packet.properties!.responseTopic!, '{"verdict":"PASS"}', { qos: 1, properties: { correlationData: packet.properties!.correlationData } }, () => {})
  }
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / n
}

const median = (xs: number[]): number => summarize(xs).median
const cpu = cpuInfo()
console.log(`machine: ${cpu.model}, ${cpu.arch}, ISA ${vectorIsa(cpu)} (JavaScript only: no kernel dispatch here), ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
console.log(`bench/latency/inbound: ${n} requests a round, ${rounds} alternating rounds after one warm-up round each`)
daemonRound()
echoRound()
const d: number[] = []
const e: number[] = []
for (let r = 0; r < rounds; r++) {
  d.push(daemonRound())
  e.push(echoRound())
}
if (bytes === 0) throw new Error('nothing was published')
console.log(`per round, daemon µs/request: ${d.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`per round, stand-in µs/request: ${e.map((x) => x.toFixed(2)).join(' ')}`)
console.log(`message path CPU per request: daemon ${median(d).toFixed(2)} µs, stand-in ${median(e).toFixed(2)} µs (ratio ${(median(d) / median(e)).toFixed(2)}x)`)

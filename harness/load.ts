// Open-loop MQTT 5 load: N requesters, each with its own reply topic, sending QoS 1 requests at a paced rate
// (spread over every millisecond, not back-to-back, so that a slow responder cannot hide its queueing).
// LatencyLoad times each round trip into an HDR histogram; bench/overload builds its windowed load on the
// same requesters and pacing.
import { performance } from 'node:perf_hooks'
import * as hdr from 'hdr-histogram-js'
import mqtt, { type MqttClient } from 'mqtt'
import { setNoDelay } from '../daemon/mqtt/nodelay.js'

export interface Requesters {
  clients: MqttClient[]
  /** Reply topic of each client (`bench/reply/<pid>/<i>`). */
  replyTopics: string[]
}

/** Connects `n` MQTT 5 clients; with `subscribe` each subscribes to its own reply topic. */
export async function connectRequesters(url: string, n: number, tag: string, subscribe = true): Promise<Requesters> {
  const clients: MqttClient[] = []
  const replyTopics: string[] = []
  for (let i = 0; i < n; i++) {
    const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `${tag}-${process.pid}-${i}`, reconnectPeriod: 0 })
    setNoDelay(c)
    const t = `bench/reply/${process.pid}/${i}`
    if (subscribe) await c.subscribeAsync(t, { qos: 1 })
    clients.push(c)
    replyTopics.push(t)
  }
  return { clients, replyTopics }
}

/**
 * Calls `send(i)` for i = 0 … rate×seconds−1 at `rate` per second, checking every millisecond how many are due;
 * `onTick(msSinceStart)` runs after each check. Resolves once all were sent.
 */
export function pace(rate: number, seconds: number, send: (i: number) => void, onTick?: (elapsedMs: number) => void): Promise<void> {
  const total = Math.round(rate * seconds)
  const start = performance.now()
  let next = 0
  return new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - start
      const due = Math.min(total, Math.floor((elapsed / 1000) * rate) + 1)
      while (next < due) send(next++)
      onTick?.(elapsed)
      if (next >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
}

export interface LoadResult {
  sent: number
  received: number
  p50: number
  p99: number
  max: number
  mean: number
}

/** Round trips of one payload to one topic, correlated by a 4-byte request id in MQTT 5 correlation data. */
export class LatencyLoad {
  /** Correlation ids never repeat across runs: the daemon rightly drops repeats as QoS 1 redeliveries. */
  private nextId = 0

  private constructor(private readonly r: Requesters) {}

  static async connect(url: string, n: number): Promise<LatencyLoad> {
    return new LatencyLoad(await connectRequesters(url, n, 'bench-load'))
  }

  /** Sends `rate`/s for `seconds` to `topic` and waits (up to 2 s) for the stragglers. Latencies in ms. */
  async run(topic: string, payload: string, rate: number, seconds: number): Promise<LoadResult> {
    const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 })
    const pending = new Map<number, number>()
    let received = 0
    const { clients, replyTopics } = this.r
    const handlers = clients.map((c) => {
      const h = (_t: string, _p: Buffer, packet: mqtt.IPublishPacket) => {
        const cd = packet.properties?.correlationData
        if (!cd) return
        const id = Buffer.from(cd).readUInt32BE(0)
        const t0 = pending.get(id)
        if (t0 === undefined) return
        pending.delete(id)
        received++
        hist.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000))) // µs
      }
      c.on('message', h)
      return h
    })
    const total = Math.round(rate * seconds)
    const body = Buffer.from(payload)
    const base = this.nextId
    this.nextId += total
    await pace(rate, seconds, (i) => {
      const id = base + i
      const k = id % clients.length
      const cd = Buffer.alloc(4)
      cd.writeUInt32BE(id)
      pending.set(id, performance.now())
      clients[k]!.publish(topic, body, { qos: 1, properties: { responseTopic: replyTopics[k], correlationData: cd } })
    })
    const waitEnd = performance.now() + 2000
    while (pending.size > 0 && performance.now() < waitEnd) await new Promise((r) => setTimeout(r, 5))
    clients.forEach((c, i) => c.off('message', handlers[i]))
    const res: LoadResult = {
      sent: total,
      received,
      p50: hist.getValueAtPercentile(50) / 1000,
      p99: hist.getValueAtPercentile(99) / 1000,
      max: hist.maxValue / 1000,
      mean: hist.mean / 1000,
    }
    hist.destroy()
    return res
  }

  async close(): Promise<void> {
    await Promise.all(this.r.clients.map((c) => c.endAsync(true)))
  }
}

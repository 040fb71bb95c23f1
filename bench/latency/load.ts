// Open-loop load: N MQTT 5 requesters together send `rate` requests/s (paced, not back-to-back, so a slow
// responder cannot hide its queueing) and record each round trip in an HDR histogram.
import { performance } from 'node:perf_hooks'
import * as hdr from 'hdr-histogram-js'
import mqtt, { type MqttClient } from 'mqtt'
import { setNoDelay } from '../../daemon/mqtt/nodelay.js'

export interface LoadResult {
  sent: number
  received: number
  p50: number
  p99: number
  max: number
  mean: number
}

export class LoadGen {
  /** Correlation ids never repeat across runs: the daemon rightly drops repeats as QoS 1 redeliveries. */
  private nextId = 0

  private constructor(private readonly clients: MqttClient[], private readonly replyTopics: string[]) {}

  static async connect(url: string, n: number): Promise<LoadGen> {
    const clients: MqttClient[] = []
    const topics: string[] = []
    for (let i = 0; i < n; i++) {
      const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `bench-load-${process.pid}-${i}`, reconnectPeriod: 0 })
      setNoDelay(c)
      const t = `bench/reply/${process.pid}/${i}`
      await c.subscribeAsync(t, { qos: 1 })
      clients.push(c)
      topics.push(t)
    }
    return new LoadGen(clients, topics)
  }

  /** Sends `rate`/s for `seconds` to `topic` and waits (up to 2 s) for the stragglers. Latencies in ms. */
  async run(topic: string, payload: string, rate: number, seconds: number): Promise<LoadResult> {
    const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 })
    const pending = new Map<number, number>()
    let received = 0
    const handlers = this.clients.map((c) => {
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
    const start = performance.now()
    const body = Buffer.from(payload)
    let next = 0
    const base = this.nextId
    this.nextId += total
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1)
        while (next < due) {
          const id = base + next++
          const c = this.clients[id % this.clients.length]
          const cd = Buffer.alloc(4)
          cd.writeUInt32BE(id)
          pending.set(id, performance.now())
          c.publish(topic, body, { qos: 1, properties: { responseTopic: this.replyTopics[id % this.clients.length], correlationData: cd } })
        }
        if (next >= total) resolve()
        else setTimeout(tick, 1)
      }
      tick()
    })
    const waitEnd = performance.now() + 2000
    while (pending.size > 0 && performance.now() < waitEnd) await new Promise((r) => setTimeout(r, 5))
    this.clients.forEach((c, i) => c.off('message', handlers[i]))
    const r: LoadResult = {
      sent: total,
      received,
      p50: hist.getValueAtPercentile(50) / 1000,
      p99: hist.getValueAtPercentile(99) / 1000,
      max: hist.maxValue / 1000,
      mean: hist.mean / 1000,
    }
    hist.destroy()
    return r
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.endAsync(true)))
  }
}

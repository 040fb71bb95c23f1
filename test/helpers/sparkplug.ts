// Test peers speaking Sparkplug B through Eclipse Tahu's JavaScript codec (sparkplug-payload): a PLC gateway
// that publishes births and data, and a SCADA host that records and decodes everything under spBv1.0/.
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import mqtt, { type MqttClient } from 'mqtt'

const require = createRequire(import.meta.url)

export interface TahuMetric {
  name?: string
  alias?: unknown
  timestamp?: unknown
  type: string
  value: unknown
  isNull?: boolean
}
export interface TahuPayload {
  timestamp?: unknown
  seq?: unknown
  metrics: TahuMetric[]
}

export const tahu = require('sparkplug-payload').get('spBv1.0') as {
  encodePayload(p: unknown): Uint8Array
  decodePayload(b: Uint8Array): TahuPayload
}
/** The Long class of the protobufjs copy Tahu uses (for 64-bit values beyond 2^53). */
export const TahuLong = require(require.resolve('long', { paths: [require.resolve('sparkplug-payload')] })) as {
  fromString(s: string, unsigned?: boolean): unknown
}

/** A Long, number or undefined as a plain number (or a decimal string when beyond 2^53). */
export function num(v: unknown): number | string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'number') return v
  const s = String(v)
  const n = Number(s)
  return Number.isSafeInteger(n) ? n : s
}

export interface SpMessage {
  topic: string
  at: number
  raw: Buffer
  payload?: TahuPayload
  retain: boolean
  qos: number
}

export class SparkplugPeer {
  readonly messages: SpMessage[] = []
  private waiters: (() => void)[] = []

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, raw, packet) => {
      let payload: TahuPayload | undefined
      if (!topic.startsWith('spBv1.0/STATE/')) {
        try {
          payload = tahu.decodePayload(raw)
        } catch {
          payload = undefined
        }
      }
      this.messages.push({ topic, at: Date.now(), raw, payload, retain: packet.retain, qos: packet.qos })
      for (const w of this.waiters.splice(0)) w()
    })
  }

  static async connect(url: string, subscribe: string[] = ['spBv1.0/#']): Promise<SparkplugPeer> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `sp-${randomBytes(4).toString('hex')}` })
    const peer = new SparkplugPeer(client)
    if (subscribe.length) await client.subscribeAsync(subscribe, { qos: 1 })
    return peer
  }

  /** Publishes a Tahu-encoded payload (QoS 1 so that it is with the broker before the next step). */
  async send(topic: string, p: TahuPayload): Promise<void> {
    await this.client.publishAsync(topic, Buffer.from(tahu.encodePayload(p)), { qos: 1 })
  }

  /** Waits for the first message (from index `from`) on `topic` matching `pred`. */
  async next(topic: string | RegExp, opts: { from?: number; timeoutMs?: number; pred?: (m: SpMessage) => boolean } = {}): Promise<SpMessage> {
    const end = Date.now() + (opts.timeoutMs ?? 5000)
    for (;;) {
      const m = this.messages.slice(opts.from ?? 0).find((x) => (typeof topic === 'string' ? x.topic === topic : topic.test(x.topic)) && (opts.pred?.(x) ?? true))
      if (m) return m
      const left = end - Date.now()
      if (left <= 0) throw new Error(`no message on ${topic} within ${opts.timeoutMs ?? 5000} ms; got ${this.messages.slice(opts.from ?? 0).map((x) => x.topic).join(', ')}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(t); resolve() })
      })
    }
  }

  count(topic: string | RegExp, from = 0): number {
    return this.messages.slice(from).filter((x) => (typeof topic === 'string' ? x.topic === topic : topic.test(x.topic))).length
  }

  metric(m: SpMessage, name: string): TahuMetric | undefined {
    return m.payload?.metrics.find((x) => x.name === name)
  }

  end(): Promise<void> {
    return this.client.endAsync(true)
  }
}

/** A rule reading a plant press's spindle temperature over Sparkplug B, answered on `request`. */
export function pressRule(request: string): string {
  return `id: press-temp
request: ${request}
signals:
  spindle_temp:
    sparkplug: {group: plant1, node: "press-{station}", device: spindle, metric: "Spindle/Temperature"}
    keep: 30s
checks:
  - { id: hot, expr: 'last(spindle_temp) < 80.0', on_fail: FAIL }
`
}

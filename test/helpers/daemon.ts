// Test configuration for the daemon, and MQTT 5 and 3.1.1 requesters (PLC-like clients) for the tests.
import { randomBytes } from 'node:crypto'
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt'
import { loadConfig } from '../../daemon/config/load.js'
import type { Config } from '../../daemon/config/schema.js'

export function testConfig(args: string[]): Config {
  const cfg = loadConfig({ args: ['--node-id', 'test-node', '--log-level', 'debug', ...args], env: {} })
  // No state in the machine's /var/lib unless a test asks for a directory of its own.
  if (!args.includes('--state-dir')) cfg.state.dir = ''
  return cfg
}

export interface Reply {
  topic: string
  body: Record<string, any>
  correlationData?: Buffer
  contentType?: string
}

/** A PLC-like client: sends requests and collects the replies on its own reply topic. */
export class Requester {
  readonly replyTo = `test/reply/${randomBytes(6).toString('hex')}`
  readonly replies: Reply[] = []
  private waiters: (() => void)[] = []

  private constructor(readonly client: MqttClient, readonly version: 4 | 5) {
    client.on('message', (topic, payload, packet) => {
      let body: Record<string, any>
      try {
        body = JSON.parse(payload.toString('utf8')) as Record<string, any>
      } catch {
        body = { raw: payload.toString('utf8') }
      }
      const p = packet.properties
      this.replies.push({ topic, body, correlationData: p?.correlationData ? Buffer.from(p.correlationData) : undefined, contentType: p?.contentType })
      for (const w of this.waiters.splice(0)) w()
    })
  }

  static async connect(url: string, version: 4 | 5, subscribe?: string): Promise<Requester> {
    const client = await mqtt.connectAsync(url, { protocolVersion: version, reconnectPeriod: 0, clientId: `t-${randomBytes(4).toString('hex')}` })
    const r = new Requester(client, version)
    await client.subscribeAsync(subscribe ?? r.replyTo, { qos: 1 })
    return r
  }

  /** Waits until `n` replies in total have arrived (or fails after timeoutMs). */
  async waitFor(n: number, timeoutMs = 5000): Promise<Reply[]> {
    const end = Date.now() + timeoutMs
    while (this.replies.length < n) {
      const left = end - Date.now()
      if (left <= 0) throw new Error(`expected ${n} replies, got ${this.replies.length}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(t); resolve() })
      })
    }
    return this.replies
  }

  /** MQTT 5 request with response topic and correlation data (payload JSON-encoded unless a Buffer/string). */
  async request5(topic: string, payload: unknown, extra: IClientPublishOptions['properties'] = {}, corr = randomBytes(4)): Promise<Reply> {
    const before = this.replies.length
    await this.client.publishAsync(topic, encode(payload), { qos: 1, properties: { responseTopic: this.replyTo, correlationData: corr, ...extra } })
    const all = await this.waitFor(before + 1)
    return all[before]
  }

  /** MQTT 3.1.1 convention: reply_to and correlation_id inside the JSON payload. */
  async request311(topic: string, payload: Record<string, unknown>, correlationId = randomBytes(4).toString('hex')): Promise<Reply> {
    const before = this.replies.length
    await this.client.publishAsync(topic, JSON.stringify({ ...payload, reply_to: this.replyTo, correlation_id: correlationId }), { qos: 1 })
    const all = await this.waitFor(before + 1)
    return all[before]
  }

  end(): Promise<void> {
    return this.client.endAsync(true)
  }
}

export function encode(payload: unknown): Buffer | string {
  if (Buffer.isBuffer(payload) || typeof payload === 'string') return payload
  return JSON.stringify(payload)
}

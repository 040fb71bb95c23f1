// Everything the service publishes in answer to a message: verdicts (now, or kept in the bounded outbox
// while the broker is away), OVERLOADED answers under shedding, and explanations. A verdict carries the
// dedupe key of the request it answers, and that key is closed once the broker has acknowledged it.
import type { IClientPublishOptions, MqttClient } from 'mqtt'
import type { Metrics } from '../metrics/metrics.js'
import type { Envelope } from './envelope.js'
import { Outbox } from './outbox.js'

/** Bytes waiting in the socket above which OVERLOADED answers are dropped (and counted) instead of queued. */
const SHED_WRITE_BACKLOG = 4 << 20

export interface PublisherOptions {
  qos: 0 | 1 | 2
  protocolVersion: 4 | 5
  outboxSize: number
  /** Called with a request's dedupe key once its verdict is safe with the broker, or will never be sent. */
  closeKey: (key: string) => void
}

export class Publisher {
  private readonly outbox: Outbox

  constructor(private readonly client: () => MqttClient | undefined, private readonly opts: PublisherOptions, private readonly metrics: Metrics) {
    this.outbox = new Outbox(opts.outboxSize)
  }

  /** Verdicts waiting for the broker. */
  get waiting(): number {
    return this.outbox.size
  }

  /** QoS, and for MQTT 5 the request's correlation data and the JSON content type. */
  replyOptions(env: Envelope): IClientPublishOptions {
    // A fresh object each time: mqtt.js keeps the options of a QoS 1 publish until it is acknowledged.
    const opts: IClientPublishOptions = { qos: this.opts.qos }
    if (this.opts.protocolVersion === 5) {
      opts.properties = env.correlationData ? { correlationData: env.correlationData, contentType: 'application/json' } : { contentType: 'application/json' }
    }
    return opts
  }

  /** Publishes a verdict now, or keeps it in the outbox while the broker is away. */
  send(topic: string, payload: string, opts: IClientPublishOptions, key?: string): void {
    const client = this.client()
    if (client?.connected) {
      if (key === undefined) client.publish(topic, payload, opts)
      else if (!opts.qos) {
        client.publish(topic, payload, opts)
        this.opts.closeKey(key)
      } else client.publish(topic, payload, opts, () => this.opts.closeKey(key))
      return
    }
    // mqtt.js would queue it without bound; the outbox drops the oldest instead, and counts them.
    const closeKey = this.opts.closeKey
    const done = key === undefined ? undefined : (dropped: boolean) => { if (dropped) closeKey(key) }
    if (this.outbox.push({ topic, payload, opts, key, done })) this.metrics.outboxDropped.inc()
    this.metrics.outboxDepth.set(this.outbox.size)
  }

  /**
   * An OVERLOADED answer goes out at QoS 0: under overload the broker is slow to acknowledge, and thousands of
   * QoS 1 answers waiting for PUBACKs are what grew the daemon's memory. When the socket itself is backed up the
   * answer is dropped and counted; the requester's own timeout (or message expiry) covers it.
   */
  shed(topic: string, payload: string, opts: IClientPublishOptions, key?: string): void {
    // No acknowledgement will come for a QoS 0 answer: the request counts as answered either way.
    if (key !== undefined) this.opts.closeKey(key)
    const client = this.client()
    const backlog = (client?.stream as { writableLength?: number } | undefined)?.writableLength ?? 0
    if (!client?.connected || backlog > SHED_WRITE_BACKLOG) {
      this.metrics.shedDropped.inc()
      return
    }
    client.publish(topic, payload, { ...opts, qos: 0 })
  }

  /** Explanations are extras: while the broker is away they are dropped, never queued behind verdicts. */
  explain(topic: string, env: Envelope, body: Record<string, unknown>): void {
    const client = this.client()
    if (!client?.connected) {
      this.metrics.modelExplains.inc({ result: 'dropped' })
      return
    }
    if (env.correlationId !== undefined) body.correlation_id = env.correlationId
    client.publish(topic, JSON.stringify(body), this.replyOptions(env))
  }

  /** Sends the verdicts held while the broker was away, in order; returns how many went out. */
  flush(): number {
    const client = this.client()
    const n = this.outbox.flush(() => client?.connected ?? false, (item) => this.send(item.topic, item.payload, item.opts, item.key))
    this.metrics.outboxDepth.set(this.outbox.size)
    return n
  }
}

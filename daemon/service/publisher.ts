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
  /** Where outbox verdicts are kept across restarts (the audit journal), if anywhere. */
  durable?: DurableOutbox
}

/** Rows of verdicts waiting for the broker, kept on disk so that a restart does not lose them. */
export interface DurableOutbox {
  add(verdictId: string, topic: string, payload: string, correlationData: Buffer | undefined, qos: number): number | undefined
  remove(seq: number): void
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
  send(topic: string, payload: string, opts: IClientPublishOptions, key?: string, verdictId?: string, durableSeq?: number): void {
    const client = this.client()
    const durable = this.opts.durable
    if (client?.connected) {
      if (key === undefined && durableSeq === undefined) client.publish(topic, payload, opts)
      else if (!opts.qos) {
        client.publish(topic, payload, opts)
        this.settled(key, durableSeq)
      } else {
        client.publish(topic, payload, opts, (err) => {
          // mqtt.js fails publishes it had queued, never sent, when the connection closes: they go back to the
          // outbox (after the older ones it holds) instead of counting as delivered.
          // (A publish refused on a live connection is not retried: it would be refused again.)
          if (err && !this.client()?.connected) this.send(topic, payload, opts, key, verdictId, durableSeq)
          else this.settled(key, durableSeq)
        })
      }
      return
    }
    if (durableSeq === undefined && verdictId !== undefined && durable) durableSeq = durable.add(verdictId, topic, payload, opts.properties?.correlationData, opts.qos ?? 0)
    // mqtt.js would queue it without bound; the outbox drops the oldest instead, and counts them.
    const done = key === undefined && durableSeq === undefined ? undefined : (dropped: boolean) => { if (dropped) this.settled(key, durableSeq) }
    if (this.outbox.push({ topic, payload, opts, key, done, durableSeq })) this.metrics.outboxDropped.inc()
    this.metrics.outboxDepth.set(this.outbox.size)
  }

  /** A verdict kept by the previous process (durable outbox): queued to go out on connect. */
  restore(topic: string, payload: string, opts: IClientPublishOptions, durableSeq: number): void {
    const done = (dropped: boolean) => { if (dropped) this.opts.durable?.remove(durableSeq) }
    if (this.outbox.push({ topic, payload, opts, done, durableSeq })) this.metrics.outboxDropped.inc()
    this.metrics.outboxDepth.set(this.outbox.size)
  }

  /** The broker has the verdict (or it will never be sent). */
  private settled(key: string | undefined, durableSeq: number | undefined): void {
    if (key !== undefined) this.opts.closeKey(key)
    if (durableSeq !== undefined) this.opts.durable?.remove(durableSeq)
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
    const n = this.outbox.flush(() => client?.connected ?? false, (item) => this.send(item.topic, item.payload, item.opts, item.key, undefined, item.durableSeq))
    this.metrics.outboxDepth.set(this.outbox.size)
    return n
  }
}

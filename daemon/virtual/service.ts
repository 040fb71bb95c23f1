// The live request path (service/inbound.ts) on a virtual clock, without a broker: `rules test`, `replay` and
// tests feed it messages with the times they choose and read back what the daemon would have published.
// Nothing here evaluates rules itself: every message takes Inbound.handle, the same stages and the same
// signal store as in the running daemon; only the arrival time comes from the caller.
import type { IPublishPacket, MqttClient } from 'mqtt'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { createLogger } from '../log/logger.js'
import { Metrics } from '../metrics/metrics.js'
import type { RuleSet } from '../rules/types.js'
import type { ModelJudge } from '../service/exchange.js'
import { Inbound } from '../service/inbound.js'
import { Publisher } from '../service/publisher.js'
import { RedeliveryMemory } from '../service/redelivery.js'
import type { Response } from '../service/response.js'
import { SignalStore } from '../signals/store.js'

/** Replies go to topics under this prefix, one per request, so an answer is matched to its request. */
export const REPLY_PREFIX = 'flashcheck-virtual/reply/'

export interface Published {
  topic: string
  /** The response JSON, parsed (verdicts and stream verdicts; explanations are kept apart). */
  response: Response
}

export interface VirtualOptions {
  config: Config
  set: RuleSet
  /** Model answers for reason rules; without it reason rules answer with their checks alone. */
  engine?: ModelJudge
  log?: Logger
  metrics?: Metrics
}

/** What one message led to: the request's answer (if it is a request) and any stream verdicts. */
export interface Delivery {
  /** Answers published before handle() returned. */
  published: Published[]
  /** Resolves once answers that go out later (the model step) are published too. */
  settled: Promise<void>
}

export class VirtualService {
  private t = 0
  private seq = 0
  /** Where answers go: the Delivery of the message handled last (callers await `settled` before the next). */
  private sink: Published[] = []
  readonly signals = new SignalStore()
  readonly metrics: Metrics
  private readonly inbound: Inbound

  constructor(o: VirtualOptions) {
    const log = o.log ?? createLogger('silent')
    this.metrics = o.metrics ?? new Metrics()
    const memory = new RedeliveryMemory(o.config.limits.dedupeWindowS * 1000, o.config.limits.dedupeEntries, log)
    const client = {
      connected: true,
      stream: { writableLength: 0 },
      publish: (topic: string, payload: string | Buffer, _opts: unknown, cb?: () => void) => {
        const text = String(payload)
        if (topic.startsWith(REPLY_PREFIX) || text.includes('"verdict"')) {
          try {
            const response = JSON.parse(text) as Response
            if (typeof response.verdict === 'string') this.sink.push({ topic, response })
          } catch {
            // not an answer (an explanation is JSON without a verdict; nothing else is published)
          }
        }
        cb?.()
        return client
      },
    } as unknown as MqttClient
    const publisher = new Publisher(() => client, { qos: 1, protocolVersion: 5, outboxSize: 16, closeKey: memory.closeKey }, this.metrics)
    this.signals.configure(o.set.signals)
    this.inbound = new Inbound({
      config: o.config,
      log,
      metrics: this.metrics,
      signals: this.signals,
      memory,
      publisher,
      rules: () => o.set,
      engine: o.engine,
      clock: () => this.t,
    })
  }

  /**
   * Delivers one message at virtual epoch time `at` (ms; must not go backwards for results to match live
   * order). `reply` false sends it without a response topic of ours, as a signal or trigger message is sent;
   * `properties` are the message's MQTT 5 properties (a recording's), kept except the reply address.
   */
  deliver(at: number, topic: string, payload: Buffer, o: { reply?: boolean; properties?: IPublishPacket['properties'] } = {}): Delivery & { replyTopic?: string } {
    this.t = at
    const properties: NonNullable<IPublishPacket['properties']> = { ...(o.properties ?? {}) }
    let replyTopic: string | undefined
    if (o.reply) {
      replyTopic = REPLY_PREFIX + ++this.seq
      properties.responseTopic = replyTopic
      properties.correlationData = Buffer.from(String(this.seq))
    }
    const packet = { cmd: 'publish', topic, payload, qos: 1, dup: false, retain: false, properties } as IPublishPacket
    const published: Published[] = (this.sink = [])
    const ack = this.inbound.handle(topic, payload, packet)
    const settled = ack && !ack.settled ? new Promise<void>((resolve) => ack.whenSettled(resolve)) : Promise.resolve()
    return { published, settled, replyTopic }
  }
}

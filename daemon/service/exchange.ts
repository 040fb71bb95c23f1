// What one inbound message carries through the service (Exchange) and what the service's message path needs
// from around it (InboundDeps): the types of inbound.ts, apart so that the callers that only supply or stand in
// for a part (rules test, replay, the virtual service) need not import the path itself.
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import type { CompiledRule, RuleSet } from '../rules/types.js'
import type { SignalStore } from '../signals/store.js'
import type { VerdictEngine } from '../verdict/engine.js'
import type { SparkplugHost } from '../sparkplug/host.js'
import type { Journal } from '../audit/journal.js'
import type { ShadowHook, ShadowVerdict } from '../shadow/hook.js'
import type { HeldAck } from './ack-hook.js'
import type { Envelope } from './envelope.js'
import type { Publisher } from './publisher.js'
import type { RedeliveryMemory } from './redelivery.js'
import type { Response } from './response.js'

/** One message on its way to a verdict. */
export interface Exchange {
  /** The rule set it is handled with, whatever reloads happen meanwhile. */
  readonly set: RuleSet
  readonly topic: string
  readonly payload: Buffer
  /** Arrival: performance.now() for latency, epoch ms for deadlines and signal windows. */
  readonly t0: number
  readonly now: number
  readonly rule: CompiledRule | undefined
  readonly params: Record<string, string>
  /** Where the answer goes: the request's reply topic, or a streaming rule's publish topic. */
  to: string
  env: Envelope
  /** The request's dedupe key, once admitted: closed when the broker has its verdict. */
  key?: string
  /** The payload's checksum, with the key (the redelivery memory's and the audit row's). */
  sum?: number
  /** Streaming: the topic whose message was inspected. */
  triggerTopic?: string
  /** Set by the hand-off when part of the answer goes out later. */
  ack?: HeldAck
  /** The shadow set's verdict on the same message, compared once the serving verdict is out. */
  shadow?: ShadowVerdict
}

export interface InboundDeps {
  config: Config
  log: Logger
  metrics: Metrics
  signals: SignalStore
  memory: RedeliveryMemory
  publisher: Publisher
  /** The active rule set (present once the service started). */
  rules: () => RuleSet | undefined
  /** The decoder for reason rules; absent without model.dir. */
  engine?: ModelJudge
  /** Epoch ms of a message's arrival: Date.now live; `rules test` and `replay` inject their virtual clock. */
  clock?: () => number
  /** A second rule set that sees the same messages and compares its verdicts (rules.shadowDir). */
  shadow?: ShadowHook
  /** Reads Sparkplug B messages (spBv1.0/…) into signals and triggers. */
  sparkplug?: SparkplugHost
  /** Told of every verdict published (the Sparkplug edge node republishes it as DDATA). */
  onVerdict?: (res: Response, startedAt: number) => void
  /** The audit journal; absent when audit is off. */
  journal?: Journal
  /** Identity of the checkpoint (audit rows of model verdicts). */
  modelId?: string
  /** The status page's live stream: offered every published verdict while a page watches. */
  tap?: VerdictListener
}

/** Receives published responses; `active` is read first, so an idle listener costs one property read. */
export interface VerdictListener {
  readonly active: boolean
  /** `json`: the response as published; `topic`: the request's (or trigger message's) topic. */
  push(json: string, topic: string): void
}

/** What the service asks of the decoder (VerdictEngine, or the stand-in answers of `rules test`). */
export type ModelJudge = Pick<VerdictEngine, 'judge' | 'expireDue'>

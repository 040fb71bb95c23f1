// The long-running service: one MQTT connection, the active rule set, live signal windows, and the
// request → verdict → response path. Everything on the hot path is synchronous and allocation-light.
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { Server } from 'node:http'
import mqtt, { type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { Metrics } from '../metrics/metrics.js'
import { startMetricsServer } from '../metrics/server.js'
import { startEmbeddedBroker, type EmbeddedBroker } from '../broker/embedded.js'
import { clientOptions, infoTopic, statusTopic } from '../mqtt/options.js'
import { setNoDelay } from '../mqtt/nodelay.js'
import { loadRuleDir } from '../rules/load.js'
import type { CompiledRule, ErrorCode, InspectionResult, LoadResult, RuleError, RuleSet } from '../rules/types.js'
import { VerdictEngine, type ModelOutcome } from '../verdict/engine.js'
import { backendOptions } from '../model/load-backend.js'
import { SignalStore } from '../signals/store.js'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Dedupe, readSnapshot, saveSnapshot } from './dedupe.js'
import { addPayloadEnvelope, dedupeKey, envelopeFromPacket, validReplyTopic, type Envelope } from './envelope.js'
import { Outbox } from './outbox.js'
import { RuleReloader } from './reloader.js'
import { errorResult, ms, type ModelReport, type Response } from './response.js'
import { compileFilter, desiredFilters } from './subscriptions.js'
import { VERSION } from '../version.js'

export class RulesInvalidError extends Error {
  constructor(readonly errors: RuleError[]) {
    super(`rules invalid: ${errors.length} error(s)`)
  }
}

export interface DaemonOptions {
  config: Config
  logger: Logger
  metrics?: Metrics
  /** Install a SIGHUP handler that reloads the rules (the CLI does; tests call reload()). */
  handleSignals?: boolean
}

type Outcome = Omit<Response, 'latency_ms' | 'deadline_missed' | 'rules_rev' | 'node'>

/** The inbound message being handled synchronously right now: its dedupe key, and whether its answer went async. */
interface InboundContext {
  key?: string
  /** Set when the verdict is published later (model step): the broker's PUBACK then waits for it. */
  deferred?: { messageId?: number; gen: number; settled: boolean }
}

/** Passed to mqtt.js as the custom-ack "error" that withholds the PUBACK; filtered from the error log. */
const DEFER_ACK = new Error('PUBACK deferred until the verdict is published')

/** Bytes waiting in the socket above which OVERLOADED answers are dropped (and counted) instead of queued. */
const SHED_WRITE_BACKLOG = 4 << 20

/** Snapshots of the redelivery memory go to state.dir at most this often. */
const DEDUPE_SAVE_MS = 1000

export class Daemon extends EventEmitter {
  readonly metrics: Metrics
  private readonly cfg: Config
  private readonly log: Logger
  private rules?: RuleSet
  private readonly signals = new SignalStore()
  private readonly dedupe: Dedupe
  private readonly isRequestTopic: (topic: string) => boolean
  private client?: MqttClient
  /** The decoder for reason rules; present when model.dir is configured. */
  private engine?: VerdictEngine
  private broker?: EmbeddedBroker
  private metricsServer?: Server
  private reloader?: RuleReloader
  private subscribed = new Set<string>()
  private protocolVersion: 4 | 5
  private backoffMs: number
  private reconnectTimer?: NodeJS.Timeout
  private pruneTimer?: NodeJS.Timeout
  private stopping = false
  private readonly startedAt = new Date().toISOString()
  private readonly onHup = () => void this.reload('SIGHUP')
  private readonly logLimiter = new Map<string, { windowStart: number; count: number; suppressed: number }>()
  private readonly outbox: Outbox
  /** Counts connections, so that a PUBACK deferred on one connection is not sent on the next. */
  private connGen = 0
  private inbound?: InboundContext
  /** Dedupe keys of requests whose verdict is not out yet: left out of snapshots. */
  private readonly pendingKeys = new Set<string>()
  private dedupeFile?: string
  private dedupeTimer?: NodeJS.Timeout
  private dedupeDirty = false
  private dedupeSaving?: Promise<void>

  constructor(opts: DaemonOptions) {
    super()
    this.cfg = opts.config
    this.log = opts.logger
    this.metrics = opts.metrics ?? new Metrics()
    this.dedupe = new Dedupe(this.cfg.limits.dedupeWindowS * 1000, this.cfg.limits.dedupeEntries)
    this.outbox = new Outbox(this.cfg.limits.outboxSize)
    this.isRequestTopic = compileFilter(this.cfg.mqtt.requestFilter)
    this.protocolVersion = this.cfg.mqtt.url === 'embedded' ? 4 : this.cfg.mqtt.protocolVersion
    this.backoffMs = this.cfg.mqtt.reconnectMinMs
    if (opts.handleSignals) process.on('SIGHUP', this.onHup)
  }

  get rulesRev(): string | undefined {
    return this.rules?.rev
  }

  get brokerPort(): number | undefined {
    return this.broker?.port
  }

  get connected(): boolean {
    return this.client?.connected ?? false
  }

  /** Loads the rules (refusing to start on any error), then connects; connection failures are retried forever. */
  async start(): Promise<void> {
    const loadOpts = { defaultBudgetMs: this.cfg.budget.defaultMs, model: this.cfg.model.dir !== '' }
    const res = await loadRuleDir(this.cfg.rules.dir, loadOpts)
    if (!res.ok) throw new RulesInvalidError(res.errors)
    if (this.cfg.model.dir !== '') {
      const m = this.cfg.model
      this.engine = await VerdictEngine.load(
        { dir: m.dir, backend: m.backend, backendOptions: backendOptions(m), threads: m.threads, nice: m.nice, guardMs: m.guardMs, queueMax: m.queueMax, chunkTokens: m.chunkTokens, prefixCache: m.prefixCache },
        this.metrics,
        this.log,
      )
      await this.engine.prepare(res.set.rules)
      this.log.info({ dir: m.dir, backend: m.backend, layout: this.engine.backend.config.layout, params: this.engine.backend.config.param_count }, 'model loaded')
      // An onnx execution provider that failed to load (no TensorRT libraries, no GPU) was dropped: say why.
      const b = this.engine.backend as { providers?: string[]; dropped?: string[] }
      if (b.dropped?.length) this.log.warn({ providers: b.providers, dropped: b.dropped }, 'onnx execution providers dropped; running on the rest')
    }
    this.activate(res.set)
    this.log.info({ rules_rev: res.set.rev, rules: res.set.rules.map((r) => r.id), dir: this.cfg.rules.dir }, 'rules loaded')

    await this.restoreDedupe()

    // Frees the histories of signal topics that went quiet; windows themselves trim on every sample.
    this.pruneTimer = setInterval(() => this.signals.prune(Date.now()), 5000)
    this.pruneTimer.unref()

    this.reloader = new RuleReloader(this.cfg.rules.dir, loadOpts, (r, reason) => this.onReload(r, reason))
    if (this.cfg.rules.watch) this.reloader.watch()

    if (this.cfg.metrics.port > 0) {
      this.metricsServer = await startMetricsServer(this.metrics, this.cfg.metrics.host, this.cfg.metrics.port, () => ({
        ok: this.connected,
        detail: { connected: this.connected, rules_rev: this.rules?.rev ?? null, node: this.cfg.node.id },
      }))
      this.log.info({ host: this.cfg.metrics.host, port: this.cfg.metrics.port }, 'metrics endpoint listening')
    }

    let url = this.cfg.mqtt.url
    if (url === 'embedded') {
      this.broker = await startEmbeddedBroker(this.cfg.mqtt.embeddedPort)
      url = `mqtt://127.0.0.1:${this.broker.port}`
      this.log.info({ port: this.broker.port }, 'embedded MQTT 3.1.1 broker listening on 127.0.0.1')
    }
    this.connect(url)
  }

  async stop(): Promise<void> {
    this.stopping = true
    process.off('SIGHUP', this.onHup)
    clearTimeout(this.reconnectTimer)
    clearInterval(this.pruneTimer)
    this.reloader?.close()
    // Waiting model requests get their fallbacks published before the connection closes.
    if (this.engine) await this.engine.close()
    const client = this.client
    if (client) {
      if (client.connected) {
        await new Promise<void>((resolve) => client.publish(statusTopic(this.cfg.node.id), 'offline', { qos: 1, retain: true }, () => resolve()))
      }
      await client.endAsync(!client.connected)
    }
    if (this.metricsServer) await new Promise<void>((resolve) => this.metricsServer!.close(() => resolve()))
    if (this.broker) await this.broker.close()
    clearInterval(this.dedupeTimer)
    await this.saveDedupe()
    if (this.outbox.size > 0) this.log.warn({ verdicts: this.outbox.size }, 'stopped with verdicts still waiting for the broker; they are lost')
    this.log.info('stopped')
  }

  /** Reloads the rule directory; resolves true when a new set became active. */
  async reload(reason = 'request'): Promise<boolean> {
    const before = this.rules
    this.emit('reloading', reason)
    await this.reloader?.reload(reason)
    return this.rules !== before
  }

  private async onReload(res: LoadResult, reason: string): Promise<void> {
    if (res.ok && this.engine && res.set.rev !== this.rules?.rev) {
      // Prefix caches are built before the swap, so the new set serves cached from its first request.
      try {
        await this.engine.prepare(res.set.rules)
      } catch (e) {
        res = { ok: false, errors: [{ file: this.cfg.model.dir, line: 1, col: 1, message: `preparing the model prompts failed: ${(e as Error).message}` }] }
      }
    }
    if (!res.ok) {
      this.metrics.reloads.inc({ result: 'rejected' })
      for (const e of res.errors) this.log.error({ reason }, `rule reload rejected: ${e.file}:${e.line}:${e.col}: ${e.message}`)
      this.log.warn({ reason, errors: res.errors.length, rules_rev: this.rules?.rev }, 'rule reload rejected; the previous rule set keeps serving')
      this.emit('reload-failed', res.errors)
      return
    }
    if (res.set.rev === this.rules?.rev) {
      this.metrics.reloads.inc({ result: 'unchanged' })
      this.emit('reloaded', res.set.rev)
      return
    }
    this.activate(res.set)
    this.metrics.reloads.inc({ result: 'applied' })
    this.log.info({ reason, rules_rev: res.set.rev, rules: res.set.rules.map((r) => r.id) }, 'rules reloaded')
    this.syncSubscriptions()
    this.publishInfo()
    this.emit('reloaded', res.set.rev)
  }

  /** Swaps the whole set in one assignment: a message handled before it uses the old set, after it the new. */
  private activate(set: RuleSet): void {
    this.signals.configure(set.signals)
    this.rules = set
    this.metrics.rulesActive.set(set.rules.length)
  }

  private connect(url: string): void {
    const opts = clientOptions(this.cfg, this.protocolVersion)
    // MQTT 5: QoS 1 messages are handled before mqtt.js acknowledges them, so that the PUBACK of a request
    // follows its verdict (on the same connection, in order); a verdict that goes out later withholds it.
    if (this.protocolVersion === 5) opts.customHandleAcks = (topic, payload, packet, done) => this.onInbound(topic, payload, packet, done)
    const client = mqtt.connect(url, opts)
    this.client = client
    client.on('connect', () => {
      setNoDelay(client)
      this.connGen++
      this.backoffMs = this.cfg.mqtt.reconnectMinMs
      this.metrics.connected.set(1)
      this.subscribed.clear()
      this.syncSubscriptions()
      // Verdicts held while the broker was away go first, in order, before redelivered requests are read.
      const flushed = this.outbox.flush(() => client.connected, (item) => this.send(item.topic, item.payload, item.opts, item.key))
      this.metrics.outboxDepth.set(this.outbox.size)
      if (flushed > 0) this.log.info({ verdicts: flushed }, 'outbox flushed')
      client.publish(statusTopic(this.cfg.node.id), 'online', { qos: 1, retain: true })
      this.publishInfo()
      this.log.info({ url: redactUrl(url), protocol: this.protocolVersion }, 'connected to broker')
      this.emit('connected')
    })
    client.on('close', () => {
      this.metrics.connected.set(0)
      if (this.stopping) return
      clearTimeout(this.reconnectTimer)
      const delay = this.backoffMs
      this.backoffMs = Math.min(this.backoffMs * 2, this.cfg.mqtt.reconnectMaxMs)
      this.log.warn({ retry_in_ms: delay }, 'broker connection closed; reconnecting')
      this.emit('disconnected')
      this.reconnectTimer = setTimeout(() => {
        if (this.stopping) return
        this.metrics.reconnects.inc()
        // Without its stores, reconnect() starts empty ones and verdicts in flight (sent, not yet acknowledged
        // by the broker) would be lost; with them mqtt.js sends those again on the new connection.
        client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore })
      }, delay)
    })
    client.on('error', (err) => {
      if (err !== DEFER_ACK) this.log.warn({ err: err.message }, 'mqtt error')
    })
    client.on('message', (topic, payload, packet) => {
      if (this.protocolVersion === 5 && packet.qos === 1) return // handled in onInbound
      this.onMessage(topic, payload, packet)
    })
  }

  private syncSubscriptions(): void {
    const client = this.client
    if (!client?.connected) return
    const want = new Set(desiredFilters(this.rules, this.cfg.mqtt.requestFilter, this.cfg.mqtt.shareGroup))
    const add = [...want].filter((f) => !this.subscribed.has(f))
    const drop = [...this.subscribed].filter((f) => !want.has(f))
    // MQTT 5 forbids no-local on shared subscriptions; plain ones keep it (the daemon never hears itself).
    const shared = add.filter((f) => f.startsWith('$share/'))
    const plain = add.filter((f) => !f.startsWith('$share/'))
    for (const [filters, nl] of [[plain, this.protocolVersion === 5], [shared, false]] as const) {
      if (filters.length === 0) continue
      client.subscribe(filters, nl ? { qos: this.cfg.mqtt.qos, nl: true } : { qos: this.cfg.mqtt.qos }, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic)
        if (err) this.log.error({ err: err.message, filters }, 'subscribe failed')
        else if (refused.length > 0) this.log.error({ filters: refused }, 'subscription refused by the broker (ACL?)')
        else this.log.debug({ filters }, 'subscribed')
      })
    }
    if (drop.length) client.unsubscribe(drop)
    this.subscribed = want
  }

  private publishInfo(): void {
    if (!this.client?.connected || !this.rules) return
    const info = {
      node: this.cfg.node.id,
      version: VERSION,
      rules_rev: this.rules.rev,
      rules: this.rules.rules.map((r) => ({ id: r.id, mode: r.mode, topic: r.topic, budget_ms: r.budgetMs })),
      started_at: this.startedAt,
      pid: process.pid,
    }
    this.client.publish(infoTopic(this.cfg.node.id), JSON.stringify(info), { qos: 1, retain: true })
  }

  /** mqtt.js custom ack (MQTT 5): handle the message, then acknowledge now or once its verdict is out. */
  private onInbound(topic: string, payload: Buffer, packet: IPublishPacket, done: (err: Error | number, code?: number) => void): void {
    if (packet.qos !== 1) {
      done(0) // QoS 2 is handled on PUBREL through the 'message' event
      return
    }
    this.onMessage(topic, payload, packet)
    const d = this.inbound?.deferred
    this.inbound = undefined
    if (!d || d.settled) {
      done(0)
      return
    }
    d.messageId = packet.messageId
    done(DEFER_ACK)
  }

  /**
   * Called by an answer path that publishes later (the model step): returns the function to call once the
   * verdict has been handed to the broker. Until then the request is not acknowledged (MQTT 5, QoS 1), so a
   * daemon that dies meanwhile gets it redelivered, and it is left out of dedupe snapshots.
   */
  private deferAck(): () => void {
    const ctx = this.inbound
    if (!ctx) return () => {}
    const key = ctx.key
    if (key !== undefined) this.pendingKeys.add(key)
    const d: NonNullable<InboundContext['deferred']> = { gen: this.connGen, settled: false }
    ctx.deferred = d
    return () => {
      if (d.settled) return
      d.settled = true
      if (key !== undefined) this.pendingKeys.delete(key)
      const client = this.client
      if (d.messageId === undefined || d.gen !== this.connGen || !client?.connected) return // the broker redelivers it
      ;(client as unknown as { _sendPacket(p: object, cb?: () => void, cbStorePut?: () => void, noStore?: boolean): void })._sendPacket({ cmd: 'puback', messageId: d.messageId }, undefined, undefined, true)
    }
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const t0 = performance.now()
    const now = Date.now()
    const set = this.rules! // the set this message is handled with, whatever reloads happen meanwhile
    this.engine?.expireDue()
    this.inbound = {}
    try {
      const req = set.matchRequest(topic)
      if (req || this.isRequestTopic(topic)) {
        this.handleRequest(set, req, topic, payload, packet, t0, now)
        return
      }
      if (this.signals.ingest(topic, payload, now)) this.metrics.signalSamples.inc()
      const triggers = set.matchTrigger(topic)
      for (const m of triggers) this.handleStream(set, m.rule, m.params, topic, payload, t0, now)
    } catch (err) {
      this.log.error({ err, topic }, 'internal error while handling a message')
      this.metrics.errors.inc({ code: 'INTERNAL' })
    }
  }

  private handleRequest(
    set: RuleSet,
    match: { rule: CompiledRule; params: Record<string, string> } | null,
    topic: string,
    payload: Buffer,
    packet: IPublishPacket,
    t0: number,
    now: number,
  ): void {
    const env = envelopeFromPacket(packet)
    const rule = match?.rule
    const inspection = rule?.id ?? null
    // Shedding must cost less than serving: a request whose properties already show it stale is answered
    // before its payload is even parsed.
    if (env.replyTo !== undefined && (env.sentAtMs !== undefined || env.deadlineMs !== undefined) && validReplyTopic(env.replyTo)) {
      const stale = this.staleness(rule, env, undefined, now)
      if (stale !== undefined) {
        this.metrics.overloaded.inc({ inspection: inspection ?? '(unknown)' })
        this.respond(set, rule, env, env.replyTo, errorResult(inspection, { code: 'OVERLOADED', message: stale }), t0, now, false, true)
        return
      }
    }
    const parsed = this.parsePayload(payload, inspection)
    let outcome: Outcome
    if ('error' in parsed) {
      outcome = parsed.error
    } else if (!isObject(parsed.body)) {
      const b = parsed.body
      outcome = errorResult(inspection, { code: 'NOT_OBJECT', message: `payload must be a JSON object, got ${b === null ? 'null' : Array.isArray(b) ? 'an array' : typeof b}` })
    } else {
      // Only a parsed object can name a 3.1.1 reply_to or correlation, so only it can be a redelivery.
      addPayloadEnvelope(env, parsed.body)
      if (!this.answerable(env, topic)) return
      const key = dedupeKey(env)
      if (key !== undefined && this.dedupe.check(key, payload, now)) {
        this.metrics.duplicates.inc()
        this.log.debug({ topic }, 'duplicate request dropped')
        return
      }
      if (key !== undefined) {
        this.dedupeDirty = true
        // Until the broker acknowledges the answer it may still be lost (a killed process's socket buffers go
        // with it), so the key stays out of snapshots: after a restart the redelivered request is answered.
        this.pendingKeys.add(key)
        if (this.inbound) this.inbound.key = key
      }
      const stale = this.staleness(rule, env, parsed.body, now)
      if (stale !== undefined) {
        this.metrics.overloaded.inc({ inspection: inspection ?? '(unknown)' })
        this.respond(set, rule, env, env.replyTo!, errorResult(inspection, { code: 'OVERLOADED', message: stale }), t0, now, false, true)
        return
      }
      if (!match) {
        outcome = errorResult(null, { code: 'UNKNOWN_INSPECTION', message: `no inspection is served on topic ${topic}` })
        this.respond(set, rule, env, env.replyTo!, outcome, t0, now)
        return
      }
      const result = match.rule.evaluate({ topic, params: match.params, payload: parsed.body, now }, this.signals)
      this.finish(set, match.rule, match.params, env, env.replyTo!, result, t0, now)
      return
    }
    if (!this.answerable(env, topic)) return
    this.respond(set, rule, env, env.replyTo!, outcome, t0, now)
  }

  /** The payload as JSON, or the error verdict it earns (too large, not JSON). */
  private parsePayload(payload: Buffer, inspection: string | null): { body: unknown } | { error: Outcome } {
    if (payload.length > this.cfg.limits.maxPayloadBytes) {
      return { error: errorResult(inspection, { code: 'TOO_LARGE', message: `payload is ${payload.length} bytes; the limit is ${this.cfg.limits.maxPayloadBytes}` }) }
    }
    try {
      return { body: JSON.parse(payload.toString('utf8')) as unknown }
    } catch (e) {
      return { error: errorResult(inspection, { code: 'BAD_JSON', message: `payload is not JSON: ${(e as Error).message}` }) }
    }
  }

  private answerable(env: Envelope, topic: string): boolean {
    if (env.replyTo !== undefined && validReplyTopic(env.replyTo)) return true
    this.metrics.noResponseTopic.inc()
    this.metrics.errors.inc({ code: 'NO_RESPONSE_TOPIC' })
    this.limitedLog('NO_RESPONSE_TOPIC', { topic, reply_to: env.replyTo }, 'request has no usable response topic (MQTT 5 responseTopic or reply_to); not answered')
    return false
  }

  private handleStream(set: RuleSet, rule: CompiledRule, params: Record<string, string>, topic: string, payload: Buffer, t0: number, now: number): void {
    const parsed = this.parsePayload(payload, rule.id)
    let outcome: Outcome
    if ('error' in parsed) {
      outcome = parsed.error
    } else {
      // A bare value on a trigger topic is offered to rules as {value: x}, the usual sensor convention.
      const body = isObject(parsed.body) ? parsed.body : { value: parsed.body }
      const result = rule.evaluate({ topic, params, payload: body, now }, this.signals)
      this.finish(set, rule, params, {}, rule.publishTopic!(params), result, t0, now, topic)
      return
    }
    this.respond(set, rule, {}, rule.publishTopic!(params), { ...outcome, trigger_topic: topic }, t0, now)
  }

  /** Responds to an evaluated inspection; a rule with a reason step first asks the decoder, within the deadline. */
  private finish(
    set: RuleSet,
    rule: CompiledRule,
    params: Record<string, string>,
    env: Envelope,
    to: string,
    result: InspectionResult,
    t0: number,
    now: number,
    triggerTopic?: string,
  ): void {
    const { prompt, promptError, ...base } = result
    const outcome: Outcome = triggerTopic === undefined ? base : { ...base, trigger_topic: triggerTopic }
    const step = rule.reason
    if (!step || !this.engine || base.verdict === 'ERROR') {
      this.respond(set, rule, env, to, outcome, t0, now)
      return
    }
    const sev = (v: string) => rule.verdicts.indexOf(v)
    if (step.combine === 'max' && sev(base.verdict) >= Math.max(sev(step.fallback), ...step.choices.map(sev))) {
      const detail = `the checks give ${base.verdict}; no choice could make the verdict more severe`
      this.respond(set, rule, env, to, { ...outcome, model: { status: 'skipped', reason: 'decided', detail, ms: 0 } }, t0, now)
      return
    }
    if (prompt === undefined) {
      const model: ModelOutcome = { status: 'skipped', reason: 'prompt', detail: promptError ?? 'no prompt', ms: 0 }
      this.metrics.modelFallbacks.inc({ inspection: rule.id, status: 'skipped', reason: 'prompt' })
      this.respond(set, rule, env, to, this.withModel(rule, outcome, model), t0, now)
      return
    }
    const deadline = this.deadlineOf(rule, env, now)
    const explain = step.explain
    const onExplain = explain
      ? (e: { text: string; tokens: number; ms: number }) =>
          this.publishExplain(explain.render(params), env, { inspection: rule.id, text: e.text, tokens: e.tokens, ms: e.ms, ...(triggerTopic ? { trigger_topic: triggerTopic } : {}) })
      : undefined
    const ack = this.deferAck()
    this.engine.judge(rule, prompt, { deadline: t0 + (deadline - now), onExplain }, (model) => {
      try {
        // Out of time means the model missed its deadline even though the verdict itself is on time.
        const missed = model.status !== 'ok' && model.reason !== 'prompt' && model.reason !== 'decoder_error'
        this.respond(set, rule, env, to, this.withModel(rule, outcome, model), t0, now, missed)
      } catch (err) {
        this.log.error({ err, inspection: rule.id }, 'internal error while answering a model verdict')
        this.metrics.errors.inc({ code: 'INTERNAL' })
      } finally {
        ack()
      }
    })
  }

  /** The verdict with the model's part: its choice (or the fallback) combined with the checks' verdict. */
  private withModel(rule: CompiledRule, outcome: Outcome, model: ModelOutcome): Outcome {
    const step = rule.reason!
    let label = step.fallback
    let report: ModelReport = model
    let fallback = true
    if (model.status === 'ok') {
      if (model.confidence >= step.minConfidence) {
        label = model.choice
        fallback = false
      } else report = { ...model, below_min_confidence: true }
    }
    let verdict = label
    if (step.combine === 'max' && rule.verdicts.indexOf(outcome.verdict) > rule.verdicts.indexOf(label)) verdict = outcome.verdict
    return fallback ? { ...outcome, verdict, model: report, fallback: true } : { ...outcome, verdict, model: report }
  }

  /** Explanations are extras: while the broker is away they are dropped, never queued behind verdicts. */
  private publishExplain(topic: string, env: Envelope, body: Record<string, unknown>): void {
    if (!this.client?.connected) {
      this.metrics.modelExplains.inc({ result: 'dropped' })
      return
    }
    if (env.correlationId !== undefined) body.correlation_id = env.correlationId
    this.client.publish(topic, JSON.stringify(body), this.replyOptions(env))
  }

  /** QoS, and for MQTT 5 the request's correlation data and the JSON content type. */
  private replyOptions(env: Envelope): IClientPublishOptions {
    const opts: IClientPublishOptions = { qos: this.cfg.mqtt.qos }
    if (this.protocolVersion === 5) {
      opts.properties = env.correlationData ? { correlationData: env.correlationData, contentType: 'application/json' } : { contentType: 'application/json' }
    }
    return opts
  }

  /** Epoch ms by which the verdict must be out: the rule's budget, or the requester's earlier deadline. */
  private deadlineOf(rule: CompiledRule | undefined, env: Envelope, now: number): number {
    const budget = rule?.budgetMs ?? this.cfg.budget.defaultMs
    let deadline = now + budget
    // A request that says when it was sent has its budget counted from then: time queued in the broker counts.
    if (env.sentAtMs !== undefined && env.sentAtMs + budget < deadline) deadline = env.sentAtMs + budget
    return env.deadlineMs !== undefined && env.deadlineMs < deadline ? env.deadlineMs : deadline
  }

  private respond(set: RuleSet, rule: CompiledRule | undefined, env: Envelope, to: string, outcome: Outcome, t0: number, now: number, modelMissed = false, shedding = false): void {
    const deadline = this.deadlineOf(rule, env, now)
    const latency = performance.now() - t0
    const late = now + latency > deadline
    const res: Response = {
      ...outcome,
      latency_ms: ms(latency),
      deadline_missed: modelMissed || late,
      rules_rev: set.rev,
      node: this.cfg.node.id,
    }
    if (env.correlationId !== undefined) res.correlation_id = env.correlationId
    const opts = this.replyOptions(env)
    if (shedding) this.sendShed(to, JSON.stringify(res), opts)
    else this.send(to, JSON.stringify(res), opts)
    const inspection = res.inspection ?? '(unknown)'
    this.metrics.requests.inc({ inspection, verdict: res.verdict })
    this.metrics.latency.observe({ inspection }, latency / 1000)
    if (late) this.metrics.deadlineMissed.inc({ inspection })
    if (res.error) {
      this.metrics.errors.inc({ code: res.error.code })
      this.limitedLog(res.error.code, { inspection, code: res.error.code, to }, res.error.message)
    } else if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ inspection, verdict: res.verdict, latency_ms: res.latency_ms }, 'verdict')
    }
  }

  /** Publishes now, or keeps the verdict in the bounded outbox while the broker is away. */
  private send(topic: string, payload: string, opts: IClientPublishOptions, key = this.inbound?.key): void {
    const client = this.client
    if (client?.connected) {
      if (key === undefined) client.publish(topic, payload, opts)
      else if (!opts.qos) {
        client.publish(topic, payload, opts)
        this.pendingKeys.delete(key)
      } else client.publish(topic, payload, opts, () => this.pendingKeys.delete(key))
      return
    }
    // mqtt.js would queue it without bound; the outbox drops the oldest instead, and counts them.
    const done = key === undefined ? undefined : (dropped: boolean) => { if (dropped) this.pendingKeys.delete(key) }
    if (this.outbox.push({ topic, payload, opts, key, done })) this.metrics.outboxDropped.inc()
    this.metrics.outboxDepth.set(this.outbox.size)
  }

  /**
   * An OVERLOADED answer goes out at QoS 0: under overload the broker is slow to acknowledge, and thousands of
   * QoS 1 answers waiting for PUBACKs are what grew the daemon's memory. When the socket itself is backed up the
   * answer is dropped and counted; the requester's own timeout (or message expiry) covers it.
   */
  private sendShed(topic: string, payload: string, opts: IClientPublishOptions): void {
    const client = this.client
    const backlog = (client?.stream as { writableLength?: number } | undefined)?.writableLength ?? 0
    if (!client?.connected || backlog > SHED_WRITE_BACKLOG) {
      this.metrics.shedDropped.inc()
      return
    }
    client.publish(topic, payload, { ...opts, qos: 0 })
  }

  /**
   * Why a request is too old to be worth a normal verdict, or undefined. A requester that says when it sent
   * the request (`sent-at` user property or `sent_at` field, epoch ms) or by when it needs the answer
   * (`deadline-ms`) gets an immediate OVERLOADED answer once that time is gone: under overload, a fast honest
   * "no verdict" beats a judgment that arrives after the part has moved on.
   */
  private staleness(rule: CompiledRule | undefined, env: Envelope, body: Record<string, unknown> | undefined, now: number): string | undefined {
    const factor = this.cfg.limits.maxAgeFactor
    if (factor <= 0) return undefined
    if (env.deadlineMs !== undefined && env.deadlineMs <= now) return `the request's deadline passed ${now - env.deadlineMs} ms before it arrived`
    const sentAt = env.sentAtMs ?? (typeof body?.sent_at === 'number' && Number.isFinite(body.sent_at) ? body.sent_at : undefined)
    if (sentAt === undefined) return undefined
    const budget = rule?.budgetMs ?? this.cfg.budget.defaultMs
    const age = now - sentAt
    if (age > budget * factor) return `the request arrived ${Math.round(age)} ms after it was sent; the budget is ${budget} ms`
    return undefined
  }

  private async restoreDedupe(): Promise<void> {
    const dir = this.cfg.state.dir
    if (dir === '') return
    this.dedupeFile = join(dir, 'dedupe.bin')
    const snap = await readSnapshot(this.dedupeFile)
    if (snap) {
      const n = this.dedupe.restore(snap, Date.now())
      this.log.info({ entries: n, file: this.dedupeFile }, 'redelivery memory restored')
    }
    try {
      await mkdir(dir, { recursive: true, mode: 0o750 })
    } catch (e) {
      this.log.warn({ err: (e as Error).message, dir }, 'state directory unusable; redeliveries after a restart may be answered twice')
      this.dedupeFile = undefined
      return
    }
    this.dedupeTimer = setInterval(() => void this.saveDedupe(), DEDUPE_SAVE_MS)
    this.dedupeTimer.unref()
  }

  /** Writes a snapshot when something changed since the last one; one write at a time. */
  private async saveDedupe(): Promise<void> {
    if (!this.dedupeFile || !this.dedupeDirty) return
    if (this.dedupeSaving) return this.dedupeSaving
    this.dedupeDirty = false
    const file = this.dedupeFile
    this.dedupeSaving = saveSnapshot(file, this.dedupe.snapshot(Date.now(), this.pendingKeys))
      .catch((e: unknown) => { this.log.warn({ err: (e as Error).message, file }, 'saving the redelivery memory failed') })
      .finally(() => { this.dedupeSaving = undefined })
    return this.dedupeSaving
  }

  /** At most 10 lines per second per error code, so a misbehaving client cannot flood the journal. */
  private limitedLog(code: ErrorCode | 'NO_RESPONSE_TOPIC', obj: Record<string, unknown>, msg: string): void {
    const now = Date.now()
    let s = this.logLimiter.get(code)
    if (!s || now - s.windowStart >= 1000) {
      if (s?.suppressed) this.log.warn({ code, suppressed: s.suppressed }, 'similar log lines suppressed')
      s = { windowStart: now, count: 0, suppressed: 0 }
      this.logLimiter.set(code, s)
    }
    if (++s.count <= 10) this.log.warn(obj, msg)
    else s.suppressed++
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

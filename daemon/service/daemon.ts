// The long-running service: lifecycle (start, stop, reload), the MQTT session with its reconnect backoff,
// subscriptions and the status/info topics. Each message is handed to Inbound (inbound.ts), answers go out
// through Publisher (publisher.ts).
// Somewhat over 400 lines on purpose: start, stop and reload build and tear down the same set of parts (rules,
// journal, engine, listener, Sparkplug, session) in mirrored order; kept in one file so that the order reads
// in one place. Everything per message lives elsewhere.
import { EventEmitter } from 'node:events'
import type { Server } from 'node:http'
import mqtt, { type MqttClient } from 'mqtt'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { Metrics } from '../metrics/metrics.js'
import { startMetricsServer } from '../metrics/server.js'
import { startEmbeddedBroker, type EmbeddedBroker } from '../broker/embedded.js'
import { clientOptions, infoTopic, statusTopic } from '../mqtt/options.js'
import { setNoDelay } from '../mqtt/nodelay.js'
import { writeWholePackets } from '../mqtt/whole-packets.js'
import { installFastParse } from '../mqtt/packet-parse.js'
import { isShared } from '../mqtt/topic-filter.js'
import { loadRuleDir } from '../rules/load.js'
import type { LoadResult, RuleError, RuleSet } from '../rules/types.js'
import { VerdictEngine } from '../verdict/engine.js'
import { backendOptions } from '../model/load-backend.js'
import { SignalStore } from '../signals/store.js'
import { Journal } from '../audit/journal.js'
import { modelIdentity } from '../audit/model-id.js'
import { AckHook } from './ack-hook.js'
import { Inbound } from './inbound.js'
import { Publisher } from './publisher.js'
import { RedeliveryMemory } from './redelivery.js'
import { RuleReloader } from './reloader.js'
import { ShadowRules } from '../shadow/shadow.js'
import { desiredFilters } from './subscriptions.js'
import { VERSION } from '../version.js'
import { basicAuth } from '../view/auth.js'
import type { VerdictSource } from '../view/journal.js'
import { AuditSource } from '../view/audit-source.js'
import { View, type ViewStatus } from '../view/server.js'
import { StatsSampler } from '../view/stats.js'
import { VerdictTap } from '../view/tap.js'
import { SparkplugHost } from '../sparkplug/host.js'
import { EdgeNode } from '../sparkplug/edge-node.js'

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
  /** Past verdicts for the status page's search (GET /api/verdicts); default: the audit journal when there is one. */
  verdictSource?: VerdictSource
  /** Epoch ms of a message's arrival (default Date.now); tests record what the daemon saw. */
  clock?: () => number
}

export class Daemon extends EventEmitter {
  readonly metrics: Metrics
  private readonly cfg: Config
  private readonly log: Logger
  private readonly clock: () => number
  private rules?: RuleSet
  private readonly signals = new SignalStore()
  private readonly memory: RedeliveryMemory
  private readonly publisher: Publisher
  private readonly acks = new AckHook(() => this.client)
  private inbound?: Inbound
  private sparkplug?: SparkplugHost
  /** Present with sparkplug.enabled: flashcheck's own Sparkplug edge node session. */
  private edge?: EdgeNode
  private journal?: Journal
  private client?: MqttClient
  /** True from the client's 'connect' event (its store resent) until 'close'. */
  private sessionReady = false
  /** Counts connections, so that a SUBACK of an old one does not announce the current one. */
  private connections = 0
  /** The decoder for reason rules; present when model.dir is configured. */
  private engine?: VerdictEngine
  private broker?: EmbeddedBroker
  private metricsServer?: Server
  private tap?: VerdictTap
  private sampler?: StatsSampler
  private verdictSource?: VerdictSource
  private auditSource?: AuditSource
  private reloader?: RuleReloader
  private shadow?: ShadowRules
  private shadowReloader?: RuleReloader
  private subscribed = new Set<string>()
  private readonly protocolVersion: 4 | 5
  private backoffMs: number
  private reconnectTimer?: NodeJS.Timeout
  private pruneTimer?: NodeJS.Timeout
  private stopping = false
  private readonly startedAt = new Date().toISOString()
  private readonly onHup = () => void this.reload('SIGHUP')

  constructor(opts: DaemonOptions) {
    super()
    this.cfg = opts.config
    this.clock = opts.clock ?? Date.now
    this.log = opts.logger
    this.metrics = opts.metrics ?? new Metrics()
    this.memory = new RedeliveryMemory(this.cfg.limits.dedupeWindowS * 1000, this.cfg.limits.dedupeEntries, this.log)
    this.protocolVersion = this.cfg.mqtt.url === 'embedded' ? 4 : this.cfg.mqtt.protocolVersion
    this.publisher = new Publisher(
      // Verdicts go to the client only once its session is ready: between CONNACK and mqtt.js's 'connect'
      // event it resends the previous connection's unacknowledged messages one round trip at a time and
      // queues new ones where a broker restart meanwhile drops them; until then they wait in the outbox.
      () => (this.sessionReady ? this.client : undefined),
      {
        qos: this.cfg.mqtt.qos, protocolVersion: this.protocolVersion, outboxSize: this.cfg.limits.outboxSize, closeKey: this.memory.closeKey,
        durable: {
          add: (id, topic, payload, cd, qos) => this.journal?.outboxAdd(id, topic, payload, cd, qos, this.cfg.limits.outboxSize),
          remove: (seq) => this.journal?.outboxRemove(seq),
        },
      },
      this.metrics,
    )
    this.backoffMs = this.cfg.mqtt.reconnectMinMs
    this.verdictSource = opts.verdictSource
    this.metrics.info.set({ node: this.cfg.node.id, version: VERSION }, 1)
    if (this.cfg.metrics.port > 0 && this.cfg.metrics.page) this.tap = new VerdictTap()
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
    // The broker credentials and certificates first: an unreadable file stops the start before anything
    // (model, journal, state directory) is touched.
    clientOptions(this.cfg, this.protocolVersion)
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
    if (this.cfg.rules.shadowDir !== '') {
      const shadow = (this.shadow = new ShadowRules(this.cfg.rules.shadowDir, loadOpts, this.metrics, this.log, this.clock))
      await shadow.load()
      this.shadowReloader = new RuleReloader(shadow.dir, shadow.loadOptions, (r) => void shadow.apply(r))
      if (this.cfg.rules.watch) this.shadowReloader.watch()
    }

    this.sparkplug = new SparkplugHost({
      log: this.log,
      metrics: this.metrics,
      signals: this.signals,
      maxPayloadBytes: this.cfg.limits.maxPayloadBytes,
      publish: (topic, payload) => {
        if (!this.client?.connected) return false
        this.client.publish(topic, Buffer.from(payload), { qos: 0, retain: false })
        return true
      },
    })
    if (this.cfg.sparkplug.enabled) this.edge = new EdgeNode({ config: this.cfg, log: this.log, metrics: this.metrics, version: VERSION, rules: () => this.rules })
    const edge = this.edge
    const journal = this.openJournal()
    this.inbound = new Inbound({
      sparkplug: this.sparkplug,
      onVerdict: edge ? (res, startedAt) => edge.verdict(res, startedAt) : undefined,
      config: this.cfg,
      log: this.log,
      metrics: this.metrics,
      signals: this.signals,
      memory: this.memory,
      publisher: this.publisher,
      rules: () => this.rules,
      engine: this.engine,
      tap: this.tap,
      clock: this.clock,
      shadow: this.shadow,
      journal,
      modelId: this.cfg.model.dir !== '' ? await modelIdentity(this.cfg.model.dir) : undefined,
    })
    if (journal?.open) this.restoreFromJournal(journal)
    else await this.memory.restore(this.cfg.state.dir)
    if (journal && this.verdictSource === undefined) this.verdictSource = this.auditSource = new AuditSource(journal.file, () => journal.settled(500))

    // Frees the histories of signal topics that went quiet; windows themselves trim on every sample.
    this.pruneTimer = setInterval(() => this.signals.prune(Date.now()), 5000)
    this.pruneTimer.unref()

    this.reloader = new RuleReloader(this.cfg.rules.dir, loadOpts, (r, reason) => this.onReload(r, reason))
    if (this.cfg.rules.watch) this.reloader.watch()

    if (this.cfg.metrics.port > 0) {
      const auth = basicAuth(this.cfg.metrics.user, this.cfg.metrics.passwordFile)
      let view: View | undefined
      if (this.tap) {
        this.sampler = new StatsSampler(this.metrics)
        await this.sampler.start()
        view = new View({ status: () => this.viewStatus(), sampler: this.sampler, tap: this.tap, journal: this.verdictSource })
      }
      this.metricsServer = await startMetricsServer(this.metrics, this.cfg.metrics.host, this.cfg.metrics.port, () => ({
        ok: this.connected,
        detail: { connected: this.connected, rules_rev: this.rules?.rev ?? null, node: this.cfg.node.id },
      }), { auth, extra: view ? (req, res) => view.handle(req, res) : undefined })
      this.log.info({ host: this.cfg.metrics.host, port: this.cfg.metrics.port }, 'metrics endpoint listening')
    }

    let url = this.cfg.mqtt.url
    if (url === 'embedded') {
      this.broker = await startEmbeddedBroker(this.cfg.mqtt.embeddedPort)
      url = `mqtt://127.0.0.1:${this.broker.port}`
      this.log.info({ port: this.broker.port }, 'embedded MQTT 3.1.1 broker listening on 127.0.0.1')
    }
    this.connect(url)
    this.edge?.start(url)
  }

  /** The Sparkplug edge node (sparkplug.enabled), for status and tests. */
  get sparkplugEdge(): EdgeNode | undefined {
    return this.edge
  }

  async stop(): Promise<void> {
    this.stopping = true
    process.off('SIGHUP', this.onHup)
    clearTimeout(this.reconnectTimer)
    clearInterval(this.pruneTimer)
    this.reloader?.close()
    this.shadowReloader?.close()
    this.shadow?.close()
    // Waiting model requests get their fallbacks published before the connection closes.
    if (this.engine) await this.engine.close()
    await this.edge?.stop()
    const client = this.client
    if (client) {
      if (client.connected) {
        await new Promise<void>((resolve) => client.publish(statusTopic(this.cfg.node.id), 'offline', { qos: 1, retain: true }, () => resolve()))
      }
      await client.endAsync(!client.connected)
    }
    this.sampler?.stop()
    this.tap?.close()
    this.auditSource?.close()
    if (this.metricsServer) {
      this.metricsServer.closeAllConnections()
      await new Promise<void>((resolve) => this.metricsServer!.close(() => resolve()))
    }
    if (this.broker) await this.broker.close()
    await this.memory.close()
    const durable = this.journal?.open ?? false
    await this.journal?.close()
    const waiting = this.publisher.waiting
    if (waiting > 0 && durable) this.log.warn({ verdicts: waiting }, 'stopped with verdicts still waiting for the broker; kept in the audit journal, they go out after the next start')
    else if (waiting > 0) this.log.warn({ verdicts: waiting }, 'stopped with verdicts still waiting for the broker; they are lost')
    this.log.info('stopped')
  }

  /** The audit journal in state.dir, when audit is on; it keeps trying to open if it cannot now. */
  private openJournal(): Journal | undefined {
    if (!this.cfg.audit.enabled || this.cfg.state.dir === '') return undefined
    this.journal = new Journal(this.cfg.state.dir, this.cfg.audit, this.log, this.metrics)
    this.journal.start()
    return this.journal
  }

  /**
   * With the journal open it replaces the dedupe.bin snapshot: its rows are written before each verdict goes
   * out, so they include requests a killed process answered but never acknowledged, which the snapshot
   * (saved once a second, open requests left out) cannot know. Verdicts left in the durable outbox are queued.
   */
  private restoreFromJournal(journal: Journal): void {
    const now = Date.now()
    let keys = 0
    for (const k of journal.recentKeys(now - this.cfg.limits.dedupeWindowS * 1000)) {
      this.memory.remember(k.key, k.sum, k.at)
      keys++
    }
    const pending = journal.outboxPending()
    for (const row of pending) {
      const opts = this.publisher.replyOptions(row.correlation_data ? { correlationData: row.correlation_data } : {})
      opts.qos = row.qos as 0 | 1 | 2
      this.publisher.restore(row.topic, row.payload, opts, row.seq)
    }
    this.log.info({ requests: keys, outbox: pending.length, file: journal.file }, 'redelivery memory and outbox restored from the audit journal')
  }

  /** Reloads the rule directory; resolves true when a new set became active. */
  async reload(reason = 'request'): Promise<boolean> {
    const before = this.rules
    this.emit('reloading', reason)
    await this.reloader?.reload(reason)
    await this.shadowReloader?.reload(reason)
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
    this.edge?.rulesChanged(res.set)
    this.emit('reloaded', res.set.rev)
  }

  /** Swaps the whole set in one assignment: a message handled before it uses the old set, after it the new. */
  private activate(set: RuleSet): void {
    this.signals.configure(set.signals)
    this.rules = set
    this.metrics.rulesActive.set(set.rules.length)
    this.metrics.budget.reset()
    for (const r of set.rules) this.metrics.budget.set({ inspection: r.id }, r.budgetMs / 1000)
  }

  /** The status page's header and the inspections it lists. */
  private viewStatus(): ViewStatus {
    const m = this.cfg.model
    const b = this.engine?.backend.config
    const err = this.engine?.lastError
    return {
      node: this.cfg.node.id,
      version: VERSION,
      started_at: this.startedAt,
      broker: this.connected ? 'connected' : 'disconnected',
      rules_rev: this.rules?.rev ?? null,
      inspections: (this.rules?.rules ?? []).map((r) => ({ id: r.id, mode: r.mode, topic: r.topic, budget_ms: r.budgetMs, verdicts: r.verdicts })),
      model: m.dir === '' ? null : {
        backend: m.backend,
        quant: m.quantize !== 'none' ? m.quantize : b?.weight_dtype ?? 'unknown',
        isa: b?.isa ?? 'unknown',
        loaded: this.engine !== undefined,
        queue_depth: this.engine?.queueDepth ?? 0,
        last_error: err ? { at: new Date(err.at).toISOString(), inspection: err.inspection, detail: err.detail } : null,
      },
      outbox_depth: this.publisher.waiting,
    }
  }

  private connect(url: string): void {
    const opts = clientOptions(this.cfg, this.protocolVersion)
    // Requests and PUBACKs are read straight from the socket's chunks (the same packets as mqtt-packet's).
    installFastParse()
    const client = mqtt.connect(url, opts)
    this.client = client
    writeWholePackets(client)
    // Every message is handled before mqtt.js acknowledges it (MQTT 3.1.1 and 5), so that the PUBACK of a
    // request follows its verdict (on the same connection, in order); a verdict that goes out later withholds it.
    this.acks.install(client, this.inbound!.handle)
    client.on('connect', () => {
      this.sessionReady = true
      setNoDelay(client)
      this.backoffMs = this.cfg.mqtt.reconnectMinMs
      this.metrics.connected.set(1)
      this.subscribed.clear()
      // Sparkplug births seen on the old connection may be stale: data is trusted again after new ones.
      this.sparkplug?.reset()
      // Connected means serving: announced (log line, 'connected', systemd READY) once the broker has granted
      // the subscriptions, so that a request sent after it is never published to a broker that has no
      // subscriber for it yet.
      const conn = ++this.connections
      this.syncSubscriptions(() => {
        if (conn !== this.connections || !client.connected) return
        this.log.info({ url: redactUrl(url), protocol: this.protocolVersion }, 'connected to broker')
        this.emit('connected')
      })
      // Verdicts held while the broker was away go first, in order, before redelivered requests are read.
      const flushed = this.publisher.flush()
      if (flushed > 0) this.log.info({ verdicts: flushed }, 'outbox flushed')
      client.publish(statusTopic(this.cfg.node.id), 'online', { qos: 1, retain: true })
      this.publishInfo()
    })
    client.on('close', () => {
      this.sessionReady = false
      this.acks.disconnected()
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
      this.log.warn({ err: err.message }, 'mqtt error')
    })
  }

  /** Subscribes to what the rules need and drops the rest; `done` runs once the broker answered every SUBSCRIBE. */
  private syncSubscriptions(done?: () => void): void {
    const client = this.client
    if (!client?.connected) return
    const want = new Set(desiredFilters(this.rules, this.cfg.mqtt.requestFilter, this.cfg.mqtt.shareGroup))
    const add = [...want].filter((f) => !this.subscribed.has(f))
    const drop = [...this.subscribed].filter((f) => !want.has(f))
    // MQTT 5 forbids no-local on shared subscriptions; plain ones keep it (the daemon never hears itself).
    const shared = add.filter(isShared)
    const plain = add.filter((f) => !isShared(f))
    const groups = ([[plain, this.protocolVersion === 5], [shared, false]] as const).filter(([filters]) => filters.length > 0)
    let answers = groups.length
    for (const [filters, nl] of groups) {
      client.subscribe(filters, nl ? { qos: this.cfg.mqtt.qos, nl: true } : { qos: this.cfg.mqtt.qos }, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic)
        if (err) this.log.error({ err: err.message, filters }, 'subscribe failed')
        else if (refused.length > 0) this.log.error({ filters: refused }, 'subscription refused by the broker (ACL?)')
        else this.log.debug({ filters }, 'subscribed')
        if (--answers === 0) done?.()
      })
    }
    if (drop.length) client.unsubscribe(drop)
    this.subscribed = want
    if (groups.length === 0) done?.()
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
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

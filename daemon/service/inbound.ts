// One inbound message's path through the service. A request becomes an Exchange carried through named
// stages, in this order:
//   envelope → early shed → parse → admission (answerable, dedupe, staleness) → evaluate → hand-off → reply
// A trigger message (streaming rules) takes evaluate → hand-off → reply once per matching rule; any other
// message is a signal sample. Everything a message needs travels in its Exchange: Inbound itself holds only
// long-lived collaborators, so a verdict published later (the model step) answers with its own request's
// correlation and dedupe key, whatever was handled meanwhile.
import { performance } from 'node:perf_hooks'
import type { IPublishPacket } from 'mqtt'
import { LogLimiter } from '../log/limiter.js'
import { compileFilter } from '../mqtt/topic-filter.js'
import type { InspectionResult, RuleSet } from '../rules/types.js'
import { passLabel } from '../rules/pass-label.js'
import { decidedByChecks, modelMissedDeadline, withModel } from '../verdict/combine.js'
import type { ModelOutcome } from '../verdict/outcome.js'
import { isSparkplugTopic } from '../sparkplug/topic.js'
import type { Journal } from '../audit/journal.js'
import { auditRecord, isoTime, traceValue, verdictId } from '../audit/record.js'
import { HeldAck } from './ack-hook.js'
import { deadlineOf, staleness } from './admission.js'
import { addPayloadEnvelope, dedupeKey, envelopeFromPacket, validReplyTopic, type Envelope } from './envelope.js'
import { checksum } from './dedupe.js'
import { errorResult, ms, type Outcome, type Response } from './response.js'
import { shapedResponseJson } from './response-shape.js'
import { FirstPassCounter } from '../metrics/first-pass.js'
import type { Exchange, InboundDeps } from './exchange.js'

interface ReplyOptions {
  /** The model missed its deadline although the verdict itself is on time. */
  modelMissed?: boolean
  /** Answer at QoS 0, or drop when the socket is backed up (overload shedding). */
  shed?: boolean
}

const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>
const NO_ENVELOPE: Envelope = Object.freeze({})
const PLAIN: ReplyOptions = {}
const SHED: ReplyOptions = { shed: true }

export class Inbound {
  private readonly isRequestTopic: (topic: string) => boolean
  private readonly limited: LogLimiter
  private readonly clock: () => number
  private readonly firstPass: FirstPassCounter

  constructor(private readonly d: InboundDeps) {
    this.firstPass = new FirstPassCounter(d.metrics.partCounts)
    this.isRequestTopic = compileFilter(d.config.mqtt.requestFilter)
    this.limited = new LogLimiter(d.log)
    this.clock = d.clock ?? Date.now
  }

  /** Handles one message; returns its HeldAck when part of its answer goes out after this returns. */
  readonly handle = (topic: string, payload: Buffer, packet: IPublishPacket): HeldAck | undefined => {
    const t0 = performance.now()
    const now = this.clock()
    const set = this.d.rules()!
    // Timers cannot fire while a burst of messages holds the event loop: settle what is due first.
    this.d.engine?.expireDue()
    try {
      if (this.d.sparkplug !== undefined && isSparkplugTopic(topic)) return this.sparkplugMessage(set, topic, payload, t0, now)
      const req = set.matchRequest(topic)
      if (req || this.isRequestTopic(topic)) {
        const ex: Exchange = { set, topic, payload, t0, now, rule: req?.rule, params: req?.params ?? NO_PARAMS, to: '', env: envelopeFromPacket(packet) }
        this.request(ex)
        return ex.ack
      }
      if (this.d.signals.ingest(topic, payload, now)) this.d.metrics.signalSamples.inc()
      this.d.shadow?.sample(topic, payload, now)
      let ack: HeldAck | undefined
      for (const m of set.matchTrigger(topic)) {
        const ex: Exchange = { set, topic, payload, t0, now, rule: m.rule, params: m.params, to: m.rule.publishTopic!(m.params), env: NO_ENVELOPE, triggerTopic: topic, ack }
        this.trigger(ex)
        ack = ex.ack
      }
      return ack
    } catch (err) {
      this.d.log.error({ err, topic }, 'internal error while handling a message')
      this.d.metrics.errors.inc({ code: 'INTERNAL' })
      return undefined
    }
  }

  /** A Sparkplug B message: samples go to the signal store; each metric a streaming rule names triggers it. */
  private sparkplugMessage(set: RuleSet, topic: string, payload: Buffer, t0: number, now: number): HeldAck | undefined {
    let ack: HeldAck | undefined
    for (const e of this.d.sparkplug!.handle(topic, payload, now, set)) {
      const ex: Exchange = { set, topic, payload, t0, now, rule: e.rule, params: e.params, to: e.rule.publishTopic!(e.params), env: NO_ENVELOPE, triggerTopic: topic, ack }
      this.handOff(ex, this.evaluate(ex, e.payload))
      ack = ex.ack
    }
    return ack
  }

  // ── request stages ────────────────────────────────────────────────────────────────────────────────────

  private request(ex: Exchange): void {
    if (this.shedEarly(ex)) return
    const body = this.parse(ex)
    if (body === undefined || !this.admit(ex, body)) return
    if (!ex.rule) {
      this.reply(ex, errorResult(null, { code: 'UNKNOWN_INSPECTION', message: `no inspection is served on topic ${ex.topic}` }))
      return
    }
    this.handOff(ex, this.evaluate(ex, body))
  }

  /** Shedding must cost less than serving: a request whose properties already show it stale is answered before its payload is parsed. */
  private shedEarly(ex: Exchange): boolean {
    const env = ex.env
    if (env.replyTo === undefined || (env.sentAtMs === undefined && env.deadlineMs === undefined) || !validReplyTopic(env.replyTo)) return false
    const stale = staleness(this.budgetOf(ex), this.d.config.limits.maxAgeFactor, env, undefined, ex.now)
    if (stale === undefined) return false
    ex.to = env.replyTo
    this.overloaded(ex, stale)
    return true
  }

  /** The payload as a JSON object; anything else is answered with its error verdict (when answerable) and gives undefined. */
  private parse(ex: Exchange): Record<string, unknown> | undefined {
    const inspection = ex.rule?.id ?? null
    const parsed = parsePayload(ex.payload, this.d.config.limits.maxPayloadBytes, inspection)
    if ('body' in parsed && isObject(parsed.body)) return parsed.body
    let error: Outcome
    if ('error' in parsed) error = parsed.error
    else {
      const b = parsed.body
      error = errorResult(inspection, { code: 'NOT_OBJECT', message: `payload must be a JSON object, got ${b === null ? 'null' : Array.isArray(b) ? 'an array' : typeof b}` })
    }
    if (this.answerable(ex)) this.reply(ex, error)
    return undefined
  }

  /** Where to answer, whether it was answered already, whether it is too old: false when the stage answered (or dropped) it. */
  private admit(ex: Exchange, body: Record<string, unknown>): boolean {
    // Only a parsed object can name a 3.1.1 reply_to or correlation, so only it can be a redelivery.
    addPayloadEnvelope(ex.env, body)
    if (!this.answerable(ex)) return false
    const key = dedupeKey(ex.env)
    if (key !== undefined) {
      const sum = checksum(ex.payload)
      const answeredAt = this.d.memory.seenAt(key, sum, ex.now)
      if (answeredAt >= 0) {
        this.d.metrics.duplicates.inc()
        // Answered before (by this process or one that was killed): the journal has the verdict as it went
        // out, and it goes out again unchanged, unless it still waits in the durable outbox (which sends it).
        // Not yet written means it is still on its way: dropped.
        const journal = this.d.journal
        if (journal?.open) this.answerAgain(ex, journal, key, sum, answeredAt)
        else this.d.log.debug({ topic: ex.topic }, 'duplicate request dropped')
        return false
      }
      ex.key = key
      ex.sum = sum
    }
    const stale = staleness(this.budgetOf(ex), this.d.config.limits.maxAgeFactor, ex.env, body, ex.now)
    if (stale === undefined) return true
    this.overloaded(ex, stale)
    return false
  }

  /**
   * A redelivered request gets its stored verdict again once the journal's rows so far are in the database
   * (a few milliseconds); its PUBACK waits for that answer.
   */
  private answerAgain(ex: Exchange, journal: Journal, key: string, sum: number, answeredAt: number): void {
    const release = (ex.ack ??= new HeldAck()).hold()
    const to = ex.to
    const opts = this.d.publisher.replyOptions(ex.env)
    const topic = ex.topic
    void journal.settled().then(() => {
      try {
        const stored = journal.lookup(key, sum, answeredAt)
        if (stored !== undefined && !stored.waiting) {
          this.d.publisher.send(to, stored.response, opts)
          this.d.log.debug({ topic }, 'duplicate request answered from the audit journal')
        } else this.d.log.debug({ topic, waiting: stored?.waiting ?? false }, 'duplicate request dropped')
      } finally {
        release()
      }
    })
  }

  private answerable(ex: Exchange): boolean {
    const replyTo = ex.env.replyTo
    if (replyTo !== undefined && validReplyTopic(replyTo)) {
      ex.to = replyTo
      return true
    }
    this.d.metrics.noResponseTopic.inc()
    this.d.metrics.errors.inc({ code: 'NO_RESPONSE_TOPIC' })
    this.limited.warn('NO_RESPONSE_TOPIC', { topic: ex.topic, reply_to: replyTo }, 'request has no usable response topic (MQTT 5 responseTopic or reply_to); not answered')
    return false
  }

  private overloaded(ex: Exchange, why: string): void {
    const inspection = ex.rule?.id ?? null
    this.d.metrics.overloaded.inc({ inspection: inspection ?? '(unknown)' })
    this.reply(ex, errorResult(inspection, { code: 'OVERLOADED', message: why }), SHED)
  }

  // ── trigger (streaming) stages ────────────────────────────────────────────────────────────────────────

  private trigger(ex: Exchange): void {
    const parsed = parsePayload(ex.payload, this.d.config.limits.maxPayloadBytes, ex.rule!.id)
    if ('error' in parsed) {
      this.reply(ex, parsed.error)
      return
    }
    // A bare value on a trigger topic is offered to rules as {value: x}, the usual sensor convention.
    this.handOff(ex, this.evaluate(ex, isObject(parsed.body) ? parsed.body : { value: parsed.body }))
  }

  // ── shared stages ─────────────────────────────────────────────────────────────────────────────────────

  private evaluate(ex: Exchange, payload: Record<string, unknown>): InspectionResult {
    const result = ex.rule!.evaluate({ topic: ex.topic, params: ex.params, payload, now: ex.now }, this.d.signals)
    if (this.d.shadow) ex.shadow = this.d.shadow.evaluate(ex.rule!, ex.topic, payload, ex.now, ex.triggerTopic !== undefined, result)
    return result
  }

  /** Replies with the checks' verdict, or first asks the decoder (reason rules), within the deadline. */
  private handOff(ex: Exchange, result: InspectionResult): void {
    // The reply copies the fields a response has; the prompt stays behind.
    const outcome: Outcome = result
    const prompt = result.prompt
    const rule = ex.rule!
    const step = rule.reason
    const engine = this.d.engine
    if (!step || !engine || result.verdict === 'ERROR') return this.reply(ex, outcome)
    const decided = decidedByChecks(rule, result.verdict)
    if (decided !== undefined) return this.reply(ex, { ...outcome, model: { status: 'skipped', reason: 'decided', detail: decided, ms: 0 } })
    if (prompt === undefined) {
      const model: ModelOutcome = { status: 'skipped', reason: 'prompt', detail: result.promptError ?? 'no prompt', ms: 0 }
      this.d.metrics.modelFallbacks.inc({ inspection: rule.id, status: 'skipped', reason: 'prompt' })
      return this.reply(ex, withModel(rule, outcome, model))
    }
    const deadline = deadlineOf(this.budgetOf(ex), ex.env, ex.now)
    const explain = step.explain
    const onExplain = explain
      ? (e: { text: string; tokens: number; ms: number }) =>
          this.d.publisher.explain(explain.render(ex.params), ex.env, { inspection: rule.id, text: e.text, tokens: e.tokens, ms: e.ms, ...(ex.triggerTopic ? { trigger_topic: ex.triggerTopic } : {}) })
      : undefined
    // Until the verdict is handed to the broker the request is not acknowledged (QoS 1).
    const release = (ex.ack ??= new HeldAck()).hold()
    engine.judge(rule, prompt, { deadline: ex.t0 + (deadline - ex.now), onExplain }, (model) => {
      try {
        const out = withModel(rule, outcome, model)
        // A choice below min_confidence falls back too; the engine counted the others (no choice at all).
        if (out.fallback === true && model.status === 'ok') this.d.metrics.modelFallbacks.inc({ inspection: rule.id, status: 'ok', reason: 'low_confidence' })
        this.reply(ex, out, { modelMissed: modelMissedDeadline(model) })
      } catch (err) {
        this.d.log.error({ err, inspection: rule.id }, 'internal error while answering a model verdict')
        this.d.metrics.errors.inc({ code: 'INTERNAL' })
      } finally {
        release()
      }
    })
  }

  /** The last stage: the response with its timing and provenance, published with the exchange's key. */
  private reply(ex: Exchange, outcome: Outcome, o: ReplyOptions = PLAIN): void {
    const deadline = deadlineOf(this.budgetOf(ex), ex.env, ex.now)
    const latency = performance.now() - ex.t0
    const late = ex.now + latency > deadline
    // One literal of a fixed shape, then the optional fields: cheaper than spreading the outcome (hot path).
    const res: Response = {
      verdict_id: verdictId(ex.now),
      ts: isoTime(ex.now),
      inspection: outcome.inspection,
      verdict: outcome.verdict,
      checks: outcome.checks,
      inputs: outcome.inputs,
      latency_ms: ms(latency),
      deadline_missed: (o.modelMissed ?? false) || late,
      rules_rev: ex.set.rev,
      node: this.d.config.node.id,
    }
    if (ex.env.correlationId !== undefined) res.correlation_id = ex.env.correlationId
    const trace = traceValue(outcome.inputs, ex.rule?.trace)
    if (trace !== undefined) res.trace = trace
    if (outcome.error !== undefined) res.error = outcome.error
    if (ex.triggerTopic !== undefined) res.trigger_topic = ex.triggerTopic
    if (outcome.model !== undefined) res.model = outcome.model
    if (outcome.fallback !== undefined) res.fallback = outcome.fallback
    if (ex.shadow) this.d.shadow!.compare(ex.shadow, res)
    const publisher = this.d.publisher
    const opts = publisher.replyOptions(ex.env)
    const json = shapedResponseJson(ex.rule, res)
    const to = ex.to
    const key = ex.key
    const journal = this.d.journal
    if (journal?.open) {
      // The verdict goes out once its row is written, and the request's PUBACK after it: a daemon killed in
      // between leaves a redelivery that the journal answers with this very verdict.
      const release = (ex.ack ??= new HeldAck()).hold()
      const rec = auditRecord(res, json, {
        requestTopic: ex.triggerTopic ?? ex.topic, responseTopic: to, correlationData: ex.env.correlationData, correlationId: ex.env.correlationId,
        dedupeKey: key, payloadSum: ex.sum, modelId: this.d.modelId,
      })
      journal.append(rec, () => {
        try {
          if (o.shed) publisher.shed(to, json, opts, key)
          else publisher.send(to, json, opts, key, res.verdict_id)
        } finally {
          release()
        }
      })
    } else if (o.shed) publisher.shed(to, json, opts, key)
    else publisher.send(to, json, opts, key)
    this.d.onVerdict?.(res, ex.now)
    const tap = this.d.tap
    if (tap !== undefined && tap.active) tap.push(json, ex.triggerTopic ?? ex.topic)
    const m = this.d.metrics
    const inspection = res.inspection ?? '(unknown)'
    m.verdicts.record(inspection, res.verdict, latency / 1000)
    // An error verdict (bad payload, overload) inspected no part.
    if (res.verdict !== 'ERROR') this.firstPass.record(inspection, res.trace, res.verdict === passLabel(ex.rule?.verdicts))
    if (late) m.deadlineMissed.inc({ inspection })
    if (res.error) {
      m.errors.inc({ code: res.error.code })
      this.limited.warn(res.error.code, { inspection, code: res.error.code, to: ex.to }, res.error.message)
    } else if (this.d.log.isLevelEnabled('debug')) {
      this.d.log.debug({ inspection, verdict: res.verdict, latency_ms: res.latency_ms }, 'verdict')
    }
  }

  private budgetOf(ex: Exchange): number {
    return ex.rule?.budgetMs ?? this.d.config.budget.defaultMs
  }
}

/** The payload as JSON, or the error verdict it earns (too large, not JSON). */
function parsePayload(payload: Buffer, max: number, inspection: string | null): { body: unknown } | { error: Outcome } {
  if (payload.length > max) return { error: errorResult(inspection, { code: 'TOO_LARGE', message: `payload is ${payload.length} bytes; the limit is ${max}` }) }
  try {
    return { body: JSON.parse(payload.toString('utf8')) as unknown }
  } catch (e) {
    return { error: errorResult(inspection, { code: 'BAD_JSON', message: `payload is not JSON: ${(e as Error).message}` }) }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

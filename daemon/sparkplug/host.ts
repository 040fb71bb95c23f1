// flashcheck as a reader of Sparkplug B: every message under spBv1.0/ is decoded, applied to the per-node
// birth/alias state (host-state.ts), and its metrics become signal samples and trigger events. A node whose
// state is unknown (data without a birth, a seq gap, an unknown alias) is asked for a rebirth, at most once
// per node per 5 s. Malformed messages are counted and logged; nothing here throws to the caller.
import { LogLimiter } from '../log/limiter.js'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import type { CompiledRule, RuleSet } from '../rules/types.js'
import type { SignalStore } from '../signals/store.js'
import { decodePayload, encodePayload, numericValue, SparkplugDecodeError, type Metric } from './codec.js'
import { HostState, type RebirthReason } from './host-state.js'
import { sparkplugMetrics, type SparkplugMetrics } from './metrics.js'
import { DataType } from './schema.js'
import { nodeTopic, parseTopic } from './topic.js'

export const REBIRTH_INTERVAL_MS = 5000

export interface SparkplugTriggerEvent {
  rule: CompiledRule
  params: Record<string, string>
  /** What the rule sees as `payload`: {value, metric, timestamp, datatype}. */
  payload: Record<string, unknown>
}

export interface SparkplugHostDeps {
  log: Logger
  metrics: Metrics
  signals: SignalStore
  maxPayloadBytes: number
  /** Publishes a command (QoS 0, not retained); false when there is no connection. */
  publish(topic: string, payload: Uint8Array): boolean
}

export class SparkplugHost {
  private readonly state = new HostState()
  private readonly asked = new Map<string, number>()
  private readonly m: SparkplugMetrics
  private readonly limited: LogLimiter
  private readonly triggerRules = new WeakMap<RuleSet, CompiledRule[]>()

  constructor(private readonly d: SparkplugHostDeps) {
    this.m = sparkplugMetrics(d.metrics)
    this.limited = new LogLimiter(d.log)
  }

  /** Handles one message under spBv1.0/; returns the inspections its metrics trigger. */
  handle(topic: string, payload: Buffer, now: number, set: RuleSet): SparkplugTriggerEvent[] {
    const t = parseTopic(topic)
    if (!t) return this.malformed('topic', topic, 'not a Sparkplug B topic (spBv1.0/<group>/<type>/<node>[/<device>])')
    if (t.kind === 'state') return NONE
    this.m.messages.inc({ type: t.type })
    if (t.type === 'NCMD' || t.type === 'DCMD') return NONE
    if (payload.length > this.d.maxPayloadBytes) return this.malformed('too_large', topic, `payload is ${payload.length} bytes; the limit is ${this.d.maxPayloadBytes}`)
    let p
    try {
      p = decodePayload(payload)
    } catch (e) {
      if (e instanceof SparkplugDecodeError) return this.malformed('payload', topic, e.message)
      throw e
    }
    const out = this.state.apply(t.group, t.type, t.node, t.device, p, now)
    if (out.ignored && this.d.log.isLevelEnabled('debug')) this.d.log.debug({ topic, why: out.ignored }, 'sparkplug message not applied')
    for (const s of out.skipped) {
      this.m.skippedMetrics.inc({ why: s.why.startsWith('unknown') ? 'unknown_alias' : s.why.split(' ')[0]!.toLowerCase() })
      if (this.d.log.isLevelEnabled('debug')) this.d.log.debug({ topic, metric: s.metric, why: s.why }, 'sparkplug metric skipped')
    }
    // After a death nothing kept is current any more. A birth keeps the windows: a rebirth (asked for after a
    // seq gap) continues the same series.
    if (out.died) this.d.signals.forgetSparkplug(t.group, t.node, out.died.device)
    if (out.rebirth) this.requestRebirth(t.group, t.node, out.rebirth, now)
    if (out.samples.length === 0) return NONE
    // Births carry current values (samples), not events: only NDATA/DDATA run triggered inspections.
    const triggers = t.type === 'NDATA' || t.type === 'DDATA' ? this.triggersOf(set) : NONE_RULES
    let events: SparkplugTriggerEvent[] | undefined
    for (const s of out.samples) {
      const v = numericValue(s.value)
      if (v !== undefined) this.d.signals.pushSparkplug(t.group, t.node, s.device, s.metric, s.time, v)
      for (const rule of triggers) {
        const params = rule.sparkplugTrigger!.bind(t.group, t.node, s.device, s.metric)
        if (params) (events ??= []).push({ rule, params, payload: triggerPayload(s.metric, s.time, s.value) })
      }
    }
    return events ?? NONE
  }

  /** The connection to the broker was lost: births must be seen again before data is trusted. */
  reset(): void {
    this.state.reset()
  }

  private triggersOf(set: RuleSet): CompiledRule[] {
    let list = this.triggerRules.get(set)
    if (!list) this.triggerRules.set(set, (list = set.rules.filter((r) => r.sparkplugTrigger !== undefined)))
    return list
  }

  private requestRebirth(group: string, node: string, reason: RebirthReason, now: number): void {
    const key = `${group}/${node}`
    const last = this.asked.get(key)
    if (last !== undefined && now - last < REBIRTH_INTERVAL_MS) {
      this.m.rebirthSuppressed.inc()
      return
    }
    if (this.asked.size > 10_000) for (const [k, at] of this.asked) if (now - at >= REBIRTH_INTERVAL_MS) this.asked.delete(k)
    const payload = encodePayload({ timestamp: now, metrics: [{ name: 'Node Control/Rebirth', timestamp: now, datatype: DataType.Boolean, value: true }] })
    if (!this.d.publish(nodeTopic(group, 'NCMD', node), payload)) return
    this.asked.set(key, now)
    this.m.rebirthRequests.inc({ reason })
    this.d.log.info({ group, node, reason }, 'sparkplug rebirth requested')
  }

  private malformed(reason: string, topic: string, message: string): SparkplugTriggerEvent[] {
    this.m.malformed.inc({ reason })
    this.limited.warn(`SPARKPLUG_${reason.toUpperCase()}`, { topic, reason }, `sparkplug message dropped: ${message}`)
    return NONE
  }
}

const NONE: SparkplugTriggerEvent[] = []
const NONE_RULES: CompiledRule[] = []

function triggerPayload(metric: string, time: number, m: Metric): Record<string, unknown> {
  const v = m.value
  // Responses are JSON: a 64-bit integer beyond 2^53 is given as its decimal string.
  const value = typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v
  return { value, metric, timestamp: time, datatype: m.datatype }
}

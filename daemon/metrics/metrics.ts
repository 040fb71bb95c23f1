// Prometheus metrics of the daemon. Buckets bracket the default 50 ms budget finely so that budget
// breaches show up as their own bucket rather than inside a coarse one.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { TallyHistogram, VerdictTally } from './verdict-tally.js'

export const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.045, 0.05, 0.055, 0.06, 0.075, 0.1, 0.25, 1]

export class Metrics {
  readonly registry = new Registry()
  /** Verdicts by inspection and verdict, and their latency: plain numbers on the per-message path (metrics/verdict-tally.ts). */
  readonly verdicts = new VerdictTally(LATENCY_BUCKETS_S)
  readonly requests: Counter<'inspection' | 'verdict'> = new Counter({ name: 'flashcheck_requests_total', help: 'Inspections answered, by inspection and verdict', labelNames: ['inspection', 'verdict'] as const, registers: [this.registry], collect: () => this.collectRequests() })
  readonly latency = registered(this.registry, new TallyHistogram('flashcheck_request_latency_seconds', 'Receive to publish latency of verdicts', this.verdicts))
  /** Parts per inspection, [first passed, not]: plain numbers on the per-message path (metrics/first-pass.ts), labelled at scrape time. */
  readonly partCounts = new Map<string, [number, number]>()
  readonly parts: Counter<'inspection' | 'first_pass'> = new Counter({ name: 'flashcheck_parts_total', help: 'Parts inspected, counted once at their first verdict, by inspection and whether that verdict was the rule\'s passing label (first_pass); a part is a distinct trace value where the rule names trace:, else each request. First-pass yield: first_pass="true" over all', labelNames: ['inspection', 'first_pass'] as const, registers: [this.registry], collect: () => this.collectParts() })
  readonly errors = new Counter({ name: 'flashcheck_errors_total', help: 'Error verdicts and unanswerable requests, by code', labelNames: ['code'] as const, registers: [this.registry] })
  readonly deadlineMissed = new Counter({ name: 'flashcheck_deadline_missed_total', help: 'Verdicts published after their budget', labelNames: ['inspection'] as const, registers: [this.registry] })
  readonly duplicates = new Counter({ name: 'flashcheck_duplicate_requests_total', help: 'QoS 1 redeliveries answered already and dropped', registers: [this.registry] })
  readonly noResponseTopic = new Counter({ name: 'flashcheck_requests_without_response_topic_total', help: 'Requests that named no response topic (logged, not answered)', registers: [this.registry] })
  readonly reloads = new Counter({ name: 'flashcheck_rule_reloads_total', help: 'Rule set reloads, by result', labelNames: ['result'] as const, registers: [this.registry] })
  readonly rulesActive = new Gauge({ name: 'flashcheck_rules_active', help: 'Rules in the active set', registers: [this.registry] })
  readonly budget = new Gauge({ name: 'flashcheck_inspection_budget_seconds', help: 'Latency budget of each inspection of the active rule set', labelNames: ['inspection'] as const, registers: [this.registry] })
  readonly info = new Gauge({ name: 'flashcheck_info', help: 'Always 1: this daemon\'s node id and version (join on instance for a node filter)', labelNames: ['node', 'version'] as const, registers: [this.registry] })
  readonly signalSamples = new Counter({ name: 'flashcheck_signal_messages_total', help: 'Messages received on signal topics', registers: [this.registry] })
  readonly connected = new Gauge({ name: 'flashcheck_mqtt_connected', help: '1 while connected to the broker', registers: [this.registry] })
  readonly modelLatency = new Histogram({ name: 'flashcheck_model_latency_seconds', help: 'Request arrival to scored model choice, by inspection', labelNames: ['inspection'] as const, buckets: LATENCY_BUCKETS_S, registers: [this.registry] })
  readonly modelQueueDepth = new Gauge({ name: 'flashcheck_model_queue_depth', help: 'Verdict requests waiting for the decoder', registers: [this.registry] })
  readonly modelFallbacks = new Counter({ name: 'flashcheck_model_fallbacks_total', help: 'Model steps whose verdict went out with the rule fallback instead of a choice, by status and reason: skipped or aborted (no choice: deadline, budget, overload, queue_full, decoder_error, prompt, shutdown), or ok with reason low_confidence (scored below min_confidence)', labelNames: ['inspection', 'status', 'reason'] as const, registers: [this.registry] })
  readonly modelPrefixCache = new Counter({ name: 'flashcheck_model_prefix_cache_total', help: 'Model requests by prefix-cache result (hit or miss)', labelNames: ['result'] as const, registers: [this.registry] })
  readonly modelPrefixBuilds = new Counter({ name: 'flashcheck_model_prefix_builds_total', help: 'Prompt prefixes prefilled at load or reload', registers: [this.registry] })
  readonly modelExplains = new Counter({ name: 'flashcheck_model_explanations_total', help: 'Explanations by result (published; dropped under load or while the broker is away; failed)', labelNames: ['result'] as const, registers: [this.registry] })
  readonly outboxDepth = new Gauge({ name: 'flashcheck_outbox_depth', help: 'Verdicts waiting for the broker connection', registers: [this.registry] })
  readonly outboxDropped = new Counter({ name: 'flashcheck_outbox_dropped_total', help: 'Verdicts dropped because the outbox was full (oldest first)', registers: [this.registry] })
  readonly shedDropped = new Counter({ name: 'flashcheck_overloaded_dropped_total', help: 'OVERLOADED answers dropped because the connection to the broker was backed up or down', registers: [this.registry] })
  readonly overloaded = new Counter({ name: 'flashcheck_overloaded_total', help: 'Requests answered OVERLOADED because they arrived older than their budget allows', labelNames: ['inspection'] as const, registers: [this.registry] })
  readonly auditRows = new Counter({ name: 'flashcheck_audit_rows_total', help: 'Verdicts written to the audit database (by the ingest thread, from the spool)', registers: [this.registry] })
  readonly auditWriteErrors = new Counter({ name: 'flashcheck_audit_write_errors_total', help: 'Audit journal failures (open, write, retention); verdicts still went out', registers: [this.registry] })
  readonly auditPruned = new Counter({ name: 'flashcheck_audit_pruned_total', help: 'Audit rows removed by retention, by reason (age: audit.retentionDays, bytes: audit.maxBytes)', labelNames: ['reason'] as const, registers: [this.registry] })
  readonly auditQueueDepth = new Gauge({ name: 'flashcheck_audit_queue_depth', help: 'Verdicts spooled (or queued for the spool) whose rows are not yet in the audit database', registers: [this.registry] })
  readonly reconnects = new Counter({ name: 'flashcheck_mqtt_reconnects_total', help: 'Reconnect attempts to the broker', registers: [this.registry] })

  private collectRequests(): void {
    this.requests.reset()
    for (const [inspection, verdict, n] of this.verdicts.verdicts()) this.requests.inc({ inspection, verdict }, n)
  }

  private collectParts(): void {
    this.parts.reset()
    for (const [inspection, c] of this.partCounts) {
      this.parts.inc({ inspection, first_pass: 'true' }, c[0])
      this.parts.inc({ inspection, first_pass: 'false' }, c[1])
    }
  }

  constructor() {
    // Includes nodejs_eventloop_lag_seconds and its percentiles.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 })
  }
}

/** Registers a metric of our own making: a Registry formats anything with prom-client's get() and reset(). */
function registered<M extends { name: string; get(): Promise<unknown>; reset(): void }>(registry: Registry, metric: M): M {
  registry.registerMetric(metric as unknown as Histogram)
  return metric
}

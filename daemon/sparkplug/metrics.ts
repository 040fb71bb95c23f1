// Prometheus series of the Sparkplug side, registered once on the daemon's registry.
import { Counter, Gauge } from 'prom-client'
import type { Metrics } from '../metrics/metrics.js'

export class SparkplugMetrics {
  readonly messages: Counter<'type'>
  readonly malformed: Counter<'reason'>
  readonly rebirthRequests: Counter<'reason'>
  readonly rebirthSuppressed: Counter
  readonly skippedMetrics: Counter<'why'>
  readonly edgeBirths: Counter<'reason'>
  readonly edgeOnline: Gauge

  constructor(m: Metrics) {
    const registers = [m.registry]
    this.messages = new Counter({ name: 'flashcheck_sparkplug_messages_total', help: 'Sparkplug B messages received, by message type', labelNames: ['type'] as const, registers })
    this.malformed = new Counter({ name: 'flashcheck_sparkplug_malformed_total', help: 'Sparkplug B messages dropped as malformed (bad topic, not a Sparkplug payload, too large)', labelNames: ['reason'] as const, registers })
    this.rebirthRequests = new Counter({ name: 'flashcheck_sparkplug_rebirth_requests_total', help: 'NCMD Node Control/Rebirth requests sent to edge nodes, by reason (no_birth, seq_gap, unknown_alias)', labelNames: ['reason'] as const, registers })
    this.rebirthSuppressed = new Counter({ name: 'flashcheck_sparkplug_rebirth_suppressed_total', help: 'Rebirth requests not sent because the node was asked less than 5 s before', registers })
    this.skippedMetrics = new Counter({ name: 'flashcheck_sparkplug_metrics_skipped_total', help: 'Metrics not read: unknown alias, DataSet or Template values', labelNames: ['why'] as const, registers })
    this.edgeBirths = new Counter({ name: 'flashcheck_sparkplug_births_total', help: 'NBIRTHs published by flashcheck as an edge node, by reason', labelNames: ['reason'] as const, registers })
    this.edgeOnline = new Gauge({ name: 'flashcheck_sparkplug_edge_online', help: '1 while flashcheck is born as a Sparkplug edge node', registers })
  }
}

const cache = new WeakMap<Metrics, SparkplugMetrics>()

export function sparkplugMetrics(m: Metrics): SparkplugMetrics {
  let s = cache.get(m)
  if (!s) cache.set(m, (s = new SparkplugMetrics(m)))
  return s
}

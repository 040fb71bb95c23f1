// Live sensor values kept for rule evaluation: one ring-buffer history per (signal spec, concrete topic).
// The service feeds every message on a signal filter to ingest(); rules read windows through SignalReader.
import type { SignalReader, SignalSeries, SignalSpec } from '../rules/types.js'
import { TopicFilter } from '../rules/topic.js'
import { SignalHistory } from './history.js'
import { sampleId } from '../sparkplug/selector.js'

/** Sparkplug metric addresses remembered with the specs they feed; cleared when it grows past this. */
const SPARKPLUG_ROUTES_MAX = 10_000

interface Entry {
  spec: SignalSpec
  filter: TopicFilter
  histories: Map<string, SignalHistory>
}

export interface SignalStats {
  /** Messages on a signal topic (matching at least one spec). */
  messages: number
  /** Samples stored (one message can feed several specs). */
  samples: number
  /** Matching messages that carried no usable number (bad JSON, missing path, non-numeric, non-finite). */
  ignored: number
  /** Concrete topics with a kept history, over all specs. */
  topics: number
}

export class SignalStore implements SignalReader {
  private entries = new Map<string, Entry>()
  private list: Entry[] = []
  /** Entries fed from MQTT topics (JSON payloads); Sparkplug entries are fed through pushSparkplug(). */
  private topical: Entry[] = []
  private sparkplug: Entry[] = []
  private routes = new Map<string, Entry[]>()
  private counts = { messages: 0, samples: 0, ignored: 0 }

  /** Installs the specs of a new rule set; histories of specs still wanted are kept (with the new keep). */
  configure(specs: SignalSpec[]): void {
    const next = new Map<string, Entry>()
    for (const spec of specs) {
      const old = this.entries.get(spec.key)
      const histories = old?.histories ?? new Map<string, SignalHistory>()
      for (const h of histories.values()) h.keepMs = spec.keepMs
      next.set(spec.key, { spec, filter: TopicFilter.parse(spec.filter), histories })
    }
    this.entries = next
    this.list = [...next.values()]
    this.topical = this.list.filter((e) => e.spec.sparkplug === undefined)
    this.sparkplug = this.list.filter((e) => e.spec.sparkplug !== undefined)
    this.routes.clear()
  }

  /** Stores the value(s) a message carries for every spec whose filter matches its topic; true when any was stored. */
  ingest(topic: string, payload: Buffer, now: number): boolean {
    let stored = false
    let parsed: unknown
    let parsedOk: boolean | undefined
    for (const e of this.topical) {
      if (e.filter.match(topic) === null) continue
      if (parsedOk === undefined) {
        this.counts.messages++
        try {
          parsed = JSON.parse(payload.toString('utf8'))
          parsedOk = true
        } catch {
          parsedOk = false
        }
      }
      const v = parsedOk ? e.spec.extract(parsed) : undefined
      if (v === undefined || !Number.isFinite(v)) {
        this.counts.ignored++
        continue
      }
      let h = e.histories.get(topic)
      if (h === undefined) e.histories.set(topic, (h = new SignalHistory(e.spec.keepMs)))
      h.push(now, v)
      this.counts.samples++
      stored = true
    }
    return stored
  }

  /** Stores one Sparkplug metric sample for every spec whose address matches; true when any wanted it. */
  pushSparkplug(group: string, node: string, device: string | undefined, metric: string, time: number, value: number): boolean {
    if (this.sparkplug.length === 0) return false
    const id = sampleId(group, node, device, metric)
    let wanted = this.routes.get(id)
    if (wanted === undefined) {
      if (this.routes.size >= SPARKPLUG_ROUTES_MAX) this.routes.clear()
      wanted = this.sparkplug.filter((e) => e.spec.sparkplug!.matches(group, node, device, metric))
      this.routes.set(id, wanted)
    }
    if (wanted.length === 0) return false
    if (!Number.isFinite(value)) {
      this.counts.ignored++
      return false
    }
    for (const e of wanted) {
      let h = e.histories.get(id)
      if (h === undefined) e.histories.set(id, (h = new SignalHistory(e.spec.keepMs)))
      h.push(time, value)
      this.counts.samples++
    }
    return true
  }

  /** Forgets the Sparkplug histories of an edge node (with its devices) or of one device: their samples are stale. */
  forgetSparkplug(group: string, node: string, device?: string): void {
    const prefixes = device === undefined ? [`spBv1.0/${group}/${node}:`, `spBv1.0/${group}/${node}/`] : [`spBv1.0/${group}/${node}/${device}:`]
    for (const e of this.sparkplug) {
      for (const id of e.histories.keys()) if (prefixes.some((p) => id.startsWith(p))) e.histories.delete(id)
    }
  }

  series(key: string, topic: string): SignalSeries | undefined {
    return this.entries.get(key)?.histories.get(topic)
  }

  /** Drops samples older than each spec's keep and forgets topics left empty; call periodically. */
  prune(now: number): void {
    for (const e of this.list) {
      for (const [topic, h] of e.histories) {
        h.evictBefore(now - h.keepMs)
        if (h.length === 0) e.histories.delete(topic)
      }
    }
  }

  stats(): SignalStats {
    let topics = 0
    for (const e of this.list) topics += e.histories.size
    return { ...this.counts, topics }
  }
}

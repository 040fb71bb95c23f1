// Live sensor values kept for rule evaluation: one ring-buffer history per (signal spec, concrete topic).
// The service feeds every message on a signal filter to ingest(); rules read windows through SignalReader.
import type { SignalReader, SignalSeries, SignalSpec } from '../rules/types.js'
import { TopicFilter } from '../rules/topic.js'
import { SignalHistory } from './history.js'

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
  }

  /** Stores the value(s) a message carries for every spec whose filter matches its topic; true when any was stored. */
  ingest(topic: string, payload: Buffer, now: number): boolean {
    let stored = false
    let parsed: unknown
    let parsedOk: boolean | undefined
    for (const e of this.list) {
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

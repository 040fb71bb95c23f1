// A loaded rule set: routing of request and trigger topics to rules, and the signal subscriptions.
import type { CompiledRule, RuleSet, SignalSpec } from './types.js'
import { compareSpecificity } from './topic.js'
import type { RuleImpl } from './rule.js'

type Match = { rule: CompiledRule; params: Record<string, string> }

/** Distinct request topics remembered per rule set; past this the memory starts over (a plant has far fewer). */
const MATCH_CACHE_MAX = 4096

export class RuleSetImpl implements RuleSet {
  readonly rules: CompiledRule[]
  readonly reasonRules: CompiledRule[]
  private readonly requests: RuleImpl[]
  private readonly triggers: RuleImpl[]
  /**
   * Request topic → its match: a topic repeats for every part a station inspects, and one lookup is cheaper
   * than scanning every filter. The same frozen params object comes back each time, so strings rendered from
   * it (signal topics) can be memoised by identity.
   */
  private readonly matched = new Map<string, Match | null>()

  constructor(
    readonly rev: string,
    readonly dir: string,
    rules: RuleImpl[],
    readonly signals: SignalSpec[],
  ) {
    this.rules = rules
    this.reasonRules = rules.filter((r) => r.reason !== undefined)
    // Most specific filter first, so a literal level wins over {name}/+ and those over #.
    this.requests = rules.filter((r) => r.mode === 'request').sort((a, b) => compareSpecificity(a.topicFilter, b.topicFilter))
    this.triggers = rules.filter((r) => r.mode === 'stream')
  }

  matchRequest(topic: string): Match | null {
    let m = this.matched.get(topic)
    if (m !== undefined) return m
    m = null
    for (const rule of this.requests) {
      const params = rule.topicFilter.match(topic)
      if (params) {
        m = Object.freeze({ rule, params: Object.freeze(params) })
        break
      }
    }
    if (this.matched.size >= MATCH_CACHE_MAX) this.matched.clear()
    this.matched.set(topic, m)
    return m
  }

  matchTrigger(topic: string): { rule: CompiledRule; params: Record<string, string> }[] {
    const out: { rule: CompiledRule; params: Record<string, string> }[] = []
    for (const rule of this.triggers) {
      const params = rule.topicFilter.match(topic)
      if (params) out.push({ rule, params })
    }
    return out
  }
}

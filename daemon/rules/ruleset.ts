// A loaded rule set: routing of request and trigger topics to rules, and the signal subscriptions.
import type { CompiledRule, RuleSet, SignalSpec } from './types.js'
import { compareSpecificity } from './topic.js'
import type { RuleImpl } from './rule.js'

export class RuleSetImpl implements RuleSet {
  readonly rules: CompiledRule[]
  readonly reasonRules: CompiledRule[]
  private readonly requests: RuleImpl[]
  private readonly triggers: RuleImpl[]

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

  matchRequest(topic: string): { rule: CompiledRule; params: Record<string, string> } | null {
    for (const rule of this.requests) {
      const params = rule.topicFilter.match(topic)
      if (params) return { rule, params }
    }
    return null
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

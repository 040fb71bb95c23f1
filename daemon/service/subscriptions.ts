// The set of MQTT filters the daemon needs for a rule set. Filters already covered by a broader one are
// dropped: brokers may deliver a message once per matching subscription, which would double the work.
import type { RuleSet } from '../rules/types.js'

export function desiredFilters(set: RuleSet | undefined, catchAll: string): string[] {
  const all = new Set<string>([catchAll])
  if (set) {
    for (const r of set.rules) all.add(r.filter)
    for (const s of set.signals) all.add(s.filter)
  }
  const list = [...all]
  return list.filter((f) => !list.some((g) => g !== f && covers(g, f))).sort()
}

/** True when every topic matched by `specific` is also matched by `general`. */
export function covers(general: string, specific: string): boolean {
  const g = general.split('/')
  const s = specific.split('/')
  for (let i = 0; i < g.length; i++) {
    if (g[i] === '#') return !(i === 0 && s[0]?.startsWith('$'))
    if (i >= s.length) return false
    if (g[i] === '+') {
      if (s[i] === '#') return false
      continue
    }
    if (g[i] !== s[i]) return false
  }
  return g.length === s.length
}

/** MQTT topic-filter match of a concrete topic (used for the catch-all). */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/** Precompiled matcher for one filter; `a/b/#` becomes a prefix test, the common case on the hot path. */
export function compileFilter(filter: string): (topic: string) => boolean {
  const head = filter.slice(0, -2)
  if (filter.endsWith('/#') && !head.includes('+') && !head.includes('#')) {
    const prefix = head + '/'
    return (topic) => topic.startsWith(prefix) || topic === head
  }
  return (topic) => filterMatches(filter, topic)
}

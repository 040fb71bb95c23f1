// The set of MQTT filters the daemon needs for a rule set. Filters already covered by a broader one are
// dropped: brokers may deliver a message once per matching subscription, which would double the work.
import type { RuleSet } from '../rules/types.js'

//
// With a share group, request filters become `$share/<group>/<filter>` so that the broker hands each request
// to one instance of the group; signal and trigger filters stay plain, so that every instance keeps full
// signal state and sees every trigger.
export function desiredFilters(set: RuleSet | undefined, catchAll: string, shareGroup = ''): string[] {
  const requests = new Set<string>([catchAll])
  const plain = new Set<string>()
  if (set) {
    for (const r of set.rules) (r.mode === 'request' ? requests : plain).add(r.filter)
    for (const s of set.signals) plain.add(s.filter)
  }
  if (shareGroup === '') return minimal([...requests, ...plain])
  // A plain filter covered by a request filter must stay: the shared subscription reaches one instance only.
  return [...minimal([...requests]).map((f) => `$share/${shareGroup}/${f}`), ...minimal([...plain])].sort()
}

function minimal(filters: string[]): string[] {
  const list = [...new Set(filters)]
  return list.filter((f) => !list.some((g) => g !== f && covers(g, f))).sort()
}

/** The topic filter inside a `$share/<group>/<filter>` subscription; other filters unchanged. */
export function unshared(filter: string): string {
  if (!filter.startsWith('$share/')) return filter
  const i = filter.indexOf('/', 7)
  return i < 0 ? filter : filter.slice(i + 1)
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

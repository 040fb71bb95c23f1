// The set of MQTT filters the daemon needs for a rule set. Filters already covered by a broader one are
// dropped: brokers may deliver a message once per matching subscription, which would double the work.
import { covers, shared } from '../mqtt/topic-filter.js'
import type { RuleSet } from '../rules/types.js'

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
  return [...minimal([...requests]).map((f) => shared(shareGroup, f)), ...minimal([...plain])].sort()
}

function minimal(filters: string[]): string[] {
  const list = [...new Set(filters)]
  return list.filter((f) => !list.some((g) => g !== f && covers(g, f))).sort()
}

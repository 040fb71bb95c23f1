// MQTT topic filters (MQTT 3.1.1 and 5, section 4.7): whether a filter matches a topic, covers another
// filter, or overlaps one, and shared-subscription names. The one rule every check shares is here once:
// a filter whose first level is a wildcard ('+' or '#') matches no topic that starts with '$'.

/** Topics starting with '$' ($SYS/…): reserved by the broker, never matched by a leading wildcard. */
export function reservedTopic(topic: string): boolean {
  return topic.charCodeAt(0) === 36
}

function wildcard(level: string | undefined): boolean {
  return level === '+' || level === '#'
}

/** True when `topic` (a concrete topic) matches `filter`. */
export function filterMatches(filter: string, topic: string): boolean {
  // A topic is the narrowest filter: it matches exactly when the filter covers it.
  return covers(filter, topic)
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

/** True when every topic matched by filter `specific` is also matched by filter `general`. */
export function covers(general: string, specific: string): boolean {
  const g = general.split('/')
  if (wildcard(g[0]) && reservedTopic(specific)) return false
  const s = specific.split('/')
  for (let i = 0; i < g.length; i++) {
    if (g[i] === '#') return true
    if (i >= s.length) return false
    if (g[i] === '+') {
      if (s[i] === '#') return false
      continue
    }
    if (g[i] !== s[i]) return false
  }
  return g.length === s.length
}

/** True when some concrete topic matches both filters. */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/')
  const y = b.split('/')
  if ((wildcard(x[0]) && reservedTopic(b)) || (wildcard(y[0]) && reservedTopic(a))) return false
  for (let i = 0; ; i++) {
    const p = x[i]
    const q = y[i]
    if (p === '#' || q === '#') return true
    if (p === undefined || q === undefined) return p === q
    if (p !== '+' && q !== '+' && p !== q) return false
  }
}

/** `$share/<group>/<filter>`: the broker hands each matching message to one member of the group. */
export function shared(group: string, filter: string): string {
  return `$share/${group}/${filter}`
}

/** True for a shared-subscription filter. */
export function isShared(filter: string): boolean {
  return filter.startsWith('$share/')
}

/** The topic filter inside a `$share/<group>/<filter>` subscription; other filters unchanged. */
export function unshared(filter: string): string {
  if (!isShared(filter)) return filter
  const i = filter.indexOf('/', 7)
  return i < 0 ? filter : filter.slice(i + 1)
}

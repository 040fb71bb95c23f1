// Topic filters with named levels: `plant/{station}/spindle/#`. A `{name}` level matches one level like `+`
// and binds it; `+` matches without binding; a trailing `#` matches the rest. Filters are compiled once
// at load so matching a topic is a single left-to-right scan without regexes or splitting. Plain MQTT
// filter semantics (the '$' rule, overlap) come from mqtt/topic-filter.ts.
import { filtersOverlap as mqttOverlap, reservedTopic } from '../mqtt/topic-filter.js'

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export type Level =
  | { kind: 'literal'; text: string }
  | { kind: 'name'; name: string }
  | { kind: 'plus' }
  | { kind: 'hash' }

export interface TopicProblem {
  /** 0-based offset of the offending level inside the filter string. */
  offset: number
  message: string
}

/** Parses a filter; returns its levels or the first problem found. */
export function parseFilter(text: string): { levels: Level[] } | { problem: TopicProblem } {
  if (text.length === 0) return { problem: { offset: 0, message: 'topic must not be empty' } }
  const levels: Level[] = []
  const seen = new Set<string>()
  let offset = 0
  const parts = text.split('/')
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!
    if (p === '#') {
      if (i !== parts.length - 1) return { problem: { offset, message: "'#' is only allowed as the last level" } }
      levels.push({ kind: 'hash' })
    } else if (p === '+') {
      levels.push({ kind: 'plus' })
    } else if (p.startsWith('{') && p.endsWith('}')) {
      const name = p.slice(1, -1)
      if (!NAME.test(name)) return { problem: { offset, message: `invalid level name '${p}': use {letters_digits_underscores}` } }
      if (seen.has(name)) return { problem: { offset, message: `level name {${name}} is used twice` } }
      seen.add(name)
      levels.push({ kind: 'name', name })
    } else if (/[+#{}]/.test(p)) {
      return { problem: { offset, message: `invalid level '${p}': '+', '#' and {name} must fill a whole level` } }
    } else if (p.includes('\u0000')) {
      return { problem: { offset, message: 'topic must not contain NUL' } }
    } else {
      levels.push({ kind: 'literal', text: p })
    }
    offset += p.length + 1
  }
  return { levels }
}

export class TopicFilter {
  /** The MQTT subscription filter: {name} → +. */
  readonly mqtt: string
  /** Named levels in order of appearance. */
  readonly names: string[]
  private readonly kinds: Uint8Array // 0 literal, 1 name, 2 plus, 3 hash
  private readonly texts: (string | undefined)[]

  constructor(
    readonly source: string,
    readonly levels: Level[],
  ) {
    this.mqtt = levels.map((l) => (l.kind === 'literal' ? l.text : l.kind === 'hash' ? '#' : '+')).join('/')
    this.names = levels.flatMap((l) => (l.kind === 'name' ? [l.name] : []))
    this.kinds = Uint8Array.from(levels, (l) => ({ literal: 0, name: 1, plus: 2, hash: 3 })[l.kind])
    this.texts = levels.map((l) => (l.kind === 'literal' ? l.text : l.kind === 'name' ? l.name : undefined))
  }

  static parse(text: string): TopicFilter {
    const r = parseFilter(text)
    if ('problem' in r) throw new Error(`${text}: ${r.problem.message}`)
    return new TopicFilter(text, r.levels)
  }

  /** Matches a concrete topic; returns the bound names (an empty object when none) or null. */
  match(topic: string): Record<string, string> | null {
    // Scan once without allocating; bind names only for a topic that matches (most candidates do not).
    if (!this.scan(topic, null)) return null
    const params: Record<string, string> = {}
    if (this.names.length > 0) this.scan(topic, params)
    return params
  }

  private scan(topic: string, params: Record<string, string> | null): boolean {
    if (this.kinds[0] !== 0 && reservedTopic(topic)) return false
    const kinds = this.kinds
    const n = kinds.length
    let pos = 0
    for (let i = 0; i < n; i++) {
      const k = kinds[i]
      if (k === 3) return true
      if (pos > topic.length) return false // topic has fewer levels than the filter
      let end = topic.indexOf('/', pos)
      if (end < 0) end = topic.length
      if (k === 0) {
        const text = this.texts[i]!
        if (end - pos !== text.length || !topic.startsWith(text, pos)) return false
      } else if (k === 1) {
        // A bound value is spliced into other topics (signal and publish templates): it must be one whole,
        // non-empty level without wildcards, so that it can never widen or redirect them.
        if (!safeLevel(topic, pos, end)) return false
        if (params !== null) params[this.texts[i]!] = topic.slice(pos, end)
      }
      pos = end + 1
    }
    // All filter levels consumed: the topic must be too (pos is one past the last level's end).
    return pos === topic.length + 1
  }

  /** True when the filter has no wildcards, so it names exactly one topic once its {names} are bound. */
  get concreteWhenBound(): boolean {
    return !this.kinds.some((k) => k === 2 || k === 3)
  }
}

/** A topic with {name} placeholders, rendered from bound names (signal topics, publish topics). */
export class TopicTemplate {
  private readonly parts: string[] // literal text; odd indexes are names
  constructor(readonly source: string, levels: Level[]) {
    const parts: string[] = ['']
    levels.forEach((l, i) => {
      const sep = i === 0 ? '' : '/'
      if (l.kind === 'name') {
        parts[parts.length - 1] += sep
        parts.push(l.name, '')
      } else {
        parts[parts.length - 1] += sep + (l.kind === 'literal' ? l.text : l.kind === 'plus' ? '+' : '#')
      }
    })
    this.parts = parts
  }

  get names(): string[] {
    return this.parts.filter((_, i) => i % 2 === 1)
  }

  /** Throws TopicBindingError when a value is not one safe level (see bindingProblem). */
  render(params: Record<string, string>): string {
    const p = this.parts
    if (p.length === 1) return p[0]!
    let s = p[0]!
    for (let i = 1; i < p.length; i += 2) s += checkedValue(p[i]!, params[p[i]!]) + p[i + 1]!
    return s
  }
}

/** Orders filters so that the most specific wins when several match: literal before {name}/+ before #. */
export function compareSpecificity(a: TopicFilter, b: TopicFilter): number {
  const la = a.levels
  const lb = b.levels
  const rank = (l: Level | undefined): number => (l === undefined ? 3 : l.kind === 'literal' ? 0 : l.kind === 'hash' ? 2 : 1)
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    const d = rank(la[i]) - rank(lb[i])
    if (d !== 0) return d
  }
  return 0
}

/** Renders a `{name}` template with bound names; every value must be a safe level. Prefer CompiledRule.publishTopic on hot paths (pre-split). */
export function renderTopic(template: string, params: Record<string, string>): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n: string) => checkedValue(n, params[n]))
}

/** A `{name}` value that would change the shape of a topic: empty, '+', '#', '/' or NUL inside. */
export class TopicBindingError extends Error {
  override readonly name = 'TopicBindingError'
}

/** Why `value` cannot stand for one topic level, or undefined when it can. */
export function bindingProblem(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return 'is empty'
  if (!safeLevel(value, 0, value.length)) return "contains '+', '#', '/' or NUL"
  return undefined
}

function checkedValue(name: string, value: string | undefined): string {
  const problem = bindingProblem(value)
  if (problem !== undefined) throw new TopicBindingError(`topic level {${name}} ${problem}; refused`)
  return value!
}

function safeLevel(s: string, from: number, to: number): boolean {
  if (to <= from) return false
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    if (c === 43 /* + */ || c === 35 /* # */ || c === 47 /* / */ || c === 0) return false
  }
  return true
}

/** True when some concrete topic matches both filters (`{name}` levels count as `+`). */
export function filtersOverlap(a: string, b: string): boolean {
  return mqttOverlap(asMqttFilter(a), asMqttFilter(b))
}

/** The MQTT filter of a rule topic: `{name}` levels become `+`. */
export function asMqttFilter(source: string): string {
  return source.replace(/\{[A-Za-z_][A-Za-z0-9_]*\}/g, '+')
}

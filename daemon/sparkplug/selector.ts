// A rule's `sparkplug: {group, node, device?, metric}` address. Each part may hold `{name}` placeholders bound
// by the rule's topic (`press-{station}`); the selector renders the concrete address of a request and
// recognises the addresses of arriving metrics. Both sides produce the same history id (sampleId).

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/** The id under which a metric's samples are kept: readable in error messages, one per metric. */
export function sampleId(group: string, node: string, device: string | undefined, metric: string): string {
  return device === undefined ? `spBv1.0/${group}/${node}:${metric}` : `spBv1.0/${group}/${node}/${device}:${metric}`
}

class Part {
  readonly names: string[]
  private readonly pieces: string[] // odd indexes are names
  private readonly re: RegExp

  constructor(readonly source: string, anyChar: boolean) {
    this.pieces = source.split(PLACEHOLDER)
    this.names = this.pieces.filter((_, i) => i % 2 === 1)
    const one = anyChar ? '(.+)' : '([^/+#]+)'
    this.re = new RegExp('^' + this.pieces.map((p, i) => (i % 2 === 1 ? one : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('') + '$')
  }

  render(params: Record<string, string>): string {
    if (this.pieces.length === 1) return this.source
    let s = ''
    for (let i = 0; i < this.pieces.length; i++) s += i % 2 === 1 ? (params[this.pieces[i]!] ?? '') : this.pieces[i]!
    return s
  }

  matches(text: string): boolean {
    return this.pieces.length === 1 ? text === this.source : this.re.test(text)
  }

  /** Adds the names this part binds in `text` to params; false when it does not match or contradicts a binding. */
  bind(text: string, params: Record<string, string>): boolean {
    if (this.pieces.length === 1) return text === this.source
    const m = this.re.exec(text)
    if (!m) return false
    for (let i = 0; i < this.names.length; i++) {
      const n = this.names[i]!
      const v = m[i + 1]!
      if (n in params && params[n] !== v) return false
      params[n] = v
    }
    return true
  }

  get literal(): boolean {
    return this.pieces.length === 1
  }
}

export interface SparkplugAddress {
  group: string
  node: string
  device?: string
  metric: string
}

export class SparkplugSelector {
  readonly names: string[]
  private readonly group: Part
  private readonly node: Part
  private readonly device?: Part
  private readonly metric: Part

  constructor(readonly address: SparkplugAddress) {
    this.group = new Part(address.group, false)
    this.node = new Part(address.node, false)
    this.device = address.device === undefined ? undefined : new Part(address.device, false)
    this.metric = new Part(address.metric, true)
    this.names = [...new Set([...this.group.names, ...this.node.names, ...(this.device?.names ?? []), ...this.metric.names])]
  }

  /** As written, e.g. `spBv1.0/plant1/press-{station}/spindle:Spindle/Temperature`. */
  get source(): string {
    return sampleId(this.address.group, this.address.node, this.address.device, this.address.metric)
  }

  /** The MQTT filter that carries this metric's births, data and deaths. */
  get filter(): string {
    const g = this.group.literal ? this.address.group : '+'
    const n = this.node.literal ? this.address.node : '+'
    // `#` also matches the node-level topic itself (NBIRTH/NDATA/NDEATH), which device metrics need too.
    return `spBv1.0/${g}/+/${n}/#`
  }

  /** The history id for a request's bound names. */
  render(params: Record<string, string>): string {
    return sampleId(this.group.render(params), this.node.render(params), this.device?.render(params), this.metric.render(params))
  }

  /** The names bound by a concrete metric address (triggers), or null when it does not match. */
  bind(group: string, node: string, device: string | undefined, metric: string): Record<string, string> | null {
    if ((device === undefined) !== (this.device === undefined)) return null
    const params: Record<string, string> = {}
    const ok = this.group.bind(group, params) && this.node.bind(node, params) && (device === undefined || this.device!.bind(device, params)) && this.metric.bind(metric, params)
    return ok ? params : null
  }

  matches(group: string, node: string, device: string | undefined, metric: string): boolean {
    if ((device === undefined) !== (this.device === undefined)) return false
    return this.group.matches(group) && this.node.matches(node) && (device === undefined || this.device!.matches(device)) && this.metric.matches(metric)
  }
}

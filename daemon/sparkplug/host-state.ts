// What a Sparkplug host application keeps per edge node and device (Sparkplug 3.0, chapter 7 "Host
// Applications"): whether it is born, the bdSeq of its session, the expected next seq and the alias → metric
// name table of its latest birth. Given a decoded message it says which samples to keep, what to forget and
// whether to ask the node for a rebirth; it publishes nothing itself.
import type { Metric, Payload } from './codec.js'
import type { MessageType } from './topic.js'

interface DeviceState {
  aliases: Map<number | bigint, string>
}

interface NodeState {
  born: boolean
  bdSeq?: number | bigint
  /** seq of the last message of this node's session (NBIRTH … DDEATH share one counter). */
  seq: number
  aliases: Map<number | bigint, string>
  devices: Map<string, DeviceState>
}

export interface Sample {
  device?: string
  metric: string
  /** ms since the epoch: the metric's timestamp, else the payload's, else arrival. */
  time: number
  value: Metric
}

export type RebirthReason = 'no_birth' | 'seq_gap' | 'unknown_alias'

export interface Outcome {
  samples: Sample[]
  /** Present when the node's state is unknown or broken and a rebirth should be requested. */
  rebirth?: RebirthReason
  /** The node (device undefined) or one device died: its samples are stale. */
  died?: { device?: string }
  /** A birth started a new session: everything kept for the node (device undefined) or device is replaced. */
  born?: { device?: string }
  /** Why the message was ignored, for a debug log. */
  ignored?: string
  /** Metrics whose names could not be resolved, or DataSet/Template values skipped. */
  skipped: { metric: string; why: string }[]
}

export class HostState {
  private readonly nodes = new Map<string, NodeState>()

  /** Applies one message of node `group/node` (device set for D* types). */
  apply(group: string, type: MessageType, node: string, device: string | undefined, p: Payload, now: number): Outcome {
    const key = `${group}/${node}`
    const out: Outcome = { samples: [], skipped: [] }
    let st = this.nodes.get(key)
    if (type === 'NBIRTH') {
      st = { born: true, bdSeq: bdSeqOf(p), seq: p.seq ?? 0, aliases: new Map(), devices: new Map() }
      this.nodes.set(key, st)
      out.born = {}
      this.collect(st.aliases, p, undefined, now, out, true)
      return out
    }
    if (type === 'NDEATH') {
      if (!st?.born) return { ...out, ignored: 'NDEATH for a node that is not born' }
      const bd = bdSeqOf(p)
      // A Will registered by an older session arrives late: it must not kill the node's current session.
      if (bd !== undefined && st.bdSeq !== undefined && bd !== st.bdSeq) return { ...out, ignored: `NDEATH bdSeq ${bd} does not match the birth's ${st.bdSeq}` }
      st.born = false
      st.aliases.clear()
      st.devices.clear()
      out.died = {}
      return out
    }
    if (type === 'NCMD' || type === 'DCMD') return { ...out, ignored: 'command' }
    if (!st?.born) {
      out.rebirth = 'no_birth'
      out.ignored = `${type} from a node without a birth`
      return out
    }
    const expected = (st.seq + 1) % 256
    if (p.seq !== undefined) {
      if (p.seq !== expected) out.rebirth = 'seq_gap'
      st.seq = p.seq % 256
    }
    switch (type) {
      case 'NDATA':
        this.collect(st.aliases, p, undefined, now, out, false)
        break
      case 'DBIRTH': {
        const d: DeviceState = { aliases: new Map() }
        st.devices.set(device!, d)
        out.born = { device }
        this.collect(d.aliases, p, device, now, out, true)
        break
      }
      case 'DDATA': {
        const d = st.devices.get(device!)
        if (!d) {
          out.rebirth = 'no_birth'
          out.ignored = `DDATA from device ${device} without a DBIRTH`
          break
        }
        this.collect(d.aliases, p, device, now, out, false)
        break
      }
      case 'DDEATH':
        if (st.devices.delete(device!)) out.died = { device }
        break
    }
    if (out.skipped.some((s) => s.why === 'unknown alias')) out.rebirth ??= 'unknown_alias'
    return out
  }

  /** Forgets every node (the host's own connection was lost: all births must be seen again). */
  reset(): void {
    this.nodes.clear()
  }

  born(group: string, node: string, device?: string): boolean {
    const st = this.nodes.get(`${group}/${node}`)
    if (!st?.born) return false
    return device === undefined || st.devices.has(device)
  }

  private collect(aliases: Map<number | bigint, string>, p: Payload, device: string | undefined, now: number, out: Outcome, birth: boolean): void {
    const fallback = p.timestamp ?? now
    for (const m of p.metrics) {
      let name = m.name
      if (birth) {
        if (name !== undefined && m.alias !== undefined) aliases.set(m.alias, name)
      } else if (name === undefined && m.alias !== undefined) name = aliases.get(m.alias)
      if (name === undefined) {
        out.skipped.push({ metric: m.alias === undefined ? '(no name)' : `alias ${m.alias}`, why: 'unknown alias' })
        continue
      }
      if (m.complex) {
        out.skipped.push({ metric: name, why: `${m.complex} values are not read` })
        continue
      }
      out.samples.push({ device, metric: name, time: m.timestamp ?? fallback, value: m })
    }
  }
}

function bdSeqOf(p: Payload): number | bigint | undefined {
  const m = p.metrics.find((x) => x.name === 'bdSeq')
  const v = m?.value
  return typeof v === 'number' || typeof v === 'bigint' ? v : undefined
}

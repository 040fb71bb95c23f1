// flashcheck as a Sparkplug B edge node (Sparkplug 3.0, chapter 5 "Operational Behavior"). It keeps an MQTT
// session of its own, because MQTT gives a session one Will and the service's Will is its status topic: here
// the Will is NDEATH with the session's bdSeq. After connecting (and, with a primary host, once that host's
// STATE says online) it publishes NBIRTH, then one DBIRTH per inspection; every verdict goes out as DDATA of
// its inspection's device. NCMD Node Control/Rebirth re-sends the births.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import { clientOptions } from '../mqtt/options.js'
import type { RuleSet } from '../rules/types.js'
import type { Response } from '../service/response.js'
import { BdSeqStore } from './bdseq.js'
import { decodePayload, encodePayload, type Metric } from './codec.js'
import { sparkplugMetrics, type SparkplugMetrics } from './metrics.js'
import { DataType } from './schema.js'
import { nodeTopic, stateTopic } from './topic.js'

export const REBIRTH_METRIC = 'Node Control/Rebirth'

/** The metrics of an inspection device, in DBIRTH order. */
export const DEVICE_METRICS = [
  { name: 'Verdict', datatype: DataType.String },
  { name: 'VerdictId', datatype: DataType.String },
  { name: 'Trace', datatype: DataType.String },
  { name: 'LatencyMs', datatype: DataType.Double },
  { name: 'DeadlineMissed', datatype: DataType.Boolean },
  { name: 'ErrorCode', datatype: DataType.String },
] as const

type DeviceValues = [string, string, string, number, boolean, string]

interface Device {
  /** Alias of each DEVICE_METRICS entry, assigned at its DBIRTH. */
  aliases: number[]
}

export interface EdgeNodeDeps {
  config: Config
  log: Logger
  metrics: Metrics
  version: string
  rules: () => RuleSet | undefined
}

const QOS0 = { qos: 0 as const, retain: false }

export class EdgeNode {
  private readonly group: string
  private readonly node: string
  private readonly host: string
  private readonly bdSeqs: BdSeqStore
  private readonly m: SparkplugMetrics
  private client?: MqttClient
  private bdSeq = 0
  private seq = 0
  private nextAlias = 1
  private born = false
  /** Devices born in this session, by inspection id. */
  private devices = new Map<string, Device>()
  /** Latest verdict per inspection, kept across sessions so births report it. */
  private readonly lastValues = new Map<string, { values: DeviceValues; at: number }>()
  private hostStateAt = -1
  private url = ''
  private stopping = false
  private retryTimer?: NodeJS.Timeout
  private backoffMs: number

  constructor(private readonly d: EdgeNodeDeps) {
    const s = d.config.sparkplug
    this.group = s.group
    this.node = s.edgeNode
    this.host = s.primaryHost
    this.bdSeqs = new BdSeqStore(d.config.state.dir)
    this.m = sparkplugMetrics(d.metrics)
    this.backoffMs = d.config.mqtt.reconnectMinMs
  }

  get online(): boolean {
    return this.born
  }

  get currentBdSeq(): number {
    return this.bdSeq
  }

  start(url: string): void {
    this.url = url
    this.session()
  }

  /** Ends the session the way Sparkplug asks for an intentional disconnect: NDEATH first. */
  async stop(): Promise<void> {
    this.stopping = true
    clearTimeout(this.retryTimer)
    const c = this.client
    if (!c) return
    if (c.connected) await new Promise<void>((resolve) => c.publish(this.topic('NDEATH'), Buffer.from(this.deathPayload()), { qos: 1, retain: false }, () => resolve()))
    this.setBorn(false)
    await c.endAsync(!c.connected)
  }

  /** A verdict was published: it goes out as DDATA of its inspection's device (alias only). */
  verdict(res: Response, startedAt: number): void {
    const id = res.inspection
    if (id === null) return
    const r = res as Response & { verdict_id?: unknown; trace?: unknown }
    const values: DeviceValues = [
      res.verdict,
      typeof r.verdict_id === 'string' ? r.verdict_id : '',
      r.trace === undefined || r.trace === null ? '' : typeof r.trace === 'string' ? r.trace : JSON.stringify(r.trace),
      res.latency_ms,
      res.deadline_missed,
      res.error?.code ?? '',
    ]
    this.lastValues.set(id, { values, at: startedAt })
    const dev = this.devices.get(id)
    if (!this.born || !dev || !this.client?.connected) return
    const metrics: Metric[] = DEVICE_METRICS.map((m, i) => ({ alias: dev.aliases[i]!, timestamp: startedAt, datatype: m.datatype, value: values[i]! }))
    this.send(this.topic('DDATA', id), { timestamp: Date.now(), seq: this.nextSeq(), metrics })
  }

  /** The rule set changed: DBIRTH for inspections that are new, DDEATH for those that are gone. */
  rulesChanged(set: RuleSet): void {
    if (!this.born) return
    const ids = new Set(set.rules.map((r) => r.id))
    for (const id of [...this.devices.keys()]) {
      if (ids.has(id)) continue
      this.devices.delete(id)
      this.send(this.topic('DDEATH', id), { timestamp: Date.now(), seq: this.nextSeq(), metrics: [] })
    }
    for (const id of ids) if (!this.devices.has(id)) this.deviceBirth(id)
    // The node metrics that describe the rule set change with it: NDATA by alias.
    const now = Date.now()
    this.send(this.topic('NDATA'), {
      timestamp: now,
      seq: this.nextSeq(),
      metrics: [
        { alias: RULES_REV_ALIAS, timestamp: now, datatype: DataType.String, value: set.rev },
        { alias: INSPECTIONS_ALIAS, timestamp: now, datatype: DataType.UInt32, value: set.rules.length },
      ],
    })
    this.d.log.info({ devices: [...this.devices.keys()] }, 'sparkplug devices updated after reload')
  }

  private topic(type: 'NBIRTH' | 'NDEATH' | 'NDATA' | 'DBIRTH' | 'DDATA' | 'DDEATH' | 'NCMD' | 'DCMD', device?: string): string {
    return nodeTopic(this.group, type, this.node, device)
  }

  private deathPayload(): Uint8Array {
    return encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', datatype: DataType.UInt64, value: this.bdSeq }] })
  }

  /** One MQTT session: a fresh client with this session's bdSeq in its Will. */
  private session(): void {
    if (this.stopping) return
    try {
      this.bdSeq = this.bdSeqs.next()
    } catch (e) {
      this.bdSeq = (this.bdSeq + 1) % 256
      this.d.log.error({ err: (e as Error).message, dir: this.d.config.state.dir }, 'sparkplug bdSeq could not be saved; a restart may reuse it')
    }
    const cfg = this.d.config
    const version = cfg.mqtt.url === 'embedded' ? 4 : cfg.mqtt.protocolVersion
    const base = clientOptions(cfg, version)
    // Sparkplug 3.0: clean session (MQTT 3.1.1) or clean start with session expiry 0 (MQTT 5); Will NDEATH at QoS 1.
    const opts: IClientOptions = {
      ...base,
      clientId: `${cfg.mqtt.clientId}-spb`,
      clean: true,
      reconnectPeriod: 0,
      will: { topic: this.topic('NDEATH'), payload: Buffer.from(this.deathPayload()), qos: 1, retain: false },
      properties: version === 5 ? { sessionExpiryInterval: 0 } : undefined,
    }
    const client = mqtt.connect(this.url, opts)
    this.client = client
    client.on('connect', () => {
      this.backoffMs = cfg.mqtt.reconnectMinMs
      const filters: Record<string, { qos: 0 | 1 }> = { [this.topic('NCMD')]: { qos: 1 }, [`${this.topic('DCMD')}/+`]: { qos: 1 } }
      if (this.host !== '') filters[stateTopic(this.host)] = { qos: 1 }
      client.subscribe(filters, (err) => {
        if (err) {
          this.d.log.error({ err: err.message }, 'sparkplug subscriptions failed')
          return
        }
        this.d.log.info({ group: this.group, node: this.node, bd_seq: this.bdSeq, primary_host: this.host || null }, 'sparkplug edge node connected')
        if (this.host === '') this.birth('connect')
      })
    })
    client.on('message', (topic, payload) => this.onMessage(topic, payload))
    client.on('error', (err) => this.d.log.warn({ err: err.message }, 'sparkplug mqtt error'))
    client.on('close', () => {
      if (this.client !== client) return
      this.setBorn(false)
      if (this.stopping) return
      // A new session gets a new bdSeq: the broker has (or will) publish this one's NDEATH.
      client.removeAllListeners()
      client.on('error', () => {})
      client.end(true)
      this.client = undefined
      const delay = this.backoffMs
      this.backoffMs = Math.min(this.backoffMs * 2, cfg.mqtt.reconnectMaxMs)
      this.retryTimer = setTimeout(() => this.session(), delay)
    })
  }

  private onMessage(topic: string, payload: Buffer): void {
    try {
      if (this.host !== '' && topic === stateTopic(this.host)) return this.onHostState(payload)
      if (topic !== this.topic('NCMD')) return // DCMD: the inspection devices have no writable metrics
      const p = decodePayload(payload)
      const rebirth = p.metrics.some((m) => (m.name === REBIRTH_METRIC || m.alias === REBIRTH_ALIAS) && m.value === true)
      if (rebirth) {
        this.d.log.info('sparkplug rebirth requested by a host')
        this.birth('rebirth')
      }
    } catch (e) {
      this.d.log.warn({ topic, err: (e as Error).message }, 'sparkplug command dropped')
      this.m.malformed.inc({ reason: 'command' })
    }
  }

  /** Sparkplug 3.0 STATE: JSON {online, timestamp}; older hosts publish ONLINE/OFFLINE. */
  private onHostState(payload: Buffer): void {
    const text = payload.toString('utf8')
    let online: boolean
    let at = Date.now()
    if (text === 'ONLINE' || text === 'OFFLINE') online = text === 'ONLINE'
    else {
      const s = JSON.parse(text) as { online?: unknown; timestamp?: unknown }
      if (typeof s.online !== 'boolean') throw new Error('STATE payload has no boolean "online"')
      online = s.online
      if (typeof s.timestamp === 'number') at = s.timestamp
      // A STATE older than one already seen is a late retained copy: ignored (Sparkplug 3.0, 5.x host rules).
      if (typeof s.timestamp === 'number' && s.timestamp < this.hostStateAt) return
      if (typeof s.timestamp === 'number') this.hostStateAt = s.timestamp
    }
    this.d.log.info({ host: this.host, online, at }, 'sparkplug primary host state')
    if (online) {
      if (!this.born) this.birth('primary_host_online')
      return
    }
    // The primary host is gone: end this session (NDEATH) and start a new one that waits for it again. A session
    // that is not born yet just keeps waiting (the retained offline STATE greets every new session).
    if (!this.client || !this.born) return
    const c = this.client
    this.setBorn(false)
    c.publish(this.topic('NDEATH'), Buffer.from(this.deathPayload()), { qos: 1, retain: false }, () => c.end())
  }

  private setBorn(born: boolean): void {
    this.born = born
    this.m.edgeOnline.set(born ? 1 : 0)
    if (!born) this.devices = new Map()
  }

  /** NBIRTH (seq 0, the session's bdSeq) then one DBIRTH per inspection. */
  private birth(reason: string): void {
    if (!this.client?.connected) return
    this.seq = 0
    this.nextAlias = FIRST_DEVICE_ALIAS
    this.devices = new Map()
    const now = Date.now()
    const rules = this.d.rules()
    const metrics: Metric[] = [
      { name: 'bdSeq', timestamp: now, datatype: DataType.UInt64, value: this.bdSeq },
      { name: REBIRTH_METRIC, alias: REBIRTH_ALIAS, timestamp: now, datatype: DataType.Boolean, value: false },
      { name: 'Node Info/Version', alias: VERSION_ALIAS, timestamp: now, datatype: DataType.String, value: this.d.version },
      { name: 'Node Info/Rules Revision', alias: RULES_REV_ALIAS, timestamp: now, datatype: DataType.String, value: rules?.rev ?? '' },
      { name: 'Node Info/Inspections', alias: INSPECTIONS_ALIAS, timestamp: now, datatype: DataType.UInt32, value: rules?.rules.length ?? 0 },
    ]
    this.send(this.topic('NBIRTH'), { timestamp: now, seq: 0, metrics })
    this.setBorn(true)
    this.m.edgeBirths.inc({ reason })
    for (const r of rules?.rules ?? []) this.deviceBirth(r.id)
    this.d.log.info({ group: this.group, node: this.node, bd_seq: this.bdSeq, devices: this.devices.size, reason }, 'sparkplug NBIRTH published')
  }

  private deviceBirth(id: string): void {
    const aliases = DEVICE_METRICS.map(() => this.nextAlias++)
    const last = this.lastValues.get(id)
    const now = Date.now()
    const metrics: Metric[] = DEVICE_METRICS.map((m, i) => ({
      name: m.name,
      alias: aliases[i]!,
      timestamp: last?.at ?? now,
      datatype: m.datatype,
      value: last ? last.values[i]! : null,
    }))
    this.devices.set(id, { aliases })
    this.send(this.topic('DBIRTH', id), { timestamp: now, seq: this.nextSeq(), metrics })
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % 256
    return this.seq
  }

  private send(topic: string, p: Parameters<typeof encodePayload>[0]): void {
    this.client?.publish(topic, Buffer.from(encodePayload(p)), QOS0)
  }
}

// Node metric aliases; device metrics take the ones after them. Aliases are unique over the node and all its
// devices within a session (Sparkplug 3.0).
const REBIRTH_ALIAS = 1
const VERSION_ALIAS = 2
const RULES_REV_ALIAS = 3
const INSPECTIONS_ALIAS = 4
const FIRST_DEVICE_ALIAS = 5

// PLC-like load for the fault-injection tests: requesters with persistent sessions (clean false, session
// expiry) sending QoS 1 requests with unique correlation data at a steady rate, and the books to tell, per
// request, whether it was answered, answered twice, or lost. MQTT 5 requesters put the response topic and
// correlation data in the properties; MQTT 3.1.1 ones put `reply_to` and `correlation_id` in the payload, and
// find the correlation of an answer in its body.
import mqtt, { type MqttClient } from 'mqtt'

export interface Counts {
  sent: number
  answered: number
  /** Requests that got two or more different answers: the daemon inspected them twice. */
  answeredTwice: number
  /** Extra copies of an identical answer: QoS 1 redelivery on the way to the requester (at least once). */
  redelivered: number
  lost: number
}

export class LoadRun {
  private readonly clients: MqttClient[] = []
  private timer?: NodeJS.Timeout
  private seq = 0
  /** correlation → the distinct answers (by payload) and how many copies arrived. */
  readonly answers = new Map<string, { bodies: Set<string>; copies: number; node?: string }>()
  readonly sentIds: string[] = []

  constructor(
    private readonly url: string,
    private readonly topic: string,
    private readonly opts: { requesters: number; ratePerRequester: number; tag: string; protocol?: 4 | 5 },
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.opts.requesters; i++) {
      const id = `${this.opts.tag}-req-${i}`
      const c = this.v5
        ? mqtt.connect(this.url, { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 100, connectTimeout: 3000, resubscribe: true })
        : mqtt.connect(this.url, { protocolVersion: 4, clientId: id, clean: false, reconnectPeriod: 100, connectTimeout: 3000, resubscribe: true })
      c.on('error', () => {}) // refused while the broker restarts: mqtt.js reconnects
      c.on('message', (_topic, payload, packet) => {
        const text = payload.toString()
        let body: { node?: string; correlation_id?: string } | undefined
        try { body = JSON.parse(text) as typeof body } catch { /* counted by bodies when correlated */ }
        const corr = this.v5 ? (packet.properties?.correlationData ? Buffer.from(packet.properties.correlationData).toString() : undefined) : body?.correlation_id
        if (corr === undefined) return
        let a = this.answers.get(corr)
        if (!a) this.answers.set(corr, (a = { bodies: new Set(), copies: 0 }))
        a.copies++
        a.bodies.add(text)
        a.node = body?.node
      })
      await new Promise<void>((resolve, reject) => {
        c.once('connect', () => resolve())
        setTimeout(() => reject(new Error(`${id} did not connect`)), 5000)
      })
      await c.subscribeAsync(this.replyTopic(i), { qos: 1 })
      this.clients.push(c)
    }
  }

  private get v5(): boolean {
    return (this.opts.protocol ?? 5) === 5
  }

  replyTopic(i: number): string {
    return `test/${this.opts.tag}/reply/${i}`
  }

  /** Starts the steady load; requests are published whether or not the broker is up (mqtt.js queues them). */
  start(): void {
    const periodMs = 1000 / this.opts.ratePerRequester
    this.timer = setInterval(() => {
      this.clients.forEach((c, i) => {
        const corr = `${this.opts.tag}:${i}:${this.seq}`
        this.sentIds.push(corr)
        const torque = 10 + (this.seq % 30) / 10
        if (this.v5) {
          c.publish(this.topic, JSON.stringify({ torque_nm: torque, angle_deg: 700, seq: this.seq }), {
            qos: 1,
            properties: { responseTopic: this.replyTopic(i), correlationData: Buffer.from(corr), messageExpiryInterval: 600 },
          })
        } else {
          c.publish(this.topic, JSON.stringify({ torque_nm: torque, angle_deg: 700, seq: this.seq, reply_to: this.replyTopic(i), correlation_id: corr }), { qos: 1 })
        }
      })
      this.seq++
    }, periodMs)
  }

  stop(): void {
    clearInterval(this.timer)
  }

  counts(): Counts {
    let answered = 0
    let answeredTwice = 0
    let redelivered = 0
    for (const id of this.sentIds) {
      const a = this.answers.get(id)
      if (!a) continue
      answered++
      if (a.bodies.size > 1) answeredTwice++
      redelivered += a.copies - a.bodies.size
    }
    return { sent: this.sentIds.length, answered, answeredTwice, redelivered, lost: this.sentIds.length - answered }
  }

  /** Waits until every request sent has an answer, or the time is up. */
  async drain(timeoutMs: number): Promise<Counts> {
    const end = Date.now() + timeoutMs
    while (Date.now() < end && this.counts().lost > 0) await new Promise((r) => setTimeout(r, 100))
    // A little longer, so that late duplicates are seen too.
    await new Promise((r) => setTimeout(r, 500))
    return this.counts()
  }

  byNode(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const a of this.answers.values()) out[a.node ?? '?'] = (out[a.node ?? '?'] ?? 0) + 1
    return out
  }

  async end(): Promise<void> {
    this.stop()
    await Promise.all(this.clients.map((c) => c.endAsync(true)))
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

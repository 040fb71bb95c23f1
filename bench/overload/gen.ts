// Shared by bench/overload and bench/soak: the daemon as its own process against a fresh mosquitto, an
// open-loop QoS 1 load that stamps each request with `sent-at`, and per-window figures (verdicts, OVERLOADED
// answers, late verdicts, round-trip percentiles) plus the daemon's RSS and event-loop lag.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { get } from 'node:http'
import { Worker } from 'node:worker_threads'
import mqtt, { type MqttClient } from 'mqtt'
import { Mosquitto, freePort } from '../../test/helpers/mosquitto.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { setNoDelay } from '../../daemon/mqtt/nodelay.js'

export const REQUEST_TOPIC = 'flashcheck/inspect/st1/torque'
export const PAYLOAD = JSON.stringify({ torque_nm: 11.2, angle_deg: 720, serial: 'SN-0001' })

export interface Window {
  sent: number
  verdicts: number
  overloaded: number
  /** Normal verdicts that reached the requester after sent-at + budget. */
  late: number
  /** Normal verdicts the daemon itself flagged deadline_missed (its own receive-to-publish view). */
  flagged: number
  /** Round trip of normal verdicts, ms. */
  p50: number
  p99: number
  max: number
  /** Send to OVERLOADED answer at the requester, ms. */
  shedP50: number
  shedP99: number
}

export async function startDaemon(url: string, extra: string[], metricsPort: number): Promise<ChildProcess> {
  const watcher = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 })
  await watcher.subscribeAsync('flashcheck/bench/status')
  const online = new Promise<void>((resolve) => watcher.on('message', (_t, p) => { if (String(p) === 'online') resolve() }))
  const p = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist', 'daemon', 'cli', 'main.js'), 'run', '--mqtt-url', url, '--rules-dir', join(PACKAGE_ROOT, 'rules', 'examples'), '--rules-watch', 'false', '--log-level', 'warn', '--node-id', 'bench', '--state-dir', '', '--security-allow-root', 'true', '--metrics-port', String(metricsPort), ...extra], { stdio: ['ignore', 'inherit', 'inherit'] })
  await Promise.race([online, new Promise((_, reject) => p.once('exit', (c) => reject(new Error(`daemon exited ${c}`))))])
  await watcher.endAsync()
  return p
}

/** What both benches run: a fresh mosquitto, the daemon with its metrics endpoint, live vibration samples at
 *  50 Hz, and the load's requesters; close() takes it all down. */
export interface Rig {
  broker: Mosquitto
  daemon: ChildProcess
  metricsPort: number
  load: Load
  close(): Promise<void>
}

export async function startRig(extra: string[], clients: number, budgetMs: number): Promise<Rig> {
  const broker = await Mosquitto.start()
  const metricsPort = await freePort()
  const daemon = await startDaemon(broker.url, extra, metricsPort)
  const sensor = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  const feed = setInterval(() => sensor.publish('plant/st1/spindle/vibration', JSON.stringify({ rms: 1.1 + Math.random() * 0.2 })), 20)
  const load = await Load.connect(broker.url, clients, budgetMs)
  return {
    broker,
    daemon,
    metricsPort,
    load,
    async close() {
      clearInterval(feed)
      await load.close()
      await sensor.endAsync()
      daemon.kill('SIGTERM')
      await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)))
      await broker.stop()
    },
  }
}

/** Resident set of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}

/** One gauge from the daemon's /metrics endpoint (e.g. nodejs_eventloop_lag_p99_seconds). */
export function metric(port: number, name: string): Promise<number> {
  return new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = ''
      res.on('data', (d) => { body += String(d) })
      res.on('end', () => {
        const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(body)
        resolve(m ? Number(m[1]) : NaN)
      })
    }).on('error', () => resolve(NaN))
  })
}

export class Load {
  private nextId = 0
  private windowSent = 0
  sentTotal = 0
  /** MQTT 5 message expiry of each request in seconds; 0 = none. */
  expiryS = 0
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(private readonly clients: MqttClient[], private readonly replyTopics: string[], private readonly receiver: Worker) {}

  static async connect(url: string, n: number, budgetMs: number): Promise<Load> {
    const clients: MqttClient[] = []
    const topics: string[] = []
    for (let i = 0; i < n; i++) {
      const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `bench-ovl-${process.pid}-${i}`, reconnectPeriod: 0 })
      setNoDelay(c)
      clients.push(c)
      topics.push(`bench/reply/${process.pid}/${i}`)
    }
    const receiver = new Worker(new URL('./receiver.js', import.meta.url), { workerData: { url, filter: `bench/reply/${process.pid}/+`, budgetMs } })
    await new Promise<void>((resolve, reject) => {
      receiver.once('message', () => resolve())
      receiver.once('error', reject)
    })
    return new Load(clients, topics, receiver)
  }

  /** One request/answer exchange with the receiver thread at a time. */
  private ask<T>(m: string): Promise<T> {
    const next = this.queue.then(() => new Promise<T>((resolve) => {
      this.receiver.once('message', (v: T) => resolve(v))
      this.receiver.postMessage(m)
    }))
    this.queue = next.catch(() => undefined)
    return next
  }

  /** Sends `rate`/s (paced every millisecond) for `seconds`; calls `onWindow` every `windowS` seconds. */
  async run(rate: number, seconds: number, windowS: number, onWindow: (w: Window, t: number) => Promise<void> | void): Promise<void> {
    const total = Math.round(rate * seconds)
    const start = Date.now()
    const body = Buffer.from(PAYLOAD)
    let next = 0
    let nextWindow = start + windowS * 1000
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = Date.now()
        const due = Math.min(total, Math.floor(((now - start) / 1000) * rate) + 1)
        while (next < due) {
          const id = this.nextId++
          next++
          const k = id % this.clients.length
          const cd = Buffer.alloc(12)
          cd.writeUInt32BE(id >>> 0, 0)
          const at = Date.now()
          cd.writeDoubleBE(at, 4)
          this.windowSent++
          this.sentTotal++
          // A PLC would not wait for a verdict seconds old: a 1 s message expiry lets the broker drop what
          // it could not deliver in time (MQTT 5), which bounds its queue under overload.
          this.clients[k]!.publish(REQUEST_TOPIC, body, { qos: 1, properties: { responseTopic: this.replyTopics[k], correlationData: cd, messageExpiryInterval: this.expiryS || undefined, userProperties: { 'sent-at': String(at) } } })
        }
        if (now >= nextWindow) {
          nextWindow += windowS * 1000
          void this.take().then((w) => onWindow(w, (now - start) / 1000))
        }
        if (next >= total) resolve()
        else setTimeout(tick, 1)
      }
      tick()
    })
  }

  /** Waits up to `ms` for the answers still due; returns how many never came. */
  async drain(ms: number): Promise<number> {
    const end = Date.now() + ms
    let answered = 0
    while (Date.now() < end) {
      answered = (await this.ask<{ answered: number }>('answered')).answered
      if (answered >= this.sentTotal) break
      await new Promise((r) => setTimeout(r, 100))
    }
    return this.sentTotal - answered
  }

  async answered(): Promise<number> {
    return (await this.ask<{ answered: number }>('answered')).answered
  }

  async take(): Promise<Window> {
    const r = await this.ask<Omit<Window, 'sent'> & { answered: number }>('take')
    const w: Window = { ...r, sent: this.windowSent }
    this.windowSent = 0
    return w
  }

  async close(): Promise<void> {
    this.receiver.postMessage('close')
    await Promise.all(this.clients.map((c) => c.endAsync(true)))
    await this.receiver.terminate()
  }
}


export const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-')

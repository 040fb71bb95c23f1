// The daemon under windowed load, as bench/overload and bench/soak run it: a fresh mosquitto, the daemon as
// its own process with its metrics endpoint and the example rules, live vibration samples at 50 Hz, and an
// open-loop QoS 1 load that stamps each request with `sent-at`. Figures per window: verdicts, OVERLOADED
// answers, late verdicts, round-trip percentiles (measured in a worker thread, receiver.ts).
import type { ChildProcess } from 'node:child_process'
import { get } from 'node:http'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import mqtt from 'mqtt'
import { PACKAGE_ROOT } from '../daemon/paths.js'
import { spawnDaemon, stopProcess } from './daemon-process.js'
import { connectRequesters, pace, type Requesters } from './load.js'
import { Mosquitto, freePort } from './mosquitto.js'

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

export interface Rig {
  broker: Mosquitto
  daemon: ChildProcess
  metricsPort: number
  load: WindowedLoad
  close(): Promise<void>
}

/** Starts everything; `extra` are further `flashcheck run` arguments. */
export async function startRig(extra: string[], clients: number, budgetMs: number): Promise<Rig> {
  const broker = await Mosquitto.start()
  const metricsPort = await freePort()
  const daemon = await spawnDaemon({ url: broker.url, args: ['--rules-dir', join(PACKAGE_ROOT, 'rules', 'examples'), '--metrics-port', String(metricsPort), ...extra] })
  const sensor = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  const feed = setInterval(() => sensor.publish('plant/st1/spindle/vibration', JSON.stringify({ rms: 1.1 + Math.random() * 0.2 })), 20)
  const load = await WindowedLoad.connect(broker.url, clients, budgetMs)
  return {
    broker,
    daemon,
    metricsPort,
    load,
    async close() {
      clearInterval(feed)
      await load.close()
      await sensor.endAsync()
      await stopProcess(daemon)
      await broker.stop()
    },
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

/** Requests to REQUEST_TOPIC stamped with `sent-at`; answers counted per window by the receiver thread. */
export class WindowedLoad {
  private nextId = 0
  private windowSent = 0
  sentTotal = 0
  /** MQTT 5 message expiry of each request in seconds; 0 = none. */
  expiryS = 0
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(private readonly r: Requesters, private readonly receiver: Worker) {}

  static async connect(url: string, n: number, budgetMs: number): Promise<WindowedLoad> {
    const r = await connectRequesters(url, n, 'bench-ovl', false)
    const receiver = new Worker(new URL('./receiver.js', import.meta.url), { workerData: { url, filter: `bench/reply/${process.pid}/+`, budgetMs } })
    await new Promise<void>((resolve, reject) => {
      receiver.once('message', () => resolve())
      receiver.once('error', reject)
    })
    return new WindowedLoad(r, receiver)
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

  /** Sends `rate`/s for `seconds`; calls `onWindow` every `windowS` seconds. */
  async run(rate: number, seconds: number, windowS: number, onWindow: (w: Window, t: number) => Promise<void> | void): Promise<void> {
    const body = Buffer.from(PAYLOAD)
    const { clients, replyTopics } = this.r
    let nextWindow = windowS * 1000
    await pace(
      rate,
      seconds,
      () => {
        const id = this.nextId++
        const k = id % clients.length
        const cd = Buffer.alloc(12)
        cd.writeUInt32BE(id >>> 0, 0)
        const at = Date.now()
        cd.writeDoubleBE(at, 4)
        this.windowSent++
        this.sentTotal++
        // A PLC would not wait for a verdict seconds old: a message expiry lets the broker drop what it could
        // not deliver in time (MQTT 5), which bounds its queue under overload.
        clients[k]!.publish(REQUEST_TOPIC, body, { qos: 1, properties: { responseTopic: replyTopics[k], correlationData: cd, messageExpiryInterval: this.expiryS || undefined, userProperties: { 'sent-at': String(at) } } })
      },
      (elapsed) => {
        if (elapsed < nextWindow) return
        nextWindow += windowS * 1000
        void this.take().then((w) => onWindow(w, elapsed / 1000))
      },
    )
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
    await Promise.all(this.r.clients.map((c) => c.endAsync(true)))
    await this.receiver.terminate()
  }
}

// The daemon's side of systemd's Type=notify protocol: READY=1 once the rules are loaded and the broker
// connected, STATUS= lines for `systemctl status`, RELOADING=1/READY=1 around reloads, STOPPING=1, and
// WATCHDOG=1 at half of WatchdogSec from a timer on the main event loop, so that a blocked loop stops the
// pings and systemd restarts the service.
import type { EventEmitter } from 'node:events'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import { LATENCY_BUCKETS_S } from '../metrics/metrics.js'
import { monotonicUsec, Notifier, watchdogIntervalMs } from './notify.js'

/** What the integration reads from the daemon; the Daemon class satisfies it. */
export interface NotifySource extends EventEmitter {
  readonly rulesRev: string | undefined
  readonly connected: boolean
  readonly metrics: Metrics
}

export interface SystemdOptions {
  notifier?: Notifier
  env?: NodeJS.ProcessEnv
  /** STATUS refresh period; the p99 in it covers the last `windowTicks` periods. */
  statusEveryMs?: number
  windowTicks?: number
  logger?: Logger
}

export class SystemdService {
  readonly notifier: Notifier
  readonly watchdogMs: number | undefined
  private ready = false
  private started = false
  private reloading = false
  private lastReload = ''
  private watchdogTimer?: NodeJS.Timeout
  private statusTimer?: NodeJS.Timeout
  /** Cumulative latency bucket counts, one snapshot per status tick, oldest first. */
  private readonly snapshots: number[][] = []
  private readonly windowTicks: number
  private readonly statusEveryMs: number
  private readonly listeners: [string, (...a: unknown[]) => void][] = []
  private readonly log?: Logger

  constructor(private readonly daemon: NotifySource, opts: SystemdOptions = {}) {
    const env = opts.env ?? process.env
    this.notifier = opts.notifier ?? new Notifier(env)
    this.watchdogMs = watchdogIntervalMs(env)
    this.statusEveryMs = opts.statusEveryMs ?? 5000
    this.windowTicks = opts.windowTicks ?? 12
    this.log = opts.logger
    if (!this.notifier.enabled) return
    this.on('connected', () => this.maybeReady())
    this.on('disconnected', () => void this.pushStatus())
    this.on('reloading', () => {
      this.reloading = true
      this.send({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading rules' })
    })
    this.on('reloaded', () => this.endReload(''))
    this.on('reload-failed', (errors) => this.endReload(`last reload rejected (${Array.isArray(errors) ? errors.length : '?'} errors)`))
    if (this.watchdogMs !== undefined) {
      // Deliberately on the main loop (not a worker): the ping proves the loop that answers requests runs.
      this.watchdogTimer = setInterval(() => this.send({ WATCHDOG: 1 }), this.watchdogMs)
      this.watchdogTimer.unref()
      this.send({ WATCHDOG: 1 })
    }
  }

  private on(event: string, fn: (...a: unknown[]) => void): void {
    this.daemon.on(event, fn)
    this.listeners.push([event, fn])
  }

  private send(fields: Record<string, string | number | bigint>): void {
    if (!this.notifier.notify(fields) && this.notifier.lastError !== 0) {
      this.log?.warn({ errno: this.notifier.lastError, socket: this.notifier.socket }, 'sd_notify failed')
    }
  }

  /** Call once Daemon.start() resolved (rules loaded); READY=1 follows with the first broker connect. */
  markStarted(): void {
    this.started = true
    if (!this.notifier.enabled) return
    this.statusTimer = setInterval(() => void this.pushStatus(), this.statusEveryMs)
    this.statusTimer.unref()
    this.maybeReady()
  }

  private maybeReady(): void {
    if (this.ready || !this.started || !this.daemon.connected || this.daemon.rulesRev === undefined) {
      void this.pushStatus()
      return
    }
    this.ready = true
    void this.statusLine().then((status) => this.send({ READY: 1, MAINPID: process.pid, STATUS: status }))
  }

  private endReload(note: string): void {
    this.lastReload = note
    if (!this.reloading) {
      // A reload from a file change: systemd was not told it started, so only the status changes.
      void this.pushStatus()
      return
    }
    this.reloading = false
    void this.statusLine().then((status) => this.send({ READY: 1, STATUS: status }))
  }

  private async pushStatus(): Promise<void> {
    const status = await this.statusLine()
    this.send({ STATUS: status })
  }

  /** e.g. "rules 3f2a9c01; broker connected; p99 <= 2 ms over 60 s; 1234 verdicts". */
  async statusLine(): Promise<string> {
    // Read from the tally itself: all inspections' cumulative buckets (the last is +Inf) summed.
    const tally = this.daemon.metrics.verdicts
    const counts = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0)
    for (const h of tally.histograms()) h.cumulative.forEach((n, i) => (counts[i]! += n))
    let verdicts = 0
    for (const [, , n] of tally.verdicts()) verdicts += n
    this.snapshots.push(counts)
    if (this.snapshots.length > this.windowTicks + 1) this.snapshots.shift()
    const base = this.snapshots[0]
    const window = counts.map((c, i) => c - (this.snapshots.length > 1 ? base[i] : 0))
    const parts = [
      `rules ${this.daemon.rulesRev ?? 'none'}`,
      `broker ${this.daemon.connected ? 'connected' : 'disconnected'}`,
      `p99 ${p99Text(window)}`,
      `${verdicts} verdicts`,
    ]
    if (this.lastReload) parts.push(this.lastReload)
    return parts.join('; ')
  }

  /** STOPPING=1 and timers off; call when a clean stop begins. */
  stop(): void {
    clearInterval(this.watchdogTimer)
    clearInterval(this.statusTimer)
    for (const [e, fn] of this.listeners) this.daemon.off(e, fn)
    if (this.notifier.enabled) this.send({ STOPPING: 1, STATUS: 'stopping' })
  }
}

/** The upper bound of the bucket holding the 99th percentile of cumulative bucket counts (last = +Inf). */
function p99Text(cum: number[]): string {
  const total = cum[cum.length - 1]
  if (!(total > 0)) return 'n/a (no verdicts lately)'
  const target = total * 0.99
  for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) {
    if (cum[i] >= target) return `<= ${formatMs(LATENCY_BUCKETS_S[i] * 1000)}`
  }
  return `> ${formatMs(LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.length - 1] * 1000)}`
}

function formatMs(ms: number): string {
  return `${Number(ms.toPrecision(3))} ms`
}

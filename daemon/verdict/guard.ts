// The margin before a deadline at which a request's fallback is published when the model has not answered:
// model.guardMs, plus how late the event loop has lately been running its timers. On a gateway whose cores the
// decoder threads, the broker and the daemon share, a starved loop fires the fallback's timer (and publishes a
// finished verdict) milliseconds after it was due; the guard widens by that lateness, so the next fallbacks go
// out on time, and narrows again (half-life 10 s) once the loop keeps time.
import { performance } from 'node:perf_hooks'

/** The probe's period: a timer that measures its own lateness. */
const PROBE_MS = 100
/** The widening never exceeds this (a loop stalled for longer needs fixing, not a guard). */
const MAX_EXTRA_MS = 20
const HALF_LIFE_MS = 10_000

export class Guard {
  private late = 0
  private lateAt = 0
  private timer?: NodeJS.Timeout
  private due = 0

  constructor(readonly baseMs: number) {}

  /** ms before a deadline at which its fallback is due now. */
  ms(now = performance.now()): number {
    return this.baseMs + this.extra(now)
  }

  /** The lateness still counted at `now` (decaying). */
  extra(now = performance.now()): number {
    if (this.late === 0) return 0
    return this.late * 0.5 ** ((now - this.lateAt) / HALF_LIFE_MS)
  }

  /** A timer due at `due` ran at `now` (performance.now() times). */
  observe(due: number, now = performance.now()): void {
    const l = Math.min(MAX_EXTRA_MS, now - due)
    if (l > this.extra(now)) {
      this.late = l
      this.lateAt = now
    }
  }

  /** Measures the loop's lateness every 100 ms while a model is loaded (never keeps the process up). */
  start(): void {
    if (this.timer) return
    this.due = performance.now() + PROBE_MS
    this.timer = setInterval(() => {
      const now = performance.now()
      this.observe(this.due, now)
      this.due = now + PROBE_MS
    }, PROBE_MS)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}

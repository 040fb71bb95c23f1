// The margin before a deadline at which a request's fallback is published when the model has not answered:
// model.guardMs, widened after a verdict went out late. On a gateway whose cores the decoder threads, the broker
// and the daemon share, a starved event loop can run the fallback's timer (or take a finished result) after the
// deadline; the guard then widens by as much as that verdict needed, so that the next ones go out on time, and
// narrows again (half-life 10 s) once verdicts keep time. Only late verdicts widen it: a single stall of the loop
// that made nothing late costs no answers.
import { performance } from 'node:perf_hooks'

/** The widening never exceeds this (a loop stalled for longer needs fixing, not a guard). */
const MAX_EXTRA_MS = 20
const HALF_LIFE_MS = 10_000

export class Guard {
  private late = 0
  private lateAt = 0

  constructor(readonly baseMs: number) {}

  /** ms before a deadline at which its fallback is due now. */
  ms(now = performance.now()): number {
    return this.baseMs + this.extra(now)
  }

  /** The widening still counted at `now` (decaying). */
  extra(now = performance.now()): number {
    if (this.late === 0) return 0
    return this.late * 0.5 ** ((now - this.lateAt) / HALF_LIFE_MS)
  }

  /**
   * A job whose fallback was due at `due` (deadline minus the guard of its admission) was settled at `now`;
   * after its `deadline` the verdict was late, and the guard grows to what it would have needed.
   */
  settled(due: number, deadline: number, now = performance.now()): void {
    if (now <= deadline) return
    const need = Math.min(MAX_EXTRA_MS, now - due - this.baseMs)
    if (need > this.extra(now)) {
      this.late = need
      this.lateAt = now
    }
  }
}

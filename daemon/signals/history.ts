// History of one signal on one concrete topic: a growable ring buffer of (time, value) in typed arrays,
// with running sums so count/avg/slope over any window cost two binary searches (O(log n)), and a segment
// tree for min/max (O(log n)). Times must arrive non-decreasing; an older sample is clamped to the newest
// time so the order invariant that binary search relies on always holds.

import type { SignalSeries } from '../rules/types.js'

const INITIAL = 16

export interface WindowStats {
  n: number
  sum: number
  /** Least-squares slope per millisecond; NaN when fewer than two distinct times. */
  slopePerMs: number
}

export class SignalHistory implements SignalSeries {
  private cap = INITIAL
  private times = new Float64Array(INITIAL)
  private vals = new Float64Array(INITIAL)
  // Running sums from logical index `sumsFrom`, shifted by (tBase, vBase) to keep magnitudes small for the
  // slope algebra; re-anchored every `cap` pushes (amortised O(1)).
  private cT = new Float64Array(INITIAL)
  private cV = new Float64Array(INITIAL)
  private cTT = new Float64Array(INITIAL)
  private cTV = new Float64Array(INITIAL)
  // Segment trees for min and max: leaves at [cap, 2cap) by slot, node i covers children 2i and 2i+1.
  private tree = new Float64Array(2 * INITIAL)
  private treeMax = new Float64Array(2 * INITIAL)
  // Logical indexes only grow (slot = index % cap); midpoints below are computed as lo + ((hi - lo) >>> 1)
  // so they stay exact past 2^31 samples.
  private head = 0 // logical index of the oldest live sample
  private tail = 0 // logical index one past the newest
  private tBase = 0
  private vBase = 0
  private sinceRebase = 0
  private sumsFrom = 0

  // Scratch objects so window queries allocate nothing.
  private readonly r = { a: 0, b: 0 }
  private readonly w: WindowStats = { n: 0, sum: 0, slopePerMs: NaN }

  constructor(public keepMs: number) {}

  count(from: number, to: number): number {
    this.range(from, to, this.r)
    return this.r.b - this.r.a
  }

  mean(from: number, to: number): number {
    this.range(from, to, this.r)
    this.stats(this.r.a, this.r.b, this.w)
    return this.w.n > 0 ? this.w.sum / this.w.n : NaN
  }

  min(from: number, to: number): number {
    this.range(from, to, this.r)
    return this.r.b > this.r.a ? this.extreme(this.r.a, this.r.b, false) : NaN
  }

  max(from: number, to: number): number {
    this.range(from, to, this.r)
    return this.r.b > this.r.a ? this.extreme(this.r.a, this.r.b, true) : NaN
  }

  slopePerSecond(from: number, to: number): number {
    this.range(from, to, this.r)
    this.stats(this.r.a, this.r.b, this.w)
    return this.w.slopePerMs * 1000
  }

  lastTime(from: number, to: number): number {
    const i = this.lastIndex(from, to)
    return i < 0 ? NaN : this.timeAt(i)
  }

  lastValue(from: number, to: number): number {
    const i = this.lastIndex(from, to)
    return i < 0 ? NaN : this.valueAt(i)
  }

  get length(): number {
    return this.tail - this.head
  }

  push(t: number, v: number): void {
    if (this.tail > this.head) {
      const lastT = this.times[(this.tail - 1) % this.cap]!
      if (t < lastT) t = lastT
    }
    this.evictBefore(t - this.keepMs)
    // Keep one slot spare so the running sum just before `head` survives (window sums subtract it).
    if (this.tail - this.head === this.cap - 1) this.grow()
    if (this.tail === this.head) {
      // Empty: restart the logical index space and the sum bases at this sample.
      this.head = this.tail = this.sumsFrom = 0
      this.tBase = t
      this.vBase = v
      this.sinceRebase = 0
    }
    const i = this.tail % this.cap
    this.times[i] = t
    this.vals[i] = v
    this.writeSums(this.tail)
    this.setLeaf(i, v)
    this.tail++
    if (++this.sinceRebase >= this.cap) this.rebase()
  }

  /** Drops samples older than `from`. */
  evictBefore(from: number): void {
    while (this.head < this.tail && this.times[this.head % this.cap]! < from) this.head++
  }

  /** Logical index of the first sample with time >= t. */
  private lowerBound(t: number): number {
    let lo = this.head
    let hi = this.tail
    while (lo < hi) {
      const mid = lo + ((hi - lo) >>> 1)
      if (this.times[mid % this.cap]! < t) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Logical index one past the last sample with time <= t. */
  private upperBound(t: number): number {
    let lo = this.head
    let hi = this.tail
    while (lo < hi) {
      const mid = lo + ((hi - lo) >>> 1)
      if (this.times[mid % this.cap]! <= t) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Logical index range [a, b) of samples with from <= time <= to. */
  range(from: number, to: number, out: { a: number; b: number }): void {
    out.a = this.lowerBound(from)
    out.b = this.upperBound(to)
    if (out.b < out.a) out.b = out.a
  }

  /** Newest sample at or before `to` and not before `from`: its logical index, or -1. */
  lastIndex(from: number, to: number): number {
    const b = this.upperBound(to)
    if (b <= this.head) return -1
    const i = b - 1
    return this.times[i % this.cap]! >= from ? i : -1
  }

  timeAt(i: number): number {
    return this.times[i % this.cap]!
  }

  valueAt(i: number): number {
    return this.vals[i % this.cap]!
  }

  /** Sums over logical [a, b) (a >= head): count, sum of values, slope per ms. */
  stats(a: number, b: number, out: WindowStats): void {
    const n = b - a
    out.n = n
    if (n <= 0) {
      out.sum = 0
      out.slopePerMs = NaN
      return
    }
    const c = this.cap
    const hi = (b - 1) % c
    // The slot of a-1 is still intact: one slot is always kept spare (see push), so it is never reused
    // while a-1 >= head-1; before sumsFrom the running sums start from zero.
    const lo = a > this.sumsFrom ? (a - 1) % c : -1
    const sT = this.cT[hi]! - (lo >= 0 ? this.cT[lo]! : 0)
    const sV = this.cV[hi]! - (lo >= 0 ? this.cV[lo]! : 0)
    const sTT = this.cTT[hi]! - (lo >= 0 ? this.cTT[lo]! : 0)
    const sTV = this.cTV[hi]! - (lo >= 0 ? this.cTV[lo]! : 0)
    out.sum = sV + n * this.vBase
    const sxx = sTT - (sT * sT) / n
    const sxy = sTV - (sT * sV) / n
    // Relative threshold: when all times are equal only rounding noise is left in sxx.
    out.slopePerMs = n >= 2 && sxx > 1e-9 * (1 + sTT) ? sxy / sxx : NaN
  }

  private writeSums(i: number): void {
    const c = this.cap
    const dt = this.times[i % c]! - this.tBase
    const dv = this.vals[i % c]! - this.vBase
    const prev = i > this.sumsFrom ? (i - 1) % c : -1
    this.cT[i % c] = (prev >= 0 ? this.cT[prev]! : 0) + dt
    this.cV[i % c] = (prev >= 0 ? this.cV[prev]! : 0) + dv
    this.cTT[i % c] = (prev >= 0 ? this.cTT[prev]! : 0) + dt * dt
    this.cTV[i % c] = (prev >= 0 ? this.cTV[prev]! : 0) + dt * dv
  }

  /** Re-anchors the running sums at the oldest live sample: amortised O(1), keeps magnitudes bounded. */
  private rebase(): void {
    this.sinceRebase = 0
    if (this.tail === this.head) return
    this.tBase = this.times[this.head % this.cap]!
    this.vBase = this.vals[this.head % this.cap]!
    this.sumsFrom = this.head
    for (let i = this.head; i < this.tail; i++) this.writeSums(i)
  }

  private grow(): void {
    const old = this.cap
    const cap = old * 2
    const n = this.tail - this.head
    const t = new Float64Array(cap)
    const v = new Float64Array(cap)
    for (let k = 0; k < n; k++) {
      t[k] = this.times[(this.head + k) % old]!
      v[k] = this.vals[(this.head + k) % old]!
    }
    this.cap = cap
    this.times = t
    this.vals = v
    this.cT = new Float64Array(cap)
    this.cV = new Float64Array(cap)
    this.cTT = new Float64Array(cap)
    this.cTV = new Float64Array(cap)
    this.tree = new Float64Array(2 * cap)
    this.treeMax = new Float64Array(2 * cap)
    this.tree.fill(Infinity)
    this.treeMax.fill(-Infinity)
    this.head = 0
    this.tail = n
    this.tBase = n > 0 ? t[0]! : 0
    this.vBase = n > 0 ? v[0]! : 0
    this.sumsFrom = 0
    this.sinceRebase = 0
    for (let k = 0; k < n; k++) {
      this.writeSums(k)
      this.setLeaf(k, v[k]!)
    }
  }

  private setLeaf(slot: number, v: number): void {
    const c = this.cap
    let i = slot + c
    this.tree[i] = v
    this.treeMax[i] = v
    for (i >>= 1; i >= 1; i >>= 1) {
      const l = 2 * i
      this.tree[i] = Math.min(this.tree[l]!, this.tree[l + 1]!)
      this.treeMax[i] = Math.max(this.treeMax[l]!, this.treeMax[l + 1]!)
    }
  }

  /** Min (wantMax false) or max over logical [a, b), b > a; O(log n). */
  extreme(a: number, b: number, wantMax: boolean): number {
    const c = this.cap
    const sa = a % c
    const sb = sa + (b - a) // exclusive end in slot space, may exceed cap when the range wraps
    if (sb <= c) return this.query(sa, sb, wantMax)
    const r1 = this.query(sa, c, wantMax)
    const r2 = this.query(0, sb - c, wantMax)
    return wantMax ? Math.max(r1, r2) : Math.min(r1, r2)
  }

  private query(lo: number, hi: number, wantMax: boolean): number {
    const tr = wantMax ? this.treeMax : this.tree
    let r = wantMax ? -Infinity : Infinity
    for (lo += this.cap, hi += this.cap; lo < hi; lo >>= 1, hi >>= 1) {
      if (lo & 1) {
        const x = tr[lo++]!
        r = wantMax ? Math.max(r, x) : Math.min(r, x)
      }
      if (hi & 1) {
        const x = tr[--hi]!
        r = wantMax ? Math.max(r, x) : Math.min(r, x)
      }
    }
    return r
  }
}

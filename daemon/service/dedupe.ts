// Remembers answered requests by (response topic, correlation) so that a QoS 1 redelivery of the same
// request is answered once. A checksum of the payload guards against clients that reuse correlation ids
// for different requests: those are new requests and get inspected.
export class Dedupe {
  private readonly seen = new Map<string, { sum: number; at: number }>()
  private lastSweep = 0

  constructor(private readonly windowMs: number, private readonly maxEntries = 100_000) {}

  /** True when this request was already seen within the window; records it otherwise. */
  check(key: string, payload: Buffer, now: number): boolean {
    const sum = checksum(payload)
    const prev = this.seen.get(key)
    if (prev && now - prev.at <= this.windowMs && prev.sum === sum) return true
    if (prev) this.seen.delete(key) // re-insert so Map order stays oldest-first
    this.seen.set(key, { sum, at: now })
    if (now - this.lastSweep > 1000 || this.seen.size > this.maxEntries) this.sweep(now)
    return false
  }

  get size(): number {
    return this.seen.size
  }

  private sweep(now: number): void {
    this.lastSweep = now
    for (const [k, v] of this.seen) {
      if (now - v.at <= this.windowMs && this.seen.size <= this.maxEntries) break
      this.seen.delete(k)
    }
  }
}

/** FNV-1a over the bytes: cheap and good enough to tell a redelivery from a different request. */
export function checksum(buf: Buffer): number {
  let h = 0x811c9dc5
  for (let i = 0; i < buf.length; i++) {
    h ^= buf[i]
    h = Math.imul(h, 0x01000193)
  }
  return (h ^ buf.length) >>> 0
}

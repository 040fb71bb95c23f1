// Remembers answered requests by (response topic, correlation) so that a QoS 1 redelivery of the same
// request is answered once. A checksum of the payload guards against clients that reuse correlation ids
// for different requests: those are new requests and get inspected.
//
// The memory is a table in one typed array keyed by two 32-bit hashes of the key. At 2,000 requests/s a
// window of 60 s holds 120,000 entries; as JS objects in a Map they all survive into the old generation and
// their major GCs showed up as 10-40 ms tails in bench/latency. Typed arrays hold no objects.
// Each key has two candidate buckets of four 16-byte slots (hash a, hash b, checksum, time), one cache line
// each (two-choice hashing): a lookup reads at most two lines of a multi-megabyte table, where a linear probe
// over slots that expired but were never emptied read sixteen. Times are milliseconds from `base`, in 32 bits.
import { readFile, rename, writeFile } from 'node:fs/promises'

/** Slots per bucket, u32 fields per slot (hash a, hash b, checksum, time + 1; 0 = empty). */
const WAYS = 4
const SLOT = 4
const BUCKET = WAYS * SLOT
/** Relative times stay below this; past it (49 days) the table is rebased. */
const SPAN = 0xfffff000
const MAGIC = 'FCD1'
const HEADER = 8
const ENTRY = 20

export class Dedupe {
  private readonly mask: number
  private readonly u: Uint32Array
  /** Epoch ms of relative time 1. */
  private base = Number.NaN

  /** `capacity` is rounded up to a power of two; size it above requests/s × window for exact answers. */
  constructor(private readonly windowMs: number, capacity = 1 << 18) {
    let cap = WAYS * 2
    while (cap < capacity) cap <<= 1
    this.mask = cap / WAYS - 1
    this.u = new Uint32Array(cap * SLOT)
  }

  /** `at` as a relative time (>= 1), moving the base first when it does not fit. */
  private stamp(at: number): number {
    const r = Math.floor(at - this.base)
    if (r >= 0 && r < SPAN) return r + 1
    this.rebase(at)
    return Math.floor(at - this.base) + 1
  }

  /** Re-expresses every slot against a base just below `at` - window; entries that no longer fit are dropped. */
  private rebase(at: number): void {
    const old = this.base
    this.base = Math.floor(at) - this.windowMs - 1
    if (Number.isNaN(old)) return
    const u = this.u
    for (let o = 3; o < u.length; o += SLOT) {
      if (u[o] === 0) continue
      const t = old + u[o]! - 1 - this.base
      u[o] = t >= 0 && t < SPAN ? t + 1 : 0
    }
  }

  /** True when this request was already seen within the window; records it otherwise. */
  check(key: string, payload: Buffer, now: number): boolean {
    return this.seenAt(key, checksum(payload), now) >= 0
  }

  /**
   * When the request with this key and payload checksum was already seen within the window: the epoch ms it
   * was first recorded at (the inspection's start, which is also the time in its verdict_id); otherwise
   * records it and gives -1.
   */
  seenAt(key: string, sum: number, now: number): number {
    const t = this.record(hashA(key), hashB(key), sum, now, true)
    return t > 0 ? this.base + t - 1 : -1
  }

  /**
   * Looks (a, b) up in its two buckets. A live entry with the same checksum is a redelivery (its relative
   * time, > 0); otherwise the entry is stored or refreshed, in a free or expired slot, else over the oldest of
   * the eight (0). `probe` false (restoring) keeps the newer of a stored and a given time.
   */
  private record(a: number, b: number, sum: number, at: number, probe: boolean): number {
    const ts = this.stamp(at)
    const w = this.windowMs
    const u = this.u
    const b1 = (mix(a) & this.mask) * BUCKET
    const b2 = (b & this.mask) * BUCKET
    // Free slots per bucket: a new entry goes to the emptier of the two (two-choice balancing).
    let free1 = -1
    let free2 = -1
    let n1 = 0
    let n2 = 0
    let oldest = -1
    let oldestT = Infinity
    for (let k = 0; k < 2 * WAYS; k++) {
      const first = k < WAYS
      const o = first ? b1 + k * SLOT : b2 + (k - WAYS) * SLOT
      const t = u[o + 3]!
      if (t === 0 || ts - t > w) {
        if (first) {
          if (n1++ === 0) free1 = o
        } else if (n2++ === 0) free2 = o
        continue
      }
      if (u[o] === a && u[o + 1] === b) {
        if (probe) {
          if (u[o + 2] === sum) return t
        } else if (t > ts) return 0
        u[o + 2] = sum
        u[o + 3] = ts
        return 0
      }
      if (t < oldestT) {
        oldestT = t
        oldest = o
      }
    }
    // Both buckets full: the oldest entry gives way (it is the least likely to be redelivered).
    const o = n1 + n2 === 0 ? oldest : n2 > n1 ? free2 : free1
    u[o] = a
    u[o + 1] = b
    u[o + 2] = sum
    u[o + 3] = ts
    return 0
  }

  /**
   * The live entries as bytes, for keeping the memory across a restart (state.dir). Keys in `skip` are left
   * out: requests still being worked on must be answered when the broker redelivers them to a new process.
   */
  snapshot(now: number, skip?: Iterable<string>): Buffer {
    const skipAB = new Set<string>()
    for (const k of skip ?? []) skipAB.add(`${hashA(k)}:${hashB(k)}`)
    const live: number[] = []
    const u = this.u
    const ts = this.stamp(now)
    for (let o = 0; o < u.length; o += SLOT) {
      const t = u[o + 3]!
      if (t === 0 || ts - t > this.windowMs) continue
      if (skipAB.size > 0 && skipAB.has(`${u[o]}:${u[o + 1]}`)) continue
      live.push(o)
    }
    const buf = Buffer.alloc(HEADER + live.length * ENTRY)
    buf.write(MAGIC, 0, 'latin1')
    buf.writeUInt32LE(live.length, 4)
    let p = HEADER
    for (const o of live) {
      buf.writeUInt32LE(u[o]!, p)
      buf.writeUInt32LE(u[o + 1]!, p + 4)
      buf.writeUInt32LE(u[o + 2]!, p + 8)
      buf.writeDoubleLE(this.base + u[o + 3]! - 1, p + 12)
      p += ENTRY
    }
    return buf
  }

  /** Adds the entries of a snapshot that are still inside the window; returns how many. Bad data is ignored. */
  restore(buf: Buffer, now: number): number {
    if (buf.length < HEADER || buf.toString('latin1', 0, 4) !== MAGIC) return 0
    const n = buf.readUInt32LE(4)
    if (buf.length !== HEADER + n * ENTRY) return 0
    let added = 0
    for (let k = 0, o = HEADER; k < n; k++, o += ENTRY) {
      const t = buf.readDoubleLE(o + 12)
      if (!(t > 0) || now - t > this.windowMs || t > now + 60_000) continue
      this.record(buf.readUInt32LE(o), buf.readUInt32LE(o + 4), buf.readUInt32LE(o + 8), t, false)
      added++
    }
    return added
  }

  /** Records an answered request by key and payload checksum (the journal's rows after a restart). */
  add(key: string, sum: number, time: number): void {
    this.record(hashA(key), hashB(key), sum >>> 0, time, false)
  }

  /** Entries still inside the window (a scan: for tests and diagnostics, not the hot path). */
  size(now: number): number {
    const u = this.u
    const ts = this.stamp(now)
    let n = 0
    for (let o = 3; o < u.length; o += SLOT) if (u[o] !== 0 && ts - u[o]! <= this.windowMs) n++
    return n
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

/** murmur3's finalizer: FNV-1a's low bits are too alike for similar keys to pick buckets with. */
function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

function hashA(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** A second, independent hash (murmur3-style mixing) so that two keys collide only if both hashes do. */
function hashB(s: string): number {
  let h = 0x9747b28c ^ s.length
  for (let i = 0; i < s.length; i++) {
    let k = Math.imul(s.charCodeAt(i), 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, 0x1b873593)
    // In 32-bit integer arithmetic: the same value as murmur3's `h * 5 + c`, without a double in the loop.
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  return h >>> 0
}

/** Writes a snapshot atomically (temp file + rename), so a crash mid-write leaves the previous one. */
export async function saveSnapshot(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.tmp`
  await writeFile(tmp, data, { mode: 0o600 })
  await rename(tmp, file)
}

/** The snapshot in `file`, or undefined when there is none (first start) or it cannot be read. */
export async function readSnapshot(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file)
  } catch {
    return undefined
  }
}

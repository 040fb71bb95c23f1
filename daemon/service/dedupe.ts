// Remembers answered requests by (response topic, correlation) so that a QoS 1 redelivery of the same
// request is answered once. A checksum of the payload guards against clients that reuse correlation ids
// for different requests: those are new requests and get inspected.
//
// The memory is an open-addressing table in typed arrays keyed by two 32-bit hashes of the key. At 2,000
// requests/s a window of 60 s holds 120,000 entries; as JS objects in a Map they all survive into the old
// generation and their major GCs showed up as 10–40 ms tails in bench/latency. Typed arrays hold no objects.
// A slot's fields lie side by side (24 bytes: hash a, hash b, checksum, time), so a probe touches one cache
// line, not one per field: the table is megabytes and every lookup lands somewhere new in it.
import { readFile, rename, writeFile } from 'node:fs/promises'

const MAX_PROBE = 16
/** u32 fields per slot: hash a, hash b, checksum, padding, then the time as one f64 (u32 index +4). */
const STRIDE = 6
const MAGIC = 'FCD1'
const HEADER = 8
const ENTRY = 20

export class Dedupe {
  private readonly mask: number
  /** Per slot i: [i*6] hash a, [i*6+1] hash b, [i*6+2] checksum. */
  private readonly u32: Uint32Array
  /** Per slot i: [i*3+2] the time it was recorded, 0 = empty slot (the same memory as u32). */
  private readonly f64: Float64Array

  /** `capacity` is rounded up to a power of two; size it above requests/s × window for exact answers. */
  constructor(private readonly windowMs: number, capacity = 1 << 18) {
    let cap = 1
    while (cap < capacity) cap <<= 1
    this.mask = cap - 1
    const buf = new ArrayBuffer(cap * STRIDE * 4)
    this.u32 = new Uint32Array(buf)
    this.f64 = new Float64Array(buf)
  }

  private time(i: number): number {
    return this.f64[i * 3 + 2]!
  }

  private set(i: number, a: number, b: number, sum: number, time: number): void {
    const o = i * STRIDE
    this.u32[o] = a
    this.u32[o + 1] = b
    this.u32[o + 2] = sum
    this.f64[i * 3 + 2] = time
  }

  /** True when this request was already seen within the window; records it otherwise. */
  check(key: string, payload: Buffer, now: number): boolean {
    const sum = checksum(payload)
    const a = hashA(key)
    const b = hashB(key)
    let free = -1
    let oldest = -1
    const u = this.u32
    for (let p = 0, i = a & this.mask; p < MAX_PROBE; p++, i = (i + 1) & this.mask) {
      const t = this.time(i)
      const live = t !== 0 && now - t <= this.windowMs
      if (!live) {
        if (free < 0) free = i
        if (t === 0) break // nothing was ever stored past an empty slot on this probe path
        continue
      }
      const o = i * STRIDE
      if (u[o] === a && u[o + 1] === b) {
        if (u[o + 2] === sum) return true
        this.set(i, a, b, sum, now)
        return false
      }
      if (oldest < 0 || t < this.time(oldest)) oldest = i
    }
    // Table full along this path: the oldest entry gives way (it is the least likely to be redelivered).
    this.set(free >= 0 ? free : oldest, a, b, sum, now || Number.MIN_VALUE)
    return false
  }

  /**
   * The live entries as bytes, for keeping the memory across a restart (state.dir). Keys in `skip` are left
   * out: requests still being worked on must be answered when the broker redelivers them to a new process.
   */
  snapshot(now: number, skip?: Iterable<string>): Buffer {
    const skipA = new Set<number>()
    const skipAB = new Set<string>()
    for (const k of skip ?? []) {
      skipA.add(hashA(k))
      skipAB.add(`${hashA(k)}:${hashB(k)}`)
    }
    const live: number[] = []
    const u = this.u32
    for (let i = 0; i <= this.mask; i++) {
      const t = this.time(i)
      if (t === 0 || now - t > this.windowMs) continue
      const o = i * STRIDE
      if (skipA.has(u[o]!) && skipAB.has(`${u[o]}:${u[o + 1]}`)) continue
      live.push(i)
    }
    const buf = Buffer.alloc(HEADER + live.length * ENTRY)
    buf.write(MAGIC, 0, 'latin1')
    buf.writeUInt32LE(live.length, 4)
    let o = HEADER
    for (const i of live) {
      buf.writeUInt32LE(u[i * STRIDE]!, o)
      buf.writeUInt32LE(u[i * STRIDE + 1]!, o + 4)
      buf.writeUInt32LE(u[i * STRIDE + 2]!, o + 8)
      buf.writeDoubleLE(this.time(i), o + 12)
      o += ENTRY
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
      this.put(buf.readUInt32LE(o), buf.readUInt32LE(o + 4), buf.readUInt32LE(o + 8), t)
      added++
    }
    return added
  }

  /** Records an answered request by key and payload checksum (the journal's rows after a restart). */
  add(key: string, sum: number, time: number): void {
    this.put(hashA(key), hashB(key), sum >>> 0, time)
  }

  private put(a: number, b: number, sum: number, time: number): void {
    let free = -1
    let oldest = -1
    const u = this.u32
    for (let p = 0, i = a & this.mask; p < MAX_PROBE; p++, i = (i + 1) & this.mask) {
      const t = this.time(i)
      if (t === 0 || time - t > this.windowMs) {
        if (free < 0) free = i
        if (t === 0) break
        continue
      }
      if (u[i * STRIDE] === a && u[i * STRIDE + 1] === b) {
        if (t <= time) this.set(i, a, b, sum, time)
        return
      }
      if (oldest < 0 || t < this.time(oldest)) oldest = i
    }
    this.set(free >= 0 ? free : oldest, a, b, sum, time)
  }

  /** Entries still inside the window (a scan: for tests and diagnostics, not the hot path). */
  size(now: number): number {
    let n = 0
    for (let i = 0; i <= this.mask; i++) {
      const t = this.time(i)
      if (t !== 0 && now - t <= this.windowMs) n++
    }
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
    h = ((h << 13) | (h >>> 19)) * 5 + 0xe6546b64
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

// Seeded pseudo-random numbers for random-weight checkpoints: xoshiro128** (fast with 32-bit integer
// ops in JS), seeded through splitmix32. Deterministic for a given seed on every platform.

function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0
  let z = state
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return [state, (z ^ (z >>> 16)) >>> 0]
}

/** FNV-1a over the UTF-16 code units of a string: gives each tensor its own stream. */
export function hashString(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spare = NaN

  /** `seed` may be any safe non-negative integer; `stream` separates independent sequences
   *  (e.g. a hash of the tensor name), so a tensor's values do not depend on what else is written. */
  constructor(seed: number, stream = 0) {
    let st = (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x100000000) >>> 0, 0x27d4eb2f)
    let v: number
    ;[st, v] = splitmix32(st ^ Math.imul(stream, 0x9e3779b1)); this.a = v
    ;[st, v] = splitmix32(st ^ stream); this.b = v
    ;[st, v] = splitmix32(st); this.c = v
    ;[, v] = splitmix32(st); this.d = v
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1 // the all-zero state is a fixed point
  }

  /** Next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9)
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return r >>> 0
  }

  /** Uniform in the open interval (0, 1). */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296
  }

  /** Standard normal (Box–Muller, both values of each pair used). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare
      this.spare = NaN
      return s
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()))
    const th = 2 * Math.PI * this.uniform()
    this.spare = r * Math.sin(th)
    return r * Math.cos(th)
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

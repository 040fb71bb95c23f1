import { existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { Prng } from '../../daemon/model/offline/prng.js'
import {
  dequantizeQ4_0, dequantizeQ8_0, f16ToF32, f32ToF16, parseQuantType, quantizedTensors, quantizeQ4_0, quantizeQ8_0,
  quantTypeFor,
} from '../../daemon/model/offline/quant-format.js'

const f32 = (x: number) => Math.fround(x)

t.test('f32 -> f16: round to nearest even, subnormals, overflow, inf, nan', async (t) => {
  t.equal(f32ToF16(1), 0x3c00)
  t.equal(f32ToF16(-2), 0xc000)
  t.equal(f32ToF16(0), 0x0000)
  t.equal(f32ToF16(-0), 0x8000, 'negative zero keeps its sign')
  t.equal(f32ToF16(0.1), 0x2e66)
  t.equal(f32ToF16(1 + 2 ** -11), 0x3c00, 'tie, even lower neighbour: down')
  t.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02, 'tie, odd lower neighbour: up to even')
  t.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01, 'just above the tie: up')
  t.equal(f32ToF16(2 - 2 ** -12), 0x4000, 'carry into the exponent')
  t.equal(f32ToF16(65504), 0x7bff, 'largest half')
  t.equal(f32ToF16(65519), 0x7bff, 'below the overflow tie stays finite')
  t.equal(f32ToF16(65520), 0x7c00, 'overflow tie rounds to +inf')
  t.equal(f32ToF16(-1e9), 0xfc00, 'overflow to -inf')
  t.equal(f32ToF16(Infinity), 0x7c00)
  t.equal(f32ToF16(-Infinity), 0xfc00)
  const n = f32ToF16(NaN)
  t.ok((n & 0x7c00) === 0x7c00 && (n & 0x3ff) !== 0, 'NaN stays NaN')
  t.equal(f32ToF16(2 ** -24), 0x0001, 'smallest subnormal')
  t.equal(f32ToF16(2 ** -25), 0x0000, 'half the smallest subnormal: tie to even (zero)')
  t.equal(f32ToF16(-(2 ** -25)), 0x8000)
  t.equal(f32ToF16(f32(2 ** -25 * (1 + 2 ** -23))), 0x0001, 'just above that tie: up')
  t.equal(f32ToF16(3 * 2 ** -25), 0x0002, '1.5 units: tie to even (2)')
  t.equal(f32ToF16(5 * 2 ** -25), 0x0002, '2.5 units: tie to even (2)')
  t.equal(f32ToF16(2 ** -26), 0x0000)
  t.equal(f32ToF16(1023 * 2 ** -24), 0x03ff, 'largest subnormal')
  t.equal(f32ToF16(1023.5 * 2 ** -24), 0x0400, 'tie rounds up into the smallest normal')
  t.equal(f32ToF16(2 ** -14), 0x0400, 'smallest normal')
  t.equal(f32ToF16(f32(1e-40)), 0x0000, 'float32 subnormal flushes to zero')
})

t.test('f16 -> f32', async (t) => {
  t.equal(f16ToF32(0x3c00), 1)
  t.equal(f16ToF32(0xc000), -2)
  t.equal(f16ToF32(0x7bff), 65504)
  t.equal(f16ToF32(0x0001), 2 ** -24)
  t.equal(f16ToF32(0x03ff), 1023 * 2 ** -24)
  t.equal(f16ToF32(0x0400), 2 ** -14)
  t.equal(f16ToF32(0x2e66), 0.0999755859375)
  t.equal(f16ToF32(0x7c00), Infinity)
  t.equal(f16ToF32(0xfc00), -Infinity)
  t.ok(Number.isNaN(f16ToF32(0x7e00)))
  t.ok(Object.is(f16ToF32(0x8000), -0))
  let bad = 0
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue
    const v = f16ToF32(h)
    if (f32(v) !== v || f32ToF16(v) !== h) bad++
  }
  t.equal(bad, 0, 'every non-NaN half is exact in float32 and round-trips')
})

// Debian's interpreter has numpy (test/run.sh installs python3-numpy); another python3 on the PATH may not.
const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
const numpy = spawnSync(PY, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0

t.test('f32 -> f16 agrees with numpy on random float32 values', { skip: numpy ? false : `${PY} has no numpy` }, async (t) => {
  const rng = new Prng(7)
  const n = 20000
  const bits = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    // Exponents concentrated around the half range (subnormal .. overflow) plus a few anywhere.
    const u = Math.floor(rng.uniform() * 2 ** 32) >>> 0
    const e = i % 4 === 0 ? (u >>> 23) & 0xff : 95 + (((u >>> 23) & 0xff) % 50)
    bits[i] = ((u & 0x807fffff) | (e << 23)) >>> 0
  }
  const vals = new Float32Array(bits.buffer)
  const py = spawnSync(PY, ['-c',
    'import sys, numpy as np; a = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4"); ' +
    'sys.stdout.buffer.write(a.astype(np.float16).view("<u2").tobytes())'], { input: Buffer.from(bits.buffer) })
  t.equal(py.status, 0, py.stderr?.toString())
  const ref = new Uint16Array(py.stdout.buffer.slice(py.stdout.byteOffset, py.stdout.byteOffset + py.stdout.length))
  let bad = 0
  let first = ''
  for (let i = 0; i < n; i++) {
    const mine = f32ToF16(vals[i]!)
    const isNan = (ref[i]! & 0x7c00) === 0x7c00 && (ref[i]! & 0x3ff) !== 0
    if (isNan ? (mine & 0x7c00) !== 0x7c00 || (mine & 0x3ff) === 0 : mine !== ref[i]) {
      if (!bad) first = `${vals[i]} (0x${bits[i]!.toString(16)}): 0x${mine.toString(16)} vs numpy 0x${ref[i]!.toString(16)}`
      bad++
    }
  }
  t.equal(bad, 0, first || 'all equal')
})

function block(vals: number[]): Float32Array {
  const b = new Float32Array(32)
  b.set(vals)
  return b
}

t.test('q8_0 hand vectors', async (t) => {
  // absmax 127 → d = 1 exactly: q = roundf(x), half away from zero.
  const src = new Float32Array(64)
  src.set([127, 2.5, -2.5, 0.5, -0.5, 1.4999, 126.5, -1.5, 0])
  const qs = new Int8Array(64)
  const sc = new Uint16Array(2)
  quantizeQ8_0(src, qs, sc)
  t.same([...qs.subarray(0, 9)], [127, 3, -3, 1, -1, 1, 127, -2, 0])
  t.same([...sc], [0x3c00, 0x0000], 'd = 1; an all-zero block has d = 0')
  t.same([...qs.subarray(32)], new Array(32).fill(0), 'zero block quantizes to zeros')

  // Negative maximum: absmax is |−12.7|; d = f32(12.7)/127 rounds to f16 0x2e66.
  const neg = block([-12.7, 6.35, 0.05, -0.05, 12.7])
  const q2 = new Int8Array(32)
  const s2 = new Uint16Array(1)
  quantizeQ8_0(neg, q2, s2)
  t.equal(s2[0], 0x2e66)
  t.same([...q2.subarray(0, 5)], [-127, 64, 1, -1, 127], '6.35/0.1 = 63.5 → 64 (away from zero), ±0.5 → ±1')
  const out = new Float32Array(32)
  dequantizeQ8_0(q2, s2, out)
  t.equal(out[0], f32(-127 * 0.0999755859375))
  t.equal(out[1], f32(64 * 0.0999755859375))
  t.equal(out[5], 0)
})

t.test('q4_0 hand vectors: first largest magnitude, clamp, nibble order', async (t) => {
  // m = −8 (first) → d = 1, id = 1: q = min(15, floor(x + 8.5)).
  const a = block([-8, 7, 7.6, 0, -0.5, -0.51, 0.49, 0.5, 8])
  const qa = new Uint8Array(16)
  const sa = new Uint16Array(1)
  quantizeQ4_0(a, qa, sa)
  t.equal(sa[0], 0x3c00)
  const nib = (qs: Uint8Array, j: number) => (j < 16 ? qs[j]! & 15 : qs[j - 16]! >> 4)
  t.same([0, 1, 2, 3, 4, 5, 6, 7, 8].map((j) => nib(qa, j)), [0, 15, 15, 8, 8, 7, 8, 9, 15], 'the tie 8 vs −8 keeps the first (−8)')
  t.equal(nib(qa, 20), 8, 'zero → 8')

  // 8 before −8: m = 8, d = −1, id = −1.
  const b = block([8, -8, 1])
  const qb = new Uint8Array(16)
  const sb = new Uint16Array(1)
  quantizeQ4_0(b, qb, sb)
  t.equal(sb[0], 0xbc00, 'd = −1')
  t.same([nib(qb, 0), nib(qb, 1), nib(qb, 2)], [0, 15, 7])
  const ob = new Float32Array(32)
  dequantizeQ4_0(qb, sb, ob)
  t.same([...ob.subarray(0, 3)], [8, -7, 1], 'value = (q − 8)·d; −8 clamps to −7')

  // positive maximum 4 → d = −0.5, id = −2.
  const c = block([1, -1, 0.25, 0.3, 4])
  c[16] = -2
  c[31] = 3
  const qc = new Uint8Array(16)
  const sc = new Uint16Array(1)
  quantizeQ4_0(c, qc, sc)
  t.equal(sc[0], 0xb800, 'd = −0.5')
  t.same([nib(qc, 0), nib(qc, 1), nib(qc, 2), nib(qc, 3), nib(qc, 4), nib(qc, 16), nib(qc, 31)], [6, 10, 8, 7, 0, 12, 2])
  t.equal(qc[0], 6 | (12 << 4), 'byte 0 = q0 | q16 << 4')
  t.equal(qc[15], 8 | (2 << 4), 'byte 15 = q15 | q31 << 4')
  const oc = new Float32Array(32)
  dequantizeQ4_0(qc, sc, oc)
  t.same([oc[0], oc[1], oc[2], oc[3], oc[4], oc[16], oc[31]], [1, -1, 0, 0.5, 4, -2, 3])

  const z = new Uint8Array(16)
  const sz = new Uint16Array(1)
  quantizeQ4_0(new Float32Array(32), z, sz)
  t.same([sz[0], ...new Set(z)], [0x8000, 0x88], 'zero block: d = 0/−8 = −0 (as ggml stores it), every q = 8')
})

t.test('grid property: requantizing dequantized weights is bit-identical; error bounds', async (t) => {
  const rng = new Prng(11)
  const n = 32 * 4096
  const w = new Float32Array(n)
  for (let i = 0; i < n; i++) w[i] = rng.normal() * (i % 3 === 0 ? 0.02 : 1.5) * (1 + (i >> 10))
  for (let i = 0; i < 32; i++) w[32 * 100 + i] = 0 // a zero block
  const nb = n / 32
  {
    const q = new Int8Array(n)
    const s = new Uint16Array(nb)
    quantizeQ8_0(w, q, s)
    const deq = new Float32Array(n)
    dequantizeQ8_0(q, s, deq)
    let worst = 0
    for (let b = 0; b < nb; b++) {
      const d = f16ToF32(s[b]!)
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j
        worst = Math.max(worst, d ? Math.abs(w[i]! - deq[i]!) / d : Math.abs(w[i]!))
      }
    }
    // q is rounded against the float32 d, the value uses f16(d): |x − q·d16| ≤ d/2 + 127·|d − d16| ≤ (0.5 + 127·2⁻¹¹)·d.
    t.ok(worst <= 0.5 + 127 * 2 ** -11 && worst > 0.4, `q8_0 error ≤ d/2 + f16 scale rounding (worst ${worst.toFixed(4)}·d)`)
    const q2 = new Int8Array(n)
    const s2 = new Uint16Array(nb)
    quantizeQ8_0(deq, q2, s2)
    t.same(Buffer.from(q2.buffer), Buffer.from(q.buffer), 'q8_0 values identical')
    t.same(Buffer.from(s2.buffer), Buffer.from(s.buffer), 'q8_0 scales identical')
  }
  {
    const q = new Uint8Array(n / 2)
    const s = new Uint16Array(nb)
    quantizeQ4_0(w, q, s)
    const deq = new Float32Array(n)
    dequantizeQ4_0(q, s, deq)
    let worst = 0
    for (let b = 0; b < nb; b++) {
      const d = Math.abs(f16ToF32(s[b]!))
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j
        worst = Math.max(worst, d ? Math.abs(w[i]! - deq[i]!) / d : Math.abs(w[i]!))
      }
    }
    t.ok(worst <= 1 + 8 * 2 ** -11 && worst > 0.5, `q4_0 error ≤ ~|d| (clamped top bucket; worst ${worst.toFixed(4)}·|d|)`)
    const q2 = new Uint8Array(n / 2)
    const s2 = new Uint16Array(nb)
    quantizeQ4_0(deq, q2, s2)
    t.same(Buffer.from(q2.buffer), Buffer.from(q.buffer), 'q4_0 values identical')
    t.same(Buffer.from(s2.buffer), Buffer.from(s.buffer), 'q4_0 scales identical')
  }
})

t.test('quantTypeFor: which tensors get which type', async (t) => {
  const H = 64
  t.equal(quantTypeFor('model.layers.0.attn.Wqkv.weight', [3 * H, H], 'q4_0'), 'q4_0')
  t.equal(quantTypeFor('model.layers.0.attn.in_proj.weight', [4 * H, H], 'q4_0'), 'q4_0')
  t.equal(quantTypeFor('model.layers.0.attn.out_proj.weight', [H, 2 * H], 'q8_0'), 'q8_0')
  t.equal(quantTypeFor('model.layers.3.mlp.fc1.weight', [4 * H, H], 'q4_0'), 'q4_0')
  t.equal(quantTypeFor('model.layers.3.mlp.fc2.weight', [H, 2 * H], 'q4_0'), 'q4_0')
  t.equal(quantTypeFor('model.embed_tokens.weight', [1000, H], 'q4_0'), 'q8_0', 'the tied LM head is q8_0 in both types')
  t.equal(quantTypeFor('lm_head.weight', [1000, H], 'q4_0'), 'q8_0')
  t.equal(quantTypeFor('model.layers.0.attn.x_proj.weight', [40, 2 * H], 'q4_0'), null)
  t.equal(quantTypeFor('model.layers.0.attn.dt_proj.weight', [2 * H, 32], 'q4_0'), null)
  t.equal(quantTypeFor('model.layers.0.attn.conv1d.weight', [2 * H, 1, 4], 'q4_0'), null)
  t.equal(quantTypeFor('model.layers.0.attn.Wqkv.bias', [3 * H], 'q4_0'), null)
  t.equal(quantTypeFor('model.layers.0.attn.A_log', [2 * H, 16], 'q4_0'), null)
  t.equal(quantTypeFor('model.layers.0.attn.out_proj.weight', [H, 48], 'q4_0'), null, 'input dim 48 is not a multiple of 32')
  t.equal(quantTypeFor('model.layers.0.mlp.fc1.weight', [4 * H, H], 'q4_0', 'I8'), null, 'already quantized')
  const m = quantizedTensors('model.layers.0.mlp.fc2.weight', [64, 256], 'q4_0')
  t.same(m, {
    data: { name: 'model.layers.0.mlp.fc2.weight', dtype: 'U8', shape: [64, 128] },
    scale: { name: 'model.layers.0.mlp.fc2.weight_scale', dtype: 'F16', shape: [64, 8] },
  })
  t.same(quantizedTensors('model.embed_tokens.weight', [10, 64], 'q8_0').data, { name: 'model.embed_tokens.weight', dtype: 'I8', shape: [10, 64] })
  t.equal(parseQuantType('q8_0'), 'q8_0')
  t.throws(() => parseQuantType('q5_1'), /unknown quantization type 'q5_1' \(expected q8_0 or q4_0\)/)
})

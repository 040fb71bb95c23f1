// The quantized weight formats q8_0 and q4_0, exactly as ggml's reference quantizers define them
// (blocks of 32 consecutive weights along a matrix's input dimension, one f16 scale per block), the
// f16 conversions they need, and which tensors of a checkpoint get which type. Every intermediate is
// rounded to float32 (Math.fround) so the result is bit-identical to the C quantizer's.

export type QuantType = 'q8_0' | 'q4_0'
export const QUANT_TYPES: readonly QuantType[] = ['q8_0', 'q4_0']
export const QK = 32

/** Bytes of quantized data (scales excluded) per block. */
export const BLOCK_BYTES: Record<QuantType, number> = { q8_0: QK, q4_0: QK / 2 }

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** float32 → IEEE half bits: round to nearest, ties to even; overflow → ±inf; NaN stays a (quiet) NaN. */
export function f32ToF16(x: number): number {
  f32[0] = x
  const u = u32[0]!
  const sign = (u >>> 16) & 0x8000
  const exp = (u >>> 23) & 0xff
  const mant = u & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0)
  const e = exp - 112 // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00
  let h: number
  let rem: number
  let half: number
  if (e > 0) {
    h = (e << 10) | (mant >>> 13)
    rem = mant & 0x1fff
    half = 0x1000
  } else {
    // Half subnormal: the value in units of 2^-24 (the smallest subnormal) is full / 2^(14 - e).
    const shift = 14 - e
    if (shift > 24) return sign
    const full = mant | 0x800000
    h = full >>> shift
    rem = full & ((1 << shift) - 1)
    half = 1 << (shift - 1)
  }
  // A carry out of the mantissa moves into the exponent, which is the correctly rounded result
  // (up to the smallest normal, or to infinity).
  if (rem > half || (rem === half && (h & 1) === 1)) h++
  return sign | h
}

/** IEEE half bits → the (exactly representable) float value. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN
  return sign * (1024 + mant) * 2 ** (exp - 25)
}

/** Round half away from zero (C roundf). */
function roundAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v)
}

function checkBlocks(n: number, what: string): number {
  if (n % QK !== 0) throw new RangeError(`${what}: ${n} elements is not a multiple of ${QK}`)
  return n / QK
}

/** q8_0: d = absmax/127, q = roundf(x·(1/d)); `qs` gets one int8 per element, `scales` one f16 per block. */
export function quantizeQ8_0(src: Float32Array, qs: Int8Array, scales: Uint16Array): void {
  const nb = checkBlocks(src.length, 'quantizeQ8_0')
  if (qs.length < src.length || scales.length < nb) throw new RangeError('quantizeQ8_0: destination too short')
  for (let b = 0; b < nb; b++) {
    const o = b * QK
    let amax = 0
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[o + j]!))
    const d = Math.fround(amax / 127)
    const id = d !== 0 ? Math.fround(1 / d) : 0
    scales[b] = f32ToF16(d)
    for (let j = 0; j < QK; j++) qs[o + j] = roundAway(Math.fround(src[o + j]! * id))
  }
}

export function dequantizeQ8_0(qs: Int8Array, scales: Uint16Array, out: Float32Array): void {
  const nb = checkBlocks(out.length, 'dequantizeQ8_0')
  for (let b = 0; b < nb; b++) {
    const d = f16ToF32(scales[b]!)
    const o = b * QK
    for (let j = 0; j < QK; j++) out[o + j] = qs[o + j]! * d
  }
}

/** q4_0: m = the first element of largest magnitude (sign kept), d = m/−8, q = min(15, floor(x·(1/d) + 8.5));
 *  byte j of a block's 16 holds q_j (low nibble) and q_{j+16} (high nibble). */
export function quantizeQ4_0(src: Float32Array, qs: Uint8Array, scales: Uint16Array): void {
  const nb = checkBlocks(src.length, 'quantizeQ4_0')
  if (qs.length < src.length / 2 || scales.length < nb) throw new RangeError('quantizeQ4_0: destination too short')
  const half = QK / 2
  for (let b = 0; b < nb; b++) {
    const o = b * QK
    let amax = 0
    let max = 0
    for (let j = 0; j < QK; j++) {
      const v = src[o + j]!
      if (amax < Math.abs(v)) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = Math.fround(max / -8)
    const id = d !== 0 ? Math.fround(1 / d) : 0
    scales[b] = f32ToF16(d)
    const q = (v: number) => Math.min(15, Math.floor(Math.fround(Math.fround(v * id) + 8.5)))
    const qo = b * half
    for (let j = 0; j < half; j++) qs[qo + j] = q(src[o + j]!) | (q(src[o + half + j]!) << 4)
  }
}

export function dequantizeQ4_0(qs: Uint8Array, scales: Uint16Array, out: Float32Array): void {
  const nb = checkBlocks(out.length, 'dequantizeQ4_0')
  const half = QK / 2
  for (let b = 0; b < nb; b++) {
    const d = f16ToF32(scales[b]!)
    const o = b * QK
    const qo = b * half
    for (let j = 0; j < half; j++) {
      const byte = qs[qo + j]!
      out[o + j] = ((byte & 0x0f) - 8) * d
      out[o + half + j] = ((byte >>> 4) - 8) * d
    }
  }
}

/** Quantizes `src` (whole blocks) into `data` (the tensor's quantized bytes) and `scales`. */
export function quantizeBlocks(type: QuantType, src: Float32Array, data: Uint8Array, scales: Uint16Array): void {
  if (type === 'q8_0') quantizeQ8_0(src, new Int8Array(data.buffer, data.byteOffset, data.length), scales)
  else quantizeQ4_0(src, data, scales)
}

export function dequantizeBlocks(type: QuantType, data: Uint8Array, scales: Uint16Array, out: Float32Array): void {
  if (type === 'q8_0') dequantizeQ8_0(new Int8Array(data.buffer, data.byteOffset, data.length), scales, out)
  else dequantizeQ4_0(data, scales, out)
}

const QUANTIZED_SUFFIXES = ['Wqkv.weight', 'in_proj.weight', 'out_proj.weight', 'fc1.weight', 'fc2.weight']
const LM_HEADS = ['model.embed_tokens.weight', 'lm_head.weight']

/** Which type a tensor of the checkpoint is stored in when the checkpoint is quantized to `type`:
 *  the projections of the layers get `type`, the embedding / LM head always q8_0 (it carries the
 *  logits), everything else (x_proj, dt_proj, conv1d, norms, biases, A_log, D, λ) stays float (null).
 *  A weight whose input dimension is not a multiple of 32, or that is not a float, stays as it is. */
export function quantTypeFor(name: string, shape: readonly number[], type: QuantType, dtype = 'F32'): QuantType | null {
  if (shape.length !== 2 || shape[1]! % QK !== 0 || shape[1]! === 0) return null
  if (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16') return null
  if (LM_HEADS.includes(name)) return 'q8_0'
  return QUANTIZED_SUFFIXES.some((s) => name.endsWith(s)) ? type : null
}

export interface QuantizedTensorMeta {
  /** I8 [out, in] for q8_0, U8 [out, in/2] for q4_0. */
  data: { name: string; dtype: 'I8' | 'U8'; shape: [number, number] }
  /** F16 [out, in/32]. */
  scale: { name: string; dtype: 'F16'; shape: [number, number] }
}

/** The two tensors a quantized weight `P.weight` of shape [out, in] becomes on disk. */
export function quantizedTensors(name: string, shape: readonly number[], type: QuantType): QuantizedTensorMeta {
  const [rows, cols] = shape as [number, number]
  const base = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name
  return {
    data: { name, dtype: type === 'q8_0' ? 'I8' : 'U8', shape: [rows, type === 'q8_0' ? cols : cols / 2] },
    scale: { name: `${base}.weight_scale`, dtype: 'F16', shape: [rows, cols / QK] },
  }
}

export function parseQuantType(s: string, what = 'quantization type'): QuantType {
  if ((QUANT_TYPES as readonly string[]).includes(s)) return s as QuantType
  throw new Error(`unknown ${what} '${s}' (expected ${QUANT_TYPES.join(' or ')})`)
}

// Tiny random-weight phi4flash checkpoint writer for the kernel tests (small shapes only; the real
// generator is `flashcheck model init`). Returns the weights as the kernel will read them (after
// dtype rounding), for the float64 reference in reference.ts.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface TinyConfig {
  hidden_size: number
  num_hidden_layers: number
  num_attention_heads: number
  num_key_value_heads: number
  intermediate_size: number
  vocab_size: number
  sliding_window?: number
  layout?: 'sambay' | 'all-attention'
  tie_word_embeddings?: boolean
  mamba_d_state?: number
  mamba_d_conv?: number
  mamba_expand?: number
}

export type WDType = 'F32' | 'BF16' | 'F16'

export interface Tensor {
  name: string
  shape: number[]
  dtype: WDType
  data: Float64Array // values as the kernel reads them
}

export interface WriteOptions {
  seed?: number
  dtype?: WDType
  shards?: number
}

export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
export function toBf16Bits(x: number): number {
  f32[0] = x
  const u = u32[0]
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff
}
export function bf16ToNum(b: number): number {
  u32[0] = b << 16
  return f32[0]
}
export function toF16Bits(x: number): number {
  // round-to-nearest-even float -> half (normal range only, enough for test weights)
  f32[0] = x
  const u = u32[0]
  const sign = (u >>> 16) & 0x8000
  const e = ((u >>> 23) & 0xff) - 127 + 15
  let m = u & 0x7fffff
  if (e <= 0) return sign // flush tiny values to zero
  if (e >= 31) return sign | 0x7c00
  const r = m & 0x1fff
  m >>>= 13
  let h = sign | (e << 10) | m
  if (r > 0x1000 || (r === 0x1000 && (m & 1))) h++
  return h
}
export function f16ToNum(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >>> 10) & 31
  const m = h & 1023
  if (e === 0) return s * m * 2 ** -24
  if (e === 31) return m ? NaN : s * Infinity
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

/** The tensors of a config, with random values in realistic ranges. */
export function makeTensors(cfg: TinyConfig, opts: WriteOptions = {}): Tensor[] {
  const r = rng(opts.seed ?? 1)
  const dt = opts.dtype ?? 'F32'
  const H = cfg.hidden_size
  const L = cfg.num_hidden_layers
  const nh = cfg.num_attention_heads
  const nkv = cfg.num_key_value_heads
  const hd = H / nh
  const I = cfg.intermediate_size
  const V = cfg.vocab_size
  const N = cfg.mamba_d_state ?? 16
  const K = cfg.mamba_d_conv ?? 4
  const Di = (cfg.mamba_expand ?? 2) * H
  const R = Math.ceil(H / 16)
  const out: Tensor[] = []
  const round = (x: number, d: WDType) => (d === 'F32' ? Math.fround(x) : d === 'BF16' ? bf16ToNum(toBf16Bits(x)) : f16ToNum(toF16Bits(x)))
  const add = (name: string, shape: number[], gen: (i: number) => number, d: WDType = dt) => {
    const n = shape.reduce((a, b) => a * b, 1)
    const data = new Float64Array(n)
    for (let i = 0; i < n; i++) data[i] = round(gen(i), d)
    out.push({ name, shape, dtype: d, data })
  }
  const uni = (scale: number) => () => (r() * 2 - 1) * scale
  const around = (c: number, s: number) => () => c + (r() * 2 - 1) * s
  const lin = (name: string, o: number, i: number) => add(name, [o, i], uni(1.7 / Math.sqrt(i)))
  add('model.embed_tokens.weight', [V, H], uni(1))
  const layout = cfg.layout ?? 'sambay'
  const h = L / 2
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`
    add(p + 'input_layernorm.weight', [H], around(1, 0.2))
    add(p + 'input_layernorm.bias', [H], uni(0.1))
    add(p + 'post_attention_layernorm.weight', [H], around(1, 0.2))
    add(p + 'post_attention_layernorm.bias', [H], uni(0.1))
    lin(p + 'mlp.fc1.weight', 2 * I, H)
    lin(p + 'mlp.fc2.weight', H, I)
    const a = p + 'attn.'
    const mambaType = layout === 'sambay' && i % 2 === 0 && (i <= h)
    const gmu = layout === 'sambay' && i >= h + 2 && i % 2 === 0
    const cross = layout === 'sambay' && i >= h + 2 && i % 2 === 1
    if (mambaType) {
      lin(a + 'in_proj.weight', 2 * Di, H)
      add(a + 'conv1d.weight', [Di, 1, K], uni(0.5))
      add(a + 'conv1d.bias', [Di], uni(0.2))
      lin(a + 'x_proj.weight', R + 2 * N, Di)
      add(a + 'dt_proj.weight', [Di, R], uni(1 / Math.sqrt(R)))
      add(a + 'dt_proj.bias', [Di], () => Math.log(Math.expm1(0.001 + r() * 0.2)))
      add(a + 'A_log', [Di, N], (k) => Math.log(1 + (k % N)), 'F32')
      add(a + 'D', [Di], around(1, 0.3))
      lin(a + 'out_proj.weight', H, Di)
    } else if (gmu) {
      lin(a + 'in_proj.weight', Di, H)
      lin(a + 'out_proj.weight', H, Di)
    } else {
      const rows = cross ? nh * hd : (nh + 2 * nkv) * hd
      add(a + 'Wqkv.weight', [rows, H], uni(2.5 / Math.sqrt(H)))
      add(a + 'Wqkv.bias', [rows], uni(0.1))
      lin(a + 'out_proj.weight', H, nh * hd)
      add(a + 'out_proj.bias', [H], uni(0.1))
      for (const v of ['lambda_q1', 'lambda_k1', 'lambda_q2', 'lambda_k2'])
        add(a + 'inner_cross_attn.' + v, [hd], uni(0.3), 'F32')
      add(a + 'inner_cross_attn.subln.weight', [2 * hd], around(1, 0.2))
    }
  }
  add('model.final_layernorm.weight', [H], around(1, 0.2))
  add('model.final_layernorm.bias', [H], uni(0.1))
  if (cfg.tie_word_embeddings === false) lin('lm_head.weight', V, H)
  return out
}

export function configJson(cfg: TinyConfig): Record<string, unknown> {
  const j: Record<string, unknown> = {
    architectures: ['Phi4FlashForCausalLM'],
    model_type: 'phi4flash',
    hidden_size: cfg.hidden_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    num_key_value_heads: cfg.num_key_value_heads,
    intermediate_size: cfg.intermediate_size,
    vocab_size: cfg.vocab_size,
    sliding_window: cfg.sliding_window ?? 8,
    mb_per_layer: 2,
    layer_norm_eps: 1e-5,
    hidden_act: 'silu',
    tie_word_embeddings: cfg.tie_word_embeddings ?? true,
  }
  if (cfg.layout === 'all-attention') j.flashcheck_layout = 'all-attention'
  if (cfg.mamba_d_state !== undefined) j.mamba_d_state = cfg.mamba_d_state
  if (cfg.mamba_d_conv !== undefined) j.mamba_d_conv = cfg.mamba_d_conv
  if (cfg.mamba_expand !== undefined) j.mamba_expand = cfg.mamba_expand
  return j
}

/** Encodes tensors as one safetensors file. */
export function safetensorsBytes(tensors: Tensor[]): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } }
  const parts: Buffer[] = []
  let off = 0
  for (const t of tensors) {
    const es = t.dtype === 'F32' ? 4 : 2
    const b = Buffer.alloc(t.data.length * es)
    for (let i = 0; i < t.data.length; i++) {
      if (t.dtype === 'F32') b.writeFloatLE(t.data[i], i * 4)
      else b.writeUInt16LE(t.dtype === 'BF16' ? toBf16Bits(t.data[i]) : toF16Bits(t.data[i]), i * 2)
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + b.length] }
    parts.push(b)
    off += b.length
  }
  let json = JSON.stringify(header)
  while ((8 + json.length) % 8) json += ' '
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(json.length))
  return Buffer.concat([len, Buffer.from(json), ...parts])
}

/** Writes config.json and the weights (one file, or `shards` files + index) into dir. */
export function writeCheckpoint(dir: string, cfg: TinyConfig, opts: WriteOptions = {}): Map<string, Tensor> {
  mkdirSync(dir, { recursive: true })
  const tensors = makeTensors(cfg, opts)
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson(cfg), null, 2))
  const shards = opts.shards ?? 1
  if (shards <= 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors))
  } else {
    const weightMap: Record<string, string> = {}
    const per = Math.ceil(tensors.length / shards)
    for (let s = 0; s < shards; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`
      const part = tensors.slice(s * per, (s + 1) * per)
      for (const t of part) weightMap[t.name] = name
      writeFileSync(join(dir, name), safetensorsBytes(part))
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }))
  }
  return new Map(tensors.map((t) => [t.name, t]))
}

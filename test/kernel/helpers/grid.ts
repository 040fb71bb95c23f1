// Grid cases: a golden case whose weights were quantized and dequantized with the TypeScript block quantizer
// (daemon/model/offline/quant-format.ts), written back as an F32 checkpoint, with logits and greedy tokens
// recomputed by the float64 reference. Quantizing these weights again is exact (they lie on the type's grid),
// so a kernel with load-time quantization differs from the reference only by its activation arithmetic.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dequantizeBlocks, quantizeBlocks, quantTypeFor, QK, type QuantType } from '../../../daemon/model/offline/quant-format.js'
import { bf16ToNum, f16ToNum, safetensorsBytes, type Tensor, type TinyConfig } from './checkpoint.js'
import { referenceForward } from './reference.js'

/** Tolerances of `flashcheck model check --quant` on grid weights (daemon/cli/model-check.ts; native/README.md). */
export { QUANT_TOLERANCE } from '../../../daemon/cli/model-check.js'

/** Reads a single-file safetensors checkpoint (F32 / BF16 / F16) into float64 tensors. */
export function readCheckpoint(dir: string): { cfg: TinyConfig; raw: Record<string, unknown>; tensors: Map<string, Tensor> } {
  const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  const cfg: TinyConfig = {
    hidden_size: raw.hidden_size as number,
    num_hidden_layers: raw.num_hidden_layers as number,
    num_attention_heads: raw.num_attention_heads as number,
    num_key_value_heads: (raw.num_key_value_heads as number | undefined) ?? (raw.num_attention_heads as number),
    intermediate_size: raw.intermediate_size as number,
    vocab_size: raw.vocab_size as number,
    sliding_window: raw.sliding_window as number | undefined,
    layout: raw.flashcheck_layout === 'all-attention' ? 'all-attention' : 'sambay',
    tie_word_embeddings: raw.tie_word_embeddings as boolean | undefined,
    mamba_d_state: raw.mamba_d_state as number | undefined,
    mamba_d_conv: raw.mamba_d_conv as number | undefined,
    mamba_expand: raw.mamba_expand as number | undefined,
  }
  const buf = readFileSync(join(dir, 'model.safetensors'))
  const hlen = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>
  const base = 8 + hlen
  const tensors = new Map<string, Tensor>()
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const n = h.shape.reduce((a, b) => a * b, 1)
    const data = new Float64Array(n)
    const o = base + h.data_offsets[0]
    for (let i = 0; i < n; i++) {
      if (h.dtype === 'F32') data[i] = buf.readFloatLE(o + 4 * i)
      else if (h.dtype === 'BF16') data[i] = bf16ToNum(buf.readUInt16LE(o + 2 * i))
      else if (h.dtype === 'F16') data[i] = f16ToNum(buf.readUInt16LE(o + 2 * i))
      else throw new Error(`${dir}: tensor ${name} has dtype ${h.dtype}`)
    }
    tensors.set(name, { name, shape: h.shape, dtype: 'F32', data })
  }
  return { cfg, raw, tensors }
}

/** The tensor's values after quantize → dequantize with `type`'s rules (unchanged when the rules keep it float). */
export function onGrid(t: Tensor, type: QuantType): Tensor {
  const qt = quantTypeFor(t.name, t.shape, type)
  if (!qt) return t
  const src = Float32Array.from(t.data)
  const data = new Uint8Array(qt === 'q8_0' ? src.length : src.length / 2)
  const scales = new Uint16Array(src.length / QK)
  quantizeBlocks(qt, src, data, scales)
  const out = new Float32Array(src.length)
  dequantizeBlocks(qt, data, scales, out)
  return { ...t, data: Float64Array.from(out) }
}

function argmax(x: ArrayLike<number>): number {
  let b = 0
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i
  return b
}

/** Writes the grid case of golden case `src` for `type` into `out` (a directory in the golden layout). */
export function writeGridCase(src: string, out: string, type: QuantType, tolerance: number): void {
  const { cfg, raw, tensors } = readCheckpoint(src)
  const grid = new Map<string, Tensor>()
  for (const [n, t] of tensors) grid.set(n, onGrid(t, type))
  const inputs = JSON.parse(readFileSync(join(src, 'inputs.json'), 'utf8')) as { tokens: number[]; decode_steps: number }
  const V = cfg.vocab_size
  const seq = [...inputs.tokens]
  const full = referenceForward(cfg, grid, seq)
  const greedy = [argmax(full[full.length - 1]!)]
  const dec: Float64Array[] = []
  for (let i = 0; i < inputs.decode_steps; i++) {
    seq.push(greedy[i]!)
    const rows = referenceForward(cfg, grid, seq)
    const last = rows[rows.length - 1]!
    dec.push(last)
    greedy.push(argmax(last))
  }
  mkdirSync(out, { recursive: true })
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...raw, torch_dtype: 'float32' }, null, 2))
  writeFileSync(join(out, 'model.safetensors'), safetensorsBytes([...grid.values()]))
  copyFileSync(join(src, 'inputs.json'), join(out, 'inputs.json'))
  const f32 = (rows: Float64Array[]) => {
    const b = Buffer.alloc(rows.length * V * 4)
    rows.forEach((r, i) => r.forEach((v, j) => b.writeFloatLE(v, (i * V + j) * 4)))
    return b
  }
  writeFileSync(join(out, 'logits_full.f32'), f32(full))
  writeFileSync(join(out, 'logits_decode.f32'), f32(dec))
  writeFileSync(
    join(out, 'expected.json'),
    JSON.stringify({ model_type: 'phi4flash', reference: `float64 reference over ${src} on the ${type} grid`, quant: type, greedy_tokens: greedy, tolerances: { max_rel_err: tolerance } }, null, 2),
  )
  if (existsSync(join(src, 'README.md'))) copyFileSync(join(src, 'README.md'), join(out, 'SOURCE.md'))
}

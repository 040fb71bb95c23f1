// Writes a random-weight checkpoint in the real format: config.json plus model.safetensors (or shards
// and an index). Values are a pure function of (seed, tensor name, element index), so the same seed
// gives the same weights whatever the dtype or shard size.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { archFromConfig } from '../arch.js'
import { bf16ToF32, f32ToBf16 } from './bf16.js'
import { hashString, Prng } from './prng.js'
import { type QuantType, quantTypeFor } from './quant-format.js'
import { quantizationConfig, quantizedSources } from './quantize.js'
import { DEFAULT_SHARD_BYTES, type DType, type TensorSource, type WrittenWeights, writeWeights } from './safetensors-write.js'
import { type Init, type TensorSpec, tensorSpecs } from './tensors.js'

export type WeightDType = 'f32' | 'bf16'

export { DEFAULT_SHARD_BYTES }

/** A function filling successive chunks of a tensor's values. */
export function initValues(init: Init, seed: number, name: string): (out: Float32Array) => void {
  const rng = new Prng(seed, hashString(name))
  switch (init.kind) {
    case 'normal':
      return (out) => {
        for (let i = 0; i < out.length; i++) out[i] = rng.normal() * init.std
      }
    case 'uniform':
      return (out) => {
        for (let i = 0; i < out.length; i++) out[i] = (2 * rng.uniform() - 1) * init.bound
      }
    case 'const':
      return (out) => void out.fill(init.value)
    case 'a_log': {
      let k = 0
      return (out) => {
        for (let i = 0; i < out.length; i++, k++) out[i] = Math.log(1 + (k % init.dState))
      }
    }
    case 'dt_bias': {
      const lo = Math.log(init.dtMin)
      const span = Math.log(init.dtMax) - lo
      return (out) => {
        for (let i = 0; i < out.length; i++) {
          const dt = Math.exp(lo + span * rng.uniform())
          out[i] = dt + Math.log(-Math.expm1(-dt)) // softplus⁻¹(dt)
        }
      }
    }
  }
}

/** Rounds a stream's values through bf16 when the tensor is stored as BF16. */
function storedValues(fill: (out: Float32Array) => void, dtype: DType): (out: Float32Array) => void {
  if (dtype !== 'BF16') return fill
  let u16 = new Uint16Array(0)
  return (out) => {
    fill(out)
    if (u16.length < out.length) u16 = new Uint16Array(out.length)
    f32ToBf16(out, u16)
    bf16ToF32(u16.subarray(0, out.length), out)
  }
}

export function tensorDType(t: TensorSpec, dtype: WeightDType): DType {
  return dtype === 'bf16' && !t.keepF32 ? 'BF16' : 'F32'
}

export interface InitOptions {
  /** A parsed config.json (preset or file). */
  config: Record<string, unknown>
  /** Names the config's source in error messages. */
  where?: string
  outDir: string
  seed: number
  dtype: WeightDType
  maxShardBytes?: number
  /** Writes the weights straight into this quantized format (the values quantized are the float32 ones). */
  quant?: QuantType
}

export interface InitResult extends WrittenWeights {
  tensors: number
  params: number
}

export async function initCheckpoint(o: InitOptions): Promise<InitResult> {
  const arch = archFromConfig(o.config, o.where)
  const specs = tensorSpecs(arch)
  const sources: TensorSource[] = specs.flatMap((t): TensorSource[] => {
    const dtype = tensorDType(t, o.dtype)
    const qt = o.quant ? quantTypeFor(t.name, t.shape, o.quant, dtype) : null
    // The values quantized are those the float checkpoint would store, so `init --quant` equals `init` + `quantize`.
    if (qt) return quantizedSources(t.name, t.shape, qt, () => storedValues(initValues(t.init, o.seed, t.name), dtype))
    return [{ name: t.name, dtype, shape: t.shape, open: () => initValues(t.init, o.seed, t.name) }]
  })
  await mkdir(o.outDir, { recursive: true })
  const config: Record<string, unknown> = { ...o.config, torch_dtype: o.dtype === 'bf16' ? 'bfloat16' : 'float32' }
  if (o.quant) config.quantization_config = quantizationConfig(o.quant)
  await writeFile(join(o.outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n')
  const written = await writeWeights(o.outDir, sources, o.maxShardBytes ?? DEFAULT_SHARD_BYTES)
  const params = specs.reduce((n, t) => n + t.shape.reduce((m, d) => m * d, 1), 0)
  return { ...written, tensors: specs.length, params }
}

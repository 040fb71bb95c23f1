// Writes a random-weight checkpoint in the real format: config.json plus model.safetensors (or shards
// and an index). Values are a pure function of (seed, tensor name, element index), so the same seed
// gives the same weights whatever the dtype or shard size.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { archFromConfig } from '../arch.js'
import { hashString, Prng } from './prng.js'
import { type DType, type TensorSource, type WrittenWeights, writeWeights } from './safetensors-write.js'
import { type Init, type TensorSpec, tensorSpecs } from './tensors.js'

export type WeightDType = 'f32' | 'bf16'

/** Hugging Face's save_pretrained default shard limit (what split the real checkpoint in two). */
export const DEFAULT_SHARD_BYTES = 5e9

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
}

export interface InitResult extends WrittenWeights {
  tensors: number
  params: number
}

export async function initCheckpoint(o: InitOptions): Promise<InitResult> {
  const arch = archFromConfig(o.config, o.where)
  const specs = tensorSpecs(arch)
  const sources: TensorSource[] = specs.map((t) => ({
    name: t.name,
    dtype: tensorDType(t, o.dtype),
    shape: t.shape,
    open: () => initValues(t.init, o.seed, t.name),
  }))
  await mkdir(o.outDir, { recursive: true })
  const config = { ...o.config, torch_dtype: o.dtype === 'bf16' ? 'bfloat16' : 'float32' }
  await writeFile(join(o.outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n')
  const written = await writeWeights(o.outDir, sources, o.maxShardBytes ?? DEFAULT_SHARD_BYTES)
  const params = specs.reduce((n, t) => n + t.shape.reduce((m, d) => m * d, 1), 0)
  return { ...written, tensors: specs.length, params }
}

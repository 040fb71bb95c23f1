// Typed wrapper over the native SambaY kernel (native/, built by node-gyp during `npm ci`).
// All compute happens in C++; async variants run on the addon's own threads and return promises.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../paths.js'

/** Parsed and validated config.json of a phi4flash checkpoint, plus what the loader derived. */
export interface ModelConfig {
  model_type: 'phi4flash'
  /** 'sambay' = the spec's layer plan; 'all-attention' = the project's baseline (config `flashcheck_layout`). */
  layout: 'sambay' | 'all-attention'
  hidden_size: number
  num_hidden_layers: number
  num_attention_heads: number
  num_key_value_heads: number
  head_dim: number
  intermediate_size: number
  vocab_size: number
  /** 0 for the all-attention layout. */
  sliding_window: number
  /** 0 for the all-attention layout. */
  mb_per_layer: number
  mamba_d_state: number
  mamba_d_conv: number
  mamba_expand: number
  dt_rank: number
  d_inner: number
  layer_norm_eps: number
  tie_word_embeddings: boolean
  /** Kind per layer: mamba, mamba_mem, swa, attn_kv, gmu, cross (sambay) or attn (all-attention). */
  layers: string[]
  /** dtype of the weight matrices as stored: 'F32', 'BF16', 'F16' or 'mixed'. */
  weight_dtype: string
  param_count: number
  /** Bytes of the used tensors in the checkpoint (memory-mapped). */
  weight_bytes: number
  /** Bytes converted or copied at load (F16 matrices to f32, small vectors, misaligned tensors). */
  converted_bytes: number
  /** Worker threads of this model's pool. */
  threads: number
  /** Kernel implementation picked at run time: avx512, avx2, generic (x86-64) or neon (aarch64). */
  isa: string
}

export interface LoadOptions {
  /** Size of the model's compute pool; default = number of cores. */
  threads?: number
  /** Lower the compute threads' priority by this nice increment (Linux), so the event loop preempts them. */
  nice?: number
}

export interface PrefillOptions {
  /** Return the logits of every position ([T*V], row-major) instead of the last one ([V]). */
  allLogits?: boolean
  /** Return the logits of the last n positions ([n*V]); only those run through the cross-decoder. */
  lastRows?: number
}

/** A checkpoint could not be loaded; the message says what is wrong (file, tensor, shapes). */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError'
}

/** Any other error from the kernel; `code` is E_STATE_BUSY, E_DISPOSED, E_INVALID_ARGUMENT or E_KERNEL. */
export class KernelError extends Error {
  override name = 'KernelError'
  constructor(message: string, readonly code: string) {
    super(message)
  }
}

interface NativeStateHandle {
  clone(): NativeStateHandle
  position(): number
  lastMs(): number
  busy(): boolean
  dispose(): void
}
interface NativeModelHandle {
  config(): ModelConfig
  newState(): NativeStateHandle
  forward(state: NativeStateHandle, tokens: Int32Array, rows: boolean | number): Float32Array
  forwardAsync(state: NativeStateHandle, tokens: Int32Array, rows: boolean | number): Promise<Float32Array>
  dispose(): void
}
interface NativeAddon {
  load(dir: string, threads: number, nice: number): NativeModelHandle
  loadAsync(dir: string, threads: number, nice: number): Promise<NativeModelHandle>
  isa(): string
}

export const ADDON_PATH = join(PACKAGE_ROOT, 'native', 'build', 'Release', 'flashcheck_kernel.node')

let addon: NativeAddon | undefined
function native(): NativeAddon {
  if (!addon) {
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon
    } catch (err) {
      throw new Error(
        `native kernel not built (${ADDON_PATH}): run \`npm ci\` or \`npx node-gyp rebuild --directory=native\`\n` +
          (err instanceof Error ? err.message : String(err)),
      )
    }
  }
  return addon
}

/** The kernel implementation this CPU gets (avx512, avx2, generic, neon). */
export function kernelIsa(): string {
  return native().isa()
}

function convert(err: unknown): Error {
  if (err instanceof Error) {
    const code = (err as Error & { code?: string }).code
    if (code === 'E_MODEL_LOAD') return new ModelLoadError(err.message)
    if (code) return new KernelError(err.message, code)
  }
  return err instanceof Error ? err : new Error(String(err))
}

function toTokens(tokens: ArrayLike<number>): Int32Array {
  if (tokens instanceof Int32Array) return tokens
  const out = new Int32Array(tokens.length)
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]
    if (!Number.isInteger(t) || t < -0x80000000 || t > 0x7fffffff) {
      throw new KernelError(`token at index ${i} is not a 32-bit integer: ${t}`, 'E_INVALID_ARGUMENT')
    }
    out[i] = t
  }
  return out
}

function threadsOf(opts?: LoadOptions): number {
  const t = opts?.threads ?? 0
  if (!Number.isInteger(t) || t < 0) throw new RangeError(`threads must be a non-negative integer, got ${t}`)
  return t
}

function rowsOf(opts?: PrefillOptions): boolean | number {
  return opts?.allLogits === true ? true : opts?.lastRows ?? false
}

function niceOf(opts?: LoadOptions): number {
  const n = opts?.nice ?? 0
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new RangeError(`nice must be an integer from 0 to 19, got ${n}`)
  return n
}

/** Decode state of one sequence: Mamba conv/SSM states, SWA windows and the (shared) full-attention K/V. */
export class State {
  /** @internal */
  constructor(readonly handle: NativeStateHandle, private readonly owner: Model) {}

  /** Tokens consumed so far. */
  get position(): number {
    try {
      return this.handle.position()
    } catch (err) {
      throw convert(err)
    }
  }

  /** Wall ms of the last prefill on this state, measured on the compute thread (excludes event-loop waits). */
  get lastMs(): number {
    try {
      return this.handle.lastMs()
    } catch (err) {
      throw convert(err)
    }
  }

  /** Snapshot for prefix caching: copies the constant-size states, shares the full-attention K/V prefix. */
  clone(): State {
    try {
      return new State(this.handle.clone(), this.owner)
    } catch (err) {
      throw convert(err)
    }
  }

  /** Frees the state now (otherwise the garbage collector does). */
  dispose(): void {
    try {
      this.handle.dispose()
    } catch (err) {
      throw convert(err)
    }
  }

  /** @internal */
  get model(): Model {
    return this.owner
  }
}

export class Model {
  readonly config: ModelConfig

  private constructor(private readonly handle: NativeModelHandle) {
    this.config = handle.config()
  }

  static load(dir: string, opts?: LoadOptions): Model {
    const threads = threadsOf(opts)
    try {
      return new Model(native().load(dir, threads, niceOf(opts)))
    } catch (err) {
      throw convert(err)
    }
  }

  static async loadAsync(dir: string, opts?: LoadOptions): Promise<Model> {
    const threads = threadsOf(opts)
    try {
      return new Model(await native().loadAsync(dir, threads, niceOf(opts)))
    } catch (err) {
      throw convert(err)
    }
  }

  newState(): State {
    try {
      return new State(this.handle.newState(), this)
    } catch (err) {
      throw convert(err)
    }
  }

  private check(state: State): void {
    if (!(state instanceof State) || state.model !== this) {
      throw new KernelError('state was not created by this model', 'E_INVALID_ARGUMENT')
    }
  }

  /** Feeds tokens (chunked, linear time); returns the last position's logits [V], or [T*V] with allLogits. */
  prefill(state: State, tokens: ArrayLike<number>, opts?: PrefillOptions): Float32Array {
    this.check(state)
    try {
      return this.handle.forward(state.handle, toTokens(tokens), rowsOf(opts))
    } catch (err) {
      throw convert(err)
    }
  }

  async prefillAsync(state: State, tokens: ArrayLike<number>, opts?: PrefillOptions): Promise<Float32Array> {
    this.check(state)
    try {
      return await this.handle.forwardAsync(state.handle, toTokens(tokens), rowsOf(opts))
    } catch (err) {
      throw convert(err)
    }
  }

  /** One token; returns its logits [V]. */
  step(state: State, token: number): Float32Array {
    return this.prefill(state, [token])
  }

  stepAsync(state: State, token: number): Promise<Float32Array> {
    return this.prefillAsync(state, [token])
  }

  /** Stops the model's threads; states made from it can no longer be run. */
  dispose(): void {
    this.handle.dispose()
  }
}

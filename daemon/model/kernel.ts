// Typed wrapper over the native SambaY kernel (native/, built by node-gyp during `npm ci`).
// All compute happens in C++; async variants run on the addon's own threads and return promises.
import { loadAddon } from './addon.js'
import { KernelError, ModelLoadError, QUANT_TYPES, type ModelConfig, type PrefillOpts, type QuantType } from './backend.js'

export interface LoadOptions {
  /** Size of the model's compute pool; default = number of cores. */
  threads?: number
  /** Lower the compute threads' priority by this nice increment (Linux), so the event loop preempts them. */
  nice?: number
  /** Quantize a float checkpoint's projections at load ('q8_0' | 'q4_0'; the embedding / LM head becomes
   *  q8_0). A checkpoint stored quantized loads as it is with 'none' (default) or its own type and is refused
   *  (ModelLoadError) with the other one. */
  quantize?: QuantType
}

interface NativeStateHandle {
  clone(): NativeStateHandle
  position(): number
  lastMs(): number
  busy(): boolean
  dispose(): void
}
/** @internal the addon's model object */
export interface NativeModelHandle {
  config(): ModelConfig
  newState(): NativeStateHandle
  forward(state: NativeStateHandle, tokens: Int32Array, rows: boolean | number): Float32Array
  forwardAsync(state: NativeStateHandle, tokens: Int32Array, rows: boolean | number): Promise<Float32Array>
  dispose(): void
}
interface KernelAddon {
  load(dir: string, threads: number, nice: number, quantize: QuantType): NativeModelHandle
  loadAsync(dir: string, threads: number, nice: number, quantize: QuantType): Promise<NativeModelHandle>
  isa(): string
}
function native(): KernelAddon {
  return loadAddon<KernelAddon>()
}

/** The kernel implementation this CPU gets (avx512-amx, avx512, avx2-vnni, avx2, generic, dotprod, neon). */
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

function rowsOf(opts?: PrefillOpts): boolean | number {
  return opts?.allLogits === true ? true : opts?.lastRows ?? false
}

function quantizeOf(opts?: LoadOptions): QuantType {
  const q = opts?.quantize ?? 'none'
  if (!QUANT_TYPES.includes(q)) throw new RangeError(`quantize must be one of ${QUANT_TYPES.join(', ')}, got ${String(q)}`)
  return q
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
      return new Model(native().load(dir, threads, niceOf(opts), quantizeOf(opts)))
    } catch (err) {
      throw convert(err)
    }
  }

  static async loadAsync(dir: string, opts?: LoadOptions): Promise<Model> {
    const threads = threadsOf(opts)
    const quantize = quantizeOf(opts)
    try {
      return new Model(await native().loadAsync(dir, threads, niceOf(opts), quantize))
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
  prefill(state: State, tokens: ArrayLike<number>, opts?: PrefillOpts): Float32Array {
    this.check(state)
    try {
      return this.handle.forward(state.handle, toTokens(tokens), rowsOf(opts))
    } catch (err) {
      throw convert(err)
    }
  }

  async prefillAsync(state: State, tokens: ArrayLike<number>, opts?: PrefillOpts): Promise<Float32Array> {
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

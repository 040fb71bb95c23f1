// The decoder interface the verdict engine runs on. Two implementations: the native kernel (in-process,
// async calls on the addon's own threads) and onnxruntime (sessions in a worker thread). Every call that
// computes is asynchronous so the event loop stays free; states are opaque handles owned by their backend.
import type { ModelConfig } from './kernel.js'

export type BackendKind = 'native' | 'onnx'

/** Decode state of one sequence (Mamba conv/SSM states, SWA windows, full-attention K/V, GMU memory). */
export interface DecoderState {
  /** Tokens consumed so far. */
  readonly position: number
  /**
   * ms the last prefill on this state took where it ran (pool thread, worker), excluding the wait for the
   * event loop to take its result; undefined when the backend cannot tell (callers then time the call).
   */
  readonly lastMs?: number
  /** Frees the state now. Idempotent. */
  dispose(): void
}

export interface PrefillOpts {
  /** Return the logits of every fed position ([T*V], row-major) instead of the last one ([V]). */
  allLogits?: boolean
  /** Return the logits of the last n fed positions ([n*V]); only when the backend has `lastRows`. */
  lastRows?: number
}

export interface DecoderBackend {
  readonly kind: BackendKind
  /** The checkpoint's config as the kernel parsed it (vocab_size, layers, …). */
  readonly config: ModelConfig
  /** Supports PrefillOpts.lastRows (the native kernel runs only those rows through the cross-decoder). */
  readonly lastRows?: boolean
  newState(): Promise<DecoderState>
  /** An independent copy of `state` (prefix caching: snapshot once, clone per request). */
  clone(state: DecoderState): Promise<DecoderState>
  /** Feeds tokens after the state's position; resolves the last position's logits, or all with allLogits. */
  prefill(state: DecoderState, tokens: Int32Array, opts?: PrefillOpts): Promise<Float32Array>
  /** Stops the backend's threads or worker; states made from it can no longer run. */
  dispose(): Promise<void>
}

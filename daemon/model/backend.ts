// The decoder interface the verdict engine runs on. Two implementations: the native kernel (in-process,
// async calls on the addon's own threads) and onnxruntime (sessions in a worker thread). Every call that
// computes is asynchronous so the event loop stays free; states are opaque handles owned by their backend.

export type BackendKind = 'native' | 'onnx'

/** Block-quantized weight types (ggml's q8_0 / q4_0; native/README.md); 'none' = float weights. */
export type QuantType = 'none' | 'q8_0' | 'q4_0'
export const QUANT_TYPES: readonly QuantType[] = ['none', 'q8_0', 'q4_0']

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
  /** dtype of the weight matrices as they run: 'F32', 'BF16', 'F16', 'Q8_0', 'Q4_0' or 'mixed'. */
  weight_dtype: string
  /** Block type of the quantized projections that run ('none' = float weights); the embedding / LM head is
   *  q8_0 whenever this is not 'none'. */
  quant: QuantType
  param_count: number
  /** Bytes of the used tensors as they run: in the checkpoint (memory-mapped), or after load-time quantization. */
  weight_bytes: number
  /** Bytes converted or copied at load (F16 matrices to f32, small vectors, misaligned tensors, repacked
   *  quantized matrices). */
  converted_bytes: number
  /** Worker threads of this model's pool. */
  threads: number
  /** Kernel implementation picked at run time: avx512-amx, avx512, avx2-vnni, avx2, generic (x86-64), dotprod or neon
   *  (aarch64); with quantized weights followed by the integer kernels', e.g. 'avx512+int8-avx512vnni'. */
  isa: string
}

/** A checkpoint could not be loaded; the message says what is wrong (file, tensor, shapes). */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError'
}

/**
 * Any other error from a backend; `code` is E_STATE_BUSY, E_DISPOSED, E_INVALID_ARGUMENT, E_KERNEL or
 * E_STATE_POISONED (an earlier call failed part-way through this state: it can no longer be used; start a
 * new state or clone one taken before that call).
 */
export class KernelError extends Error {
  override name = 'KernelError'
  constructor(message: string, readonly code: string) {
    super(message)
  }
}


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
  /** Return the logits of the last n fed positions ([n*V]); only those run through the cross-decoder (native), only when the backend has `lastRows`. */
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

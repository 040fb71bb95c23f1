// Named model configurations for `flashcheck model init`: random-weight SambaY models from tiny (tests)
// to ~400M parameters (benchmarks), their all-attention twins of about equal size, and the real
// Phi-4-mini-flash-reasoning 3.8B config (for memory estimates).
import { archFromConfig } from '../arch.js'
import { estimate } from './estimate.js'

export interface Sizes {
  hidden_size: number
  num_hidden_layers: number
  num_attention_heads: number
  num_key_value_heads: number
  intermediate_size: number
  vocab_size: number
  sliding_window: number
  max_position_embeddings?: number
  torch_dtype?: 'float32' | 'bfloat16'
  tie_word_embeddings?: boolean
  /** Special token id; defaults to the last vocabulary id. */
  token_id?: number
}

/** A config.json with the real checkpoint's structure and field order. */
export function makeConfig(s: Sizes, layout: 'sambay' | 'all-attention' = 'sambay'): Record<string, unknown> {
  const tok = s.token_id ?? s.vocab_size - 1
  return {
    architectures: ['Phi4FlashForCausalLM'],
    attention_dropout: 0.0,
    auto_map: {
      AutoConfig: 'configuration_phi4flash.Phi4FlashConfig',
      AutoModelForCausalLM: 'modeling_phi4flash.Phi4FlashForCausalLM',
      AutoTokenizer: 'Xenova/gpt-4o',
    },
    pad_token_id: tok,
    bos_token_id: tok,
    embd_pdrop: 0.0,
    eos_token_id: tok,
    hidden_act: 'silu',
    hidden_size: s.hidden_size,
    initializer_range: 0.02,
    intermediate_size: s.intermediate_size,
    layer_norm_eps: 1e-5,
    max_position_embeddings: s.max_position_embeddings ?? 65536,
    _attn_implementation: 'flash_attention_2',
    mb_per_layer: 2,
    model_type: 'phi4flash',
    num_attention_heads: s.num_attention_heads,
    num_hidden_layers: s.num_hidden_layers,
    num_key_value_heads: s.num_key_value_heads,
    resid_pdrop: 0.0,
    sliding_window: s.sliding_window,
    torch_dtype: s.torch_dtype ?? 'float32',
    tie_word_embeddings: s.tie_word_embeddings ?? true,
    transformers_version: '4.46.1',
    use_cache: true,
    mlp_bias: false,
    lm_head_bias: false,
    vocab_size: s.vocab_size,
    ...(layout === 'all-attention' ? { flashcheck_layout: 'all-attention' } : {}),
  }
}

/** The all-attention twin of a SambaY config: same depth, width, heads, vocabulary and window
 *  field, every layer full attention, and the MLP width chosen so the parameter
 *  count is as close as possible to the SambaY model's. Attention layers are smaller than the Mamba
 *  and GMU mixers they replace, so the twin gets a somewhat wider MLP; keeping depth and K/V heads
 *  equal keeps the per-token K/V comparison direct. */
export function allAttentionTwin(sambay: Record<string, unknown>): Record<string, unknown> {
  const target = estimate(archFromConfig(sambay)).params
  const at = (inter: number) => ({ ...sambay, intermediate_size: inter, flashcheck_layout: 'all-attention' })
  const paramsAt = (inter: number) => estimate(archFromConfig(at(inter))).params
  // Parameters grow linearly in intermediate_size: solve, then round to a multiple of 32 (4 for
  // toy sizes, where a step of 32 would be too coarse to match).
  const i0 = sambay.intermediate_size as number
  const step = i0 >= 512 ? 32 : 4
  const slope = paramsAt(i0 + step) - paramsAt(i0)
  let best = Math.max(step, i0 + Math.round((target - paramsAt(i0)) / slope) * step)
  for (const c of [best - step, best + step]) {
    if (c > 0 && Math.abs(paramsAt(c) - target) < Math.abs(paramsAt(best) - target)) best = c
  }
  return at(best)
}

export interface Preset {
  name: string
  description: string
  config: Record<string, unknown>
}

const V = 32064 // Phi-3's padded vocabulary: a realistic embedding share for the small synthetic models

const SAMBAY: { name: string; description: string; sizes: Sizes }[] = [
  {
    name: 'tiny',
    description: 'tests: 8 layers (every layer kind), hidden 64',
    sizes: { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, vocab_size: 512, sliding_window: 16 },
  },
  {
    name: 'small',
    description: '~25M parameters',
    sizes: { hidden_size: 256, num_hidden_layers: 16, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 1024, vocab_size: V, sliding_window: 512 },
  },
  {
    name: 'verdict',
    description: '~30M parameters: the model-verdict benchmark (bench/verdict)',
    sizes: { hidden_size: 256, num_hidden_layers: 20, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 1024, vocab_size: V, sliding_window: 512 },
  },
  {
    name: 'medium',
    description: '~100M parameters',
    sizes: { hidden_size: 512, num_hidden_layers: 20, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 2048, vocab_size: V, sliding_window: 512 },
  },
  {
    name: 'large',
    description: '~400M parameters',
    sizes: { hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, num_key_value_heads: 8, intermediate_size: 3584, vocab_size: V, sliding_window: 512 },
  },
]

const REAL: Preset = {
  name: 'phi4-mini-flash',
  description: 'the real Phi-4-mini-flash-reasoning config (3.8B; for memory estimates)',
  config: makeConfig({
    hidden_size: 2560, num_hidden_layers: 32, num_attention_heads: 40, num_key_value_heads: 20,
    intermediate_size: 10240, vocab_size: 200064, sliding_window: 512, max_position_embeddings: 262144,
    torch_dtype: 'bfloat16', tie_word_embeddings: true, token_id: 199999,
  }),
}

export const PRESETS: readonly Preset[] = [
  ...SAMBAY.flatMap(({ name, description, sizes }) => {
    const config = makeConfig(sizes)
    return [
      { name, description: `SambaY, ${description}`, config },
      { name: `${name}-attn`, description: `all-attention baseline twin of ${name}`, config: allAttentionTwin(config) },
    ]
  }),
  REAL,
  { name: 'phi4-mini-flash-attn', description: 'all-attention twin of phi4-mini-flash (for memory estimates)', config: allAttentionTwin(REAL.config) },
]

export function findPreset(name: string): Preset | undefined {
  return PRESETS.find((p) => p.name === name)
}

// Architecture of a phi4flash (SambaY) checkpoint as read from its config.json: the normalised
// hyper-parameters and the layer plan. Field names and defaults follow the upstream config.json;
// see the architecture contract (§1, §2) in the shared spec.

/** `sambay` is the released layout; `all-attention` is this project's own baseline layout
 *  (config.json `"flashcheck_layout": "all-attention"`): every layer is a full-causal
 *  differential attention layer with its own K/V, no Mamba, GMU or cross-attention. */
export type Layout = 'sambay' | 'all-attention'
export const LAYOUTS: readonly Layout[] = ['sambay', 'all-attention']

/** mamba: self-decoder Mamba; mamba_mem: layer h, Mamba that also emits the GMU memory;
 *  swa: sliding-window differential attention; full: full-causal differential attention
 *  (layer h+1 in SambaY, whose K/V the cross layers share; every layer in all-attention);
 *  gmu: gated memory unit; cross: cross-attention over layer h+1's K/V. */
export type LayerKind = 'mamba' | 'mamba_mem' | 'swa' | 'full' | 'gmu' | 'cross'

export interface Arch {
  layout: Layout
  hidden: number
  layers: number
  heads: number
  kvHeads: number
  headDim: number
  intermediate: number
  vocab: number
  window: number
  mbPerLayer: number
  dState: number
  dConv: number
  expand: number
  dInner: number
  dtRank: number
  tied: boolean
  eps: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Json = Record<string, unknown>

function posInt(cfg: Json, key: string, where: string, dflt?: number): number {
  const v = cfg[key] ?? dflt
  if (v === undefined) throw new ConfigError(`${where}: missing field "${key}"`)
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ConfigError(`${where}: field "${key}" must be a positive integer, got ${JSON.stringify(v)}`)
  }
  return v
}

/** Validates a parsed config.json and derives the sizes the tensors need.
 *  `where` names the source in error messages (a path or a preset name). */
export function archFromConfig(raw: unknown, where = 'config.json'): Arch {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${where}: expected a JSON object`)
  }
  const cfg = raw as Json
  if (cfg.model_type !== 'phi4flash') {
    throw new ConfigError(`${where}: field "model_type" must be "phi4flash", got ${JSON.stringify(cfg.model_type)}`)
  }
  const layoutRaw = cfg.flashcheck_layout ?? 'sambay'
  if (!LAYOUTS.includes(layoutRaw as Layout)) {
    throw new ConfigError(`${where}: field "flashcheck_layout" must be one of ${LAYOUTS.join(', ')}, got ${JSON.stringify(layoutRaw)}`)
  }
  const layout = layoutRaw as Layout
  const hidden = posInt(cfg, 'hidden_size', where)
  const layers = posInt(cfg, 'num_hidden_layers', where)
  const heads = posInt(cfg, 'num_attention_heads', where)
  const kvHeads = posInt(cfg, 'num_key_value_heads', where)
  const intermediate = posInt(cfg, 'intermediate_size', where)
  const vocab = posInt(cfg, 'vocab_size', where)
  const window = posInt(cfg, 'sliding_window', where)
  const dState = posInt(cfg, 'mamba_d_state', where, 16)
  const dConv = posInt(cfg, 'mamba_d_conv', where, 4)
  const expand = posInt(cfg, 'mamba_expand', where, 2)
  const mbRaw = cfg.mb_per_layer
  if (typeof mbRaw !== 'number' || !Number.isSafeInteger(mbRaw) || mbRaw < 0) {
    throw new ConfigError(`${where}: field "mb_per_layer" must be a non-negative integer, got ${JSON.stringify(mbRaw)}`)
  }
  // Differential attention splits heads into even/odd groups, so both counts must be even.
  if (heads % 2 !== 0 || kvHeads % 2 !== 0) {
    throw new ConfigError(`${where}: "num_attention_heads" (${heads}) and "num_key_value_heads" (${kvHeads}) must both be even`)
  }
  if (heads % kvHeads !== 0) {
    throw new ConfigError(`${where}: "num_attention_heads" (${heads}) must be a multiple of "num_key_value_heads" (${kvHeads})`)
  }
  if (hidden % heads !== 0) {
    throw new ConfigError(`${where}: "hidden_size" (${hidden}) must be a multiple of "num_attention_heads" (${heads})`)
  }
  // The released layout only; other values have no upstream definition (spec §2).
  if (layout === 'sambay' && (mbRaw !== 2 || layers % 4 !== 0)) {
    throw new ConfigError(`${where}: the SambaY layout needs "mb_per_layer" 2 and "num_hidden_layers" divisible by 4, got ${mbRaw} and ${layers}`)
  }
  const tie = cfg.tie_word_embeddings ?? true
  if (typeof tie !== 'boolean') {
    throw new ConfigError(`${where}: field "tie_word_embeddings" must be a boolean, got ${JSON.stringify(tie)}`)
  }
  const eps = cfg.layer_norm_eps ?? 1e-5
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new ConfigError(`${where}: field "layer_norm_eps" must be a positive number, got ${JSON.stringify(eps)}`)
  }
  return {
    layout, hidden, layers, heads, kvHeads, headDim: hidden / heads, intermediate, vocab, window,
    mbPerLayer: mbRaw, dState, dConv, expand, dInner: expand * hidden,
    // Upstream's Mamba block ignores mamba_dt_rank and always uses ceil(H/16).
    dtRank: Math.ceil(hidden / 16), tied: tie, eps,
  }
}

/** The kind of every layer, index = layer number (spec §2). */
export function layerPlan(a: Arch): LayerKind[] {
  if (a.layout === 'all-attention') return Array.from({ length: a.layers }, () => 'full' as const)
  const h = a.layers / 2
  return Array.from({ length: a.layers }, (_, i): LayerKind => {
    if (i < h) return i % a.mbPerLayer === 0 ? 'mamba' : 'swa'
    if (i === h) return 'mamba_mem'
    if (i === h + 1) return 'full'
    return i % a.mbPerLayer === 0 ? 'gmu' : 'cross'
  })
}

// Parameter count, weight bytes and per-sequence decode-state bytes of an architecture, without
// writing anything (model init --dry-run, the presets listing and the kernel benchmark use it).
import { type Arch, type LayerKind, layerPlan } from './arch.js'
import { numel, tensorSpecs } from './tensors.js'

export interface Estimate {
  params: number
  /** All tensors F32. */
  bytesF32: number
  /** BF16 matrices with F32 A_log and λ vectors (the real checkpoint's mix). */
  bytesBf16: number
  layerKinds: Record<LayerKind, number>
  /** Decode state that does not grow with context, fp32: Mamba conv + SSM state, SWA K/V rings
   *  (allocated at the full window), the GMU memory vector. */
  stateConstBytes: number
  /** fp32 K/V bytes added per token of context (layer h+1 only in SambaY; every layer in all-attention). */
  stateBytesPerToken: number
}

export function estimate(a: Arch): Estimate {
  let params = 0
  let bytesBf16 = 0
  for (const t of tensorSpecs(a)) {
    const n = numel(t.shape)
    params += n
    bytesBf16 += n * (t.keepF32 ? 4 : 2)
  }
  const layerKinds: Record<LayerKind, number> = { mamba: 0, mamba_mem: 0, swa: 0, full: 0, gmu: 0, cross: 0 }
  for (const k of layerPlan(a)) layerKinds[k]++
  const kvRow = 2 * a.kvHeads * a.headDim * 4
  const mambaState = (a.dInner * (a.dConv - 1) + a.dInner * a.dState) * 4
  const stateConstBytes =
    (layerKinds.mamba + layerKinds.mamba_mem) * mambaState +
    layerKinds.swa * a.window * kvRow +
    (layerKinds.gmu > 0 ? a.dInner * 4 : 0)
  return { params, bytesF32: params * 4, bytesBf16, layerKinds, stateConstBytes, stateBytesPerToken: layerKinds.full * kvRow }
}

export function stateBytesAt(e: Estimate, contextTokens: number): number {
  return e.stateConstBytes + e.stateBytesPerToken * contextTokens
}

/** Multiply-add work per token, as FLOPs (2 per multiply-add), split so a benchmark can count what
 *  a pass must do. Matrix products only, plus attention scores and value mixing; element-wise work
 *  (norms, activations, the selective scan) is left out. */
export interface TokenFlops {
  /** Layers up to h+1 in SambaY (what prefill must run for every prompt token); all layers otherwise. */
  selfMatmul: number
  /** Cross-decoder layers (≥ h+2): prefill needs them for the last position only. */
  crossMatmul: number
  /** The logits projection. */
  logits: number
  /** Attention FLOPs for a query at position t (0-based), all attention layers. */
  attention(t: number): number
}

export function tokenFlops(a: Arch): TokenFlops {
  const plan = layerPlan(a)
  const h = a.layers / 2
  let selfMatmul = 0
  let crossMatmul = 0
  for (const t of tensorSpecs(a)) {
    if (t.shape.length !== 2 || t.name.includes('embed_tokens') || t.name === 'lm_head.weight' || t.name.endsWith('.A_log')) continue
    const layer = Number(/^model\.layers\.(\d+)\./.exec(t.name)?.[1])
    const f = 2 * numel(t.shape)
    if (a.layout === 'sambay' && layer >= h + 2) crossMatmul += f
    else selfMatmul += f
  }
  const logits = 2 * a.vocab * a.hidden
  // Per query head: q·k over hd for each key, then probabilities times the 2·hd concatenated values.
  const perKey = a.heads * a.headDim * 6
  const windows = plan.map((k) => (k === 'swa' ? a.window : k === 'full' || k === 'cross' ? Infinity : 0))
  return {
    selfMatmul, crossMatmul, logits,
    attention: (t) => windows.reduce((s, w) => s + perKey * Math.min(t + 1, w), 0),
  }
}

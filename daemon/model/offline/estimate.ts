// Parameter count, weight bytes and per-sequence decode-state bytes of an architecture, without
// writing anything (model init --dry-run, the presets listing and the kernel benchmark use it).
import { type Arch, type LayerKind, layerPlan } from '../arch.js'
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

/** Work of the model as FLOPs (2 per multiply-add): matrix products, plus attention scores and
 *  value mixing; element-wise work (norms, activations, convolution, the selective scan) is left out.
 *  Counts what a pass must do: a prefill needs the cross-decoder (layers ≥ h+2 in SambaY) and the
 *  logits for its last position only (spec §4). */
export interface Flops {
  /** One token through the self-decoder (all layers in all-attention), matrices only. */
  selfMatmul: number
  /** One token through the cross-decoder, matrices only (0 in all-attention). */
  crossMatmul: number
  /** The logits projection of one position. */
  logits: number
  /** A prefill of `n` tokens starting at position `p0` (context already in the state), last logits only. */
  prefill(p0: number, n: number): number
  /** One decode step at position `t` (t tokens already in the state). */
  step(t: number): number
}

export function flops(a: Arch): Flops {
  const plan = layerPlan(a)
  const h = a.layers / 2
  let selfMatmul = 0
  let crossMatmul = 0
  for (const t of tensorSpecs(a)) {
    if (t.shape.length !== 2 || !t.name.startsWith('model.layers.') || t.name.endsWith('.A_log')) continue
    const layer = Number(/^model\.layers\.(\d+)\./.exec(t.name)![1])
    if (a.layout === 'sambay' && layer >= h + 2) crossMatmul += 2 * numel(t.shape)
    else selfMatmul += 2 * numel(t.shape)
  }
  const logits = 2 * a.vocab * a.hidden
  // Per query head and key: q·k over hd, then the probability times 2·hd concatenated values.
  const perKey = a.heads * a.headDim * 6
  const swa = plan.filter((k) => k === 'swa').length
  const full = plan.filter((k) => k === 'full').length
  const cross = plan.filter((k) => k === 'cross').length
  /** Σ_{t=p0}^{p0+n-1} min(t+1, w): keys seen by n consecutive queries. */
  const keys = (p0: number, n: number, w: number) => {
    let s = 0
    for (let t = p0; t < p0 + n; t++) s += Math.min(t + 1, w)
    return s
  }
  const selfAttn = (p0: number, n: number) => perKey * (swa * keys(p0, n, a.window) + full * keys(p0, n, Infinity))
  return {
    selfMatmul, crossMatmul, logits,
    prefill: (p0, n) => n * selfMatmul + selfAttn(p0, n) + crossMatmul + perKey * cross * (p0 + n) + logits,
    step: (t) => selfMatmul + selfAttn(t, 1) + crossMatmul + perKey * cross * (t + 1) + logits,
  }
}

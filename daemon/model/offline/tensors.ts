// The tensor inventory of a checkpoint: names and shapes exactly as the real checkpoint has them
// (spec §2, §3), and how each is initialised for a random-weight model.
import { type Arch, type LayerKind, layerPlan } from '../arch.js'

/** normal: N(0, std²); uniform: U(-bound, bound); const: every element = value;
 *  a_log: row-wise log(1..N) as Mamba initialises A; dt_bias: inverse softplus of a dt drawn
 *  log-uniformly in [dtMin, dtMax], so that softplus(bias) starts inside that range. */
export type Init =
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'const'; value: number }
  | { kind: 'a_log'; dState: number }
  | { kind: 'dt_bias'; dtMin: number; dtMax: number }

export interface TensorSpec {
  name: string
  shape: number[]
  init: Init
  /** Stays F32 in a BF16 checkpoint (A_log and the λ vectors, as the real checkpoint most likely has). */
  keepF32: boolean
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1)
}

/** Initialisation scales. Input projections N(0, 0.02²) (the config's initializer_range); projections
 *  that write into the residual stream are scaled down by 1/sqrt(2L) (GPT-2 style) so the residual
 *  does not grow with depth. */
function scales(a: Arch) {
  const std = 0.02
  return { std, resid: std / Math.sqrt(2 * a.layers) }
}

function mixerTensors(a: Arch, kind: LayerKind, p: string, s: ReturnType<typeof scales>): Omit<TensorSpec, 'keepF32'>[] {
  const { hidden: H, dInner: D, dState: N, dConv: K, dtRank: R, heads: nh, kvHeads: nkv, headDim: hd } = a
  const normal = (std: number): Init => ({ kind: 'normal', std })
  const zero: Init = { kind: 'const', value: 0 }
  const one: Init = { kind: 'const', value: 1 }
  switch (kind) {
    case 'mamba':
    case 'mamba_mem':
      return [
        { name: `${p}in_proj.weight`, shape: [2 * D, H], init: normal(s.std) },
        // PyTorch's Conv1d default (kaiming-uniform with fan-in K), as upstream leaves it.
        { name: `${p}conv1d.weight`, shape: [D, 1, K], init: { kind: 'uniform', bound: 1 / Math.sqrt(K) } },
        { name: `${p}conv1d.bias`, shape: [D], init: { kind: 'uniform', bound: 1 / Math.sqrt(K) } },
        { name: `${p}x_proj.weight`, shape: [R + 2 * N, D], init: normal(s.std) },
        // Mamba's dt_proj init: U(±dt_rank^-0.5) weights, bias = softplus⁻¹(dt), dt ∈ [1e-3, 1e-1].
        { name: `${p}dt_proj.weight`, shape: [D, R], init: { kind: 'uniform', bound: 1 / Math.sqrt(R) } },
        { name: `${p}dt_proj.bias`, shape: [D], init: { kind: 'dt_bias', dtMin: 1e-3, dtMax: 1e-1 } },
        { name: `${p}A_log`, shape: [D, N], init: { kind: 'a_log', dState: N } },
        { name: `${p}D`, shape: [D], init: one },
        { name: `${p}out_proj.weight`, shape: [H, D], init: normal(s.resid) },
      ]
    case 'swa':
    case 'full':
    case 'cross': {
      // Cross layers project q only; their k/v come from layer h+1.
      const qkvRows = kind === 'cross' ? nh * hd : (nh + 2 * nkv) * hd
      const ica = `${p}inner_cross_attn.`
      return [
        { name: `${p}Wqkv.weight`, shape: [qkvRows, H], init: normal(s.std) },
        { name: `${p}Wqkv.bias`, shape: [qkvRows], init: zero },
        { name: `${p}out_proj.weight`, shape: [H, nh * hd], init: normal(s.resid) },
        { name: `${p}out_proj.bias`, shape: [H], init: zero },
        // Differential Transformer's λ init N(0, 0.1²); subln is an RMSNorm weight.
        ...(['lambda_q1', 'lambda_k1', 'lambda_q2', 'lambda_k2'] as const).map((l) => ({
          name: `${ica}${l}`, shape: [hd], init: normal(0.1),
        })),
        { name: `${ica}subln.weight`, shape: [2 * hd], init: one },
      ]
    }
    case 'gmu':
      return [
        { name: `${p}in_proj.weight`, shape: [D, H], init: normal(s.std) },
        { name: `${p}out_proj.weight`, shape: [H, D], init: normal(s.resid) },
      ]
  }
}

/** Every tensor of the checkpoint, sorted by name (the order safetensors files store them in). */
export function tensorSpecs(a: Arch): TensorSpec[] {
  const s = scales(a)
  const { hidden: H, intermediate: I, vocab: V } = a
  const one: Init = { kind: 'const', value: 1 }
  const zero: Init = { kind: 'const', value: 0 }
  const out: Omit<TensorSpec, 'keepF32'>[] = [
    { name: 'model.embed_tokens.weight', shape: [V, H], init: { kind: 'normal', std: s.std } },
    { name: 'model.final_layernorm.weight', shape: [H], init: one },
    { name: 'model.final_layernorm.bias', shape: [H], init: zero },
  ]
  if (!a.tied) out.push({ name: 'lm_head.weight', shape: [V, H], init: { kind: 'normal', std: s.std } })
  layerPlan(a).forEach((kind, i) => {
    const p = `model.layers.${i}.`
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [H], init: one },
      { name: `${p}input_layernorm.bias`, shape: [H], init: zero },
      { name: `${p}post_attention_layernorm.weight`, shape: [H], init: one },
      { name: `${p}post_attention_layernorm.bias`, shape: [H], init: zero },
      // fc1 rows are [gate | up] (the first half is the gate).
      { name: `${p}mlp.fc1.weight`, shape: [2 * I, H], init: { kind: 'normal', std: s.std } },
      { name: `${p}mlp.fc2.weight`, shape: [H, I], init: { kind: 'normal', std: s.resid } },
      ...mixerTensors(a, kind, `${p}attn.`, s),
    )
  })
  return out
    .map((t) => ({ ...t, keepF32: t.name.endsWith('.A_log') || /\.lambda_[qk][12]$/.test(t.name) }))
    .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
}

// Float64 reference forward of a phi4flash checkpoint, written from ../shared/spec/sambay-architecture.md
// independently of the C++ kernel: whole-sequence (no caches), true sliding window, interleaved head
// groups with the spec's GQA pair mapping, λ_init(i), memory = un-gated y. Small shapes only.
import type { Tensor, TinyConfig } from './checkpoint.js'

type Mat = Float64Array

function linear(x: Mat[], w: Tensor, bias?: Tensor): Mat[] {
  const [o, i] = w.shape
  return x.map((row) => {
    const y = new Float64Array(o)
    for (let r = 0; r < o; r++) {
      let s = bias ? bias.data[r] : 0
      for (let k = 0; k < i; k++) s += w.data[r * i + k] * row[k]
      y[r] = s
    }
    return y
  })
}
const silu = (x: number) => x / (1 + Math.exp(-x))
const softplus = (x: number) => (x > 30 ? x : Math.log1p(Math.exp(x)))

function layerNorm(x: Mat[], w: Tensor, b: Tensor, eps: number): Mat[] {
  return x.map((row) => {
    const n = row.length
    let m = 0
    for (const v of row) m += v
    m /= n
    let v2 = 0
    for (const v of row) v2 += (v - m) * (v - m)
    v2 /= n
    const inv = 1 / Math.sqrt(v2 + eps)
    return row.map((v, i) => (v - m) * inv * w.data[i] + b.data[i])
  })
}

export function referenceForward(cfg: TinyConfig, W: Map<string, Tensor>, tokens: number[]): Float64Array[] {
  const g = (n: string) => {
    const t = W.get(n)
    if (!t) throw new Error(`missing ${n}`)
    return t
  }
  const H = cfg.hidden_size
  const L = cfg.num_hidden_layers
  const nh = cfg.num_attention_heads
  const nkv = cfg.num_key_value_heads
  const hd = H / nh
  const I = cfg.intermediate_size
  const N = cfg.mamba_d_state ?? 16
  const K = cfg.mamba_d_conv ?? 4
  const Di = (cfg.mamba_expand ?? 2) * H
  const R = Math.ceil(H / 16)
  const Wn = cfg.sliding_window ?? 8
  const eps = 1e-5
  const T = tokens.length
  const allAttn = cfg.layout === 'all-attention'
  const h = L / 2
  const E = g('model.embed_tokens.weight')
  let x: Mat[] = tokens.map((t) => E.data.slice(t * H, (t + 1) * H))
  let memory: Mat[] = []
  let sharedK: Mat[] = []
  let sharedV: Mat[] = []

  const diffAttn = (i: number, p: string, q: Mat[], k: Mat[], v: Mat[], window: number): Mat[] => {
    const lq1 = g(p + 'inner_cross_attn.lambda_q1').data
    const lk1 = g(p + 'inner_cross_attn.lambda_k1').data
    const lq2 = g(p + 'inner_cross_attn.lambda_q2').data
    const lk2 = g(p + 'inner_cross_attn.lambda_k2').data
    const sub = g(p + 'inner_cross_attn.subln.weight').data
    let s1 = 0
    let s2 = 0
    for (let d = 0; d < hd; d++) {
      s1 += lq1[d] * lk1[d]
      s2 += lq2[d] * lk2[d]
    }
    const linit = 0.8 - 0.6 * Math.exp(-0.3 * i)
    const lam = Math.exp(s1) - Math.exp(s2) + linit
    const r = nh / nkv
    const scale = 1 / Math.sqrt(hd)
    return q.map((qt, t) => {
      const out = new Float64Array(nh * hd)
      const lo = window > 0 ? Math.max(0, t - window + 1) : 0
      for (let j = 0; j < nh / 2; j++) {
        const kv1 = 2 * Math.floor(j / r)
        const kv2 = kv1 + 1
        const probs = (qh: number, kh: number) => {
          const sc: number[] = []
          for (let u = lo; u <= t; u++) {
            let s = 0
            for (let d = 0; d < hd; d++) s += qt[qh * hd + d] * k[u][kh * hd + d]
            sc.push(s * scale)
          }
          const m = Math.max(...sc)
          const e = sc.map((s) => Math.exp(s - m))
          const z = e.reduce((a, b) => a + b, 0)
          return e.map((v) => v / z)
        }
        const P1 = probs(2 * j, kv1)
        const P2 = probs(2 * j + 1, kv2)
        const o = new Float64Array(2 * hd)
        for (let u = lo; u <= t; u++) {
          const p1 = P1[u - lo]
          const p2 = P2[u - lo]
          for (let d = 0; d < hd; d++) {
            const va = v[u][kv1 * hd + d]
            const vb = v[u][kv2 * hd + d]
            o[d] += (p1 - lam * p2) * va
            o[hd + d] += (p1 - lam * p2) * vb
          }
        }
        let ms = 0
        for (const val of o) ms += val * val
        const inv = 1 / Math.sqrt(ms / (2 * hd) + 1e-5)
        for (let d = 0; d < 2 * hd; d++) out[j * 2 * hd + d] = o[d] * inv * sub[d] * (1 - linit)
      }
      return out
    })
  }

  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`
    const a = layerNorm(x, g(p + 'input_layernorm.weight'), g(p + 'input_layernorm.bias'), eps)
    let mix: Mat[]
    const kind = allAttn
      ? 'full'
      : i < h
        ? i % 2 === 0 ? 'mamba' : 'swa'
        : i === h ? 'mamba' : i === h + 1 ? 'full' : i % 2 === 0 ? 'gmu' : 'cross'
    const at = p + 'attn.'
    if (kind === 'mamba') {
      const xz = linear(a, g(at + 'in_proj.weight'))
      const xm = xz.map((r) => r.slice(0, Di))
      const z = xz.map((r) => r.slice(Di))
      const cw = g(at + 'conv1d.weight').data
      const cb = g(at + 'conv1d.bias').data
      const xc = xm.map((_, t) => {
        const o = new Float64Array(Di)
        for (let c = 0; c < Di; c++) {
          let s = cb[c]
          for (let kk = 0; kk < K; kk++) {
            const src = t - K + 1 + kk
            if (src >= 0) s += cw[c * K + kk] * xm[src][c]
          }
          o[c] = silu(s)
        }
        return o
      })
      const dbc = linear(xc, g(at + 'x_proj.weight'))
      const delta = linear(dbc.map((r) => r.slice(0, R)), g(at + 'dt_proj.weight'), g(at + 'dt_proj.bias')).map((r) => r.map(softplus))
      const Alog = g(at + 'A_log').data
      const D = g(at + 'D').data
      const hs = new Float64Array(Di * N)
      const y = xc.map((xt, t) => {
        const o = new Float64Array(Di)
        for (let c = 0; c < Di; c++) {
          let s = 0
          for (let n = 0; n < N; n++) {
            const A = -Math.exp(Alog[c * N + n])
            hs[c * N + n] = Math.exp(delta[t][c] * A) * hs[c * N + n] + delta[t][c] * dbc[t][R + n] * xt[c]
            s += dbc[t][R + N + n] * hs[c * N + n]
          }
          o[c] = s + D[c] * xt[c]
        }
        return o
      })
      if (i === h && !allAttn) memory = y
      mix = linear(y.map((yt, t) => yt.map((v, c) => v * silu(z[t][c]))), g(at + 'out_proj.weight'))
    } else if (kind === 'gmu') {
      const u = linear(a, g(at + 'in_proj.weight'))
      mix = linear(u.map((ut, t) => ut.map((v, c) => memory[t][c] * silu(v))), g(at + 'out_proj.weight'))
    } else if (kind === 'cross') {
      const q = linear(a, g(at + 'Wqkv.weight'), g(at + 'Wqkv.bias'))
      mix = linear(diffAttn(i, at, q, sharedK, sharedV, 0), g(at + 'out_proj.weight'), g(at + 'out_proj.bias'))
    } else {
      const qkv = linear(a, g(at + 'Wqkv.weight'), g(at + 'Wqkv.bias'))
      const q = qkv.map((r) => r.slice(0, nh * hd))
      const k = qkv.map((r) => r.slice(nh * hd, (nh + nkv) * hd))
      const v = qkv.map((r) => r.slice((nh + nkv) * hd))
      if (kind === 'full') {
        sharedK = k
        sharedV = v
      }
      mix = linear(diffAttn(i, at, q, k, v, kind === 'swa' ? Wn : 0), g(at + 'out_proj.weight'), g(at + 'out_proj.bias'))
    }
    x = x.map((r, t) => r.map((v, c) => v + mix[t][c]))
    const b = layerNorm(x, g(p + 'post_attention_layernorm.weight'), g(p + 'post_attention_layernorm.bias'), eps)
    const u = linear(b, g(p + 'mlp.fc1.weight'))
    const m = linear(u.map((r) => r.slice(I).map((v, c) => v * silu(r[c]))), g(p + 'mlp.fc2.weight'))
    x = x.map((r, t) => r.map((v, c) => v + m[t][c]))
  }
  const f = layerNorm(x, g('model.final_layernorm.weight'), g('model.final_layernorm.bias'), eps)
  const head = cfg.tie_word_embeddings === false ? g('lm_head.weight') : E
  return linear(f, head)
}

/** max over rows of max|got-ref| / max|ref| (the golden cases' definition). */
export function relErr(got: Float32Array, ref: Float64Array[], V: number, firstRow = 0): number {
  let worst = 0
  const rows = got.length / V
  for (let r = 0; r < rows; r++) {
    let md = 0
    let mr = 0
    for (let i = 0; i < V; i++) {
      md = Math.max(md, Math.abs(got[r * V + i] - ref[firstRow + r][i]))
      mr = Math.max(mr, Math.abs(ref[firstRow + r][i]))
    }
    worst = Math.max(worst, md / mr)
  }
  return worst
}

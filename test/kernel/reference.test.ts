// Random configs of every layer pattern against the float64 reference written from the spec:
// full forward, prefill-then-step (window eviction in prefill and decode), chunked prefill, and
// incremental == full forward.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Model } from '../../daemon/model/kernel.js'
import { rng, writeCheckpoint, type TinyConfig, type WDType } from './helpers/checkpoint.js'
import { referenceForward, relErr } from './helpers/reference.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-ref-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

interface Case {
  name: string
  cfg: TinyConfig
  dtype?: WDType
  shards?: number
  prompt: number
  steps: number
  layers: string[]
}

const cases: Case[] = [
  {
    name: 'sambay L=4 (no GMU/cross), MHA, W=5',
    cfg: { hidden_size: 32, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 48, vocab_size: 64, sliding_window: 5 },
    prompt: 17, steps: 9,
    layers: ['mamba', 'swa', 'mamba_mem', 'attn_kv'],
  },
  {
    name: 'sambay L=8, GQA 2 per group, W=6',
    cfg: { hidden_size: 32, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 40, vocab_size: 72, sliding_window: 6 },
    prompt: 23, steps: 10,
    layers: ['mamba', 'swa', 'mamba', 'swa', 'mamba_mem', 'attn_kv', 'gmu', 'cross'],
  },
  {
    name: 'sambay L=12, GQA 4 per group, W=7, untied head',
    cfg: { hidden_size: 64, num_hidden_layers: 12, num_attention_heads: 8, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 80, sliding_window: 7, tie_word_embeddings: false },
    prompt: 20, steps: 8,
    layers: ['mamba', 'swa', 'mamba', 'swa', 'mamba', 'swa', 'mamba_mem', 'attn_kv', 'gmu', 'cross', 'gmu', 'cross'],
  },
  {
    name: 'sambay L=4, head_dim 64 (full-width attention tiles), GQA 2, W=12',
    cfg: { hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 40, sliding_window: 12 },
    prompt: 40, steps: 4,
    layers: ['mamba', 'swa', 'mamba_mem', 'attn_kv'],
  },
  {
    name: 'all-attention baseline L=3, GQA 2',
    cfg: { hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 40, vocab_size: 64, layout: 'all-attention' },
    prompt: 15, steps: 6,
    layers: ['attn', 'attn', 'attn'],
  },
  {
    name: 'sambay L=8 BF16 weights in 3 shards',
    cfg: { hidden_size: 48, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 40, vocab_size: 64, sliding_window: 4 },
    dtype: 'BF16', shards: 3, prompt: 14, steps: 6,
    layers: ['mamba', 'swa', 'mamba', 'swa', 'mamba_mem', 'attn_kv', 'gmu', 'cross'],
  },
  {
    name: 'sambay L=8 F16 weights, d_state 5, d_conv 3, expand 1',
    cfg: { hidden_size: 32, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 24, vocab_size: 50, sliding_window: 3, mamba_d_state: 5, mamba_d_conv: 3, mamba_expand: 1 },
    dtype: 'F16', prompt: 12, steps: 6,
    layers: ['mamba', 'swa', 'mamba', 'swa', 'mamba_mem', 'attn_kv', 'gmu', 'cross'],
  },
]

const TOL = 1e-4

cases.forEach((c, ci) => {
  t.test(c.name, async (t) => {
    const dir = join(root, `case${ci}`)
    const W = writeCheckpoint(dir, c.cfg, { seed: 100 + ci, dtype: c.dtype, shards: c.shards })
    const r = rng(7 + ci)
    const V = c.cfg.vocab_size
    const tokens = Array.from({ length: c.prompt + c.steps }, () => Math.floor(r() * V))
    const ref = referenceForward(c.cfg, W, tokens)
    const model = Model.load(dir, { threads: 2 })
    t.teardown(() => model.dispose())
    t.same(model.config.layers, c.layers, 'layer plan')
    t.equal(model.config.layout, c.cfg.layout ?? 'sambay')
    if (c.dtype) t.equal(model.config.weight_dtype, c.dtype)

    const prompt = tokens.slice(0, c.prompt)
    const full = model.prefill(model.newState(), tokens, { allLogits: true })
    t.ok(relErr(full, ref, V) <= TOL, `full forward vs reference: ${relErr(full, ref, V)}`)

    const s = model.newState()
    const last = model.prefill(s, prompt)
    t.ok(relErr(last, ref, V, c.prompt - 1) <= TOL, `prefill last row vs reference`)
    let worstStep = 0
    let worstInc = 0
    for (let i = c.prompt; i < tokens.length; i++) {
      const row = model.step(s, tokens[i])
      worstStep = Math.max(worstStep, relErr(row, ref, V, i))
      worstInc = Math.max(worstInc, relErr(row, [Float64Array.from(full.subarray(i * V, (i + 1) * V))], V))
    }
    t.equal(s.position, tokens.length)
    t.ok(worstStep <= TOL, `prefill-then-step vs reference past the window: ${worstStep}`)
    t.ok(worstInc <= 1e-5, `incremental == full forward: ${worstInc}`)

    // token-by-token from an empty state, and a prefill split into uneven chunks
    const s2 = model.newState()
    let worstTok = 0
    for (let i = 0; i < tokens.length; i++) {
      const row = model.step(s2, tokens[i])
      worstTok = Math.max(worstTok, relErr(row, ref, V, i))
    }
    t.ok(worstTok <= TOL, `step-only decode from position 0: ${worstTok}`)
    const s3 = model.newState()
    const cut = Math.floor(c.prompt / 3)
    model.prefill(s3, tokens.slice(0, cut))
    const rest = model.prefill(s3, tokens.slice(cut), { allLogits: true })
    t.ok(relErr(rest, ref, V, cut) <= TOL, `prefill in two chunks (${cut} + ${tokens.length - cut})`)
  })
})

t.test('long prompt: several prefill chunks and KV pages, then decode', async (t) => {
  const cfg: TinyConfig = { hidden_size: 32, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 48, sliding_window: 9 }
  const dir = join(root, 'long')
  const W = writeCheckpoint(dir, cfg, { seed: 5 })
  const r = rng(99)
  const tokens = Array.from({ length: 300 }, () => Math.floor(r() * 48))
  const ref = referenceForward(cfg, W, tokens)
  const model = Model.load(dir, { threads: 2 })
  t.teardown(() => model.dispose())
  const full = model.prefill(model.newState(), tokens, { allLogits: true })
  t.ok(relErr(full, ref, 48) <= TOL, `all 300 rows vs reference: ${relErr(full, ref, 48)}`)
  const s = model.newState()
  const last = model.prefill(s, tokens.slice(0, 270))
  t.ok(relErr(last, ref, 48, 269) <= TOL, 'last row of a 270-token prefill (3 chunks)')
  let worst = 0
  for (let i = 270; i < 300; i++) worst = Math.max(worst, relErr(model.step(s, tokens[i]), ref, 48, i))
  t.ok(worst <= TOL, `30 decode steps after it: ${worst}`)
})

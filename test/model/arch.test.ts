import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { archFromConfig, ConfigError, layerPlan } from '../../daemon/model/arch.js'
import { makeConfig } from '../../daemon/model/offline/presets.js'
import { goldenCases, goldenDir } from './helpers.js'

// The golden cases write the plan in two notations: `1:swa(w=12)` / `7:attn_kv` and `1:attn(w=10)` / `5:attn`.
function goldenKind(label: string): string {
  return label.replace(/:attn\(w=/, ':swa(w=').replace(/:attn(_kv)?$/, ':full')
}

const cases = goldenCases()

t.test('layer plan matches every golden case', { skip: cases.length === 0 && `no golden cases at ${goldenDir}` }, async (t) => {
  for (const c of cases) {
    const cfg = JSON.parse(readFileSync(join(goldenDir, c, 'config.json'), 'utf8'))
    const expected = JSON.parse(readFileSync(join(goldenDir, c, 'expected.json'), 'utf8'))
    const a = archFromConfig(cfg, c)
    t.same(layerPlan(a).map((k, i) => `${i}:${k === 'swa' ? `swa(w=${a.window})` : k}`), expected.layer_plan.map(goldenKind), c)
  }
})

t.test('derived sizes of the real config', async (t) => {
  const a = archFromConfig(makeConfig({ hidden_size: 2560, num_hidden_layers: 32, num_attention_heads: 40, num_key_value_heads: 20, intermediate_size: 10240, vocab_size: 200064, sliding_window: 512 }))
  t.match(a, { headDim: 64, dInner: 5120, dtRank: 160, dState: 16, dConv: 4, layout: 'sambay', tied: true })
  const plan = layerPlan(a)
  t.equal(plan[16], 'mamba_mem')
  t.equal(plan[17], 'full')
  t.same(plan.slice(18, 22), ['gmu', 'cross', 'gmu', 'cross'])
  t.same(plan.slice(0, 4), ['mamba', 'swa', 'mamba', 'swa'])
})

t.test('all-attention layout is every layer full attention', async (t) => {
  const cfg = { ...makeConfig({ hidden_size: 64, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 32, sliding_window: 8 }), flashcheck_layout: 'all-attention' }
  t.same(layerPlan(archFromConfig(cfg)), Array(6).fill('full'), 'no SambaY depth constraint')
})

t.test('bad configs are refused with the field and the source named', async (t) => {
  const base = makeConfig({ hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 32, sliding_window: 8 })
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ model_type: 'llama' }, /my\.json: field "model_type" must be "phi4flash"/],
    [{ hidden_size: 0 }, /"hidden_size" must be a positive integer/],
    [{ hidden_size: undefined }, /missing field "hidden_size"/],
    [{ num_attention_heads: 6, num_key_value_heads: 4 }, /multiple of "num_key_value_heads"/],
    [{ num_key_value_heads: 1 }, /must both be even/],
    [{ hidden_size: 66 }, /multiple of "num_attention_heads"/],
    [{ mb_per_layer: 3 }, /"mb_per_layer" 2 and "num_hidden_layers" divisible by 4/],
    [{ num_hidden_layers: 6 }, /divisible by 4/],
    [{ flashcheck_layout: 'yoco' }, /"flashcheck_layout" must be one of sambay, all-attention/],
    [{ tie_word_embeddings: 'yes' }, /"tie_word_embeddings" must be a boolean/],
  ]
  for (const [patch, re] of bad) {
    t.throws(() => archFromConfig({ ...base, ...patch }, 'my.json'), re, JSON.stringify(patch))
  }
  t.throws(() => archFromConfig([], 'x'), ConfigError)
})

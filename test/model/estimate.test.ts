import t from 'tap'
import { archFromConfig } from '../../daemon/model/arch.js'
import { estimate, flops, stateBytesAt } from '../../daemon/model/offline/estimate.js'
import { makeConfig } from '../../daemon/model/offline/presets.js'

// H 64, 4 heads of 16, 2 kv heads, I 32, V 10, window 3; L 8: mamba, swa, mamba, swa, mamba_mem, full, gmu, cross.
const sizes = { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 10, sliding_window: 3 }
const sambay = archFromConfig(makeConfig(sizes))
const allAttn = archFromConfig(makeConfig(sizes, 'all-attention'))

// Matrix multiply-adds per token, by hand: MLP 2I·H + H·I; Mamba in_proj 2·128·64, x_proj (4+32)·128,
// dt_proj 128·4, out_proj 64·128; attention Wqkv (4+4)·16·64, out 64·64; GMU 128·64·2; cross q 64·64, out 64·64.
const mlp = 2 * 32 * 64 + 64 * 32
const mamba = 2 * 128 * 64 + 36 * 128 + 128 * 4 + 64 * 128
const attn = 8 * 16 * 64 + 64 * 64
const gmu = 2 * 128 * 64
const cross = 2 * 64 * 64
const perKey = 4 * 16 * 6

t.test('matrix FLOPs per token, counted by hand', async (t) => {
  const f = flops(sambay)
  t.equal(f.selfMatmul, 2 * (6 * mlp + 3 * mamba + 3 * attn))
  t.equal(f.crossMatmul, 2 * (2 * mlp + gmu + cross))
  t.equal(f.logits, 2 * 10 * 64)
  t.equal(flops(allAttn).selfMatmul, 2 * 8 * (mlp + attn))
  t.equal(flops(allAttn).crossMatmul, 0)
})

t.test('attention FLOPs: window, full and cross layers', async (t) => {
  const f = flops(sambay)
  const base = f.selfMatmul + f.crossMatmul + f.logits
  // step at t=10: 2 SWA layers see 3 keys, the full layer and the cross layer see 11.
  t.equal(f.step(10), base + perKey * (2 * 3 + 11 + 11))
  // prefill of 5 tokens from 0: SWA keys 1+2+3+3+3, full 1+..+5; cross layers on the last position only.
  t.equal(f.prefill(0, 5), 5 * f.selfMatmul + f.crossMatmul + f.logits + perKey * (2 * 12 + 15 + 5))
  const g = flops(allAttn)
  t.equal(g.step(100) - g.step(0), perKey * 8 * 100, 'all-attention grows in every layer')
})

t.test('state bytes', async (t) => {
  const e = estimate(sambay)
  // 3 Mamba layers × 128·(3 + 16) floats, 2 SWA layers × 3 slots × 2·2·16 floats, the GMU memory 128 floats.
  t.equal(e.stateConstBytes, 4 * (3 * 128 * 19 + 2 * 3 * 64 + 128))
  t.equal(e.stateBytesPerToken, 4 * 64, 'one layer of K/V')
  t.equal(stateBytesAt(e, 1000), e.stateConstBytes + 256000)
  t.equal(estimate(allAttn).stateBytesPerToken, 8 * 4 * 64)
})

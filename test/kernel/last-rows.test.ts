// Logits of the last k positions (lastRows): the rows equal the corresponding rows of an all-logits prefill
// and the state afterwards is the same, on both layouts, across the 256-token prefill chunk boundary.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { KernelError } from '../../daemon/model/backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { rng, writeCheckpoint, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-rows-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const sambay: TinyConfig = { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 96, vocab_size: 96, sliding_window: 6 }
const allAttn: TinyConfig = { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 64, layout: 'all-attention' }
writeCheckpoint(join(root, 'sambay'), sambay, { seed: 11 })
writeCheckpoint(join(root, 'all'), allAttn, { seed: 12 })

const toks = (n: number, V: number, seed: number) => {
  const r = rng(seed)
  return Array.from({ length: n }, () => Math.floor(r() * V))
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

for (const [name, V] of [['sambay', 96], ['all', 64]] as const) {
  t.test(`${name}: last-k logits equal the last k rows of all logits`, async (t) => {
    const m = Model.load(join(root, name), { threads: 2 })
    t.teardown(() => m.dispose())
    for (const [T, k] of [[5, 1], [5, 2], [5, 5], [40, 3], [258, 4], [300, 44], [513, 256]] as const) {
      const x = toks(T, V, T * 31 + k)
      const a = m.newState()
      const all = m.prefill(a, x, { allLogits: true })
      const b = m.newState()
      const last = await m.prefillAsync(b, x, { lastRows: k })
      t.equal(last.length, k * V, `T=${T} k=${k}: ${k} rows`)
      const d = maxDiff(last, all.subarray((T - k) * V))
      t.ok(d < 1e-4, `T=${T} k=${k}: rows match all-logits (max diff ${d.toExponential(2)})`)
      // The states continue alike.
      const next = toks(3, V, 7)
      t.ok(maxDiff(m.prefill(a, next), m.prefill(b, next)) < 1e-4, `T=${T} k=${k}: states continue alike`)
      a.dispose()
      b.dispose()
    }
    const s = m.newState()
    t.throws(() => m.prefill(s, toks(4, V, 1), { lastRows: 5 }), KernelError)
    t.throws(() => m.prefill(s, toks(4, V, 1), { lastRows: 1.5 }), /logits rows must be an integer/)
    t.throws(() => m.prefill(s, toks(300, V, 1), { lastRows: 257 }), /at most 256/)
    t.equal(s.position, 0, 'a refused call consumes nothing')
  })
}

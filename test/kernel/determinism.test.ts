// Results are bitwise repeatable while other threads compete for the cores: the pool's chunk hand-out must
// never run a chunk twice or against the wrong job (the selective scan updates its state in place, so a
// doubled chunk shows up as different logits). Regression test for a race in the pool's job hand-over.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Model } from '../../daemon/model/kernel.js'
import { writeCheckpoint, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-det-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))
const cfg: TinyConfig = { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, vocab_size: 400, sliding_window: 16 }
writeCheckpoint(join(root, 'm'), cfg, { seed: 21 })

t.test('clone, prefill and label passes repeat bitwise while three models share the cores', async (t) => {
  // Three models (three pools, three executors) on two cores: workers get preempted mid-hand-out.
  const toks = Int32Array.from({ length: 80 }, (_, i) => (i * 13) % 400)
  const lab = Int32Array.from({ length: 13 }, (_, i) => (i * 31 + 5) % 400)
  const loop = async (): Promise<number> => {
    const m = Model.load(join(root, 'm'), { threads: 2, nice: 5 })
    try {
      const p = m.newState()
      await m.prefillAsync(p, toks.subarray(0, 32))
      const once = async () => {
        const s = p.clone()
        const last = await m.prefillAsync(s, toks.subarray(32))
        const c = s.clone()
        const rows = await m.prefillAsync(c, lab, { allLogits: true })
        c.dispose()
        s.dispose()
        return [last, rows] as const
      }
      const [r0, r1] = await once()
      let differing = 0
      for (let k = 0; k < 1000; k++) {
        const [a, b] = await once()
        if (!a.every((v, i) => v === r0[i]) || !b.every((v, i) => v === r1[i])) differing++
      }
      return differing
    } finally {
      m.dispose()
    }
  }
  t.same(await Promise.all([loop(), loop(), loop()]), [0, 0, 0], 'every repetition is bitwise identical')
})

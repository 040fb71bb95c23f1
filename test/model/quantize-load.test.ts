// Checkpoints written by `flashcheck model quantize` run in the native kernel exactly as the same float
// checkpoint quantized at load (model.quantize): the offline quantizer and the loader's agree bit for bit.
import { join } from 'node:path'
import t from 'tap'
import { modelQuantize } from '../../daemon/cli/model-quantize.js'
import { loadBackend } from '../../daemon/model/load-backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { initCheckpoint } from '../../daemon/model/offline/init.js'
import { findPreset } from '../../daemon/model/offline/presets.js'
import { capture, tempDir } from './helpers.js'

const tokens = [1, 17, 300, 42, 9, 511, 0, 128, 77, 5]

function logits(dir: string, quantize: 'none' | 'q8_0' | 'q4_0'): { quant: string; rows: Float32Array } {
  const m = Model.load(dir, { threads: 1, quantize })
  try {
    const s = m.newState()
    const rows = m.prefill(s, tokens, { allLogits: true })
    s.dispose()
    return { quant: m.config.quant, rows }
  } finally {
    m.dispose()
  }
}

t.test('offline-quantized checkpoints equal load-time quantization in the kernel', async (t) => {
  const dir = await tempDir(t)
  const src = join(dir, 'src')
  await initCheckpoint({ config: findPreset('tiny')!.config, outDir: src, seed: 5, dtype: 'bf16' })
  const float = logits(src, 'none')
  for (const type of ['q8_0', 'q4_0'] as const) {
    const out = join(dir, type)
    const r = await capture(() => modelQuantize([src, '--out', out, '--type', type]))
    t.equal(r.code, 0, r.err)
    const stored = logits(out, 'none')
    const atLoad = logits(src, type)
    t.equal(stored.quant, type, 'the loader reads the stored type')
    t.equal(atLoad.quant, type)
    let diff = 0
    for (let i = 0; i < stored.rows.length; i++) diff = Math.max(diff, Math.abs(stored.rows[i]! - atLoad.rows[i]!))
    t.equal(diff, 0, `${type}: identical logits (max |diff| ${diff})`)
    let dq = 0
    let ref = 0
    for (let i = 0; i < float.rows.length; i++) {
      dq += (stored.rows[i]! - float.rows[i]!) ** 2
      ref += float.rows[i]! ** 2
    }
    t.ok(dq > 0 && Math.sqrt(dq / ref) < (type === 'q8_0' ? 0.05 : 0.3), `${type}: close to the float model (rel-RMS ${Math.sqrt(dq / ref).toExponential(2)})`)
    t.same(logits(out, type).rows, stored.rows, 'its own type again is accepted')
    t.throws(() => Model.load(out, { threads: 1, quantize: type === 'q8_0' ? 'q4_0' : 'q8_0' }), { name: 'ModelLoadError' })
    const b = await loadBackend('native', src, { threads: 1, quantize: type })
    t.equal(b.config.quant, type, 'model.quantize reaches the kernel through loadBackend')
    await b.dispose()
  }
})

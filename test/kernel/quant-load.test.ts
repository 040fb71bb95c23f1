// Quantized checkpoints (I8 / U8 + F16 weight_scale, native/README.md) in the native loader: a checkpoint written
// here with the TypeScript quantizer loads, runs the integer kernels and gives the same logits as load-time
// quantization of its float source; malformed ones are clear ModelLoadErrors naming the tensor; the quantize
// option is validated.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ModelLoadError } from '../../daemon/model/backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { QK, quantizeBlocks, quantizedTensors, quantTypeFor, type QuantType } from '../../daemon/model/offline/quant-format.js'
import { configJson, makeTensors, type Tensor, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-quant-load-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const cfg: TinyConfig = { hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 48, sliding_window: 4 }
const tensors = makeTensors(cfg, { seed: 3 })
const tokens = [1, 7, 3, 40, 22, 9, 13, 0, 5, 31, 2, 17]

interface Raw { name: string; dtype: string; shape: number[]; data: Buffer }

function f32(t: Tensor): Raw {
  const b = Buffer.alloc(t.data.length * 4)
  t.data.forEach((v, i) => b.writeFloatLE(v, i * 4))
  return { name: t.name, dtype: 'F32', shape: t.shape, data: b }
}

function quantized(type: QuantType): Raw[] {
  const out: Raw[] = []
  for (const t of tensors) {
    const qt = quantTypeFor(t.name, t.shape, type)
    if (!qt) {
      out.push(f32(t))
      continue
    }
    const meta = quantizedTensors(t.name, t.shape, qt)
    const data = new Uint8Array(meta.data.shape[0] * meta.data.shape[1])
    const scales = new Uint16Array(t.data.length / QK)
    quantizeBlocks(qt, Float32Array.from(t.data), data, scales)
    out.push({ name: meta.data.name, dtype: meta.data.dtype, shape: meta.data.shape, data: Buffer.from(data.buffer) })
    out.push({ name: meta.scale.name, dtype: 'F16', shape: meta.scale.shape, data: Buffer.from(scales.buffer) })
  }
  return out
}

function write(dir: string, raws: Raw[], config: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true })
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } }
  let off = 0
  for (const r of raws) {
    header[r.name] = { dtype: r.dtype, shape: r.shape, data_offsets: [off, off + r.data.length] }
    off += r.data.length
  }
  let js = JSON.stringify(header)
  while ((8 + js.length) % 8) js += ' '
  const lb = Buffer.alloc(8)
  lb.writeBigUInt64LE(BigInt(js.length))
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([lb, Buffer.from(js), ...raws.map((r) => r.data)]))
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config))
  return dir
}

const qconfig = (type: QuantType) => ({ ...configJson(cfg), quantization_config: { quant_method: 'flashcheck', type, block_size: 32 } })
const float = write(join(root, 'float'), tensors.map(f32), configJson(cfg))
const stored = { q8_0: write(join(root, 'q8_0'), quantized('q8_0'), qconfig('q8_0')), q4_0: write(join(root, 'q4_0'), quantized('q4_0'), qconfig('q4_0')) }

function run(dir: string, quantize: 'none' | QuantType = 'none', threads = 2) {
  const m = Model.load(dir, { threads, quantize })
  try {
    const s = m.newState()
    const rows = m.prefill(s, tokens, { allLogits: true })
    const step = m.step(s, 4)
    return { config: m.config, rows, step }
  } finally {
    m.dispose()
  }
}

for (const type of ['q8_0', 'q4_0'] as const) {
  t.test(`a ${type} checkpoint loads, runs the integer kernels and equals load-time quantization`, async (t) => {
    const a = run(stored[type])
    const b = run(float, type)
    const f = run(float)
    t.equal(a.config.quant, type)
    t.equal(a.config.weight_dtype, type.toUpperCase())
    t.match(a.config.isa, /\+int8-/)
    t.equal(f.config.quant, 'none')
    t.notMatch(f.config.isa, /\+/)
    t.same(a.rows, b.rows, 'prefill logits identical')
    t.same(a.step, b.step, 'decode logits identical')
    t.ok(a.config.weight_bytes < f.config.weight_bytes / (type === 'q8_0' ? 2.5 : 3.5), `weights ${a.config.weight_bytes} B vs float ${f.config.weight_bytes} B`)
    let num = 0
    let den = 0
    for (let i = 0; i < f.rows.length; i++) {
      num += (a.rows[i]! - f.rows[i]!) ** 2
      den += f.rows[i]! ** 2
    }
    const rel = Math.sqrt(num / den)
    t.ok(rel > 0 && rel < (type === 'q8_0' ? 0.05 : 0.3), `rel-RMS vs float ${rel.toExponential(2)}`)
    t.same(run(stored[type], type).rows, a.rows, 'its own type as quantize is accepted')
    for (const threads of [1, 3]) {
      const x = run(stored[type], 'none', threads)
      t.same(x.rows, a.rows, `bit-identical with ${threads} thread(s)`)
      t.same(x.step, a.step)
    }
  })
}

function expectLoadError(t: Test, dir: string, re: RegExp, what: string, quantize: 'none' | QuantType = 'none') {
  let err: unknown
  try {
    Model.load(dir, { threads: 1, quantize }).dispose()
  } catch (e) {
    err = e
  }
  t.ok(err instanceof ModelLoadError, `${what}: ModelLoadError`)
  t.match((err as Error)?.message, re, `${what}: ${(err as Error)?.message}`)
}

let n = 0
function variant(type: QuantType, edit: (raws: Raw[], config: Record<string, unknown>) => void): string {
  const raws = quantized(type)
  const config: Record<string, unknown> = qconfig(type)
  edit(raws, config)
  return write(join(root, `bad${n++}`), raws, config)
}
const fc1 = 'model.layers.0.mlp.fc1.weight'
const find = (raws: Raw[], name: string) => raws.find((r) => r.name === name)!

t.test('malformed quantized checkpoints are clear load errors', async (t) => {
  expectLoadError(t, stored.q4_0, /quantized as q4_0 .* cannot be loaded with quantize=q8_0/, 'other type requested', 'q8_0')
  expectLoadError(t, stored.q8_0, /quantized as q8_0 .* cannot be loaded with quantize=q4_0/, 'other type requested', 'q4_0')
  expectLoadError(t, variant('q4_0', (r) => r.splice(r.indexOf(find(r, `${fc1}_scale`)), 1)),
    /tensor model\.layers\.0\.mlp\.fc1\.weight_scale .* is missing .* F16 \[192, 2\]/, 'missing scale')
  expectLoadError(t, variant('q8_0', (r) => { const s = find(r, `${fc1}_scale`); s.dtype = 'BF16' }),
    /fc1\.weight_scale has dtype BF16 .* must be F16 \[192, 2\]/, 'scale dtype')
  expectLoadError(t, variant('q8_0', (r) => { const s = find(r, `${fc1}_scale`); s.shape = [96, 4] }),
    /fc1\.weight_scale has dtype F16 shape \[96, 4\]/, 'scale shape')
  expectLoadError(t, variant('q8_0', (r) => { const w = find(r, fc1); w.shape = [96, 128] }),
    /fc1\.weight \(q8_0, I8\) has shape \[96, 128\] .* implies \[192, 64\]/, 'I8 shape')
  expectLoadError(t, variant('q4_0', (r) => { const w = find(r, fc1); w.shape = [192, 64]; w.data = Buffer.concat([w.data, w.data]) }),
    /fc1\.weight \(q4_0, U8\) has shape \[192, 64\] .* implies \[192, 32\] .* two 4-bit values per byte/, 'U8 shape')
  expectLoadError(t, variant('q4_0', (_r, c) => { c.quantization_config = { quant_method: 'flashcheck', type: 'q8_0', block_size: 32 } }),
    /config\.json names quantization type q8_0 but the checkpoint's projections are q4_0/, 'config type disagrees')
  expectLoadError(t, variant('q4_0', (_r, c) => { c.quantization_config = { type: 'q5_1' } }),
    /quantization_config\.type must be "q8_0" or "q4_0"/, 'unknown type in config')
  expectLoadError(t, variant('q8_0', (r) => {
    // an 8-bit fc2 among 4-bit projections
    const q4 = quantized('q4_0')
    for (const name of ['model.layers.0.mlp.fc2.weight']) {
      const i = r.indexOf(find(r, name))
      r[i] = find(q4, name)
    }
  }), /mixes q8_0 and q4_0 projections/, 'mixed types')
})

t.test('the quantize option is validated', async (t) => {
  t.throws(() => Model.load(float, { threads: 1, quantize: 'q5_0' as QuantType }), RangeError)
  await t.rejects(Model.loadAsync(float, { threads: 1, quantize: 'int4' as QuantType }), RangeError)
  const m = await Model.loadAsync(float, { threads: 1, quantize: 'q4_0' })
  t.equal(m.config.quant, 'q4_0')
  t.equal(m.config.tie_word_embeddings, true)
  m.dispose()
  // the embedding / LM head is q8_0 in a q4_0 model: its rows come back from dequantization
  const cfgText = readFileSync(join(stored.q4_0, 'config.json'), 'utf8')
  t.match(cfgText, /"type":"q4_0"/)
})

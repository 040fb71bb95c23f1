// The exported graphs (onnxruntime, CPU provider) against the native kernel on random checkpoints of every
// layer pattern: all-position prefill, last-position prefill, steps, a second prefill chunk on a non-empty
// state, multi-chunk prefill, and clone semantics. Relative error per logits row, as the golden check.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { maxRelErr } from '../../daemon/cli/model-check.js'
import type { DecoderBackend } from '../../daemon/model/backend.js'
import { NativeBackend } from '../../daemon/model/native-backend.js'
import { OnnxBackend } from '../../daemon/model/onnx/backend.js'
import { rng, writeCheckpoint, type TinyConfig, type WriteOptions } from '../kernel/helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-onnx-agree-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const LIMIT = 1e-4
const cases: [string, TinyConfig, WriteOptions][] = [
  // GQA (2 query pairs per kv pair), a window shorter than the prompt: windows slide during prefill and steps
  ['sambay 8 layers gqa2 w6', { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 96, vocab_size: 96, sliding_window: 6 }, { seed: 3 }],
  // 4 layers: no GMU/cross layers (the last-row cut happens before the head); non-default Mamba sizes
  ['sambay 4 layers mha d_conv 3 d_state 8', { hidden_size: 32, num_hidden_layers: 4, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 48, vocab_size: 80, sliding_window: 5, mamba_d_conv: 3, mamba_d_state: 8 }, { seed: 5 }],
  // 12 layers, window 1 (the window state stays empty), untied head
  ['sambay 12 layers w1 untied', { hidden_size: 32, num_hidden_layers: 12, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 64, sliding_window: 1, tie_word_embeddings: false }, { seed: 7 }],
  ['all-attention gqa2', { hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 64, layout: 'all-attention' }, { seed: 4 }],
  ['sambay bf16', { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 128, sliding_window: 8 }, { seed: 9, dtype: 'BF16' }],
  ['sambay f16', { hidden_size: 32, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 32, vocab_size: 64, sliding_window: 4 }, { seed: 10, dtype: 'F16' }],
]

const toks = (n: number, V: number, seed: number) => {
  const r = rng(seed)
  return Int32Array.from({ length: n }, () => Math.floor(r() * V))
}

/** Runs the same script through a backend: what every comparison below needs. */
async function script(b: DecoderBackend, V: number) {
  const prompt = toks(40, V, 1)
  const more = toks(7, V, 2)
  const all = await b.prefill(await b.newState(), prompt, { allLogits: true })
  const s = await b.newState()
  const last = await b.prefill(s, prompt)
  const steps: Float32Array[] = []
  for (const tk of toks(5, V, 3)) steps.push(await b.prefill(s, Int32Array.of(tk)))
  // a second chunk on a non-empty state (masks with an offset), all rows
  const chunk = await b.prefill(s, more, { allLogits: true })
  const after = await b.prefill(s, Int32Array.of(1))
  return { all, last, steps, chunk, after, position: s.position }
}

for (const [name, cfg, opts] of cases) {
  t.test(name, async (t) => {
    const dir = join(root, name.replace(/\W+/g, '-'))
    writeCheckpoint(dir, cfg, opts)
    const V = cfg.vocab_size
    const native = await NativeBackend.load(dir, 1)
    // chunk 16: the 40-token prompt runs as three chunks through the prefill graph
    const onnx = await OnnxBackend.load(dir, { threads: 1, chunk: 16 })
    t.teardown(async () => {
      await native.dispose()
      await onnx.dispose()
    })
    t.same(onnx.config.layers, native.config.layers, 'layer plan as the native kernel reports it')
    t.equal(onnx.config.vocab_size, V)
    t.equal(onnx.config.weight_dtype, native.config.weight_dtype)
    t.equal(onnx.config.param_count, native.config.param_count)
    const n = await script(native, V)
    const o = await script(onnx, V)
    const e = {
      all: maxRelErr(o.all, n.all, 40, V),
      last: maxRelErr(o.last, n.last, 1, V),
      steps: Math.max(...o.steps.map((r, i) => maxRelErr(r, n.steps[i]!, 1, V))),
      chunk: maxRelErr(o.chunk, n.chunk, 7, V),
      after: maxRelErr(o.after, n.after, 1, V),
    }
    t.comment(`${name}: onnx vs native max_rel_err ${JSON.stringify(e)}`)
    for (const [k, v] of Object.entries(e)) t.ok(v <= LIMIT, `${k}: ${v}`)
    t.equal(o.all.length, 40 * V)
    t.equal(o.chunk.length, 7 * V)
    t.equal(o.position, n.position)
  })
}

t.test('clone: both copies continue independently, as the native kernel', async (t) => {
  const [, cfg, opts] = cases[0]!
  const dir = join(root, 'clone')
  writeCheckpoint(dir, cfg, opts)
  const V = cfg.vocab_size
  const onnx = await OnnxBackend.load(dir, { threads: 1 })
  const native = await NativeBackend.load(dir, 1)
  t.teardown(async () => {
    await onnx.dispose()
    await native.dispose()
  })
  const prompt = toks(20, V, 11)
  const a = await onnx.newState()
  await onnx.prefill(a, prompt)
  const b = await onnx.clone(a)
  t.equal(b.position, 20)
  const x = toks(6, V, 12)
  const y = toks(6, V, 13)
  // the original moves on first; the clone must not see it
  const ra = await onnx.prefill(a, x, { allLogits: true })
  const rb = await onnx.prefill(b, y, { allLogits: true })
  const rb2 = await onnx.prefill(await onnx.clone(a), y) // a clone of the advanced original
  const na = await native.newState()
  await native.prefill(na, prompt)
  const nb = await native.clone(na)
  const nra = await native.prefill(na, x, { allLogits: true })
  const nrb = await native.prefill(nb, y, { allLogits: true })
  const nrb2 = await native.prefill(await native.clone(na), y)
  t.ok(maxRelErr(ra, nra, 6, V) <= LIMIT, 'original after clone')
  t.ok(maxRelErr(rb, nrb, 6, V) <= LIMIT, 'clone continued differently')
  t.ok(maxRelErr(rb2, nrb2, 1, V) <= LIMIT, 'clone of the advanced original')
  a.dispose()
  a.dispose() // idempotent
  const c = await onnx.prefill(b, Int32Array.of(3))
  t.equal(c.length, V, 'a clone outlives its disposed source')
  await t.rejects(onnx.prefill(a, Int32Array.of(1)), { code: 'E_DISPOSED' })
})

t.test('argument errors and one call per state', async (t) => {
  const [, cfg, opts] = cases[3]!
  const dir = join(root, 'errors')
  writeCheckpoint(dir, cfg, opts)
  const onnx = await OnnxBackend.load(dir, { threads: 1 })
  const native = await NativeBackend.load(dir, 1)
  t.teardown(async () => {
    await native.dispose()
  })
  const s = await onnx.newState()
  await t.rejects(onnx.prefill(s, Int32Array.of(cfg.vocab_size)), { code: 'E_INVALID_ARGUMENT', message: /out of range/ })
  await t.rejects(onnx.prefill(s, Int32Array.of(-1)), { code: 'E_INVALID_ARGUMENT' })
  await t.rejects(onnx.prefill(s, new Int32Array(0)), { code: 'E_INVALID_ARGUMENT' })
  t.equal(s.position, 0, 'failed calls do not move the state')
  await t.rejects(onnx.prefill(await native.newState(), Int32Array.of(1)), { code: 'E_INVALID_ARGUMENT', message: /not created by this onnx backend/ })
  const p = onnx.prefill(s, toks(30, cfg.vocab_size, 1))
  await t.rejects(onnx.prefill(s, Int32Array.of(1)), { code: 'E_STATE_BUSY' })
  await t.rejects(onnx.clone(s), { code: 'E_STATE_BUSY' })
  await p
  t.equal(s.position, 30)
  await onnx.dispose()
  await onnx.dispose() // idempotent
  await t.rejects(onnx.newState(), { code: 'E_DISPOSED' })
})

t.test('lastRows: logits of the last k positions, across prefill chunks, as the native kernel', async (t) => {
  const [, cfg, opts] = cases[0]!
  const dir = join(root, 'last-rows')
  writeCheckpoint(dir, cfg, opts)
  const V = cfg.vocab_size
  const native = await NativeBackend.load(dir, 1)
  // chunk 16: k = 20 of 40 spans the last two chunks
  const onnx = await OnnxBackend.load(dir, { threads: 1, chunk: 16 })
  t.teardown(async () => {
    await native.dispose()
    await onnx.dispose()
  })
  t.equal(onnx.lastRows, true)
  for (const [T, k] of [[5, 1], [5, 2], [5, 5], [40, 3], [40, 20], [40, 40], [1, 1]] as const) {
    const x = toks(T, V, T * 7 + k)
    const a = await onnx.newState()
    const b = await native.newState()
    const ro = await onnx.prefill(a, x, { lastRows: k })
    const rn = await native.prefill(b, x, { lastRows: k })
    t.equal(ro.length, k * V, `T=${T} k=${k}: ${k} rows`)
    t.ok(maxRelErr(ro, rn, k, V) <= LIMIT, `T=${T} k=${k}: rows agree with native`)
    const y = toks(3, V, 5)
    t.ok(maxRelErr(await onnx.prefill(a, y), await native.prefill(b, y), 1, V) <= LIMIT, `T=${T} k=${k}: states continue alike`)
  }
  const s = await onnx.newState()
  await t.rejects(onnx.prefill(s, toks(4, V, 1), { lastRows: 5 }), { code: 'E_INVALID_ARGUMENT', message: /logits rows must be an integer/ })
  await t.rejects(onnx.prefill(s, toks(4, V, 1), { lastRows: 1.5 }), { code: 'E_INVALID_ARGUMENT' })
  t.equal(s.position, 0, 'a refused call consumes nothing')
})

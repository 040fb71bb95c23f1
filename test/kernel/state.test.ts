// State API: clone-then-continue == continue (KV pages shared copy-on-write), thread-count invariance,
// async == sync, one call per state at a time, disposal, argument errors.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { KernelError } from '../../daemon/model/backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { rng, writeCheckpoint, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-state-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const sambay: TinyConfig = { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 96, vocab_size: 96, sliding_window: 6 }
const allAttn: TinyConfig = { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 64, layout: 'all-attention' }
const sambayDir = join(root, 'sambay')
const allDir = join(root, 'all')
writeCheckpoint(sambayDir, sambay, { seed: 3 })
writeCheckpoint(allDir, allAttn, { seed: 4 })

const toks = (n: number, V: number, seed: number) => {
  const r = rng(seed)
  return Array.from({ length: n }, () => Math.floor(r() * V))
}
const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]))

for (const [name, dir, V] of [['sambay', sambayDir, 96], ['all-attention', allDir, 64]] as const) {
  t.test(`${name}: clone-then-continue gives exactly what continuing the original gives`, async (t) => {
    const model = Model.load(dir, { threads: 2 })
    t.teardown(() => model.dispose())
    // clone points: inside the first KV page, exactly on a page boundary (64), inside a later page
    for (const at of [5, 64, 70, 130]) {
      const prompt = toks(at, V, at)
      const more = toks(20, V, at + 1)
      const a = model.newState()
      model.prefill(a, prompt)
      const b = a.clone()
      t.equal(b.position, at)
      // the original goes first (writes into the partly filled shared page), then the clone
      const ra = more.map((tk) => model.step(a, tk))
      const rb = more.map((tk) => model.step(b, tk))
      t.ok(ra.every((r, i) => same(r, rb[i])), `clone at ${at}: identical logits`)
      // a second clone taken before the first continued, continued after both: still identical
      const c = model.newState()
      model.prefill(c, prompt)
      const d = c.clone()
      const rd = more.map((tk) => model.step(d, tk)) // clone first this time
      const rc = more.map((tk) => model.step(c, tk))
      t.ok(rc.every((r, i) => same(r, rd[i])) && rc.every((r, i) => same(r, ra[i])), `clone at ${at}, clone continued first`)
      // interleaved
      const e = model.newState()
      model.prefill(e, prompt)
      const f = e.clone()
      let ok = true
      for (let i = 0; i < more.length; i++) {
        ok &&= same(model.step(e, more[i]), ra[i])
        ok &&= same(model.step(f, more[i]), ra[i])
      }
      t.ok(ok, `clone at ${at}, interleaved`)
      for (const s of [a, b, c, d, e, f]) s.dispose()
    }
  })
}

t.test('thread counts 1, 2 and 3 give identical logits (GEMM and GEMV paths)', async (t) => {
  const prompt = toks(150, 96, 11)
  const results: Float32Array[][] = []
  for (const threads of [1, 2, 3]) {
    const model = Model.load(sambayDir, { threads })
    t.equal(model.config.threads, threads)
    const s = model.newState()
    const all = model.prefill(s, prompt, { allLogits: true })
    const steps = toks(5, 96, 12).map((tk) => model.step(s, tk))
    results.push([all, ...steps])
    model.dispose()
  }
  for (let k = 1; k < results.length; k++) {
    t.ok(results[k].every((r, i) => same(r, results[0][i])), `threads ${k + 1} == threads 1`)
  }
})

t.test('async variants: same results, promises, one call per state at a time', async (t) => {
  const model = await Model.loadAsync(sambayDir, { threads: 2 })
  t.teardown(() => model.dispose())
  const prompt = toks(40, 96, 21)
  const s1 = model.newState()
  const s2 = model.newState()
  const sync = model.prefill(s1, prompt)
  const p = model.prefillAsync(s2, prompt)
  t.ok(p instanceof Promise)
  // the state is busy until the promise settles (checked before yielding to the event loop)
  t.throws(() => model.step(s2, 1), { name: 'KernelError', code: 'E_STATE_BUSY' })
  t.throws(() => s2.clone(), { code: 'E_STATE_BUSY' })
  t.throws(() => s2.dispose(), { code: 'E_STATE_BUSY' })
  const second = t.rejects(model.stepAsync(s2, 1), { code: 'E_STATE_BUSY' })
  t.ok(same(await p, sync), 'prefillAsync == prefill')
  await second
  t.equal(s2.position, 40)
  t.ok(same(await model.stepAsync(s2, 7), model.step(s1, 7)), 'stepAsync == step')
  // many states in flight at once on one model
  const states = [0, 1, 2, 3].map(() => model.newState())
  const outs = await Promise.all(states.map((s) => model.prefillAsync(s, prompt)))
  t.ok(outs.every((o) => same(o, sync)))
  // the event loop keeps running while the kernel works
  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  await model.prefillAsync(model.newState(), toks(400, 96, 5), { allLogits: true })
  clearInterval(timer)
  t.ok(ticks > 0, `event loop ran ${ticks} timers during an async prefill`)
})

t.test('argument and lifetime errors', async (t) => {
  const model = Model.load(sambayDir, { threads: 1 })
  const other = Model.load(allDir, { threads: 1 })
  const s = model.newState()
  t.throws(() => model.prefill(s, [96]), { code: 'E_INVALID_ARGUMENT', message: /token id 96 .*out of range \[0, 96\)/ })
  t.throws(() => model.prefill(s, [-1]), { code: 'E_INVALID_ARGUMENT' })
  t.throws(() => model.prefill(s, []), { code: 'E_INVALID_ARGUMENT' })
  t.throws(() => model.prefill(s, [1.5]), KernelError)
  t.throws(() => model.prefill(s, [2 ** 32 + 1]), { code: 'E_INVALID_ARGUMENT', message: /not a 32-bit integer/ })
  await t.rejects(model.prefillAsync(s, [1000]), { code: 'E_INVALID_ARGUMENT' })
  t.equal(s.position, 0, 'failed calls leave the state untouched')
  t.throws(() => other.prefill(s, [1]), { code: 'E_INVALID_ARGUMENT', message: /not created by this model/ })
  t.throws(() => Model.load(sambayDir, { threads: -1 }), RangeError)
  model.prefill(s, [1, 2, 3])
  s.dispose()
  t.throws(() => model.step(s, 1), { code: 'E_DISPOSED' })
  const s2 = model.newState()
  model.dispose()
  t.throws(() => model.step(s2, 1), { code: 'E_DISPOSED' })
  t.throws(() => model.newState(), { code: 'E_DISPOSED' })
  other.dispose()
})

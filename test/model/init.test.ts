import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { archFromConfig } from '../../daemon/model/arch.js'
import { f32ToBf16 } from '../../daemon/model/offline/bf16.js'
import { estimate } from '../../daemon/model/offline/estimate.js'
import { initCheckpoint } from '../../daemon/model/offline/init.js'
import { findPreset, PRESETS } from '../../daemon/model/offline/presets.js'
import { readCheckpointHeaders, readFileHeader } from '../../daemon/model/safetensors-header.js'
import { asF32, asU16, goldenCases, goldenDir, tempDir, tensorBytes } from './helpers.js'

const tiny = findPreset('tiny')!.config

const cases = goldenCases()

t.test('golden parity: same names, dtypes, shapes and offsets from a golden config', { skip: cases.length === 0 && `no golden cases at ${goldenDir}` }, async (t) => {
  const dir = await tempDir(t)
  for (const c of cases) {
    const config = JSON.parse(readFileSync(join(goldenDir, c, 'config.json'), 'utf8'))
    const dtype = config.torch_dtype === 'bfloat16' ? 'bf16' : 'f32'
    const out = join(dir, c)
    await initCheckpoint({ config, outDir: out, seed: 1, dtype })
    const mine = await readFileHeader(join(out, 'model.safetensors'))
    const gold = await readFileHeader(join(goldenDir, c, 'model.safetensors'))
    const strip = (h: typeof mine) => h.tensors.map(({ name, dtype, shape, begin, end }) => ({ name, dtype, shape, begin, end }))
    t.same(strip(mine), strip(gold), `${c}: tensor table identical`)
  }
})

t.test('a written checkpoint is a valid checkpoint with the preset config', async (t) => {
  const dir = await tempDir(t)
  const r = await initCheckpoint({ config: tiny, outDir: dir, seed: 3, dtype: 'f32' })
  t.same(r.files, ['model.safetensors'])
  const h = await readCheckpointHeaders(dir)
  t.equal(r.params, estimate(archFromConfig(tiny)).params)
  t.equal(h.dataBytes, r.params * 4)
  t.equal(h.files[0]!.metadata?.format, 'pt')
  const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
  t.same(cfg, { ...tiny, torch_dtype: 'float32' })
  t.notOk(h.tensors.has('lm_head.weight'), 'tied: no lm_head')
  const untied = join(dir, 'untied')
  await initCheckpoint({ config: { ...tiny, tie_word_embeddings: false }, outDir: untied, seed: 3, dtype: 'f32' })
  t.same((await readCheckpointHeaders(untied)).tensors.get('lm_head.weight')?.shape, [512, 64])
})

t.test('initial values follow the documented scheme', async (t) => {
  const dir = await tempDir(t)
  await initCheckpoint({ config: tiny, outDir: dir, seed: 9, dtype: 'f32' })
  const h = await readCheckpointHeaders(dir)
  const get = async (n: string) => asF32(await tensorBytes(dir, h, n))
  const aLog = await get('model.layers.0.attn.A_log')
  for (let i = 0; i < aLog.length; i++) {
    if (Math.abs(aLog[i]! - Math.fround(Math.log(1 + (i % 16)))) > 0) {
      t.fail(`A_log[${i}] = ${aLog[i]}`)
      break
    }
  }
  t.same([...(await get('model.layers.4.attn.D'))].every((x) => x === 1), true, 'D = 1')
  const dtb = await get('model.layers.2.attn.dt_proj.bias')
  const softplus = [...dtb].map((b) => Math.log1p(Math.exp(b)))
  t.ok(Math.min(...softplus) >= 1e-3 * 0.999 && Math.max(...softplus) <= 1e-1 * 1.001, 'softplus(dt bias) in [1e-3, 1e-1]')
  t.ok(Math.max(...softplus) / Math.min(...softplus) > 10, 'dt spread over the range')
  t.same([...(await get('model.layers.1.input_layernorm.weight'))].every((x) => x === 1), true, 'LN weight 1')
  t.same([...(await get('model.layers.1.post_attention_layernorm.bias'))].every((x) => x === 0), true, 'LN bias 0')
  t.same([...(await get('model.layers.1.attn.inner_cross_attn.subln.weight'))].every((x) => x === 1), true, 'subln 1')
  const std = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length)
  const fc1 = await get('model.layers.3.mlp.fc1.weight')
  t.ok(Math.abs(std(fc1) - 0.02) < 0.001, `fc1 std ${std(fc1)} ≈ 0.02`)
  const fc2 = await get('model.layers.3.mlp.fc2.weight')
  t.ok(Math.abs(std(fc2) - 0.02 / 4) < 0.0003, `fc2 std ${std(fc2)} ≈ 0.02/sqrt(2L)`)
  const lam = await get('model.layers.5.attn.inner_cross_attn.lambda_q1')
  t.ok(std(lam) > 0.02 && std(lam) < 0.3, 'λ small')
  const conv = await get('model.layers.0.attn.conv1d.weight')
  t.ok(Math.max(...conv.map(Math.abs)) <= 0.5, 'conv weight within ±1/sqrt(K)')
})

t.test('deterministic by seed, independent of sharding', async (t) => {
  const dir = await tempDir(t)
  await initCheckpoint({ config: tiny, outDir: join(dir, 'a'), seed: 42, dtype: 'f32' })
  await initCheckpoint({ config: tiny, outDir: join(dir, 'b'), seed: 42, dtype: 'f32', maxShardBytes: 300_000 })
  await initCheckpoint({ config: tiny, outDir: join(dir, 'c'), seed: 43, dtype: 'f32' })
  const [ha, hb, hc] = await Promise.all(['a', 'b', 'c'].map((d) => readCheckpointHeaders(join(dir, d))))
  t.ok(hb!.files.length > 1, 'b is sharded')
  let same = 0
  let differs = 0
  for (const name of ha!.tensors.keys()) {
    const a = await tensorBytes(join(dir, 'a'), ha!, name)
    if (a.equals(await tensorBytes(join(dir, 'b'), hb!, name))) same++
    if (!a.equals(await tensorBytes(join(dir, 'c'), hc!, name))) differs++
  }
  t.equal(same, ha!.tensors.size, 'same seed: every tensor identical')
  // Constant-initialised tensors (norms, biases, D, A_log, subln) do not depend on the seed.
  t.ok(differs >= 40, `another seed changes the random tensors (${differs})`)
})

t.test('bf16: matrices BF16 = round-to-nearest-even of the f32 values; A_log and λ stay F32', async (t) => {
  const dir = await tempDir(t)
  await initCheckpoint({ config: tiny, outDir: join(dir, 'f'), seed: 5, dtype: 'f32' })
  await initCheckpoint({ config: tiny, outDir: join(dir, 'b'), seed: 5, dtype: 'bf16' })
  const hf = await readCheckpointHeaders(join(dir, 'f'))
  const hb = await readCheckpointHeaders(join(dir, 'b'))
  const cfg = JSON.parse(await readFile(join(dir, 'b', 'config.json'), 'utf8'))
  t.equal(cfg.torch_dtype, 'bfloat16')
  for (const [name, e] of hb.tensors) {
    const keep = name.endsWith('.A_log') || /lambda_[qk][12]$/.test(name)
    t.equal(e.dtype, keep ? 'F32' : 'BF16', `${name} dtype`)
    const f = asF32(await tensorBytes(join(dir, 'f'), hf, name))
    const b = await tensorBytes(join(dir, 'b'), hb, name)
    if (keep) {
      t.ok(b.equals(Buffer.from(f.buffer)), `${name} identical f32`)
    } else {
      const want = new Uint16Array(f.length)
      f32ToBf16(f, want)
      t.ok(Buffer.from(want.buffer).equals(Buffer.from(asU16(b).buffer)), `${name} rounded`)
    }
  }
})

t.test('presets: sizes as advertised, all-attention twins within 1%', async (t) => {
  const params = (n: string) => estimate(archFromConfig(findPreset(n)!.config)).params
  t.ok(params('small') > 20e6 && params('small') < 30e6, 'small ~25M')
  t.ok(params('verdict') > 27e6 && params('verdict') < 33e6, 'verdict ~30M')
  t.ok(params('medium') > 90e6 && params('medium') < 110e6, 'medium ~100M')
  t.ok(params('large') > 370e6 && params('large') < 430e6, 'large ~400M')
  t.equal(params('phi4-mini-flash'), 3_852_562_944, 'real config: 3.85B')
  for (const p of PRESETS.filter((p) => p.name.endsWith('-attn'))) {
    const twin = p.name.slice(0, -5)
    const a = archFromConfig(p.config)
    const b = archFromConfig(findPreset(twin)!.config)
    t.equal(a.layout, 'all-attention')
    t.match(a, { hidden: b.hidden, layers: b.layers, heads: b.heads, kvHeads: b.kvHeads, vocab: b.vocab }, `${p.name}: same shape as ${twin}`)
    t.ok(Math.abs(params(p.name) / params(twin) - 1) < 0.01, `${p.name}: ${params(p.name)} vs ${params(twin)}`)
  }
})

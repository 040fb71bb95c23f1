import { existsSync } from 'node:fs'
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { modelInit } from '../../daemon/cli/model-init.js'
import { modelQuantize } from '../../daemon/cli/model-quantize.js'
import { initCheckpoint } from '../../daemon/model/offline/init.js'
import { quantizeCheckpoint } from '../../daemon/model/offline/quantize.js'
import { findPreset } from '../../daemon/model/offline/presets.js'
import { dequantizeBlocks, f16ToF32, type QuantType } from '../../daemon/model/offline/quant-format.js'
import { writeWeights } from '../../daemon/model/offline/safetensors-write.js'
import { readCheckpointHeaders } from '../../daemon/model/safetensors-header.js'
import { asF32, asU16, capture, tempDir, tensorBytes } from './helpers.js'
import { pythonQuantCheck } from './quant-reference.js'

const tiny = findPreset('tiny')!.config

async function init(dir: string, dtype: 'f32' | 'bf16', shard?: number, quant?: QuantType) {
  await initCheckpoint({ config: tiny, outDir: dir, seed: 3, dtype, maxShardBytes: shard, quant })
  await writeFile(join(dir, 'tokenizer.json'), '{"stand-in": true}\n')
  await writeFile(join(dir, 'generation_config.json'), '{"eos_token_id": [200020, 199999]}\n')
}

async function quantize(src: string, out: string, type: QuantType, ...extra: string[]) {
  const r = await capture(() => modelQuantize([src, '--out', out, '--type', type, ...extra]))
  return r
}

async function allTensorBytes(dir: string): Promise<Map<string, Buffer>> {
  const h = await readCheckpointHeaders(dir)
  const m = new Map<string, Buffer>()
  for (const name of h.tensors.keys()) m.set(name, await tensorBytes(dir, h, name))
  return m
}

for (const dtype of ['f32', 'bf16'] as const) {
  t.test(`${dtype} source, q8_0 and q4_0: every byte as an independent quantizer computes it`, async (t) => {
    const dir = await tempDir(t)
    const src = join(dir, 'src')
    await init(src, dtype)
    for (const type of ['q8_0', 'q4_0'] as const) {
      const out = join(dir, type)
      const r = await quantize(src, out, type)
      t.equal(r.code, 0, r.err)
      t.match(r.out, new RegExp(`^wrote .*: model\\.safetensors, ${type}: .*weights quantized.*copied generation_config\\.json, tokenizer\\.json\\n$`))
      const ref = pythonQuantCheck(src, out, type)
      t.same(ref.errors, [], 'no differences')
      // tiny: 8 layers → fc1+fc2 each, plus 2 or 3 projections per mixer, plus the embedding.
      t.equal(ref.q8_0 + ref.q4_0, 33, 'weights quantized')
      t.same([ref.q8_0, ref.q4_0], type === 'q8_0' ? [33, 0] : [1, 32], 'the embedding is q8_0 in both')
      const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))
      t.same(cfg.quantization_config, { quant_method: 'flashcheck', type, block_size: 32 })
      t.equal(cfg.hidden_size, tiny.hidden_size)
      t.equal(await readFile(join(out, 'generation_config.json'), 'utf8'), '{"eos_token_id": [200020, 199999]}\n', 'tokenizer files copied')

      // Dequantized values stay within the format's error bound of the source.
      const h = await readCheckpointHeaders(out)
      const hs = await readCheckpointHeaders(src)
      const name = 'model.layers.0.mlp.fc1.weight'
      const shape = hs.tensors.get(name)!.shape
      const raw = await tensorBytes(src, hs, name)
      const x = dtype === 'f32' ? asF32(raw) : (() => {
        const u = asU16(raw)
        const f = new Float32Array(u.length)
        for (let i = 0; i < u.length; i++) f[i] = new Float32Array(new Uint32Array([u[i]! << 16]).buffer)[0]!
        return f
      })()
      const q = await tensorBytes(out, h, name)
      const s = asU16(await tensorBytes(out, h, 'model.layers.0.mlp.fc1.weight_scale'))
      t.equal(s.length, (shape[0]! * shape[1]!) / 32)
      const y = new Float32Array(x.length)
      dequantizeBlocks(type, new Uint8Array(q.buffer, q.byteOffset, q.length), s, y)
      let worst = 0
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / Math.abs(f16ToF32(s[i >> 5]!)))
      t.ok(worst > 0.3 && worst <= (type === 'q8_0' ? 0.57 : 1.01), `${type}: |x − deq| ≤ bound·d (worst ${worst.toFixed(3)})`)
    }
  })
}

t.test('sharded source: sharded output, same tensors as from a single file', async (t) => {
  const dir = await tempDir(t)
  await init(join(dir, 'one'), 'bf16')
  await init(join(dir, 'sharded'), 'bf16', 200_000)
  const srcFiles = (await readdir(join(dir, 'sharded'))).filter((f) => f.endsWith('.safetensors'))
  t.ok(srcFiles.length >= 3, `source has ${srcFiles.length} shards`)
  let r = await quantize(join(dir, 'one'), join(dir, 'q-one'), 'q4_0')
  t.equal(r.code, 0, r.err)
  r = await quantize(join(dir, 'sharded'), join(dir, 'q-sharded'), 'q4_0')
  t.equal(r.code, 0, r.err)
  t.match(r.out, /\d+ shards \+ model\.safetensors\.index\.json/)
  const h = await readCheckpointHeaders(join(dir, 'q-sharded'))
  t.ok(h.files.length >= 2 && h.files.length <= srcFiles.length, `output has ${h.files.length} shards (source ${srcFiles.length})`)
  t.ok(h.index, 'index written and consistent with the shards')
  const a = await allTensorBytes(join(dir, 'q-one'))
  const b = await allTensorBytes(join(dir, 'q-sharded'))
  t.same([...b.keys()].sort(), [...a.keys()].sort())
  let same = 0
  for (const [k, v] of a) if (v.equals(b.get(k)!)) same++
  t.equal(same, a.size, 'every tensor identical')
  t.same(pythonQuantCheck(join(dir, 'sharded'), join(dir, 'q-sharded'), 'q4_0').errors, [])
  const seen: string[] = []
  await quantizeCheckpoint({ src: join(dir, 'sharded'), out: join(dir, 'q-progress'), type: 'q8_0', onTensor: (done, total, name) => void seen.push(`${done}/${total} ${name}`) })
  const srcNames = [...(await readCheckpointHeaders(join(dir, 'sharded'))).tensors.keys()].sort()
  t.same(seen, srcNames.map((n, i) => `${i}/${srcNames.length} ${n}`), 'progress: each source tensor once, in order')
  r = await quantize(join(dir, 'one'), join(dir, 'q-forced'), 'q8_0', '--shard-size', '100KB')
  t.equal(r.code, 0, r.err)
  t.ok((await readCheckpointHeaders(join(dir, 'q-forced'))).files.length >= 3, '--shard-size shards a single-file source')
})

t.test('model init --quant writes what init + quantize write', async (t) => {
  const dir = await tempDir(t)
  for (const [dtype, type] of [['bf16', 'q4_0'], ['f32', 'q8_0']] as const) {
    const src = join(dir, `src-${dtype}`)
    await init(src, dtype)
    const viaQuantize = join(dir, `${dtype}-${type}-a`)
    t.equal((await quantize(src, viaQuantize, type)).code, 0)
    const direct = join(dir, `${dtype}-${type}-b`)
    const r = await capture(() => modelInit(['--config', 'tiny', '--out', direct, '--seed', '3', '--dtype', dtype, '--quant', type]))
    t.equal(r.code, 0, r.err)
    t.match(r.out, new RegExp(`${dtype} quantized ${type}`))
    t.ok((await readFile(join(direct, 'model.safetensors'))).equals(await readFile(join(viaQuantize, 'model.safetensors'))), `${dtype} ${type}: identical model.safetensors`)
    const cfg = JSON.parse(await readFile(join(direct, 'config.json'), 'utf8'))
    t.equal(cfg.quantization_config.type, type)
  }
  const bad = await capture(() => modelInit(['--config', 'tiny', '--out', join(dir, 'x'), '--quant', 'q3_k']))
  t.equal(bad.code, 2)
  t.match(bad.err, /unknown --quant 'q3_k' \(expected q8_0 or q4_0\)/)
})

t.test('replacing a checkpoint: temporary name, then rename; a reader of the old file keeps its bytes', async (t) => {
  const dir = await tempDir(t)
  const src = join(dir, 'src')
  await init(src, 'f32')
  const out = join(dir, 'q')
  t.equal((await quantize(src, out, 'q8_0', '--shard-size', '100KB')).code, 0)
  const oldFiles = (await readdir(out)).filter((f) => f.startsWith('model-'))
  t.ok(oldFiles.length >= 2, 'first a sharded q8_0 checkpoint')
  // What a daemon holding the checkpoint sees: an open descriptor of the weights.
  const fh = await open(join(out, oldFiles[0]!), 'r')
  t.teardown(() => fh.close())
  const before = await readFile(join(out, oldFiles[0]!))
  const ino = (await stat(join(out, oldFiles[0]!))).ino

  let r = await quantize(src, out, 'q4_0')
  t.equal(r.code, 2, 'an existing checkpoint needs --force')
  t.match(r.err, /already holds a checkpoint .*pass --force/)
  r = await quantize(src, out, 'q4_0', '--force')
  t.equal(r.code, 0, r.err)
  t.same((await readdir(out)).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json'], 'stale shards and index removed')
  const after = Buffer.alloc(before.length)
  await fh.read(after, 0, after.length, 0)
  t.ok(after.equals(before), 'the old file was never truncated or rewritten')
  t.equal((await fh.stat()).size, before.length)
  t.not((await stat(join(out, 'model.safetensors'))).ino, ino)
  t.same((await readdir(dir)).sort(), ['q', 'src'], 'no staging directory left behind')
  t.same(pythonQuantCheck(src, out, 'q4_0').errors, [])
  t.equal(((await stat(out)).mode & 0o777).toString(8), '755', 'a new checkpoint directory is readable by others')
})

t.test('errors: one line, exit 2, nothing written', async (t) => {
  const dir = await tempDir(t)
  const src = join(dir, 'src')
  await init(src, 'f32')
  const q = join(dir, 'q')
  t.equal((await quantize(src, q, 'q8_0')).code, 0)
  const cases: [string[], RegExp][] = [
    [[join(dir, 'nope'), '--out', join(dir, 'o'), '--type', 'q8_0'], /nope: no such directory/],
    [[src, '--out', join(dir, 'o'), '--type', 'q5_k'], /unknown --type 'q5_k' \(expected q8_0 or q4_0\)/],
    [[src, '--out', join(dir, 'o')], /--type is required/],
    [[src, '--type', 'q8_0'], /--out is required/],
    [['--out', join(dir, 'o'), '--type', 'q8_0'], /SRC .* is required/],
    [[src, '--out', src, '--type', 'q8_0'], /--out must differ from the source/],
    [[q, '--out', join(dir, 'o'), '--type', 'q4_0'], /is already quantized \(quantization_config "q8_0"\); quantize its float checkpoint instead/],
    [[dir, '--out', join(dir, 'o'), '--type', 'q4_0'], /config\.json: missing \(not a checkpoint directory\)/],
  ]
  for (const [argv, re] of cases) {
    const r = await capture(() => modelQuantize(argv))
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.err, re)
    t.equal(r.err.trim().split('\n').length, 1, 'one line')
  }
  // Quantized tensors without the config marker are recognised too.
  const cfg = JSON.parse(await readFile(join(q, 'config.json'), 'utf8'))
  delete cfg.quantization_config
  await writeFile(join(q, 'config.json'), JSON.stringify(cfg))
  const r = await capture(() => modelQuantize([q, '--out', join(dir, 'o'), '--type', 'q4_0']))
  t.equal(r.code, 2)
  t.match(r.err, /is already quantized \(tensor .* is I8\)/)
  t.notOk(existsSync(join(dir, 'o')), 'nothing written')
  t.same((await readdir(dir)).filter((f) => f.startsWith('.')), [], 'no staging left')
})

t.test('a weight whose input dimension is not a multiple of 32 stays float, with a warning', async (t) => {
  const dir = await tempDir(t)
  const src = join(dir, 'src')
  await mkdir(src)
  const ramp = (name: string, shape: number[]) => ({
    name, dtype: 'F32' as const, shape,
    open: () => {
      let k = 0
      return (out: Float32Array) => {
        for (let i = 0; i < out.length; i++) out[i] = Math.sin(k++)
      }
    },
  })
  await writeWeights(src, [
    ramp('model.embed_tokens.weight', [16, 64]),
    ramp('model.layers.0.mlp.fc2.weight', [8, 48]),
    ramp('model.layers.0.mlp.fc1.weight', [8, 64]),
  ], 1e9)
  await writeFile(join(src, 'config.json'), '{"model_type": "test"}')
  const out = join(dir, 'q')
  const r = await quantize(src, out, 'q4_0')
  t.equal(r.code, 0, r.err)
  t.match(r.err, /model\.layers\.0\.mlp\.fc2\.weight stays float \(input dimension not a multiple of 32\)/)
  const h = await readCheckpointHeaders(out)
  t.equal(h.tensors.get('model.layers.0.mlp.fc2.weight')!.dtype, 'F32')
  t.notOk(h.tensors.has('model.layers.0.mlp.fc2.weight_scale'))
  t.equal(h.tensors.get('model.layers.0.mlp.fc1.weight')!.dtype, 'U8')
  t.equal(h.tensors.get('model.embed_tokens.weight')!.dtype, 'I8')
  t.same(pythonQuantCheck(src, out, 'q4_0'), { q8_0: 1, q4_0: 1, copied: 1, errors: [] })
})

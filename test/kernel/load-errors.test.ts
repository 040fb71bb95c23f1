// Every load error is a clear ModelLoadError (never a crash): files, config, tensors, safetensors bytes.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ModelLoadError } from '../../daemon/model/backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { configJson, makeTensors, safetensorsBytes, writeCheckpoint, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-err-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const cfg: TinyConfig = { hidden_size: 32, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 40, sliding_window: 4 }
const good = join(root, 'good')
writeCheckpoint(good, cfg, { seed: 1 })
let n = 0
/** A copy of the good checkpoint, changed by `edit`. */
function variant(edit: (dir: string) => void): string {
  const dir = join(root, `v${n++}`)
  mkdirSync(dir)
  copyFileSync(join(good, 'config.json'), join(dir, 'config.json'))
  copyFileSync(join(good, 'model.safetensors'), join(dir, 'model.safetensors'))
  edit(dir)
  return dir
}
const editConfig = (f: (c: Record<string, unknown>) => void) => (dir: string) => {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
  f(c)
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c))
}
/** Rewrites model.safetensors with a hand-edited header (data kept). */
const editHeader = (f: (h: Record<string, any>) => void) => (dir: string) => {
  const b = readFileSync(join(dir, 'model.safetensors'))
  const len = Number(b.readBigUInt64LE(0))
  const h = JSON.parse(b.subarray(8, 8 + len).toString())
  f(h)
  let js = JSON.stringify(h)
  while (js.length % 8) js += ' '
  const lb = Buffer.alloc(8)
  lb.writeBigUInt64LE(BigInt(js.length))
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([lb, Buffer.from(js), b.subarray(8 + len)]))
}

function expectLoadError(t: Test, dir: string, re: RegExp, what: string) {
  let err: unknown
  try {
    Model.load(dir, { threads: 1 }).dispose()
  } catch (e) {
    err = e
  }
  t.ok(err instanceof ModelLoadError, `${what}: ModelLoadError`)
  t.match((err as Error)?.message, re, `${what}: ${(err as Error)?.message}`)
}

t.test('the unmodified checkpoint loads', async (t) => {
  const m = Model.load(good, { threads: 1 })
  t.equal(m.config.num_hidden_layers, 4)
  m.dispose()
})

t.test('missing files', async (t) => {
  expectLoadError(t, join(root, 'does-not-exist'), /no config\.json in .*does-not-exist/, 'missing directory')
  expectLoadError(t, variant((d) => rmSync(join(d, 'config.json'))), /no config\.json/, 'missing config.json')
  expectLoadError(t, variant((d) => rmSync(join(d, 'model.safetensors'))), /no model\.safetensors or model\.safetensors\.index\.json/, 'missing weights')
  const sharded = join(root, 'sharded')
  writeCheckpoint(sharded, cfg, { seed: 1, shards: 2 })
  t.ok(Model.load(sharded, { threads: 1 }), 'sharded checkpoint loads')
  rmSync(join(sharded, 'model-00002-of-00002.safetensors'))
  expectLoadError(t, sharded, /shard model-00002-of-00002\.safetensors named in model\.safetensors\.index\.json is missing/, 'missing shard')
  const sharded2 = join(root, 'sharded2')
  writeCheckpoint(sharded2, cfg, { seed: 1, shards: 2 })
  const idx = JSON.parse(readFileSync(join(sharded2, 'model.safetensors.index.json'), 'utf8'))
  idx.weight_map['model.embed_tokens.weight'] = 'model-00002-of-00002.safetensors'
  writeFileSync(join(sharded2, 'model.safetensors.index.json'), JSON.stringify(idx))
  expectLoadError(t, sharded2, /tensor model\.embed_tokens\.weight is mapped to model-00002-of-00002\.safetensors .* does not contain it/, 'index names the wrong shard')
})

t.test('config errors', async (t) => {
  expectLoadError(t, variant((d) => writeFileSync(join(d, 'config.json'), '{"model_type": "phi4flash", ')), /config\.json: invalid JSON/, 'config not JSON')
  expectLoadError(t, variant(editConfig((c) => { c.model_type = 'llama' })), /unknown model_type "llama"/, 'unknown model_type')
  expectLoadError(t, variant(editConfig((c) => { delete c.model_type })), /missing "model_type"/, 'no model_type')
  expectLoadError(t, variant(editConfig((c) => { delete c.hidden_size })), /missing required field "hidden_size"/, 'missing hidden_size')
  expectLoadError(t, variant(editConfig((c) => { delete c.sliding_window })), /missing required field "sliding_window"/, 'missing sliding_window')
  expectLoadError(t, variant(editConfig((c) => { c.num_attention_heads = 6 })), /hidden_size 32 is not divisible by num_attention_heads 6/, 'H % nh')
  expectLoadError(t, variant(editConfig((c) => { c.num_key_value_heads = 3 })), /even num_attention_heads and num_key_value_heads/, 'odd nkv')
  expectLoadError(t, variant(editConfig((c) => { c.head_dim = 16 })), /head_dim is inconsistent/, 'head_dim')
  expectLoadError(t, variant(editConfig((c) => { c.mb_per_layer = 3 })), /mb_per_layer = 3 is not supported/, 'mb_per_layer')
  expectLoadError(t, variant(editConfig((c) => { c.num_hidden_layers = 6 })), /num_hidden_layers = 6 is not supported: .*multiple of 4/, 'L not multiple of 4')
  expectLoadError(t, variant(editConfig((c) => { c.flashcheck_layout = 'mamba-only' })), /flashcheck_layout must be "sambay" or "all-attention"/, 'unknown layout')
  expectLoadError(t, variant(editConfig((c) => { c.hidden_size = 'big' })), /"hidden_size" must be an integer/, 'non-integer field')
  expectLoadError(t, variant(editConfig((c) => { c.hidden_act = 'gelu' })), /hidden_act must be "silu"/, 'hidden_act')
})

t.test('config inconsistent with tensor shapes names the tensor and both shapes', async (t) => {
  expectLoadError(t, variant(editConfig((c) => { c.intermediate_size = 40 })),
    /tensor model\.layers\.0\.mlp\.fc1\.weight has shape \[64, 32\] in model\.safetensors but the config implies \[80, 32\]/, 'intermediate_size')
  expectLoadError(t, variant(editConfig((c) => { c.num_key_value_heads = 4 })),
    /tensor model\.layers\.1\.attn\.Wqkv\.weight has shape \[64, 32\] .* implies \[96, 32\]/, 'num_key_value_heads')
  expectLoadError(t, variant(editConfig((c) => { c.vocab_size = 41 })),
    /tensor model\.embed_tokens\.weight has shape \[40, 32\] .* implies \[41, 32\]/, 'vocab_size')
  expectLoadError(t, variant(editConfig((c) => { c.mamba_d_state = 8 })),
    /tensor model\.layers\.0\.attn\.x_proj\.weight has shape \[34, 64\] .* implies \[18, 64\]/, 'mamba_d_state')
  expectLoadError(t, variant(editConfig((c) => { c.tie_word_embeddings = false })), /lm_head\.weight is missing/, 'untied without lm_head')
  // a tensor missing from the file
  const dir = join(root, 'missing-tensor')
  mkdirSync(dir)
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson(cfg)))
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(makeTensors(cfg).filter((x) => x.name !== 'model.layers.2.attn.D')))
  expectLoadError(t, dir, /tensor model\.layers\.2\.attn\.D is missing from the checkpoint \(expected shape \[64\]\)/, 'missing tensor')
})

t.test('truncated or corrupt safetensors', async (t) => {
  const size = readFileSync(join(good, 'model.safetensors')).length
  expectLoadError(t, variant((d) => writeFileSync(join(d, 'model.safetensors'), Buffer.alloc(0))), /truncated safetensors file \(0 bytes/, 'empty file')
  expectLoadError(t, variant((d) => truncateSync(join(d, 'model.safetensors'), 5)), /truncated safetensors file/, '5-byte file')
  expectLoadError(t, variant((d) => truncateSync(join(d, 'model.safetensors'), 100)), /bad safetensors header length \d+ \(file has only 92 bytes/, 'cut inside the header')
  expectLoadError(t, variant((d) => truncateSync(join(d, 'model.safetensors'), size - 10)), /data_offsets \[\d+, \d+\] out of range .*truncated/, 'cut inside the data')
  expectLoadError(t, variant((d) => {
    const b = readFileSync(join(d, 'model.safetensors'))
    b.writeBigUInt64LE(0xffffffffffffn, 0)
    writeFileSync(join(d, 'model.safetensors'), b)
  }), /bad safetensors header length 281474976710655/, 'huge header length')
  expectLoadError(t, variant((d) => {
    const b = readFileSync(join(d, 'model.safetensors'))
    b[8] = 0x5b // '[' instead of '{' -> invalid JSON / not an object
    b[9] = 0x7d
    writeFileSync(join(d, 'model.safetensors'), b)
  }), /corrupt safetensors header/, 'garbage header')
  expectLoadError(t, variant(editHeader((h) => { h['model.layers.0.attn.D'].data_offsets = [0, 1 << 30] })), /model\.layers\.0\.attn\.D.*out of range/, 'offset beyond the data')
  expectLoadError(t, variant(editHeader((h) => { const o = h['model.layers.0.attn.D'].data_offsets; h['model.layers.0.attn.D'].data_offsets = [o[1], o[0]] })), /end before begin/, 'reversed offsets')
  expectLoadError(t, variant(editHeader((h) => { h['model.layers.0.attn.D'].shape = [65] })), /byte range 256 does not match shape \[65\] x F32/, 'shape vs byte range')
  expectLoadError(t, variant(editHeader((h) => { h['model.layers.0.attn.D'].dtype = 'Q4' })), /unknown dtype "Q4"/, 'unknown dtype')
  expectLoadError(t, variant(editHeader((h) => { h['model.layers.0.attn.D'].dtype = 'I32' })), /tensor model\.layers\.0\.attn\.D has unsupported dtype I32 \(supported: F32, BF16, F16\)/, 'unsupported dtype')
  expectLoadError(t, variant(editHeader((h) => { delete h['model.layers.0.attn.D'].data_offsets })), /missing data_offsets/, 'no data_offsets')
})

t.test('crafted shapes whose element or byte count overflows 64 bits are refused', async (t) => {
  // 2^40 x 2^22 F32 = 2^62 elements = 2^64 bytes, which wraps to 0 and matched the empty range [0, 0]: an
  // extra tensor the model never binds loaded silently, a bound one would be read 2^64 bytes long
  expectLoadError(t, variant(editHeader((h) => { h['model.extra.wrapped'] = { dtype: 'F32', shape: [2 ** 40, 2 ** 22], data_offsets: [0, 0] } })),
    /tensor model\.extra\.wrapped: shape \[1099511627776, 4194304\] x F32 needs more bytes than the data region/, 'byte count wraps to 0')
  expectLoadError(t, variant(editHeader((h) => { h['model.extra.wrapped'] = { dtype: 'F64', shape: [2 ** 40, 2 ** 21], data_offsets: [0, 0] } })),
    /tensor model\.extra\.wrapped: shape \[1099511627776, 2097152\] x F64 needs more bytes/, 'F64 byte count wraps to 0')
  expectLoadError(t, variant(editHeader((h) => { h['model.extra.wrapped'] = { dtype: 'U8', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 0] } })),
    /tensor model\.extra\.wrapped: shape \[1099511627776, 1099511627776\]\.\.\. has more than 2\^62 elements/, 'element count overflows')
  expectLoadError(t, variant(editHeader((h) => { h['model.layers.0.attn.D'].shape = [2 ** 40, 2 ** 22] ; h['model.layers.0.attn.D'].data_offsets = [0, 0] })),
    /model\.layers\.0\.attn\.D: shape .* needs more bytes/, 'on a bound tensor')
})

t.test('loadAsync rejects with ModelLoadError', async (t) => {
  await t.rejects(Model.loadAsync(join(root, 'nowhere')), ModelLoadError)
})

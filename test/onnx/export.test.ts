// `flashcheck model export-onnx`: files, standard opset only, inline vs external weights, the manifest's
// checkpoint fingerprint, and that external-data graphs compute what inline ones do.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { modelExportOnnx } from '../../daemon/cli/model-export-onnx.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { OnnxBackend } from '../../daemon/model/onnx/backend.js'
import { OPSET } from '../../daemon/model/onnx/export.js'
import { decodeModel, type GraphP } from '../../daemon/model/onnx/proto.js'
import { writeCheckpoint, type TinyConfig } from '../kernel/helpers/checkpoint.js'
import { capture } from '../model/helpers.js'

const root = mkdtempSync(join(tmpdir(), 'fc-onnx-export-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))
const cfg: TinyConfig = { hidden_size: 32, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 32, vocab_size: 64, sliding_window: 4 }
const ck = join(root, 'ck')
writeCheckpoint(ck, cfg, { seed: 2 })

function ops(g: GraphP, into = new Set<string>()): Set<string> {
  for (const n of g.node) {
    into.add(n.op_type)
    for (const a of n.attribute ?? []) if (a.g) ops(a.g, into)
  }
  return into
}

// ONNX's default domain, opset 17: what the TensorRT and CUDA providers implement (no contrib ops)
const STANDARD = new Set(['Add', 'And', 'Concat', 'Exp', 'Gather', 'Gemm', 'GreaterOrEqual', 'Identity', 'LayerNormalization', 'Less',
  'MatMul', 'Max', 'Mul', 'Neg', 'Range', 'Reciprocal', 'ReduceMean', 'Reshape', 'Scan', 'Shape', 'Sigmoid', 'Slice', 'Softmax',
  'Softplus', 'Sqrt', 'Squeeze', 'Sub', 'Tile', 'Transpose', 'Unsqueeze', 'Where'])

t.test('inline export: two self-contained graphs, standard ops, state inputs and outputs', async (t) => {
  const out = join(root, 'inline')
  const r = await capture(() => modelExportOnnx([ck, '--out', out]))
  t.equal(r.code, 0, r.err)
  t.match(r.out, /opset 17, .* MiB of float32 weights inline/)
  for (const f of ['prefill.onnx', 'decode.onnx', 'manifest.json']) t.ok(existsSync(join(out, f)), f)
  t.notOk(existsSync(join(out, 'weights.bin')))
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))
  t.equal(m.opset, OPSET)
  t.equal(m.external, null)
  for (const f of ['prefill.onnx', 'decode.onnx']) {
    const model = decodeModel(readFileSync(join(out, f)))
    t.same(model.opset_import.map((o) => [o.domain ?? '', Number(o.version)]), [['', 17]], `${f}: default domain, opset 17 only`)
    const used = ops(model.graph)
    t.same([...used].filter((o) => !STANDARD.has(o)), [], `${f}: ops ${[...used].sort().join(' ')}`)
    t.ok(model.graph.initializer.every((i) => i.data_location !== 1), 'weights inline')
    const ins = model.graph.input.map((i) => i.name)
    const outs = model.graph.output.map((i) => i.name)
    // layer 0 Mamba, 1 sliding window, 4 Mamba with memory, 5 full attention (shared K/V); 6, 7 stateless
    for (const s of ['past.0.conv', 'past.0.ssm', 'past.1.key', 'past.1.value', 'past.4.ssm', 'past.5.key', 'past.5.value']) {
      t.ok(ins.includes(s), `${f} input ${s}`)
      t.ok(outs.includes(s.replace('past', 'present')), `${f} output ${s.replace('past', 'present')}`)
    }
    t.notOk(ins.some((n) => /^past\.[67]\./.test(n)), 'GMU and cross layers carry no state')
    t.equal(ins.includes('last_rows'), f === 'prefill.onnx')
  }
  const dec = decodeModel(readFileSync(join(out, 'decode.onnx')))
  t.notOk(ops(dec.graph).has('Scan'), 'the decode graph has no loop')
})

t.test('external weights: one weights.bin shared by both graphs, same logits as inline', async (t) => {
  const out = join(root, 'external')
  const r = await capture(() => modelExportOnnx([ck, '--out', out, '--external-above', '0']))
  t.equal(r.code, 0, r.err)
  t.match(r.out, /in weights\.bin/)
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))
  t.equal(m.external, 'weights.bin')
  t.ok(statSync(join(out, 'weights.bin')).size >= m.weightBytes)
  for (const f of ['prefill.onnx', 'decode.onnx']) {
    const g = decodeModel(readFileSync(join(out, f))).graph
    const ext = g.initializer.filter((i) => i.data_location === 1)
    t.ok(ext.length > 10, `${f}: ${ext.length} external initializers`)
    t.ok(ext.every((i) => i.external_data!.find((e) => e.key === 'location')!.value === 'weights.bin'))
    t.ok(statSync(join(out, f)).size < 64 * 1024, `${f} holds no weights`)
  }
  const a = await OnnxBackend.load(ck, { threads: 1, graphs: out })
  const b = await OnnxBackend.load(ck, { threads: 1, graphs: join(root, 'inline') })
  t.teardown(async () => {
    await a.dispose()
    await b.dispose()
  })
  const toks = Int32Array.from([5, 9, 33, 2, 60, 1, 7])
  const sa = await a.newState()
  const sb = await b.newState()
  t.same(await a.prefill(sa, toks, { allLogits: true }), await b.prefill(sb, toks, { allLogits: true }))
  t.same(await a.prefill(sa, Int32Array.of(3)), await b.prefill(sb, Int32Array.of(3)))
})

t.test('graphs of another checkpoint are refused; usage errors', async (t) => {
  const other = join(root, 'other')
  writeCheckpoint(other, { ...cfg, vocab_size: 72 }, { seed: 2 })
  await t.rejects(OnnxBackend.load(other, { graphs: join(root, 'inline') }), /exported from another checkpoint/)
  await t.rejects(OnnxBackend.load(ck, { graphs: join(root, 'nothing-here') }), /no manifest\.json .*export-onnx/)
  t.equal((await capture(() => modelExportOnnx([ck]))).code, 2)
  t.equal((await capture(() => modelExportOnnx([ck, '--out', join(root, 'x'), '--external-above', '-1']))).code, 2)
  t.equal((await capture(() => modelExportOnnx([ck, '--out', join(root, 'x'), '--bogus']))).code, 2)
  const bad = join(root, 'bad')
  writeCheckpoint(bad, cfg, { seed: 2 })
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ model_type: 'llama' }))
  const r = await capture(() => modelExportOnnx([bad, '--out', join(root, 'y')]))
  t.equal(r.code, 1)
  t.match(r.err, /model_type/)
})

t.test('runtime module and provider fallback', async (t) => {
  const graphs = join(root, 'inline')
  // an onnxruntime-node build given by directory, as model.onnx.runtimePath does for a TensorRT build
  const byPath = await OnnxBackend.load(ck, { threads: 1, graphs, runtime: join(PACKAGE_ROOT, 'node_modules', 'onnxruntime-node') })
  t.same(byPath.providers, ['cpu'])
  await byPath.dispose()
  await t.rejects(OnnxBackend.load(ck, { graphs, runtime: join(root, 'no-such-runtime') }), /onnxruntime could not load/)
  // no CUDA libraries on a CPU machine: the provider is dropped with its reason, the next one serves
  const gpu = await OnnxBackend.load(ck, { threads: 1, graphs, providers: ['cuda', 'cpu'] })
  t.teardown(() => gpu.dispose())
  if (gpu.providers[0] === 'cuda') {
    t.pass('CUDA is available here')
  } else {
    t.same(gpu.providers, ['cpu'])
    t.equal(gpu.dropped.length, 1)
    t.match(gpu.dropped[0], /^cuda: /)
    t.match(gpu.config.isa, /^onnxruntime:cpu$/)
  }
  const s = await gpu.newState()
  t.equal((await gpu.prefill(s, Int32Array.of(1, 2))).length, cfg.vocab_size)
})

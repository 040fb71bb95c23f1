// ONNX export of a phi4flash (SambaY) checkpoint: a prefill graph (a chunk of any length) and a single-token
// decode graph, both carrying the decode state explicitly as inputs (past.*) and outputs (present.*).
// Standard opset-17 ops only (no contrib or custom ops), so the CPU, CUDA and TensorRT providers can all take
// them. Layout of the state and the design are described in daemon/model/onnx/README.md.
import { createHash } from 'node:crypto'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { type Arch, layerPlan } from '../arch.js'
import { VERSION } from '../../version.js'
import { type Checkpoint, openCheckpoint, readTensorF32 } from './checkpoint.js'
import { type Dim, DT, encodeModel, type GraphP, valueInfo, type ValueInfoP } from './proto.js'
import { Builder, WeightStore } from './graph-builder.js'

export const OPSET = 17
const IR_VERSION = 8
export const MANIFEST = 'manifest.json'
export const PREFILL_FILE = 'prefill.onnx'
export const DECODE_FILE = 'decode.onnx'
export const WEIGHTS_FILE = 'weights.bin'
/** Above this many weight bytes (as float32) the initializers go to an external weights file shared by both
 *  graphs; below it each graph holds its own copy inline (one self-contained file each). */
export const DEFAULT_EXTERNAL_ABOVE = 256 * 1024 * 1024
const INT64_MAX = 9223372036854775807n
const NEG_BIG = -1e30

export interface Manifest {
  format: 1
  producer: string
  opset: number
  /** sha256 of config.json and the weight files' names and sizes: a changed checkpoint invalidates the export. */
  fingerprint: string
  layout: Arch['layout']
  layers: string[]
  graphs: { prefill: string; decode: string }
  external: string | null
  weightBytes: number
}

/** Where a graph input comes from and what it holds (state tensors by layer). */
export interface StateSpec {
  /** Input name (past.*); the output is the same with present. */
  name: string
  /** Shape of a fresh (empty) state: fixed dims, 0 for the growing axis. */
  empty: number[]
}

/** The state tensors of a checkpoint, in graph input order. */
export function stateSpecs(a: Arch): StateSpec[] {
  const kvd = a.kvHeads * a.headDim
  const out: StateSpec[] = []
  layerPlan(a).forEach((k, i) => {
    if (k === 'mamba' || k === 'mamba_mem') {
      out.push({ name: `past.${i}.conv`, empty: [a.dConv - 1, a.dInner] }, { name: `past.${i}.ssm`, empty: [a.dInner, a.dState] })
    } else if (k === 'swa' || k === 'full') {
      out.push({ name: `past.${i}.key`, empty: [0, kvd] }, { name: `past.${i}.value`, empty: [0, kvd] })
    }
  })
  return out
}

export function fingerprint(ck: Checkpoint): string {
  const h = createHash('sha256').update(ck.configText)
  for (const f of ck.headers.files) h.update(`\n${basename(f.path)}:${f.dataStart}:${f.tensors.length}`)
  for (const [name, e] of [...ck.headers.tensors].sort((x, y) => (x[0] < y[0] ? -1 : 1))) h.update(`\n${name}:${e.dtype}:${e.shape.join('x')}:${e.begin}`)
  return h.digest('hex')
}

// ------------------------------------------------------------------------------------------- the model

type Mode = 'prefill' | 'decode'

interface Ctx {
  a: Arch
  b: Builder
  mode: Mode
  ck: Checkpoint
  store: WeightStore
}

function weight(c: Ctx, name: string, shape: number[]): string {
  return c.b.init(c.store.add(name, readTensorF32(c.ck, name, shape), shape))
}

/** A tensor derived from checkpoint tensors at export time (cached across both graphs under `name`). */
function derived(c: Ctx, name: string, shape: number[], make: () => Float32Array): string {
  return c.b.init(c.store.add(name, make(), shape))
}

function layerNorm(c: Ctx, x: string, p: string): string {
  const H = c.a.hidden
  return c.b.o('LayerNormalization', [x, weight(c, `${p}.weight`, [H]), weight(c, `${p}.bias`, [H])], [
    { name: 'axis', i: -1 }, { name: 'epsilon', f: c.a.eps },
  ])
}

/** Mamba mixer (spec §3): conv over [carried K-1 inputs ‖ chunk], selective scan, gate. Returns [out, y]. */
function mamba(c: Ctx, i: number, x: string): { out: string; y: string } {
  const { a, b } = c
  const { hidden: H, dInner: Di, dState: N, dConv: K, dtRank: R } = a
  const p = `model.layers.${i}.attn.`
  const xz = b.gemm(x, weight(c, `${p}in_proj.weight`, [2 * Di, H]))
  const xm = b.slice(xz, 0, Di, 1)
  const z = b.slice(xz, Di, 2 * Di, 1)
  // conv state: the last K-1 pre-conv inputs, time-major [K-1, Di]
  const cat = b.o('Concat', [`past.${i}.conv`, xm], [{ name: 'axis', i: 0 }])
  b.o('Slice', [cat, b.i64([-(K - 1)]), b.i64([INT64_MAX]), b.i64([0])], [], `present.${i}.conv`)
  const convW = readTensorF32(c.ck, `${p}conv1d.weight`, [Di, 1, K])
  let pre = weight(c, `${p}conv1d.bias`, [Di])
  for (let k = 0; k < K; k++) {
    const tap = derived(c, `${p}conv1d.tap${k}`, [Di], () => Float32Array.from({ length: Di }, (_, ch) => convW[ch * K + k]!))
    const win = b.slice(cat, k, k === K - 1 ? INT64_MAX : -(K - 1 - k), 0)
    pre = b.add(pre, b.mul(win, tap))
  }
  const xc = b.silu(pre)
  const dbc = b.gemm(xc, weight(c, `${p}x_proj.weight`, [R + 2 * N, Di]))
  const dl = b.slice(dbc, 0, R, 1)
  const B = b.slice(dbc, R, R + N, 1)
  const C = b.slice(dbc, R + N, R + 2 * N, 1)
  const delta = b.o('Softplus', [b.gemm(dl, weight(c, `${p}dt_proj.weight`, [Di, R]), weight(c, `${p}dt_proj.bias`, [Di]))])
  const A = derived(c, `${p}A`, [Di, N], () => readTensorF32(c.ck, `${p}A_log`, [Di, N]).map((v) => -Math.exp(v)))
  const dx = b.mul(delta, xc)
  let ys: string
  if (c.mode === 'decode') {
    // one token: the recurrence once, no loop
    const dA = b.o('Exp', [b.mul(b.reshape(delta, [Di, 1]), A)])
    const h = b.add(b.mul(dA, `past.${i}.ssm`), b.mul(b.reshape(dx, [Di, 1]), B))
    b.o('Identity', [h], [], `present.${i}.ssm`)
    ys = b.reshape(b.o('MatMul', [h, b.reshape(C, [N, 1])]), [1, Di])
  } else {
    // decay and input terms for every step at once, then the sequential part as an ONNX Scan over time
    const dA = b.o('Exp', [b.mul(b.unsqueeze(delta, [2]), A)])
    const dBx = b.mul(b.unsqueeze(dx, [2]), b.unsqueeze(B, [1]))
    // body value names carry the layer index: ONNX names must stay unique across nested graphs
    const body = new Builder(`scan${i}_`)
    const n = (s: string) => `scan${i}_${s}`
    const h1 = body.add(body.mul(n('dA'), n('h')), n('dBx'))
    body.o('Identity', [h1], [], n('h_out'))
    body.o('MatMul', [h1, n('C')], [], n('y'))
    const g: GraphP = {
      name: `scan_${i}`,
      node: body.nodes,
      initializer: body.inits,
      input: [
        valueInfo(n('h'), DT.FLOAT, [Di, N]), valueInfo(n('dA'), DT.FLOAT, [Di, N]),
        valueInfo(n('dBx'), DT.FLOAT, [Di, N]), valueInfo(n('C'), DT.FLOAT, [N]),
      ],
      output: [valueInfo(n('h_out'), DT.FLOAT, [Di, N]), valueInfo(n('y'), DT.FLOAT, [Di])],
    }
    ys = b.op('Scan', [`past.${i}.ssm`, dA, dBx, C], [{ name: 'body', g }, { name: 'num_scan_inputs', i: 3 }], [`present.${i}.ssm`, b.fresh('ys')])[1]!
  }
  const y = b.add(ys, b.mul(xc, weight(c, `${p}D`, [Di])))
  const out = b.gemm(b.mul(y, b.silu(z)), weight(c, `${p}out_proj.weight`, [H, Di]))
  return { out, y }
}

/** Differential attention (self, sliding or full, or cross over layer h+1's K/V). `mask`: additive [r*T, Lk]
 *  bias or null when every key is visible. */
function attention(c: Ctx, i: number, kind: 'swa' | 'full' | 'cross', x: string, mask: string | null): string {
  const { a, b } = c
  const { hidden: H, heads: nh, kvHeads: nkv, headDim: hd } = a
  const qd = nh * hd
  const kvd = nkv * hd
  const G = nkv / 2
  const r = nh / nkv
  const p = `model.layers.${i}.attn.`
  const rows = kind === 'cross' ? qd : qd + 2 * kvd
  const qkv = b.gemm(x, weight(c, `${p}Wqkv.weight`, [rows, H]), weight(c, `${p}Wqkv.bias`, [rows]))
  let q: string
  let k: string
  let v: string
  if (kind === 'cross') {
    const h1 = a.layers / 2 + 1
    q = qkv
    k = `present.${h1}.key`
    v = `present.${h1}.value`
  } else {
    q = b.slice(qkv, 0, qd, 1)
    k = b.o('Concat', [`past.${i}.key`, b.slice(qkv, qd, qd + kvd, 1)], [{ name: 'axis', i: 0 }])
    v = b.o('Concat', [`past.${i}.value`, b.slice(qkv, qd + kvd, qd + 2 * kvd, 1)], [{ name: 'axis', i: 0 }])
    if (kind === 'full') {
      b.o('Identity', [k], [], `present.${i}.key`)
      b.o('Identity', [v], [], `present.${i}.value`)
    } else {
      // the window keeps the last W-1 positions (fewer at the start): the next query sees those and itself
      const start = b.o('Max', [b.o('Sub', [b.len0(k), b.i64([a.window - 1])]), b.i64([0])])
      b.o('Slice', [k, start, b.i64([INT64_MAX]), b.i64([0])], [], `present.${i}.key`)
      b.o('Slice', [v, start, b.i64([INT64_MAX]), b.i64([0])], [], `present.${i}.value`)
    }
  }
  // heads split interleaved: q head 2j+g2 of pair j = G·r index; pair j reads kv pair j // r
  const q4 = b.reshape(b.transpose(b.reshape(q, [-1, G, r, 2, hd]), [3, 1, 2, 0, 4]), [2, G, -1, hd]) // [2, G, r·T, hd]
  const kt = b.transpose(b.reshape(k, [-1, G, 2, hd]), [2, 1, 3, 0]) // [2, G, hd, Lk]
  const vt = b.transpose(b.reshape(v, [-1, G, 2 * hd]), [1, 0, 2]) // [G, Lk, 2hd]: v1 ‖ v2 per pair
  let s = b.mul(b.o('MatMul', [q4, kt]), b.f32([1 / Math.sqrt(hd)]))
  if (mask) s = b.add(s, mask)
  const P = b.o('Softmax', [s], [{ name: 'axis', i: -1 }])
  const o = b.o('MatMul', [P, vt]) // [2, G, r·T, 2hd]
  const li = 0.8 - 0.6 * Math.exp(-0.3 * i)
  const lq1 = readTensorF32(c.ck, `${p}inner_cross_attn.lambda_q1`, [hd])
  const lk1 = readTensorF32(c.ck, `${p}inner_cross_attn.lambda_k1`, [hd])
  const lq2 = readTensorF32(c.ck, `${p}inner_cross_attn.lambda_q2`, [hd])
  const lk2 = readTensorF32(c.ck, `${p}inner_cross_attn.lambda_k2`, [hd])
  let s1 = 0
  let s2 = 0
  for (let d = 0; d < hd; d++) {
    s1 += lq1[d]! * lk1[d]!
    s2 += lq2[d]! * lk2[d]!
  }
  const lam = Math.fround(Math.exp(s1) - Math.exp(s2) + li)
  const diff = b.o('Sub', [b.slice(o, 0, 1, 0), b.mul(b.slice(o, 1, 2, 0), b.f32([lam]))]) // [1, G, r·T, 2hd]
  const ms = b.o('ReduceMean', [b.mul(diff, diff)], [{ name: 'axes', ints: [-1] }, { name: 'keepdims', i: 1 }])
  const inv = b.o('Reciprocal', [b.o('Sqrt', [b.add(ms, b.f32([1e-5]))])])
  const post = Math.fround(1 - Math.fround(li))
  const subln = derived(c, `${p}inner_cross_attn.subln.scaled`, [2 * hd], () =>
    readTensorF32(c.ck, `${p}inner_cross_attn.subln.weight`, [2 * hd]).map((w) => w * post),
  )
  const normed = b.mul(b.mul(diff, inv), subln)
  const heads = b.reshape(b.transpose(b.reshape(normed, [G, r, -1, 2 * hd]), [2, 0, 1, 3]), [-1, qd])
  return b.gemm(heads, weight(c, `${p}out_proj.weight`, [H, qd]), weight(c, `${p}out_proj.bias`, [H]))
}

/** Additive mask [r·T, Lk] for the chunk's T queries after `offset` earlier keys (Lk = offset + T): the query
 *  at index offset+t sees key j iff 0 <= offset+t-j < span (span = Infinity: causal only). `lastRows`
 *  (negative count) keeps the mask rows of the last queries only. */
function causalMask(c: Ctx, offset: string, span: number, lastRows?: string): string {
  const { b, a } = c
  const T = b.len0('tokens')
  const zero = b.i64([0], [])
  const one = b.i64([1], [])
  const sq = (x: string) => b.o('Squeeze', [x, b.i64([0])])
  const tq = b.unsqueeze(b.add(b.o('Range', [zero, sq(T), one]), offset), [1]) // [T, 1]
  const tk = b.unsqueeze(b.o('Range', [zero, sq(b.add(offset, T)), one]), [0]) // [1, Lk]
  const d = b.o('Sub', [tq, tk])
  let ok = b.o('GreaterOrEqual', [d, b.i64([0], [])])
  if (Number.isFinite(span)) ok = b.o('And', [ok, b.o('Less', [d, b.i64([span], [])])])
  let m = b.o('Where', [ok, b.f32([0]), b.f32([NEG_BIG])])
  if (lastRows) m = b.o('Slice', [m, lastRows, b.i64([INT64_MAX]), b.i64([0])])
  const r = a.heads / a.kvHeads
  return r > 1 ? b.o('Tile', [m, b.i64([r, 1])]) : m
}

function buildGraph(ck: Checkpoint, store: WeightStore, mode: Mode): GraphP {
  const a = ck.arch
  const b = new Builder()
  const c: Ctx = { a, b, mode, ck, store }
  const { hidden: H, vocab: V, intermediate: I } = a
  const plan = layerPlan(a)
  const h = a.layers / 2
  const sambay = a.layout === 'sambay'
  const T: Dim = mode === 'decode' ? 1 : 'T'
  const states = stateSpecs(a)
  const inputs: ValueInfoP[] = [valueInfo('tokens', DT.INT32, [T])]
  if (mode === 'prefill') inputs.push(valueInfo('last_rows', DT.INT64, [1]))
  const dynName = (s: StateSpec) => (s.name.endsWith('.conv') || s.name.endsWith('.ssm') ? null : plan[Number(s.name.split('.')[1])] === 'swa' ? 'window' : 'past')
  for (const s of states) {
    const dyn = dynName(s)
    inputs.push(valueInfo(s.name, DT.FLOAT, dyn ? [dyn, s.empty[1]!] : s.empty))
  }

  const embed = weight(c, 'model.embed_tokens.weight', [V, H])
  let x = b.o('Gather', [embed, 'tokens'], [{ name: 'axis', i: 0 }])
  let mem: string | null = null
  // masks are shared by every layer of a kind (same offsets); the decode graph needs none (all keys visible)
  let swaMask: string | null = null
  let fullMask: string | null = null
  let crossMask: string | null = null
  const lastRows = mode === 'prefill' ? b.o('Neg', ['last_rows']) : undefined
  const firstSwa = plan.indexOf('swa')
  const firstFull = plan.indexOf('full')
  if (mode === 'prefill') {
    if (firstSwa >= 0) swaMask = causalMask(c, b.len0(`past.${firstSwa}.key`), a.window)
    if (firstFull >= 0) {
      const off = b.len0(`past.${firstFull}.key`)
      fullMask = causalMask(c, off, Infinity)
      if (sambay) crossMask = causalMask(c, off, Infinity, lastRows)
    }
  }
  for (let i = 0; i < a.layers; i++) {
    const kind = plan[i]!
    const p = `model.layers.${i}.`
    if (mode === 'prefill' && sambay && i === h + 2) {
      // the cross-decoder only feeds the logits: run it on the rows whose logits are wanted
      x = b.o('Slice', [x, lastRows!, b.i64([INT64_MAX]), b.i64([0])])
      mem = b.o('Slice', [mem!, lastRows!, b.i64([INT64_MAX]), b.i64([0])])
    }
    const ln = layerNorm(c, x, `${p}input_layernorm`)
    let o: string
    if (kind === 'mamba' || kind === 'mamba_mem') {
      const r = mamba(c, i, ln)
      o = r.out
      if (kind === 'mamba_mem') mem = r.y // GMU memory: the un-gated y with the D term
    } else if (kind === 'gmu') {
      const pa = `${p}attn.`
      const g = b.gemm(ln, weight(c, `${pa}in_proj.weight`, [a.dInner, H]))
      o = b.gemm(b.mul(mem!, b.silu(g)), weight(c, `${pa}out_proj.weight`, [H, a.dInner]))
    } else {
      o = attention(c, i, kind, ln, kind === 'swa' ? swaMask : kind === 'full' ? fullMask : crossMask)
    }
    x = b.add(x, o)
    const u = b.gemm(layerNorm(c, x, `${p}post_attention_layernorm`), weight(c, `${p}mlp.fc1.weight`, [2 * I, H]))
    const m = b.gemm(b.mul(b.slice(u, I, 2 * I, 1), b.silu(b.slice(u, 0, I, 1))), weight(c, `${p}mlp.fc2.weight`, [H, I]))
    x = b.add(x, m)
  }
  if (mode === 'prefill' && !(sambay && a.layers > h + 2)) x = b.o('Slice', [x, lastRows!, b.i64([INT64_MAX]), b.i64([0])])
  const head = a.tied ? embed : weight(c, 'lm_head.weight', [V, H])
  b.o('Gemm', [layerNorm(c, x, 'model.final_layernorm'), head], [{ name: 'transB', i: 1 }], 'logits')

  const outputs: ValueInfoP[] = [valueInfo('logits', DT.FLOAT, [mode === 'decode' ? 1 : 'rows', V])]
  for (const s of states) {
    const dyn = dynName(s)
    outputs.push(valueInfo(s.name.replace(/^past\./, 'present.'), DT.FLOAT, dyn ? [dyn === 'past' ? 'present' : 'window_out', s.empty[1]!] : s.empty))
  }
  return { name: `phi4flash_${mode}`, node: b.nodes, initializer: b.inits, input: inputs, output: outputs }
}

export interface ExportOptions {
  /** Weight bytes (float32) above which initializers go to an external file; default 256 MiB. */
  externalAbove?: number
}

export interface ExportResult {
  dir: string
  manifest: Manifest
  files: string[]
}

function checkSupported(a: Arch): void {
  if (a.dConv < 2) throw new Error(`ONNX export needs mamba_d_conv >= 2, got ${a.dConv}`)
}

/** Writes prefill.onnx, decode.onnx, weights.bin (when external) and manifest.json into outDir. */
export async function exportOnnx(dir: string, outDir: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const ck = await openCheckpoint(dir)
  checkSupported(ck.arch)
  mkdirSync(outDir, { recursive: true })
  // float32 after widening: the size the initializers will have
  let f32Bytes = 0
  for (const e of ck.headers.tensors.values()) f32Bytes += ((e.end - e.begin) / (e.dtype === 'F32' ? 4 : 2)) * 4
  const external = f32Bytes > (opts.externalAbove ?? DEFAULT_EXTERNAL_ABOVE)
  const store = new WeightStore(external ? join(outDir, WEIGHTS_FILE) : null)
  const files: string[] = []
  try {
    for (const [mode, file] of [['prefill', PREFILL_FILE], ['decode', DECODE_FILE]] as const) {
      const graph = buildGraph(ck, store, mode)
      const bytes = encodeModel({
        ir_version: IR_VERSION,
        opset_import: [{ domain: '', version: OPSET }],
        producer_name: 'flashcheck',
        producer_version: VERSION,
        doc_string: `phi4flash ${ck.arch.layout} ${mode} graph exported from ${basename(dir)}`,
        graph,
        metadata_props: [{ key: 'flashcheck.mode', value: mode }],
      })
      // written under a temporary name first so a crashed export never leaves a truncated graph behind
      writeFileSync(join(outDir, file + '.tmp'), bytes)
      renameSync(join(outDir, file + '.tmp'), join(outDir, file))
      files.push(join(outDir, file))
    }
  } finally {
    store.close()
  }
  if (external) files.push(join(outDir, WEIGHTS_FILE))
  const manifest: Manifest = {
    format: 1,
    producer: `flashcheck ${VERSION}`,
    opset: OPSET,
    fingerprint: fingerprint(ck),
    layout: ck.arch.layout,
    layers: layerPlan(ck.arch),
    graphs: { prefill: PREFILL_FILE, decode: DECODE_FILE },
    external: external ? WEIGHTS_FILE : null,
    weightBytes: store.bytes,
  }
  writeFileSync(join(outDir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n')
  files.push(join(outDir, MANIFEST))
  return { dir: outDir, manifest, files }
}

// Checkpoint access for the onnxruntime path without the native addon: the ModelConfig the native kernel
// reports (derived from config.json and the safetensors headers) and tensors widened to float32.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { type Arch, archFromConfig, layerPlan } from '../arch.js'
import type { ModelConfig } from '../backend.js'
import { type CheckpointHeaders, readCheckpointHeaders } from '../safetensors-header.js'

export interface Checkpoint {
  dir: string
  arch: Arch
  /** config.json as text (fingerprinted by exports). */
  configText: string
  headers: CheckpointHeaders
}

export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  let configText: string
  try {
    configText = readFileSync(join(dir, 'config.json'), 'utf8')
  } catch {
    throw new Error(`no config.json in ${dir}`)
  }
  const arch = archFromConfig(JSON.parse(configText), join(dir, 'config.json'))
  const headers = await readCheckpointHeaders(dir)
  return { dir, arch, configText, headers }
}

/** Kind names as the native kernel reports them (ModelConfig.layers). */
export function layerNames(a: Arch): string[] {
  return layerPlan(a).map((k) => (k === 'full' ? (a.layout === 'all-attention' ? 'attn' : 'attn_kv') : k))
}

/** The ModelConfig of a checkpoint, as the native kernel would report it (threads and isa describe onnxruntime). */
export function modelConfig(ck: Checkpoint, threads: number, isa: string): ModelConfig {
  const a = ck.arch
  const used = new Set<string>()
  const matDtypes = new Set<string>()
  let params = 0
  let bytes = 0
  for (const [name, e] of ck.headers.tensors) {
    if (!name.startsWith('model.') && name !== 'lm_head.weight') continue
    if (name === 'lm_head.weight' && a.tied) continue
    used.add(name)
    params += e.shape.reduce((n, d) => n * d, 1)
    bytes += e.end - e.begin
    if (e.shape.length === 2 && !/\.A_log$/.test(name)) matDtypes.add(e.dtype)
  }
  const sambay = a.layout === 'sambay'
  return {
    model_type: 'phi4flash',
    layout: a.layout,
    hidden_size: a.hidden,
    num_hidden_layers: a.layers,
    num_attention_heads: a.heads,
    num_key_value_heads: a.kvHeads,
    head_dim: a.headDim,
    intermediate_size: a.intermediate,
    vocab_size: a.vocab,
    sliding_window: sambay ? a.window : 0,
    mb_per_layer: sambay ? a.mbPerLayer : 0,
    mamba_d_state: a.dState,
    mamba_d_conv: a.dConv,
    mamba_expand: a.expand,
    dt_rank: a.dtRank,
    d_inner: a.dInner,
    layer_norm_eps: a.eps,
    tie_word_embeddings: a.tied,
    layers: layerNames(a),
    weight_dtype: matDtypes.size === 1 ? [...matDtypes][0]! : 'mixed',
    quant: 'none',
    param_count: params,
    weight_bytes: bytes,
    converted_bytes: 0,
    threads,
    isa,
  }
}

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 31
  const m = h & 1023
  if (e === 0) return s * m * 2 ** -24
  if (e === 31) return m ? NaN : s * Infinity
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

/** Reads one tensor as float32 (BF16 and F16 widened exactly); checks its shape. */
export function readTensorF32(ck: Checkpoint, name: string, shape: number[]): Float32Array {
  const e = ck.headers.tensors.get(name)
  if (!e) throw new Error(`tensor ${name} is missing from the checkpoint (expected shape [${shape.join(', ')}])`)
  if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`tensor ${name} has shape [${e.shape.join(', ')}] but the config implies [${shape.join(', ')}]`)
  }
  const file = ck.headers.files.find((f) => f.path === join(ck.dir, e.file))!
  const n = e.end - e.begin
  const buf = Buffer.allocUnsafe(n)
  const fd = openSync(file.path, 'r')
  try {
    let off = 0
    while (off < n) {
      const got = readSync(fd, buf, off, n - off, file.dataStart + e.begin + off)
      if (got <= 0) throw new Error(`${file.path}: short read of ${name}`)
      off += got
    }
  } finally {
    closeSync(fd)
  }
  const count = n / (e.dtype === 'F32' ? 4 : 2)
  const out = new Float32Array(count)
  if (e.dtype === 'F32') {
    new Uint8Array(out.buffer).set(buf)
  } else if (e.dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer)
    for (let i = 0; i < count; i++) bits[i] = buf.readUInt16LE(2 * i) << 16
  } else if (e.dtype === 'F16') {
    for (let i = 0; i < count; i++) out[i] = half(buf.readUInt16LE(2 * i))
  } else {
    throw new Error(`tensor ${name} has unsupported dtype ${e.dtype} (supported: F32, BF16, F16)`)
  }
  return out
}

// Quantizes a float checkpoint (F32 / BF16 / F16, single file or sharded) into q8_0 or q4_0, streaming:
// each tensor is read from the source in bounded chunks at file offsets and written out block by block,
// so memory stays at a few chunk buffers plus one tensor's scales whatever the checkpoint's size.
import { copyFile, open, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { type CheckpointHeaders, type HeaderEntry, INDEX_FILE, readCheckpointHeaders } from '../safetensors-header.js'
import { bf16ToF32 } from './bf16.js'
import { discardStaging, publishDir, stagingDir, WEIGHT_FILE } from './publish-dir.js'
import {
  BLOCK_BYTES, f16ToF32, QK, quantizedTensors, type QuantType, quantTypeFor, quantizeBlocks,
} from './quant-format.js'
import { type ByteTensorSource, DEFAULT_SHARD_BYTES, isDType, planShards, type TensorSource, tensorBytes, writeWeights } from './safetensors-write.js'

/** Fills successive chunks of a tensor's elements (row-major) as float32. */
export type FloatStream = (out: Float32Array) => void | Promise<void>

/** The config.json entry that marks a quantized checkpoint. */
export function quantizationConfig(type: QuantType): Record<string, unknown> {
  return { quant_method: 'flashcheck', type, block_size: QK }
}

/** The two on-disk tensors (quantized values, f16 block scales) of one weight, as byte sources.
 *  The values pass keeps the scales it computes, so the scale tensor (written right after it) costs no
 *  second read; if the scales are asked for first, they are computed from a pass of their own. */
export function quantizedSources(name: string, shape: readonly number[], type: QuantType, openFloats: () => FloatStream): [ByteTensorSource, ByteTensorSource] {
  const meta = quantizedTensors(name, shape, type)
  const nb = (shape[0]! * shape[1]!) / QK
  let kept: Uint16Array | null = null
  const pass = (scales: Uint16Array) => {
    const next = openFloats()
    let block = 0
    let f32 = new Float32Array(0)
    return async (out: Uint8Array) => {
      const blocks = out.length / BLOCK_BYTES[type]
      if (f32.length < blocks * QK) f32 = new Float32Array(blocks * QK)
      const src = f32.subarray(0, blocks * QK)
      await next(src)
      quantizeBlocks(type, src, out, scales.subarray(block, block + blocks))
      block += blocks
    }
  }
  const data: ByteTensorSource = {
    ...meta.data,
    openBytes: () => {
      kept = new Uint16Array(nb)
      return pass(kept)
    },
  }
  const scale: ByteTensorSource = {
    ...meta.scale,
    openBytes: () => {
      let scales = kept
      kept = null
      let ready: Promise<void> | null = null
      if (!scales) {
        const s = new Uint16Array(nb)
        scales = s
        const fill = pass(s)
        ready = (async () => {
          const scratch = new Uint8Array(BLOCK_BYTES[type] * Math.min(nb, 1 << 16))
          for (let b = 0; b < nb; b += 1 << 16) await fill(scratch.subarray(0, BLOCK_BYTES[type] * Math.min(nb - b, 1 << 16)))
        })()
      }
      const bytes = new Uint8Array(scales.buffer)
      let off = 0
      return async (out: Uint8Array) => {
        if (ready) await ready
        out.set(bytes.subarray(off, off + out.length))
        off += out.length
      }
    },
  }
  return [data, scale]
}

/** Reads tensors of a checkpoint directory at file offsets, a chunk at a time. */
export class CheckpointReader {
  private readonly handles = new Map<string, Promise<Awaited<ReturnType<typeof open>>>>()
  private buf = new Uint8Array(0)

  constructor(readonly dir: string, readonly headers: CheckpointHeaders) {}

  private entry(name: string): HeaderEntry & { file: string; dataStart: number } {
    const e = this.headers.tensors.get(name)
    if (!e) throw new Error(`no tensor ${name} in ${this.dir}`)
    const f = this.headers.files.find((h) => h.path === join(this.dir, e.file))!
    return { ...e, dataStart: f.dataStart }
  }

  private handle(file: string) {
    let h = this.handles.get(file)
    if (!h) {
      h = open(join(this.dir, file), 'r')
      this.handles.set(file, h)
    }
    return h
  }

  /** Reads `out.length` bytes at `pos` of `file` into `out`. */
  private async readAt(file: string, out: Uint8Array, pos: number): Promise<void> {
    const fh = await this.handle(file)
    let done = 0
    while (done < out.length) {
      const { bytesRead } = await fh.read(out, done, out.length - done, pos + done)
      if (bytesRead === 0) throw new Error(`${join(this.dir, file)}: unexpected end of file`)
      done += bytesRead
    }
  }

  /** The tensor's raw bytes, chunk after chunk. */
  bytes(name: string): (out: Uint8Array) => Promise<void> {
    const e = this.entry(name)
    let off = 0
    return async (out) => {
      await this.readAt(e.file, out, e.dataStart + e.begin + off)
      off += out.length
    }
  }

  /** The tensor's elements as float32, chunk after chunk (F32, BF16 and F16 tensors). */
  floats(name: string): FloatStream {
    const e = this.entry(name)
    const eb = e.dtype === 'F32' ? 4 : e.dtype === 'BF16' || e.dtype === 'F16' ? 2 : 0
    if (!eb) throw new Error(`tensor ${name}: cannot read ${e.dtype} as float`)
    let elem = 0
    return async (out) => {
      const n = out.length
      if (e.dtype === 'F32') {
        await this.readAt(e.file, new Uint8Array(out.buffer, out.byteOffset, n * 4), e.dataStart + e.begin + elem * 4)
      } else {
        if (this.buf.length < n * 2) this.buf = new Uint8Array(n * 2)
        const raw = this.buf.subarray(0, n * 2)
        await this.readAt(e.file, raw, e.dataStart + e.begin + elem * 2)
        const h = new Uint16Array(raw.buffer, 0, n)
        if (e.dtype === 'BF16') bf16ToF32(h, out)
        else for (let i = 0; i < n; i++) out[i] = f16ToF32(h[i]!)
      }
      elem += n
    }
  }

  async close(): Promise<void> {
    for (const h of this.handles.values()) await (await h).close()
    this.handles.clear()
  }
}

export class QuantizeError extends Error {}

export interface QuantizeOptions {
  src: string
  out: string
  type: QuantType
  /** Shard limit for the output; default: as many shards as the source has (one file for one). */
  maxShardBytes?: number
  /** Called as each source tensor starts being written. */
  onTensor?: (done: number, total: number, name: string) => void
}

export interface QuantizeResult {
  files: string[]
  fileBytes: number
  srcBytes: number
  /** Tensor names per stored type. */
  quantized: { name: string; type: QuantType }[]
  /** Weights of a quantizable kind that stay float (input dimension not a multiple of 32). */
  keptFloat: string[]
  copied: string[]
}

const QUANTIZABLE = /(Wqkv|in_proj|out_proj|fc1|fc2)\.weight$|^model\.embed_tokens\.weight$|^lm_head\.weight$/

/** The source's config and headers, or a QuantizeError saying why it cannot be quantized. */
async function readSource(src: string): Promise<{ config: Record<string, unknown>; headers: CheckpointHeaders }> {
  let st
  try {
    st = await stat(src)
  } catch {
    throw new QuantizeError(`${src}: no such directory`)
  }
  if (!st.isDirectory()) throw new QuantizeError(`${src}: not a directory (give the checkpoint directory)`)
  let config: Record<string, unknown>
  try {
    config = JSON.parse(await readFile(join(src, 'config.json'), 'utf8')) as Record<string, unknown>
  } catch (e) {
    throw new QuantizeError(`${join(src, 'config.json')}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing (not a checkpoint directory)' : (e as Error).message}`)
  }
  const qc = config.quantization_config as { type?: string; quant_method?: string } | undefined
  if (qc) throw new QuantizeError(`${src} is already quantized (quantization_config ${JSON.stringify(qc.type ?? qc.quant_method ?? qc)}); quantize its float checkpoint instead`)
  let headers: CheckpointHeaders
  try {
    headers = await readCheckpointHeaders(src)
  } catch (e) {
    const msg = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${src}: no model.safetensors or ${INDEX_FILE}` : (e as Error).message
    throw new QuantizeError(msg)
  }
  for (const t of headers.tensors.values()) {
    if (t.name.endsWith('.weight_scale') || ((t.dtype === 'I8' || t.dtype === 'U8') && QUANTIZABLE.test(t.name))) {
      throw new QuantizeError(`${src} is already quantized (tensor ${t.name} is ${t.dtype}); quantize its float checkpoint instead`)
    }
    if (!isDType(t.dtype)) throw new QuantizeError(`${src}: tensor ${t.name} has dtype ${t.dtype}, which cannot be copied`)
  }
  return { config, headers }
}

/** The smallest shard limit (within 2 %) that splits the output into at most as many files as the source has. */
function shardLimitFor(sources: readonly TensorSource[], sourceFiles: number): number {
  if (sourceFiles <= 1) return DEFAULT_SHARD_BYTES
  let limit = Math.ceil(sources.reduce((n, t) => n + tensorBytes(t), 0) / sourceFiles)
  while (planShards(sources, limit).length > sourceFiles) limit = Math.ceil(limit * 1.02)
  return limit
}

export async function quantizeCheckpoint(o: QuantizeOptions): Promise<QuantizeResult> {
  if (resolve(o.src) === resolve(o.out)) throw new QuantizeError(`--out must differ from the source ${o.src} (the float checkpoint is kept)`)
  const { config, headers } = await readSource(o.src)
  const reader = new CheckpointReader(o.src, headers)
  const sources: TensorSource[] = []
  const quantized: QuantizeResult['quantized'] = []
  const keptFloat: string[] = []
  const names = [...headers.tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  for (const name of names) {
    const e = headers.tensors.get(name)!
    const qt = quantTypeFor(name, e.shape, o.type, e.dtype)
    if (qt) {
      sources.push(...quantizedSources(name, e.shape, qt, () => reader.floats(name)))
      quantized.push({ name, type: qt })
    } else {
      if (QUANTIZABLE.test(name) && e.shape.length === 2) keptFloat.push(name)
      sources.push({ name, dtype: e.dtype as TensorSource['dtype'], shape: e.shape, openBytes: () => reader.bytes(name) })
    }
  }
  const maxShard = o.maxShardBytes ?? shardLimitFor(sources, headers.files.length)
  if (o.onTensor) {
    let done = 0
    for (const [i, src] of sources.entries()) {
      if (src.name.endsWith('.weight_scale') || !('openBytes' in src)) continue
      const open = src.openBytes.bind(src)
      sources[i] = { ...src, openBytes: () => (o.onTensor!(done++, names.length, src.name), open()) }
    }
  }

  const staging = await stagingDir(o.out)
  try {
    const written = await writeWeights(staging, sources, maxShard)
    const out = { ...config, quantization_config: quantizationConfig(o.type) }
    await writeFile(join(staging, 'config.json'), JSON.stringify(out, null, 2) + '\n')
    const copied: string[] = []
    for (const f of await readdir(o.src, { withFileTypes: true })) {
      if (!f.isFile() || f.name === 'config.json' || WEIGHT_FILE.test(f.name) || f.name.endsWith('.safetensors') || f.name.startsWith('.')) continue
      await copyFile(join(o.src, f.name), join(staging, f.name))
      copied.push(f.name)
    }
    await reader.close()
    await publishDir(staging, o.out)
    return { files: written.files, fileBytes: written.fileBytes, srcBytes: headers.dataBytes, quantized, keptFloat, copied }
  } catch (e) {
    await reader.close().catch(() => {})
    await discardStaging(staging)
    throw e
  }
}

// Streaming safetensors writer: header first (8-byte LE length, JSON padded with spaces to a multiple
// of 8), then each tensor's data produced chunk by chunk, so a multi-gigabyte checkpoint never has to
// exist in memory. Sharded layout as Hugging Face writes it: model-0000N-of-0000M.safetensors plus
// model.safetensors.index.json.
import { open, writeFile } from 'node:fs/promises'
import { endianness } from 'node:os'
import { join } from 'node:path'
import { f32ToBf16 } from './bf16.js'
import { INDEX_FILE, SINGLE_FILE } from '../safetensors-header.js'

export type DType = 'F32' | 'BF16' | 'F16' | 'I8' | 'U8' | 'F64' | 'I64' | 'I32' | 'I16' | 'BOOL'
export const DTYPE_BYTES: Record<DType, number> = { F32: 4, BF16: 2, F16: 2, I8: 1, U8: 1, F64: 8, I64: 8, I32: 4, I16: 2, BOOL: 1 }

export function isDType(s: string): s is DType {
  return s in DTYPE_BYTES
}

export interface TensorMeta {
  name: string
  dtype: DType
  shape: readonly number[]
}

/** A float tensor to write: `open()` returns a function that fills successive chunks of its elements,
 *  in row-major order, as float32 (converted to the target dtype, F32 or BF16, on the way out). */
export interface FloatTensorSource extends TensorMeta {
  open(): (out: Float32Array) => void
}

/** A tensor given as its stored bytes: `openBytes()` returns a function that fills successive chunks of
 *  them. Chunks are BYTE_CHUNK long (a multiple of 64) except the last, so a producer of fixed-size
 *  blocks (quantized weights) always gets whole blocks. */
export interface ByteTensorSource extends TensorMeta {
  openBytes(): (out: Uint8Array) => void | Promise<void>
}

export type TensorSource = FloatTensorSource | ByteTensorSource

export function tensorBytes(t: TensorMeta): number {
  return t.shape.reduce((n, d) => n * d, 1) * DTYPE_BYTES[t.dtype]
}

export interface Header {
  /** The 8-byte length prefix followed by the padded JSON header. */
  bytes: Buffer
  /** Size of the data section. */
  dataBytes: number
}

/** Builds the header for tensors stored in the given order, back to back. */
export function buildHeader(tensors: readonly TensorMeta[], metadata: Record<string, string> = { format: 'pt' }): Header {
  const obj: Record<string, unknown> = { __metadata__: metadata }
  let off = 0
  for (const t of tensors) {
    if (t.name in obj) throw new Error(`duplicate tensor name ${t.name}`)
    const end = off + tensorBytes(t)
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, end] }
    off = end
  }
  let json = JSON.stringify(obj)
  const len = Buffer.byteLength(json)
  json += ' '.repeat((8 - (len % 8)) % 8)
  const bytes = Buffer.alloc(8 + Buffer.byteLength(json))
  bytes.writeBigUInt64LE(BigInt(bytes.length - 8), 0)
  bytes.write(json, 8, 'utf8')
  return { bytes, dataBytes: off }
}

/** Hugging Face's save_pretrained default shard limit (what split the real checkpoint in two). */
export const DEFAULT_SHARD_BYTES = 5e9

const CHUNK_ELEMS = 1 << 20
export const BYTE_CHUNK = 1 << 22

/** Writes one safetensors file; tensors are stored in the order given. Returns the file size. */
export async function writeSafetensors(path: string, tensors: readonly TensorSource[]): Promise<number> {
  // safetensors data is little-endian; the float arrays are written as they lie in memory.
  if (endianness() !== 'LE') throw new Error('safetensors writer needs a little-endian host')
  const header = buildHeader(tensors)
  const fh = await open(path, 'w')
  try {
    await writeAll(fh, header.bytes)
    const f32 = new Float32Array(CHUNK_ELEMS)
    const u16 = new Uint16Array(CHUNK_ELEMS)
    let bytes: Uint8Array | undefined
    for (const t of tensors) {
      if ('openBytes' in t) {
        bytes ??= new Uint8Array(BYTE_CHUNK)
        const fill = t.openBytes()
        let left = tensorBytes(t)
        while (left > 0) {
          const n = Math.min(left, BYTE_CHUNK)
          const chunk = bytes.subarray(0, n)
          await fill(chunk)
          await writeAll(fh, Buffer.from(chunk.buffer, 0, n))
          left -= n
        }
        continue
      }
      if (t.dtype !== 'F32' && t.dtype !== 'BF16') throw new Error(`tensor ${t.name}: a float source writes F32 or BF16, not ${t.dtype}`)
      const fill = t.open()
      let left = t.shape.reduce((n, d) => n * d, 1)
      while (left > 0) {
        const n = Math.min(left, CHUNK_ELEMS)
        const chunk = f32.subarray(0, n)
        fill(chunk)
        if (t.dtype === 'BF16') {
          f32ToBf16(chunk, u16)
          await writeAll(fh, Buffer.from(u16.buffer, 0, n * 2))
        } else {
          await writeAll(fh, Buffer.from(f32.buffer, 0, n * 4))
        }
        left -= n
      }
    }
    return header.bytes.length + header.dataBytes
  } finally {
    await fh.close()
  }
}

async function writeAll(fh: Awaited<ReturnType<typeof open>>, buf: Buffer): Promise<void> {
  let done = 0
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done)
    done += bytesWritten
  }
}

/** Splits tensors (in order) into shards of at most `maxShardBytes` of tensor data, the way Hugging
 *  Face does: a new shard starts when the next tensor would overflow the current one; a tensor
 *  larger than the limit gets a shard of its own. */
export function planShards<T extends TensorMeta>(tensors: readonly T[], maxShardBytes: number): T[][] {
  const shards: T[][] = []
  let cur: T[] = []
  let size = 0
  for (const t of tensors) {
    const b = tensorBytes(t)
    if (cur.length > 0 && size + b > maxShardBytes) {
      shards.push(cur)
      cur = []
      size = 0
    }
    cur.push(t)
    size += b
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur)
  return shards
}

export function shardFileName(index: number, count: number): string {
  const p = (n: number) => String(n).padStart(5, '0')
  return `model-${p(index + 1)}-of-${p(count)}.safetensors`
}


export interface WrittenWeights {
  /** Weight files written, relative to the directory. */
  files: string[]
  /** Sum of tensor data bytes (the index's metadata.total_size). */
  totalSize: number
  /** Sum of file sizes, headers included. */
  fileBytes: number
}

/** Writes `model.safetensors`, or shards plus `model.safetensors.index.json` when the tensor data
 *  exceeds `maxShardBytes`. */
export async function writeWeights(dir: string, tensors: readonly TensorSource[], maxShardBytes: number): Promise<WrittenWeights> {
  const shards = planShards(tensors, maxShardBytes)
  const totalSize = tensors.reduce((n, t) => n + tensorBytes(t), 0)
  if (shards.length === 1) {
    const fileBytes = await writeSafetensors(join(dir, SINGLE_FILE), tensors)
    return { files: [SINGLE_FILE], totalSize, fileBytes }
  }
  const files: string[] = []
  const weightMap: Record<string, string> = {}
  let fileBytes = 0
  for (const [i, shard] of shards.entries()) {
    const file = shardFileName(i, shards.length)
    fileBytes += await writeSafetensors(join(dir, file), shard)
    files.push(file)
    for (const t of shard) weightMap[t.name] = file
  }
  const sortedMap = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  const index = { metadata: { total_size: totalSize }, weight_map: sortedMap }
  await writeFile(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n')
  return { files, totalSize, fileBytes }
}

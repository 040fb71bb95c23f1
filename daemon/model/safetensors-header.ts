// Reads and checks safetensors headers of a checkpoint directory (single file or sharded), without
// touching the tensor data: what the tools and benchmarks need to know about a checkpoint.
import { existsSync } from 'node:fs'
import { open, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'

/** The file names of a single-file and of a sharded checkpoint (Hugging Face convention). */
export const SINGLE_FILE = 'model.safetensors'
export const INDEX_FILE = 'model.safetensors.index.json'

export interface HeaderEntry {
  name: string
  dtype: string
  shape: number[]
  /** Byte offsets relative to the start of the data section. */
  begin: number
  end: number
}

export interface FileHeader {
  path: string
  /** Absolute file offset where the data section starts (8 + header length). */
  dataStart: number
  /** Entries in data-offset order. */
  tensors: HeaderEntry[]
  metadata: Record<string, string> | undefined
}

const ELEM_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 }
const MAX_HEADER = 100 * 1024 * 1024

/** Parses and validates one file's header: sizes match dtype×shape, the data section is covered
 *  exactly, back to back, and fits the file. Errors name the file. */
export async function readFileHeader(path: string): Promise<FileHeader> {
  const fh = await open(path, 'r')
  try {
    const size = (await fh.stat()).size
    const lenBuf = Buffer.alloc(8)
    if (size < 8 || (await fh.read(lenBuf, 0, 8, 0)).bytesRead !== 8) throw new Error(`${path}: too short for a safetensors file`)
    const len = Number(lenBuf.readBigUInt64LE(0))
    if (len > MAX_HEADER || 8 + len > size) throw new Error(`${path}: header length ${len} does not fit the file (${size} bytes)`)
    const jsonBuf = Buffer.alloc(len)
    await fh.read(jsonBuf, 0, len, 8)
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(jsonBuf.toString('utf8')) as Record<string, unknown>
    } catch (e) {
      throw new Error(`${path}: header is not JSON (${(e as Error).message})`)
    }
    const tensors: HeaderEntry[] = []
    for (const [name, v] of Object.entries(parsed)) {
      if (name === '__metadata__') continue
      const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] }
      const eb = ELEM_BYTES[e.dtype]
      if (eb === undefined) throw new Error(`${path}: tensor ${name} has unknown dtype ${e.dtype}`)
      const [begin, end] = e.data_offsets
      if (end - begin !== e.shape.reduce((n, d) => n * d, 1) * eb) throw new Error(`${path}: tensor ${name} byte range ${begin}..${end} does not match ${e.dtype}${JSON.stringify(e.shape)}`)
      tensors.push({ name, dtype: e.dtype, shape: e.shape, begin, end })
    }
    tensors.sort((a, b) => a.begin - b.begin)
    let off = 0
    for (const t of tensors) {
      if (t.begin !== off) throw new Error(`${path}: tensor ${t.name} starts at ${t.begin}, expected ${off} (gap or overlap)`)
      off = t.end
    }
    if (8 + len + off !== size) throw new Error(`${path}: data section is ${off} bytes but the file holds ${size - 8 - len}`)
    return { path, dataStart: 8 + len, tensors, metadata: parsed.__metadata__ as Record<string, string> | undefined }
  } finally {
    await fh.close()
  }
}

export interface CheckpointHeaders {
  files: FileHeader[]
  /** name → entry, across all files. */
  tensors: Map<string, HeaderEntry & { file: string }>
  /** Sum of tensor data bytes. */
  dataBytes: number
  /** Parsed model.safetensors.index.json, when sharded. */
  index?: { metadata: { total_size: number }; weight_map: Record<string, string> }
}

/** Reads every weight file's header of a checkpoint directory; checks the index against the shards. */
export async function readCheckpointHeaders(dir: string): Promise<CheckpointHeaders> {
  let index: CheckpointHeaders['index']
  let names: string[]
  if (existsSync(join(dir, INDEX_FILE))) {
    index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as CheckpointHeaders['index']
    names = [...new Set(Object.values(index!.weight_map))].sort()
  } else {
    await stat(join(dir, SINGLE_FILE))
    names = [SINGLE_FILE]
  }
  const files = await Promise.all(names.map((n) => readFileHeader(join(dir, n))))
  const tensors = new Map<string, HeaderEntry & { file: string }>()
  let dataBytes = 0
  for (const [i, f] of files.entries()) {
    for (const t of f.tensors) {
      if (tensors.has(t.name)) throw new Error(`${f.path}: tensor ${t.name} also appears in ${tensors.get(t.name)!.file}`)
      tensors.set(t.name, { ...t, file: names[i]! })
      dataBytes += t.end - t.begin
    }
  }
  if (index) {
    for (const [name, file] of Object.entries(index.weight_map)) {
      if (tensors.get(name)?.file !== file) throw new Error(`${join(dir, INDEX_FILE)}: weight_map says ${name} is in ${file}, but it is not there`)
    }
    if (tensors.size !== Object.keys(index.weight_map).length) throw new Error(`${join(dir, INDEX_FILE)}: weight_map lists ${Object.keys(index.weight_map).length} tensors, the shards hold ${tensors.size}`)
    if (index.metadata.total_size !== dataBytes) throw new Error(`${join(dir, INDEX_FILE)}: metadata.total_size ${index.metadata.total_size} but the shards hold ${dataBytes} bytes of tensor data`)
  }
  return { files, tensors, dataBytes, index }
}

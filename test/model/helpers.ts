// Shared helpers for the model tests: temp dirs, the shared golden cases, reading tensor data.
import { existsSync, readdirSync } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import type { CheckpointHeaders } from '../../daemon/model/safetensors-header.js'

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The reference material sits beside the repository, as ../shared. */
export const goldenDir = join(repoRoot, '..', 'shared', 'golden')

export function goldenCases(): string[] {
  return existsSync(goldenDir) ? readdirSync(goldenDir).filter((d) => existsSync(join(goldenDir, d, 'model.safetensors'))).sort() : []
}

export async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flashcheck-model-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Raw bytes of one tensor of a checkpoint. */
export async function tensorBytes(dir: string, h: CheckpointHeaders, name: string): Promise<Buffer> {
  const e = h.tensors.get(name)
  if (!e) throw new Error(`no tensor ${name}`)
  const file = h.files.find((f) => f.path === join(dir, e.file))!
  const fh = await open(file.path, 'r')
  try {
    const buf = Buffer.alloc(e.end - e.begin)
    await fh.read(buf, 0, buf.length, file.dataStart + e.begin)
    return buf
  } finally {
    await fh.close()
  }
}

export function asF32(b: Buffer): Float32Array {
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length))
}

export function asU16(b: Buffer): Uint16Array {
  return new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length))
}

/** Captures what a CLI function writes to stdout/stderr while it runs. */
export async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const o = process.stdout.write.bind(process.stdout)
  const e = process.stderr.write.bind(process.stderr)
  let out = ''
  let err = ''
  process.stdout.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stdout.write
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write
  try {
    return { code: await fn(), out, err }
  } finally {
    process.stdout.write = o
    process.stderr.write = e
  }
}

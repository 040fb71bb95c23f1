// The graph-building side of the ONNX export: float32 initializers (inline, or appended once to a shared
// external file) and a small node builder with constant folding of int64/float32 constants and shorthands
// for the ops the SambaY layers use. export.ts composes the model from these.
import { closeSync, openSync, writeSync } from 'node:fs'
import { basename } from 'node:path'
import { AT, type AttrP, DT, type GraphP, type NodeP, type TensorP } from './proto.js'

// ------------------------------------------------------------------------------------------- weights

/** Float32 initializers of both graphs: inline bytes, or appended once to the shared external file. */
export class WeightStore {
  private readonly done = new Map<string, TensorP>()
  private fd: number | undefined
  private offset = 0
  bytes = 0

  constructor(readonly externalPath: string | null) {
    if (externalPath) this.fd = openSync(externalPath, 'w')
  }

  add(name: string, data: Float32Array, dims: number[]): TensorP {
    const have = this.done.get(name)
    if (have) return have
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    let t: TensorP
    if (this.fd !== undefined) {
      // page-aligned offsets let onnxruntime map large initializers instead of copying them
      const align = bytes.length >= 1 << 20 ? 4096 : 64
      this.offset = Math.ceil(this.offset / align) * align
      let w = 0
      while (w < bytes.length) w += writeSync(this.fd, bytes, w, bytes.length - w, this.offset + w)
      t = {
        name, dims, data_type: DT.FLOAT, data_location: 1,
        external_data: [
          { key: 'location', value: basename(this.externalPath!) },
          { key: 'offset', value: String(this.offset) },
          { key: 'length', value: String(bytes.length) },
        ],
      }
      this.offset += bytes.length
    } else {
      t = { name, dims, data_type: DT.FLOAT, raw_data: bytes }
    }
    this.bytes += bytes.length
    this.done.set(name, t)
    return t
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }
}

// ------------------------------------------------------------------------------------------- graph builder

export type Attr = { name: string } & ({ f: number } | { i: number } | { ints: number[] } | { floats: number[] } | { g: GraphP })

function attr(a: Attr): AttrP {
  if ('f' in a) return { name: a.name, type: AT.FLOAT, f: a.f }
  if ('i' in a) return { name: a.name, type: AT.INT, i: a.i }
  if ('ints' in a) return { name: a.name, type: AT.INTS, ints: a.ints }
  if ('floats' in a) return { name: a.name, type: AT.FLOATS, floats: a.floats }
  return { name: a.name, type: AT.GRAPH, g: a.g }
}

export class Builder {
  readonly nodes: NodeP[] = []
  readonly inits: TensorP[] = []
  private readonly initNames = new Set<string>()
  private readonly consts = new Map<string, string>()
  private n = 0

  constructor(private readonly prefix = '') {}

  fresh(hint: string): string {
    return `${this.prefix}${hint}_${this.n++}`
  }

  op(type: string, inputs: string[], attrs: Attr[] = [], outputs?: string[] | number): string[] {
    const outs = Array.isArray(outputs) ? outputs : Array.from({ length: outputs ?? 1 }, () => this.fresh(type))
    this.nodes.push({ name: this.fresh(`n_${type}`), op_type: type, input: inputs, output: outs, attribute: attrs.map(attr) })
    return outs
  }

  /** Single-output op. */
  o(type: string, inputs: string[], attrs: Attr[] = [], out?: string): string {
    return this.op(type, inputs, attrs, out ? [out] : 1)[0]!
  }

  init(t: TensorP): string {
    if (!this.initNames.has(t.name)) {
      this.initNames.add(t.name)
      this.inits.push(t)
    }
    return t.name
  }

  private constant(key: string, make: () => TensorP): string {
    const have = this.consts.get(key)
    if (have) return have
    const t = make()
    this.consts.set(key, t.name)
    return this.init(t)
  }

  /** int64 constant (shapes, slice bounds, axes). */
  i64(values: (number | bigint)[], dims: number[] = [values.length]): string {
    return this.constant(`i64:${dims.join('x')}:${values.join(',')}`, () => {
      const b = new BigInt64Array(values.map((v) => BigInt(v)))
      return { name: this.fresh('c_i64'), dims, data_type: DT.INT64, raw_data: new Uint8Array(b.buffer) }
    })
  }

  /** float32 constant; scalar when dims is []. */
  f32(values: number[], dims: number[] = []): string {
    return this.constant(`f32:${dims.join('x')}:${values.join(',')}`, () => {
      const b = new Float32Array(values)
      return { name: this.fresh('c_f32'), dims, data_type: DT.FLOAT, raw_data: new Uint8Array(b.buffer) }
    })
  }

  // shorthands
  gemm(a: string, w: string, bias?: string): string {
    return this.o('Gemm', bias ? [a, w, bias] : [a, w], [{ name: 'transB', i: 1 }])
  }
  add(a: string, b: string): string {
    return this.o('Add', [a, b])
  }
  mul(a: string, b: string): string {
    return this.o('Mul', [a, b])
  }
  silu(x: string): string {
    return this.mul(x, this.o('Sigmoid', [x]))
  }
  /** x[start:end] along axis (end may be INT64_MAX, negative values count from the end). */
  slice(x: string, start: number | bigint | string, end: number | bigint, axis: number): string {
    const s = typeof start === 'string' ? start : this.i64([start])
    return this.o('Slice', [x, s, this.i64([end]), this.i64([axis])])
  }
  reshape(x: string, shape: number[]): string {
    return this.o('Reshape', [x, this.i64(shape)])
  }
  transpose(x: string, perm: number[]): string {
    return this.o('Transpose', [x], [{ name: 'perm', ints: perm }])
  }
  unsqueeze(x: string, axes: number[]): string {
    return this.o('Unsqueeze', [x, this.i64(axes)])
  }
  /** dims [0] of x as a [1] int64 tensor. */
  len0(x: string): string {
    return this.o('Shape', [x], [{ name: 'start', i: 0 }, { name: 'end', i: 1 }])
  }
}

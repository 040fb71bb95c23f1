// Two tiny hand-assembled WebAssembly modules for machine measurements that JS alone cannot make
// well: a SIMD streaming read (memory bandwidth) and a chain of dependent integer ops (clock rate).
// Built as bytes here so the benchmark needs no toolchain beyond Node.

function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return out
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body]
}

function str(s: string): number[] {
  return [...uleb(s.length), ...Buffer.from(s, 'utf8')]
}

const I32 = 0x7f
const V128 = 0x7b
const OP = {
  localGet: 0x20, localSet: 0x21, localTee: 0x22, i32Const: 0x41, i32Add: 0x6a, i32Sub: 0x6b, i32Xor: 0x73,
  i32GeU: 0x4f, block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b, void: 0x40, simd: 0xfd,
}
const SIMD = { load: 0x00, or: 0x50, i32x4ExtractLane: 0x1b }

function module(opts: { importMemory: boolean; params: number; localDecls: [number, number][]; body: number[]; name: string }): Uint8Array<ArrayBuffer> {
  const type = section(1, [1, 0x60, opts.params, ...Array(opts.params).fill(I32), 1, I32])
  // Shared memory, min 1 page, max 65536 pages (4 GiB): limits flag 3 = has-max + shared.
  const imp = opts.importMemory ? section(2, [1, ...str('env'), ...str('mem'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]) : []
  const func = section(3, [1, 0])
  const exp = section(7, [1, ...str(opts.name), 0x00, 0])
  const locals = [...uleb(opts.localDecls.length), ...opts.localDecls.flatMap(([n, t]) => [...uleb(n), t])]
  const fn = [...locals, ...opts.body, OP.end]
  const code = section(10, [1, ...uleb(fn.length), ...fn])
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...imp, ...func, ...exp, ...code])
}

/** `read(ptr, bytes) -> i32`: ORs every 16-byte vector of [ptr, ptr+bytes) into four accumulators
 *  (independent, so loads are the only limit). `bytes` must be a multiple of 128. */
export function readModule(): Uint8Array<ArrayBuffer> {
  const [p, n, end] = [0, 1, 2]
  const acc = [3, 4, 5, 6]
  const body: number[] = [
    OP.localGet, p, OP.localGet, n, OP.i32Add, OP.localSet, end,
    OP.block, OP.void, OP.loop, OP.void,
    OP.localGet, p, OP.localGet, end, OP.i32GeU, OP.brIf, 1,
  ]
  for (let k = 0; k < 8; k++) {
    body.push(OP.localGet, acc[k % 4]!, OP.localGet, p, OP.simd, SIMD.load, 4, ...uleb(16 * k), OP.simd, SIMD.or, OP.localSet, acc[k % 4]!)
  }
  body.push(OP.localGet, p, OP.i32Const, ...[0x80, 0x01], OP.i32Add, OP.localSet, p, OP.br, 0, OP.end, OP.end)
  body.push(OP.localGet, acc[0]!, OP.localGet, acc[1]!, OP.simd, SIMD.or, OP.localGet, acc[2]!, OP.simd, SIMD.or)
  body.push(OP.localGet, acc[3]!, OP.simd, SIMD.or, OP.simd, SIMD.i32x4ExtractLane, 0)
  return module({ importMemory: true, params: 2, localDecls: [[1, I32], [4, V128]], body, name: 'read' })
}

/** Ops in one iteration of `spin`'s dependency chain. */
export const SPIN_CHAIN = 32

/** `spin(iterations, y) -> i32`: each iteration runs SPIN_CHAIN dependent single-cycle integer ops
 *  (add, xor alternating) on one value, so an iteration takes SPIN_CHAIN clock cycles. */
export function spinModule(): Uint8Array<ArrayBuffer> {
  const [n, y, x] = [0, 1, 2]
  const body: number[] = [OP.localGet, y, OP.localSet, x, OP.loop, OP.void, OP.localGet, x]
  for (let k = 0; k < SPIN_CHAIN / 2; k++) body.push(OP.localGet, y, OP.i32Add, OP.localGet, n, OP.i32Xor)
  body.push(OP.localSet, x, OP.localGet, n, OP.i32Const, 1, OP.i32Sub, OP.localTee, n, OP.brIf, 0, OP.end, OP.localGet, x)
  return module({ importMemory: false, params: 2, localDecls: [[1, I32]], body, name: 'spin' })
}

/** The WebAssembly global, typed for what this benchmark uses (the project compiles without DOM
 *  typings, which is where TypeScript declares it). */
interface WasmApi {
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object
  Instance: new (module: object, imports?: object) => { exports: Record<string, unknown> }
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: SharedArrayBuffer }
}
export const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

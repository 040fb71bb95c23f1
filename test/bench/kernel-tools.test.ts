// The measuring tools of bench/kernel: hand-assembled WebAssembly, statistics, the peak table.
import t from 'tap'
import { fp32FlopsPerCycle } from '../../bench/kernel/cpu-peak.js'
import { measureBandwidth } from '../../bench/kernel/membw.js'
import { summarize } from '../../bench/kernel/stats.js'
import { readModule, SPIN_CHAIN, spinModule, wasm } from '../../bench/kernel/wasm.js'

t.test('read module ORs lane 0 of every 16-byte vector in the range, and nothing outside it', async (t) => {
  const memory = new wasm.Memory({ initial: 1, maximum: 1, shared: true })
  const read = new wasm.Instance(new wasm.Module(readModule()), { env: { mem: memory } }).exports.read as (p: number, n: number) => number
  const words = new Uint32Array(memory.buffer)
  words[4 * 3] = 0x1 // vector 3, lane 0
  words[4 * 100] = 0x100 // vector 100, lane 0
  words[4 * 7 + 1] = 0x10000 // lane 1: not in the result
  words[4 * 200] = 0x40 // byte 3200: outside [0, 3072)
  t.equal(read(0, 2048), 0x101)
  t.equal(read(2048, 1024), 0, 'the range starts at ptr')
  t.equal(read(3072, 1024), 0x40)
  t.equal(read(0, 0), 0, 'empty range')
})

t.test('spin module runs the documented dependency chain', async (t) => {
  const spin = new wasm.Instance(new wasm.Module(spinModule())).exports.spin as (n: number, y: number) => number
  const ref = (n: number, y: number) => {
    let x = y
    for (; n > 0; n--) for (let k = 0; k < SPIN_CHAIN / 2; k++) x = ((x + y) | 0) ^ n
    return x
  }
  for (const [n, y] of [[1, 5], [7, 123456789], [1000, -3]] as const) t.equal(spin(n, y), ref(n, y), `spin(${n}, ${y})`)
})

t.test('summary statistics', async (t) => {
  t.match(summarize([3, 1, 2]), { n: 3, median: 2, p99: 3, min: 1, max: 3, mean: 2 })
  t.equal(summarize([4, 1, 3, 2]).median, 2.5)
  const hundred = Array.from({ length: 200 }, (_, i) => i + 1)
  t.equal(summarize(hundred).p99, 198, 'nearest rank')
  t.throws(() => summarize([]))
})

t.test('fp32 FLOPs per cycle by ISA', async (t) => {
  const cpu = (arch: string, flags: string[], vendor = '', family = 0) => ({ model: '', arch, flags: new Set(flags), vendor, family })
  t.equal(fp32FlopsPerCycle(cpu('x64', ['avx512f', 'avx2', 'fma'], 'AuthenticAMD', 0x1a)).flops, 64, 'Zen 5')
  t.equal(fp32FlopsPerCycle(cpu('x64', ['avx512f', 'avx2', 'fma'], 'AuthenticAMD', 0x19)).flops, 32, 'Zen 4')
  t.equal(fp32FlopsPerCycle(cpu('x64', ['avx512f'], 'GenuineIntel', 6)).flops, 64)
  t.equal(fp32FlopsPerCycle(cpu('x64', ['avx2', 'fma'])).flops, 32)
  t.equal(fp32FlopsPerCycle(cpu('x64', ['sse2'])).flops, 8)
  t.equal(fp32FlopsPerCycle(cpu('arm64', ['asimd'])).flops, 16)
})

t.test('bandwidth measurement reports every working set it was asked for', async (t) => {
  const r = await measureBandwidth({ threads: 2, bytes: 4 << 20, reps: 2, sweep: [1 << 20], singleThread: true })
  t.equal(r.headline.bytes, 4 << 20)
  t.equal(r.headline.threads, 2)
  t.equal(r.singleThread?.threads, 1)
  t.same(r.sweep.map((p) => p.bytes), [1 << 20])
  for (const p of [r.headline, r.singleThread!, ...r.sweep]) t.ok(p.gbps.n === 2 && p.gbps.min > 0, 'two positive samples')
})

// fp32 peak estimate: clock measured now (a chain of dependent single-cycle integer ops, so
// iterations × chain length = cycles) × fp32 FLOPs per cycle per core for the best vector ISA the
// CPU reports × cores used. The kernel exposes no FMA microbenchmark, so the per-cycle figure comes
// from the ISA and micro-architecture (documented per case below), not from a measurement.
import { readFileSync } from 'node:fs'
import { SPIN_CHAIN, spinModule, wasm } from './wasm.js'

export interface CpuInfo {
  model: string
  arch: string
  flags: Set<string>
  vendor: string
  family: number
}

export function cpuInfo(): CpuInfo {
  let text = ''
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8')
  } catch {
    // not Linux: fields stay empty and the peak falls back to the scalar figure
  }
  const field = (re: RegExp) => re.exec(text)?.[1]?.trim() ?? ''
  return {
    model: field(/^model name\s*:(.*)$/m) || field(/^Hardware\s*:(.*)$/m) || process.arch,
    arch: process.arch,
    flags: new Set((field(/^flags\s*:(.*)$/m) || field(/^Features\s*:(.*)$/m)).split(/\s+/).filter(Boolean)),
    vendor: field(/^vendor_id\s*:(.*)$/m),
    family: Number(field(/^cpu family\s*:(.*)$/m) || 0),
  }
}

/** The widest vector ISA the CPU reports, as the machine line of a JavaScript-only bench names it. */
export function vectorIsa(c: CpuInfo): string {
  return c.arch === 'arm64' ? 'neon' : c.flags.has('avx512f') ? 'avx512' : c.flags.has('avx2') ? 'avx2' : 'generic'
}

/** fp32 FLOPs per cycle per core (an FMA counts 2), with the reasoning. */
export function fp32FlopsPerCycle(c: CpuInfo): { flops: number; basis: string } {
  const f = c.flags
  if (c.arch === 'x64') {
    if (f.has('avx512f')) {
      // Zen 4 (family 0x19) runs 512-bit ops on 256-bit units; Zen 5 (0x1a) and Intel server cores
      // have two full 512-bit FMA pipes (Intel parts with one are over-estimated: a generous peak).
      if (c.vendor === 'AuthenticAMD' && c.family < 0x1a) return { flops: 32, basis: 'AVX-512 on Zen 4: 2 x 256-bit FMA pipes' }
      return { flops: 64, basis: 'AVX-512: 2 x 512-bit FMA pipes (16 fp32 lanes x 2 FLOP x 2)' }
    }
    if (f.has('avx2') && f.has('fma')) return { flops: 32, basis: 'AVX2+FMA: 2 x 256-bit FMA pipes' }
    return { flops: 8, basis: 'SSE2: 128-bit add + multiply pipes' }
  }
  if (c.arch === 'arm64') {
    // Cortex-A78AE (Jetson Orin) and most Armv8.2 cores: 2 x 128-bit NEON FMA pipes.
    return { flops: 16, basis: 'NEON: 2 x 128-bit FMA pipes (Cortex-A78AE class)' }
  }
  return { flops: 2, basis: 'scalar FMA' }
}

/** Clock rate under load in GHz: best of `reps` timed runs of the dependent-op chain. */
export function measureClockGHz(reps = 7): number {
  const spin = new wasm.Instance(new wasm.Module(spinModule())).exports.spin as (n: number, y: number) => number
  spin(100_000, 1) // compile and warm up
  const iters = 20_000_000
  let best = 0
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now()
    spin(iters, r + 3)
    const secs = (performance.now() - t0) / 1000
    best = Math.max(best, (iters * SPIN_CHAIN) / secs / 1e9)
  }
  return best
}

export interface PeakEstimate {
  clockGHz: number
  flopsPerCycle: number
  cores: number
  gflops: number
  basis: string
}

export function estimatePeak(cores: number): PeakEstimate {
  const c = cpuInfo()
  const { flops, basis } = fp32FlopsPerCycle(c)
  const clockGHz = measureClockGHz()
  return { clockGHz, flopsPerCycle: flops, cores, gflops: clockGHz * flops * cores, basis }
}

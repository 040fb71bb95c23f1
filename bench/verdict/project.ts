// Projected cost of one model-assisted verdict for the real Phi-4-mini-flash-reasoning (3.85B, bf16) on
// Jetson Orin modules, from bytes moved and FLOPs (a roofline: the slower of the two bounds). A verdict with
// a cached prompt prefix is one prefill pass over the request suffix (self-decoder for every suffix token,
// cross-decoder and LM head for the last one, spec §4) plus the prefix-state clone; single-token labels are
// scored from those logits, each multi-token label adds a pass.
import { archFromConfig } from '../../daemon/model/arch.js'
import { estimate, flops } from '../../daemon/model/offline/estimate.js'
import { findPreset } from '../../daemon/model/offline/presets.js'

/** Vendor peak figures (assumptions, stated): DRAM bandwidth; GPU dense FP16 tensor throughput taken as a
 *  quarter of NVIDIA's sparse INT8 GPU TOPS; CPU FP32 FMA peak of the Cortex-A78AE cluster (2×128-bit NEON). */
export const DEVICES = [
  { name: 'Jetson AGX Orin 64GB', bw: 204.8e9, gpuFlops: 170e12 / 4, cpuFlops: 12 * 2.2e9 * 16 },
  { name: 'Jetson Orin NX 16GB', bw: 102.4e9, gpuFlops: 100e12 / 4 * 0.6, cpuFlops: 8 * 2.0e9 * 16 },
]

export interface VerdictShape {
  prefixTokens: number
  suffixTokens: number
  labels: number
  /** Labels longer than one token: each needs a pass of its own. */
  extraLabelPasses: number
}

export function projectVerdict(v: VerdictShape): Record<string, string | number>[] {
  const cfg = findPreset('phi4-mini-flash')!.config
  const arch = archFromConfig(cfg)
  const e = estimate(arch)
  const f = flops(arch)
  const passes = 1 + v.extraLabelPasses
  const clone = 2 * e.stateConstBytes // copied out of the cached prefix state
  const kv = e.stateBytesPerToken * (v.prefixTokens + v.suffixTokens) // full-attention K/V read, fp32
  const bytes = passes * e.bytesBf16 + clone + kv
  const cached = f.prefill(v.prefixTokens, v.suffixTokens) + v.extraLabelPasses * f.step(v.prefixTokens + v.suffixTokens)
  const uncached = f.prefill(0, v.prefixTokens + v.suffixTokens)
  const rows: Record<string, string | number>[] = []
  const ms = (x: number) => Math.round(x * 1e4) / 10
  for (const d of DEVICES) {
    for (const [engine, peak] of [['GPU fp16 (TensorRT)', d.gpuFlops], ['CPU fp32 (native kernel)', d.cpuFlops]] as const) {
      const tMem = bytes / d.bw
      const tCached = Math.max(tMem, cached / peak)
      const tUncached = Math.max(tMem, uncached / peak)
      rows.push({
        device: d.name,
        engine,
        'GB moved': Math.round(bytes / 1e8) / 10,
        'GFLOP cached': Math.round(cached / 1e9),
        'ms memory bound': ms(tMem),
        'ms cached prefix': ms(tCached),
        'ms no cache': ms(tUncached),
        'at 75% of bandwidth': ms(Math.max(tMem / 0.75, cached / peak)),
      })
    }
  }
  return rows
}

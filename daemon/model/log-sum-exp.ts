// A logits row's log-softmax normaliser, log Σ exp(x) = max + log Σ exp(x − max), in float64. Label scoring needs
// one per row it reads, on the event loop: the native kernel's vectorised loop takes ~0.1 ms (AVX-512) to ~0.3 ms
// (AVX2) for the real model's 200k logits, where JavaScript's Math.exp takes 2–5 ms. Where the addon does not load,
// the same sum runs in JavaScript; both agree to ~1e-14.
import { loadAddon } from './addon.js'

export type LogSumExp = (logits: Float32Array, offset: number, n: number) => number

/** The sum in JavaScript (float64 exp and sum); NaN or +inf logits give NaN. */
export function logSumExpJs(logits: Float32Array, offset: number, n: number): number {
  let max = -Infinity
  for (let i = 0; i < n; i++) if (logits[offset + i]! > max) max = logits[offset + i]!
  let sum = 0
  for (let i = 0; i < n; i++) sum += Math.exp(logits[offset + i]! - max)
  return max + Math.log(sum)
}

let impl: LogSumExp | undefined

/** The native loop when the addon loads, else logSumExpJs; chosen on the first call. */
export const logSumExp: LogSumExp = (logits, offset, n) => (impl ??= pick())(logits, offset, n)

function pick(): LogSumExp {
  try {
    const native = loadAddon<{ logSumExp?: LogSumExp }>().logSumExp
    if (typeof native === 'function') return native
  } catch {
    // no addon: the JavaScript loop
  }
  return logSumExpJs
}

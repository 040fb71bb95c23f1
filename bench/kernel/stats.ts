// Summary statistics of repeated measurements.

export interface Summary {
  n: number
  median: number
  /** Nearest-rank 99th percentile (with fewer than 100 samples, the largest). */
  p99: number
  min: number
  max: number
  mean: number
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples')
  const s = [...samples].sort((a, b) => a - b)
  const n = s.length
  const median = n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2
  const p99 = s[Math.min(n - 1, Math.ceil(0.99 * n) - 1)]!
  return { n, median, p99, min: s[0]!, max: s[n - 1]!, mean: s.reduce((a, b) => a + b, 0) / n }
}

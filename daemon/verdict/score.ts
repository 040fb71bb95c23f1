// Choice scoring arithmetic: log-probabilities of label tokens from logits rows, and the softmax over
// labels that turns summed log-probabilities into a confidence.

/** log softmax(row)[token] for the row starting at `offset` of length V (stable: max-shifted). */
export function logProbAt(logits: Float32Array, offset: number, V: number, token: number): number {
  let max = -Infinity
  for (let i = 0; i < V; i++) if (logits[offset + i]! > max) max = logits[offset + i]!
  let sum = 0
  for (let i = 0; i < V; i++) sum += Math.exp(logits[offset + i]! - max)
  return logits[offset + token]! - max - Math.log(sum)
}

export function argmaxRow(logits: Float32Array, offset: number, V: number): number {
  let best = 0
  for (let i = 1; i < V; i++) if (logits[offset + i]! > logits[offset + best]!) best = i
  return best
}

/** Softmax over the labels' sequence log-probabilities; ties go to the earlier label (deterministic). */
export function choose(labels: string[], logps: number[]): { choice: string; confidence: number; probs: number[] } {
  let max = -Infinity
  for (const l of logps) if (l > max) max = l
  const e = logps.map((l) => Math.exp(l - max))
  const z = e.reduce((a, b) => a + b, 0)
  const probs = e.map((x) => x / z)
  let best = 0
  for (let i = 1; i < probs.length; i++) if (logps[i]! > logps[best]!) best = i
  return { choice: labels[best]!, confidence: probs[best]!, probs }
}

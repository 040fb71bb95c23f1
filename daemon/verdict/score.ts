// Choice scoring arithmetic: log-probabilities of label tokens from logits rows, and the softmax over
// labels that turns summed log-probabilities into a confidence.
import { type LogSumExp, logSumExp } from '../model/log-sum-exp.js'

/**
 * log softmax over the rows of one logits array, each row's normaliser computed once: every label reads the
 * same rows (a normaliser is a pass over the whole vocabulary, 200k entries for the real model).
 */
export class RowLogProbs {
  private readonly norms = new Map<number, number>()

  constructor(private readonly logits: Float32Array, private readonly V: number, private readonly lse: LogSumExp = logSumExp) {}

  /** log softmax(row `row`)[token]. */
  at(row: number, token: number): number {
    let n = this.norms.get(row)
    if (n === undefined) {
      n = this.lse(this.logits, row * this.V, this.V)
      this.norms.set(row, n)
    }
    return this.logits[row * this.V + token]! - n
  }
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

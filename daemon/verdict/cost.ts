// What a decoder call costs on this machine, learnt from the calls themselves: a fixed part per call and a
// part per token, as exponentially weighted means. The scheduler asks it whether work fits in a budget, with
// the one formula for a verdict job's work (admission before it starts, checkpoints while it runs).

/** ms to clone a decoder state (prefix cache, label passes). */
export const CLONE_MS = 0.2

export class CostModel {
  /** ms of a 1-token call (dispatch, state bookkeeping, the LM head, memory-bound decode). */
  perCallMs: number
  /** Additional ms per token in a multi-token prefill (compute-bound). */
  perTokenMs: number
  /** ms between the kernel finishing and its result reaching the caller (thread hand-offs), capped. */
  hopMs = 0.2
  private readonly alpha = 0.2

  constructor(perCallMs = 5, perTokenMs = 1) {
    this.perCallMs = perCallMs
    this.perTokenMs = perTokenMs
  }

  /** Predicted ms of one call feeding `tokens` tokens. */
  call(tokens: number): number {
    return tokens <= 0 ? 0 : this.hopMs + this.perCallMs + (tokens - 1) * this.perTokenMs
  }

  /** Predicted ms to feed `n` tokens in calls of `chunk`, the last call carrying `fold` extra (label) tokens. */
  feed(n: number, chunk: number, fold = 0): number {
    return Math.floor(n / chunk) * this.call(chunk) + this.call((n % chunk) + fold)
  }

  /** Predicted ms of scoring labels[from…] in passes of their own (none when the labels are folded). */
  labels(labels: readonly Int32Array[], from = 0, folded = false): number {
    if (folded) return 0
    let ms = 0
    for (let i = from; i < labels.length; i++) if (labels[i]!.length > 1) ms += CLONE_MS + this.call(labels[i]!.length - 1)
    return ms
  }

  /** Predicted ms of a whole verdict job: the state clone, the prompt suffix (in chunks), the label passes. */
  job(feed: number, chunk: number, labels: readonly Int32Array[], fold: number): number {
    return CLONE_MS + this.feed(feed, chunk, fold) + this.labels(labels, 0, fold > 0)
  }

  /**
   * One call: `ms` as measured where it ran; `wallMs`, when given, as the caller saw it. The difference is the
   * hand-off cost, capped so that an event loop held up by a burst does not look like a slow decoder.
   */
  observe(tokens: number, ms: number, wallMs?: number): void {
    if (tokens <= 0 || !(ms >= 0)) return
    if (wallMs !== undefined && wallMs >= ms) this.hopMs += this.alpha * (Math.min(wallMs - ms, 3) - this.hopMs)
    if (tokens === 1) {
      this.perCallMs += this.alpha * (ms - this.perCallMs)
      return
    }
    const per = Math.max(0, (ms - this.perCallMs) / (tokens - 1))
    this.perTokenMs += this.alpha * (per - this.perTokenMs)
  }

  /** Replaces the estimates outright (calibration at load). */
  set(perCallMs: number, perTokenMs: number, hopMs = this.hopMs): void {
    this.perCallMs = perCallMs
    this.perTokenMs = Math.max(0, perTokenMs)
    this.hopMs = hopMs
  }
}

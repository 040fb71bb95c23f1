// What a decoder call costs on this machine, learnt from the calls themselves: a fixed part per call and a
// part per token, as exponentially weighted means. The scheduler asks it whether work fits in a budget.

export class CostModel {
  /** ms of a 1-token call (dispatch, state bookkeeping, the LM head, memory-bound decode). */
  perCallMs: number
  /** Additional ms per token in a multi-token prefill (compute-bound). */
  perTokenMs: number
  private readonly alpha = 0.2

  constructor(perCallMs = 5, perTokenMs = 1) {
    this.perCallMs = perCallMs
    this.perTokenMs = perTokenMs
  }

  /** Predicted ms of one call feeding `tokens` tokens. */
  call(tokens: number): number {
    return tokens <= 0 ? 0 : this.perCallMs + (tokens - 1) * this.perTokenMs
  }

  observe(tokens: number, ms: number): void {
    if (tokens <= 0 || !(ms >= 0)) return
    if (tokens === 1) {
      this.perCallMs += this.alpha * (ms - this.perCallMs)
      return
    }
    const per = Math.max(0, (ms - this.perCallMs) / (tokens - 1))
    this.perTokenMs += this.alpha * (per - this.perTokenMs)
  }

  /** Replaces the estimates outright (calibration at load). */
  set(perCallMs: number, perTokenMs: number): void {
    this.perCallMs = perCallMs
    this.perTokenMs = Math.max(0, perTokenMs)
  }
}

// What the verdict engine reports for one request: a scored choice, or why the rule's fallback stands in.

export interface TokenCounts {
  /** Prompt tokens. */
  prompt: number
  /** Of those, taken from the prefix cache. */
  cached: number
  /** Tokens run through the decoder for this request (prompt suffix and label tokens). */
  computed: number
}

/** decided: the checks' verdict already is the most severe any choice could give (no decoder run). */
export type SkipReason = 'budget' | 'overload' | 'queue_full' | 'deadline' | 'prompt' | 'decoder_error' | 'shutdown' | 'decided'

/** `skipped`: never started (no time, overload); `aborted`: started, could not finish. */
export type ModelOutcome =
  | { status: 'ok'; choice: string; confidence: number; scores: Record<string, number>; ms: number; prefix_cached: boolean; tokens: TokenCounts; calls: number }
  | { status: 'skipped' | 'aborted'; reason: SkipReason; detail: string; ms: number; tokens?: TokenCounts }

/** Text generated after a verdict, for rules with `explain`. */
export interface Explanation {
  text: string
  tokens: number
  ms: number
}

/** Rounds to microseconds (ms values in outcomes and logs). */
export function round(x: number): number {
  return Math.round(x * 1000) / 1000
}

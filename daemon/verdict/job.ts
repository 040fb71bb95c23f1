// One request's decoder work, from admission to its single outcome.
import { performance } from 'node:perf_hooks'
import type { Explanation, ModelOutcome, SkipReason, TokenCounts } from './outcome.js'
import { round } from './outcome.js'
import type { RulePlan } from './prompt-plan.js'

export interface Job {
  inspection: string
  plan: RulePlan
  tokens: Int32Array
  cached: number
  /** performance.now() time by which the verdict must be published. */
  deadline: number
  /** performance.now() time at which its fallback is due (deadline minus the guard when it was queued). */
  due?: number
  /** Predicted ms of its decoder work (CostModel.job). */
  est: number
  /** While running: when its remaining work is predicted to end. */
  estEnd: number
  done: boolean
  /** Reports the outcome; only the first call counts. */
  settle: (o: ModelOutcome) => void
  timer?: NodeJS.Timeout
  t0: number
  onExplain?: (e: Explanation) => void
  maxExplain: number
}

export function counts(job: Job, computed: number): TokenCounts {
  return { prompt: job.tokens.length, cached: job.cached, computed }
}

/** Never started. */
export function skipped(job: Job, reason: SkipReason, detail: string): ModelOutcome {
  return { status: 'skipped', reason, detail, ms: round(performance.now() - job.t0), tokens: counts(job, 0) }
}

/** Started, could not finish. */
export function aborted(job: Job, reason: SkipReason, detail: string): ModelOutcome {
  return { status: 'aborted', reason, detail, ms: round(performance.now() - job.t0), tokens: counts(job, 0) }
}

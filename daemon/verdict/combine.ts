// How the model's part joins the checks' verdict of a reason rule: whether the decoder is worth asking at all,
// and the verdict once it answered (its choice, or the rule's fallback when it could not or was unsure).
import type { CompiledRule } from '../rules/types.js'
import type { ModelOutcome } from './outcome.js'

/** The model step of a reason rule as reported: the decoder's outcome, and whether its choice was used. */
export type ModelReport = ModelOutcome & { below_min_confidence?: boolean }

/**
 * Why the decoder need not run for a reason rule whose checks gave `verdict`, or undefined when it should:
 * with `combine: max` a verdict already at least as severe as every choice and the fallback stands as it is.
 */
export function decidedByChecks(rule: CompiledRule, verdict: string): string | undefined {
  const step = rule.reason
  if (!step || step.combine !== 'max') return undefined
  const sev = (v: string) => rule.verdicts.indexOf(v)
  if (sev(verdict) < Math.max(sev(step.fallback), ...step.choices.map(sev))) return undefined
  return `the checks give ${verdict}; no choice could make the verdict more severe`
}

/** The outcome with the model's part: its choice (or the fallback) combined with the checks' verdict. */
export function withModel<T extends { verdict: string }>(rule: CompiledRule, outcome: T, model: ModelOutcome): T & { model: ModelReport; fallback?: true } {
  const step = rule.reason!
  let label = step.fallback
  let report: ModelReport = model
  let fallback = true
  if (model.status === 'ok') {
    if (model.confidence >= step.minConfidence) {
      label = model.choice
      fallback = false
    } else report = { ...model, below_min_confidence: true }
  }
  let verdict = label
  if (step.combine === 'max' && rule.verdicts.indexOf(outcome.verdict) > rule.verdicts.indexOf(label)) verdict = outcome.verdict
  return fallback ? { ...outcome, verdict, model: report, fallback: true } : { ...outcome, verdict, model: report }
}

/** True when the model's outcome means it missed its deadline (no time, overload), as opposed to a bad prompt or a decoder fault. */
export function modelMissedDeadline(model: ModelOutcome): boolean {
  return model.status !== 'ok' && model.reason !== 'prompt' && model.reason !== 'decoder_error'
}

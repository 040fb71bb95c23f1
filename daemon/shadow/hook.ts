// What the service asks of a shadow rule set (rules.shadowDir): see the same messages, judge them, and compare
// with the serving verdict once it is out. The per-message part travels in the Exchange as a ShadowVerdict.
import type { CompiledRule, InspectionResult } from '../rules/types.js'
import type { ModelOutcome } from '../verdict/outcome.js'

/** The shadow set's judgment of one message, before the model part is known. */
export interface ShadowVerdict {
  rule: CompiledRule
  result: InspectionResult
  /** The serving rule's prompt: the model's answer is shared only when the shadow prompt is identical. */
  servingPrompt?: string
  topic: string
}

export interface ShadowHook {
  /** A message on no request topic: kept in the shadow set's own signal windows. */
  sample(topic: string, payload: Buffer, now: number): void
  /** Judges the message the serving `rule` just evaluated; undefined when the shadow set has no such inspection. */
  evaluate(rule: CompiledRule, topic: string, payload: Record<string, unknown>, now: number, trigger: boolean, serving: InspectionResult): ShadowVerdict | undefined
  /** Counts agreement with the serving response (and logs the first disagreements). */
  compare(v: ShadowVerdict, serving: ServingAnswer): void
}

/** The part of the serving response the comparison reads. */
export interface ServingAnswer {
  verdict: string
  error?: { code: string }
  model?: ModelOutcome
}

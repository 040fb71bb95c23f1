// The JSON a requester gets back. One shape for verdicts and errors so clients parse a single schema.
import type { InspectionResult, VerdictError } from '../rules/types.js'
import type { ModelOutcome } from '../verdict/engine.js'

/** The model step of a reason rule as reported: the decoder's outcome, and whether its choice was used. */
export type ModelReport = ModelOutcome & { below_min_confidence?: boolean }

export interface Response {
  inspection: string | null
  verdict: string
  checks: InspectionResult['checks']
  inputs: InspectionResult['inputs']
  latency_ms: number
  deadline_missed: boolean
  rules_rev: string | null
  node: string
  correlation_id?: string
  error?: VerdictError
  /** Streaming mode: the topic whose message was inspected. */
  trigger_topic?: string
  /** Reason rules: what the decoder did. */
  model?: ModelReport
  /** Reason rules: the rule's fallback stood in for the model's choice (no time, overload, low confidence). */
  fallback?: boolean
}

export function errorResult(inspection: string | null, error: VerdictError): Omit<Response, 'latency_ms' | 'deadline_missed' | 'rules_rev' | 'node'> {
  return { inspection, verdict: 'ERROR', checks: [], inputs: {}, error }
}

/** Rounds to microseconds: enough resolution, short JSON. */
export function ms(x: number): number {
  return Math.round(x * 1000) / 1000
}

// The JSON a requester gets back. One shape for verdicts and errors so clients parse a single schema.
import type { InspectionResult, VerdictError } from '../rules/types.js'
import type { ModelReport } from '../verdict/combine.js'

export interface Response {
  /** UUIDv7 of this verdict: its key in the audit journal; a redelivered request gets the same one back. */
  verdict_id: string
  /** ISO-8601 UTC time the inspection started (the request's arrival). */
  ts: string
  inspection: string | null
  verdict: string
  checks: InspectionResult['checks']
  inputs: InspectionResult['inputs']
  latency_ms: number
  deadline_missed: boolean
  rules_rev: string | null
  node: string
  correlation_id?: string
  /** The value of the rule's `trace:` input (serial number), when the rule names one. */
  trace?: string
  error?: VerdictError
  /** Streaming mode: the topic whose message was inspected. */
  trigger_topic?: string
  /** Reason rules: what the decoder did. */
  model?: ModelReport
  /** Reason rules: the rule's fallback stood in for the model's choice (no time, overload, low confidence). */
  fallback?: boolean
}

/** A response before the reply stage adds its timing and provenance. */
export type Outcome = Omit<Response, 'verdict_id' | 'ts' | 'latency_ms' | 'deadline_missed' | 'rules_rev' | 'node'>

export function errorResult(inspection: string | null, error: VerdictError): Outcome {
  return { inspection, verdict: 'ERROR', checks: [], inputs: {}, error }
}

/** Rounds to microseconds: enough resolution, short JSON. */
export function ms(x: number): number {
  return Math.round(x * 1000) / 1000
}

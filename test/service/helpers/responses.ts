// Generated responses for the writers' tests: every optional field, any JSON in inputs, check values and the
// model report, strings with quotes, control characters and lone surrogates, fields in reply()'s order.
import fc from 'fast-check'
import type { Response } from '../../../daemon/service/response.js'

export const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('a"b', 'back\\slash', 'tab\there', '\u2028', '\ud800', 'é', 'count(vib, "2s")'))
export const anyJson = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(undefined, NaN, Infinity, -0, 1e21, 5e-324, () => 1),
  fc.dictionary(text, fc.oneof(fc.jsonValue(), fc.constant(undefined))),
)
export const record = fc.dictionary(text, anyJson, { maxKeys: 6 })
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined })

export const check = fc
  .record({ id: text, ok: fc.boolean(), on_fail: text, reason: optional(text), error: optional(text), values: record })
  .map(({ id, ok, on_fail, reason, error, values }) => {
    // Rule evaluation creates these fields in this order, with at most one of reason and error.
    const c: Record<string, unknown> = { id, ok, on_fail }
    if (reason !== undefined) c.reason = reason
    else if (error !== undefined) c.error = error
    c.values = values
    return c
  })

export const response = fc
  .record({
    verdict_id: text,
    ts: text,
    inspection: fc.option(text),
    verdict: text,
    checks: fc.array(check, { maxLength: 4 }),
    inputs: record,
    latency_ms: fc.double(),
    deadline_missed: fc.boolean(),
    rules_rev: fc.option(text),
    node: text,
    correlation_id: optional(text),
    trace: optional(text),
    error: optional(fc.record({ code: text, message: text })),
    trigger_topic: optional(text),
    model: optional(fc.record({ status: text, ms: fc.double(), choice: optional(text), detail: optional(anyJson) })),
    fallback: optional(fc.boolean()),
  })
  .map((r) => {
    // reply() builds the fixed fields in one literal, then adds the optional ones present, in this order.
    const out: Record<string, unknown> = {}
    for (const k of ['verdict_id', 'ts', 'inspection', 'verdict', 'checks', 'inputs', 'latency_ms', 'deadline_missed', 'rules_rev', 'node'] as const) out[k] = r[k]
    for (const k of ['correlation_id', 'trace', 'error', 'trigger_topic', 'model', 'fallback'] as const) if (r[k] !== undefined) out[k] = r[k]
    return out as unknown as Response
  })


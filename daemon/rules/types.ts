// Contract between the rule engine (daemon/rules, daemon/signals) and the MQTT service (daemon/service).
// The service only sees these types; everything about YAML, CEL and windows stays behind them.
import type { SparkplugSelector } from '../sparkplug/selector.js'

/** One problem in a rule file, located for `file:line:col: message` output (1-based line and column). */
export interface RuleError {
  file: string
  line: number
  col: number
  message: string
}

/** Error codes a verdict of ERROR can carry; the service adds the transport-level ones. */
export type ErrorCode =
  | 'BAD_JSON' // payload is not JSON
  | 'NOT_OBJECT' // payload JSON is not an object
  | 'TOO_LARGE' // payload over limits.maxPayloadBytes
  | 'UNKNOWN_INSPECTION' // no rule serves this topic
  | 'MISSING_INPUT' // a declared input is absent and has no default
  | 'BAD_INPUT' // a declared input has the wrong type
  | 'EVAL_ERROR' // a check expression failed at run time
  | 'INTERNAL' // a bug: logged with a stack
  | 'OVERLOADED' // the request arrived too late to be worth a verdict (sent-at / deadline-ms already past)

export interface VerdictError {
  code: ErrorCode
  message: string
}

export interface CheckResult {
  id: string
  ok: boolean
  on_fail: string
  /** Rendered reason, present only when the check failed and the rule gives one. */
  reason?: string
  /** Present when the expression could not be evaluated (the verdict is then ERROR / EVAL_ERROR). */
  error?: string
  /** The identifiers (inputs, signal summaries) the expression read, with their values. */
  values: Record<string, unknown>
}

export interface InspectionResult {
  inspection: string
  verdict: string // a label of the rule's `verdicts`, or 'ERROR'
  checks: CheckResult[]
  inputs: Record<string, unknown>
  error?: VerdictError
  /** Rules with a reason step: the rendered user prompt (not part of the response). */
  prompt?: string
  /** Rules with a reason step: why the prompt could not be rendered (the model is then skipped). */
  promptError?: string
}

/** A rule's `reason:` step, compiled: what the verdict engine needs to ask the decoder. */
export interface ReasonStep {
  system?: string
  /** The prompt template's text before its first placeholder: shared by every request (prefix cache). */
  staticPrefix: string
  /** The template as written (for logs and cache keys). */
  template: string
  choices: string[]
  minConfidence: number
  fallback: string
  combine: 'max' | 'model'
  explain?: { maxTokens: number; topic: string; render(params: Record<string, string>): string }
}

/** What a request or trigger message brings to evaluation. */
export interface InspectionRequest {
  topic: string
  /** Named topic levels bound by the rule's topic filter, e.g. {station: 'st3'}. */
  params: Record<string, string>
  /** Parsed JSON payload (already checked to be an object by the service). */
  payload: Record<string, unknown>
  /** Receive time, epoch ms; signal functions are relative to it. */
  now: number
}

export interface CompiledRule {
  id: string
  file: string
  mode: 'request' | 'stream'
  /** The rule's topic as written, e.g. flashcheck/inspect/{station}/torque (request or trigger). */
  topic: string
  /** MQTT subscription filter: {name} → +. */
  filter: string
  /** stream mode: topic template to publish verdicts to, as written. */
  publish?: string
  /** stream mode: the publish topic with the trigger's bound names filled in. */
  publishTopic?(params: Record<string, string>): string
  budgetMs: number
  verdicts: string[]
  /** The input named by `trace:` (part traceability), if any. */
  trace?: string
  /** Present when the rule asks the decoder (`reason:`). */
  reason?: ReasonStep
  /** stream mode: `trigger: {sparkplug: …}`, the Sparkplug metric whose arrival runs the inspection. */
  sparkplugTrigger?: SparkplugSelector
  /** Match a concrete topic; null when it does not match, else the bound names. */
  match(topic: string): Record<string, string> | null
  evaluate(req: InspectionRequest, signals: SignalReader): InspectionResult
}

/** Read side of the live signal store used by rule evaluation. */
export interface SignalReader {
  /** History of signal spec `key` (SignalSpec.key) on one concrete topic; undefined when nothing was kept. */
  series(key: string, topic: string): SignalSeries | undefined
}

/**
 * Window queries over one kept history. A window is the samples with from <= time <= to (epoch ms).
 * All queries are O(log n).
 */
export interface SignalSeries {
  count(from: number, to: number): number
  /** NaN when the window is empty. */
  mean(from: number, to: number): number
  min(from: number, to: number): number
  max(from: number, to: number): number
  /** Least-squares slope in value units per second; NaN with fewer than two samples at distinct times. */
  slopePerSecond(from: number, to: number): number
  /** Time and value of the newest sample in the window; NaN when the window is empty. */
  lastTime(from: number, to: number): number
  lastValue(from: number, to: number): number
}

/** A signal subscription the service must make for the active rule set. */
export interface SignalSpec {
  /** Identity of the kept history: filter + value path. Rules using the same topic and path share it. */
  key: string
  /** MQTT filter, e.g. plant/+/spindle/vibration */
  filter: string
  /** The value path as written: `payload` or `payload.a.b`. */
  value: string
  /** Longest history any rule wants for topics matching this filter. */
  keepMs: number
  /** Extract the numeric value from a parsed JSON payload; undefined when the message carries none. */
  extract(payload: unknown): number | undefined
  /** A signal read from Sparkplug B metrics (fed by daemon/sparkplug) instead of JSON payloads. */
  sparkplug?: SparkplugSelector
}

export interface RuleSet {
  /** Rules with a reason step (prefix caches are built for these). */
  readonly reasonRules?: CompiledRule[]
  /** Content hash of the whole set (sha256 hex, first 12 chars), reported as rules_rev. */
  rev: string
  dir: string
  rules: CompiledRule[]
  signals: SignalSpec[]
  /** The request-mode rule whose filter matches the topic; the most specific filter wins (literal level > {name}/+ > #). */
  matchRequest(topic: string): { rule: CompiledRule; params: Record<string, string> } | null
  /** All stream-mode rules whose trigger matches the topic. */
  matchTrigger(topic: string): { rule: CompiledRule; params: Record<string, string> }[]
}

export type LoadResult = { ok: true; set: RuleSet } | { ok: false; errors: RuleError[] }

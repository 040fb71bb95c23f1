// A compiled rule and its evaluation: resolve inputs, bind signals to the request's topic levels, run every
// check, and apply the verdict policy. Never throws: problems become verdict ERROR with a code.
import type { CheckResult, CompiledRule, InspectionRequest, InspectionResult, ReasonStep, SignalReader, VerdictError } from './types.js'
import type { InputDoc, RuleDoc } from './validate.js'
import { typeMatches } from './validate.js'
import { resolvePath } from './path.js'
import { SignalError, type SignalRef } from './functions.js'
import type { TopicFilter, TopicTemplate } from './topic.js'
import type { SparkplugSelector } from '../sparkplug/selector.js'

export type ReasonPart = string | { input: string }

/** A piece of a reason prompt: literal text or a compiled placeholder expression. */
export type PromptPart = string | { fn: (ctx: Record<string, unknown>) => unknown; source: string }

export interface CompiledReason {
  parts: PromptPart[]
  step: ReasonStep
}

export interface CompiledCheck {
  id: string
  onFail: string
  fn: (ctx: Record<string, unknown>) => unknown
  /** Inputs the expression mentions, reported in the check's values. */
  inputNames: string[]
  reason?: ReasonPart[]
}

/** How reason templates print values: numbers in shortest round-trip form, strings raw, others as JSON. */
export function formatValue(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  return JSON.stringify(v) ?? String(v)
}

function describeValue(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'an object'
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`
  return `${typeof v} ${String(v)}`
}

export class RuleImpl implements CompiledRule {
  readonly id: string
  readonly file: string
  readonly mode: 'request' | 'stream'
  readonly topic: string
  readonly filter: string
  readonly publish?: string
  readonly budgetMs: number
  readonly verdicts: string[]
  readonly trace?: string
  readonly topicFilter: TopicFilter
  readonly sparkplugTrigger?: SparkplugSelector
  readonly reason?: ReasonStep
  /** An input or signal named `checks` shadows the rendered check results in prompts. */
  private readonly checksDeclared: boolean
  private readonly severity: Map<string, number>
  private readonly inputs: InputDoc[]
  private readonly templates: RuleDoc['signals'][number]['topic'][]
  private readonly publishTemplate?: TopicTemplate
  private readonly ctx: Record<string, unknown> = {}

  constructor(
    doc: RuleDoc,
    private readonly checks: CompiledCheck[],
    private readonly refs: SignalRef[],
    private readonly compiledReason?: CompiledReason,
  ) {
    this.reason = compiledReason?.step
    this.checksDeclared = doc.inputs.some((i) => i.name === 'checks') || doc.signals.some((s) => s.name === 'checks')
    this.id = doc.id
    this.file = doc.file
    this.mode = doc.mode
    this.topic = doc.topic
    this.topicFilter = doc.filter
    this.filter = doc.sparkplugTrigger?.filter ?? doc.filter.mqtt
    if (doc.sparkplugTrigger) this.sparkplugTrigger = doc.sparkplugTrigger
    this.budgetMs = doc.budgetMs
    this.verdicts = doc.verdicts
    this.trace = doc.trace
    this.severity = new Map(doc.verdicts.map((v, i) => [v, i]))
    this.inputs = doc.inputs
    this.templates = doc.signals.map((s) => s.topic)
    if (doc.publish) {
      this.publish = doc.publish.source
      this.publishTemplate = doc.publish
    }
    for (const r of refs) this.ctx[r.name] = r
  }

  match(topic: string): Record<string, string> | null {
    return this.topicFilter.match(topic)
  }

  publishTopic(params: Record<string, string>): string {
    return this.publishTemplate ? this.publishTemplate.render(params) : ''
  }

  evaluate(req: InspectionRequest, signals: SignalReader): InspectionResult {
    try {
      return this.run(req, signals)
    } catch (e) {
      // Only a bug gets here: expression errors are caught per check.
      return this.fail({}, [], { code: 'INTERNAL', message: `rule ${this.id}: ${(e as Error)?.message ?? String(e)}` })
    }
  }

  private fail(inputs: Record<string, unknown>, checks: CheckResult[], error: VerdictError): InspectionResult {
    return { inspection: this.id, verdict: 'ERROR', checks, inputs, error }
  }

  private run(req: InspectionRequest, signals: SignalReader): InspectionResult {
    const inputs: Record<string, unknown> = {}
    const ctx = this.ctx // reused: evaluation is synchronous and the object never leaves this call
    for (let i = 0; i < this.inputs.length; i++) {
      const d = this.inputs[i]!
      let v = d.source.kind === 'payload' ? resolvePath(req.payload, d.source.path) : req.params[d.source.level]
      // The default stands in for a missing and for a mistyped value alike (the rule format says so).
      if (v === undefined || v === null) {
        if (!d.hasDefault) {
          return this.fail(inputs, [], { code: 'MISSING_INPUT', message: `input ${d.name} (${d.from}) is missing` })
        }
        v = d.default
      } else if (!typeMatches(d.type, v)) {
        if (!d.hasDefault) {
          return this.fail(inputs, [], { code: 'BAD_INPUT', message: `input ${d.name} (${d.from}) must be a ${d.type}, got ${describeValue(v)}` })
        }
        v = d.default
      }
      inputs[d.name] = v
      ctx[d.name] = v
    }
    for (let i = 0; i < this.refs.length; i++) {
      const r = this.refs[i]!
      // The same topic string each time keeps its hash: the history lookup below is then one probe. Only a
      // frozen params object (a request topic's match) is known never to change under the same identity.
      if (r.topicFor !== req.params) {
        r.topic = this.templates[i]!.render(req.params)
        r.topicFor = Object.isFrozen(req.params) ? req.params : undefined
      }
      r.series = signals.series(r.key, r.topic)
      r.now = req.now
    }

    const results: CheckResult[] = new Array(this.checks.length)
    let worst = -1
    let worstLabel = this.verdicts[0]!
    let error: VerdictError | undefined
    for (let i = 0; i < this.checks.length; i++) {
      const c = this.checks[i]!
      const values: Record<string, unknown> = {}
      for (let k = 0; k < c.inputNames.length; k++) values[c.inputNames[k]!] = inputs[c.inputNames[k]!]
      for (let k = 0; k < this.refs.length; k++) this.refs[k]!.values = values
      let out: unknown
      let err: string | undefined
      try {
        out = c.fn(ctx)
        if (typeof out !== 'boolean') err = `expression gave ${describeValue(out)}, not true/false`
      } catch (e) {
        err = e instanceof SignalError ? e.message : firstLine(e)
      }
      if (err !== undefined) {
        results[i] = { id: c.id, ok: false, on_fail: c.onFail, error: err, values }
        error ??= { code: 'EVAL_ERROR', message: `check ${c.id}: ${err}` }
        continue
      }
      if (out === true) {
        results[i] = { id: c.id, ok: true, on_fail: c.onFail, values }
        continue
      }
      results[i] = c.reason
        ? { id: c.id, ok: false, on_fail: c.onFail, reason: this.render(c.reason, inputs), values }
        : { id: c.id, ok: false, on_fail: c.onFail, values }
      const sev = this.severity.get(c.onFail)!
      if (sev > worst) {
        worst = sev
        worstLabel = c.onFail
      }
    }
    if (error) return this.fail(inputs, results, error)
    const out: InspectionResult = { inspection: this.id, verdict: worstLabel, checks: results, inputs }
    if (this.compiledReason) this.renderPrompt(out, ctx, results)
    return out
  }

  /** Renders the reason prompt with the same bindings the checks saw; a failing placeholder skips the model. */
  private renderPrompt(out: InspectionResult, ctx: Record<string, unknown>, results: CheckResult[]): void {
    if (!this.checksDeclared) ctx.checks = describeChecks(results)
    for (let k = 0; k < this.refs.length; k++) this.refs[k]!.values = {}
    let s = ''
    for (const p of this.compiledReason!.parts) {
      if (typeof p === 'string') {
        s += p
        continue
      }
      try {
        s += formatPromptValue(p.fn(ctx))
      } catch (e) {
        out.promptError = `prompt {${p.source}}: ${e instanceof SignalError ? e.message : firstLine(e)}`
        return
      }
    }
    out.prompt = s
  }

  private render(parts: ReasonPart[], inputs: Record<string, unknown>): string {
    let s = ''
    for (const p of parts) s += typeof p === 'string' ? p : formatValue(inputs[p.input])
    return s
  }
}

/** `{checks}` in a prompt: one clause per check, e.g. "torque-in-spec pass; angle-window fail (REWORK: ...)". */
export function describeChecks(results: CheckResult[]): string {
  return results
    .map((r) => (r.ok ? `${r.id} pass` : `${r.id} fail (${r.on_fail}${r.reason ? `: ${r.reason}` : ''})`))
    .join('; ')
}

/** Prompt values: numbers to at most 6 significant digits (tokens are the model's cost), the rest as in reasons. */
export function formatPromptValue(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v) && !Number.isInteger(v)) return String(Number(v.toPrecision(6)))
  return formatValue(v)
}

function firstLine(e: unknown): string {
  const x = e as { summary?: string; message?: string }
  // cel-js errors carry a one-line summary; their message adds a source excerpt meant for terminals.
  return x?.summary ?? String(x?.message ?? e).split('\n')[0]!
}

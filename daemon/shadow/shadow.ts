// Shadow rules (rules.shadowDir): a second rule set that sees the live traffic, never publishes, and counts
// where its verdicts differ from the serving set's. It keeps its own signal windows (its keeps and values may
// differ) and never runs the decoder: a reason rule takes the serving set's model answer when its prompt is
// identical, else its fallback. Loading it can fail without any effect on the serving set.
import { Counter } from 'prom-client'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import { loadRuleDir, type LoadOptions } from '../rules/load.js'
import type { CompiledRule, InspectionResult, LoadResult, RuleError, RuleSet } from '../rules/types.js'
import { SignalStore } from '../signals/store.js'
import { decidedByChecks, withModel } from '../verdict/combine.js'
import type { ModelOutcome } from '../verdict/outcome.js'
import type { ServingAnswer, ShadowHook, ShadowVerdict } from './hook.js'

/** Disagreements logged per minute with both verdicts; the rest are counted only. */
export const LOGGED_PER_MINUTE = 5

const NO_MODEL: ModelOutcome = { status: 'skipped', reason: 'prompt', detail: 'shadow rule: the serving model answer was for another prompt', ms: 0 }

export class ShadowRules implements ShadowHook {
  private set?: RuleSet
  private readonly store = new SignalStore()
  private readonly counter: Counter<'inspection' | 'agree'>
  private minute = 0
  private logged = 0
  private suppressed = 0
  private readonly pruneTimer: NodeJS.Timeout

  constructor(
    readonly dir: string,
    private readonly opts: LoadOptions,
    metrics: Metrics,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.counter = new Counter({
      name: 'flashcheck_shadow_verdicts_total',
      help: 'Verdicts of the shadow rule set (rules.shadowDir), by inspection and whether they agree with the serving verdict',
      labelNames: ['inspection', 'agree'] as const,
      registers: [metrics.registry],
    })
    this.pruneTimer = setInterval(() => this.store.prune(this.clock()), 5000)
    this.pruneTimer.unref()
  }

  get rev(): string | undefined {
    return this.set?.rev
  }

  /** Options for loading the shadow directory: model steps never run for it, so reason rules need no model. */
  get loadOptions(): LoadOptions {
    return { ...this.opts, model: true }
  }

  /** (Re)loads the shadow directory. */
  async load(): Promise<RuleError[]> {
    return this.apply(await loadRuleDir(this.dir, this.loadOptions))
  }

  /** Installs a loaded shadow set; on errors they are logged and the previous shadow set (if any) stays. */
  apply(res: LoadResult): RuleError[] {
    if (!res.ok) {
      for (const e of res.errors) this.log.error({ shadow: true }, `shadow rules rejected: ${e.file}:${e.line}:${e.col}: ${e.message}`)
      this.log.warn({ dir: this.dir, errors: res.errors.length, shadow_rev: this.set?.rev ?? null }, 'shadow rules invalid; serving is not affected')
      return res.errors
    }
    if (res.set.rev !== this.set?.rev) {
      this.store.configure(res.set.signals)
      this.set = res.set
      this.log.info({ dir: this.dir, shadow_rev: res.set.rev, rules: res.set.rules.map((r) => r.id) }, 'shadow rules loaded')
    }
    return []
  }

  close(): void {
    clearInterval(this.pruneTimer)
  }

  sample(topic: string, payload: Buffer, now: number): void {
    if (this.set) this.store.ingest(topic, payload, now)
  }

  evaluate(rule: CompiledRule, topic: string, payload: Record<string, unknown>, now: number, trigger: boolean, serving: InspectionResult): ShadowVerdict | undefined {
    const set = this.set
    if (!set) return undefined
    const m = trigger ? set.matchTrigger(topic).find((x) => x.rule.id === rule.id) : set.matchRequest(topic)
    if (!m) return undefined
    const result = m.rule.evaluate({ topic, params: m.params, payload, now }, this.store)
    return { rule: m.rule, result, servingPrompt: serving.prompt, topic }
  }

  compare(v: ShadowVerdict, serving: ServingAnswer): void {
    const verdict = shadowVerdict(v, serving)
    const agree = verdict === serving.verdict
    this.counter.inc({ inspection: v.rule.id, agree: agree ? 'true' : 'false' })
    if (agree) return
    const minute = Math.floor(this.clock() / 60_000)
    if (minute !== this.minute) {
      if (this.suppressed > 0) this.log.warn({ suppressed: this.suppressed }, 'shadow disagreements not logged in the last minute')
      this.minute = minute
      this.logged = 0
      this.suppressed = 0
    }
    if (this.logged >= LOGGED_PER_MINUTE) {
      this.suppressed++
      return
    }
    this.logged++
    this.log.warn(
      { inspection: v.rule.id, topic: v.topic, serving: serving.verdict, shadow: verdict, shadow_error: v.result.error?.code, serving_error: serving.error?.code, shadow_rev: this.set?.rev },
      'shadow rule disagrees with the serving verdict',
    )
  }
}

/** The shadow verdict with its model part: the serving answer for an identical prompt, else the fallback. */
export function shadowVerdict(v: ShadowVerdict, serving: ServingAnswer): string {
  const { rule, result } = v
  if (!rule.reason || result.verdict === 'ERROR' || decidedByChecks(rule, result.verdict) !== undefined) return result.verdict
  const same = result.prompt !== undefined && result.prompt === v.servingPrompt && serving.model?.status === 'ok'
  return withModel(rule, result, same ? serving.model! : NO_MODEL).verdict
}

// Stand-in model answers of a test: `model: {choices: {rule-id: LABEL}}`. A reason rule without one gets what
// a daemon whose decoder cannot answer gives: the rule's fallback.
import type { CompiledRule } from '../rules/types.js'
import type { ModelJudge } from '../service/exchange.js'
import type { JudgeOptions } from '../verdict/engine.js'
import type { ModelOutcome } from '../verdict/outcome.js'

export class StandInModel implements ModelJudge {
  constructor(private readonly choices: Record<string, string> = {}) {}

  judge(rule: CompiledRule, _prompt: string, _o: JudgeOptions, done: (o: ModelOutcome) => void): void {
    const choice = this.choices[rule.id]
    if (choice === undefined) {
      done({ status: 'skipped', reason: 'decoder_error', detail: 'no model in this test (no model.choices stand-in for this inspection, no --model-dir)', ms: 0 })
      return
    }
    done({ status: 'ok', choice, confidence: 1, scores: { [choice]: 1 }, ms: 0, prefix_cached: false, tokens: { prompt: 0, cached: 0, computed: 0 }, calls: 0 })
  }

  expireDue(): void {}
}

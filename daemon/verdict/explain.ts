// Explanations: greedy text generation that continues a scored verdict's state. They are extras: a bounded
// queue (the oldest dropped), run only while no verdict waits, and given up at the next token when one does.
import { performance } from 'node:perf_hooks'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import type { DecoderState } from '../model/backend.js'
import type { Continuation, Executor } from './executor.js'
import { round, type Explanation } from './outcome.js'
import { argmaxRow } from './score.js'
import type { ChatTokenizer } from './tokenizer.js'

interface ExplainJob {
  state: DecoderState
  logits: Float32Array
  maxTokens: number
  onExplain: (e: Explanation) => void
  inspection: string
}

export class Explainer {
  private readonly jobs: ExplainJob[] = []

  constructor(
    private readonly exec: Executor,
    private readonly tokenizer: ChatTokenizer,
    private readonly vocab: number,
    private readonly max: number,
    private readonly metrics?: Metrics,
    private readonly log?: Logger,
  ) {}

  get waiting(): number {
    return this.jobs.length
  }

  /** Queues an explanation from a scored job's continuation (takes ownership of its state). */
  push(from: Continuation, maxTokens: number, onExplain: (e: Explanation) => void, inspection: string): void {
    this.jobs.push({ state: from.state, logits: from.logits, maxTokens, onExplain, inspection })
    while (this.jobs.length > this.max) {
      this.jobs.shift()!.state.dispose()
      this.metrics?.modelExplains.inc({ result: 'dropped' })
    }
  }

  /** Takes the next explanation to run, if any. */
  shift(): ExplainJob | undefined {
    return this.jobs.shift()
  }

  /** Generates until a stop token or maxTokens; drops the text when `yieldNow()` turns true between tokens. */
  async run(ex: ExplainJob, yieldNow: () => boolean): Promise<void> {
    const t0 = performance.now()
    const out: number[] = []
    try {
      let logits: Float32Array = ex.logits
      for (let i = 0; i < ex.maxTokens; i++) {
        const next = argmaxRow(logits, 0, this.vocab)
        if (this.tokenizer.stopIds.has(next)) break
        out.push(next)
        if (i + 1 === ex.maxTokens) break
        if (yieldNow()) {
          this.metrics?.modelExplains.inc({ result: 'dropped' })
          return
        }
        logits = await this.exec.timed(ex.state, Int32Array.of(next))
      }
      this.metrics?.modelExplains.inc({ result: 'published' })
      ex.onExplain({ text: this.tokenizer.decode(out), tokens: out.length, ms: round(performance.now() - t0) })
    } catch (e) {
      this.log?.warn({ err: e, inspection: ex.inspection }, 'explanation failed')
      this.metrics?.modelExplains.inc({ result: 'failed' })
    } finally {
      ex.state.dispose()
    }
  }

  /** Frees every queued explanation (shutdown). */
  clear(): void {
    for (const ex of this.jobs.splice(0)) ex.state.dispose()
  }
}

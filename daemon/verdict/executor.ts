// Runs one verdict job on the decoder: the prompt suffix in chunks from a clone of the cached prefix, then
// the label scores (folded into the last call, or one pass per multi-token label). Between calls the job is
// checked against its deadline with the cost model's prediction of the work left: a job that can no longer
// finish in time is aborted at once rather than late.
import { performance } from 'node:perf_hooks'
import type { Logger } from '../log/logger.js'
import type { DecoderBackend, DecoderState, PrefillOpts } from '../model/backend.js'
import { CLONE_MS, type CostModel } from './cost.js'
import { aborted, type Job } from './job.js'
import { round } from './outcome.js'
import { choose, RowLogProbs } from './score.js'
import type { Guard } from './guard.js'

class Abort extends Error {
  constructor(readonly reason: 'deadline' | 'budget', readonly detail: string) {
    super(detail)
  }
}

/** After a scored job with an explanation to write: the state right after its prompt and that row's logits. */
export interface Continuation {
  state: DecoderState
  logits: Float32Array
}

export class Executor {
  constructor(
    private readonly backend: DecoderBackend,
    readonly cost: CostModel,
    private readonly opts: { chunkTokens: number; guard: Guard },
    private readonly log?: Logger,
  ) {}

  /** One decoder call, timed into the cost model. */
  async timed(state: DecoderState, tokens: Int32Array, opts?: PrefillOpts): Promise<Float32Array> {
    const t = performance.now()
    const out = await this.backend.prefill(state, tokens, opts)
    const wall = performance.now() - t
    this.cost.observe(tokens.length, state.lastMs ?? wall, wall)
    return out
  }

  /** Runs the job and settles it; returns its continuation when it was scored and wants an explanation. */
  async run(job: Job): Promise<Continuation | undefined> {
    const b = this.backend
    const V = b.config.vocab_size
    const c = this.opts.chunkTokens
    const { labels, fold } = job.plan
    const foldLen = fold?.length ?? 0
    let state: DecoderState | undefined
    let keep = false
    try {
      if (job.done) return undefined
      const feed = job.tokens.subarray(job.cached)
      this.checkpoint(job, CLONE_MS + this.cost.feed(feed.length, c, foldLen) + this.cost.labels(labels, 0, fold !== undefined))
      state = job.cached > 0 ? await b.clone(job.plan.entry.state!) : await b.newState()
      let logits: Float32Array = new Float32Array(0)
      let calls = 0
      for (let i = 0; i < feed.length; i += c, calls++) {
        this.checkpoint(job, this.cost.feed(feed.length - i, c, foldLen) + this.cost.labels(labels, 0, fold !== undefined))
        const part = feed.subarray(i, Math.min(feed.length, i + c))
        if (fold && i + c >= feed.length) {
          // The last chunk carries the folded label path; its last rows' logits score every label.
          const withFold = new Int32Array(part.length + fold.length)
          withFold.set(part)
          withFold.set(fold, part.length)
          logits = await this.timed(state, withFold, { lastRows: fold.length + 1 })
        } else logits = await this.timed(state, part)
      }
      const logps: number[] = []
      let computed = feed.length + foldLen
      const last = new RowLogProbs(logits, V)
      for (let k = 0; k < labels.length; k++) {
        const lab = labels[k]!
        let lp = last.at(0, lab[0]!)
        if (fold) {
          for (let j = 1; j < lab.length; j++) lp += last.at(j, lab[j]!)
        } else if (lab.length > 1) {
          this.checkpoint(job, this.cost.labels(labels, k))
          const s = await b.clone(state)
          try {
            const rows = await this.timed(s, lab.subarray(0, lab.length - 1), { allLogits: true })
            calls++
            const own = new RowLogProbs(rows, V)
            for (let j = 1; j < lab.length; j++) lp += own.at(j - 1, lab[j]!)
          } finally {
            s.dispose()
          }
          computed += lab.length - 1
        }
        logps.push(lp)
      }
      if (job.done) throw new Abort('deadline', 'the decoder had not finished at the deadline')
      const pick = choose(job.plan.step.choices, logps)
      const scores: Record<string, number> = {}
      job.plan.step.choices.forEach((l, i) => (scores[l] = round6(logps[i]!)))
      job.settle({
        status: 'ok',
        choice: pick.choice,
        confidence: round6(pick.confidence),
        scores,
        ms: round(performance.now() - job.t0),
        prefix_cached: job.cached > 0,
        tokens: { prompt: job.tokens.length, cached: job.cached, computed },
        calls,
      })
      if (job.onExplain && job.maxExplain > 0) {
        keep = true
        return { state, logits }
      }
      return undefined
    } catch (e) {
      if (e instanceof Abort) {
        job.settle(aborted(job, e.reason, e.detail))
      } else {
        this.log?.error({ err: e, inspection: job.inspection }, 'decoder failed')
        job.settle({ status: 'aborted', reason: 'decoder_error', detail: (e as Error).message, ms: round(performance.now() - job.t0) })
      }
      return undefined
    } finally {
      if (!keep) state?.dispose()
    }
  }

  /** Throws Abort when the job was settled by its timer or the rest of its work no longer fits. */
  private checkpoint(job: Job, restMs: number): void {
    if (job.done) throw new Abort('deadline', 'the decoder had not finished at the deadline')
    const now = performance.now()
    const left = job.deadline - this.opts.guard.ms(now) - now
    if (restMs > left) throw new Abort('budget', `~${round(restMs)} ms of decoder work left, ${round(left)} ms left in the budget`)
    job.estEnd = now + restMs
  }
}

function round6(x: number): number {
  return Number(x.toPrecision(9))
}

// The decoder side of model-assisted verdicts. Every request gets exactly one outcome, on time: a scored
// choice, or `skipped` (never started: no time, overload) or `aborted` (started, could not finish); a
// per-request timer settles it at deadline - guard whatever the decoder is doing. Requests wait in an
// earliest-deadline-first queue and are admitted only when the predicted work ahead of them fits their
// budget. Decoder calls are asynchronous (native pool threads or the onnx worker): the event loop stays free.
//
// Parts: prompt-plan.ts (prefix caches, prompt and label tokens), cost.ts (the cost model and the job-cost
// formula), queue.ts (EDF queue), executor.ts (running one job), explain.ts (text after a verdict).
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import type { BackendKind, DecoderBackend } from '../model/backend.js'
import { loadBackend, type BackendOptions } from '../model/load-backend.js'
import type { CompiledRule } from '../rules/types.js'
import { CostModel } from './cost.js'
import { Executor } from './executor.js'
import { Guard } from './guard.js'
import { Explainer } from './explain.js'
import { aborted, skipped, type Job } from './job.js'
import { round, type Explanation, type ModelOutcome } from './outcome.js'
import { PromptPlanner, release } from './prompt-plan.js'
import { DeadlineQueue } from './queue.js'
import { ChatTokenizer } from './tokenizer.js'

export type { Explanation, ModelOutcome, SkipReason, TokenCounts } from './outcome.js'

export interface EngineOptions {
  dir: string
  backend: BackendKind
  threads: number
  /** Priority decrement of the decoder threads (see model.nice). */
  nice?: number
  /** Backend-specific options (onnx providers, graphs, TensorRT); threads and nice above take precedence. */
  backendOptions?: BackendOptions
  /** Margin before a deadline at which a fallback is published if the model is not done (widened after a late verdict, guard.ts). */
  guardMs: number
  /** Most verdict jobs waiting; beyond it requests get their fallback at once. */
  queueMax: number
  /** Prefill chunk: the decoder is re-checked against the deadline between chunks. */
  chunkTokens: number
  /** Reuse prefilled prompt prefixes (off only to measure what the cache saves). */
  prefixCache: boolean
  /** Most explanations waiting; the oldest is dropped beyond it. */
  explainQueueMax?: number
}

export interface JudgeOptions {
  /** performance.now() time by which the verdict must be published. */
  deadline: number
  /** Called with the generated text after the verdict, when the rule has explain and the decoder has time. */
  onExplain?: (e: Explanation) => void
}

export class VerdictEngine {
  readonly cost = new CostModel()
  private readonly planner: PromptPlanner
  private readonly exec: Executor
  private readonly explainer: Explainer
  private readonly queue = new DeadlineQueue<Job>()
  /** The margin before deadlines: model.guardMs, widened for a while after a verdict went out late. */
  readonly guard: Guard
  private running?: Job
  private explaining = false
  /** A re-measurement of the decoder in idle time (see probe()); performance.now() of the last one. */
  private probing = false
  private lastProbe = -Infinity
  private probeEvery = PROBE_MIN_MS
  private closed = false
  /** The decoder's last failure (status page); written only when one happens. */
  lastError?: { at: number; inspection: string; detail: string }

  private constructor(
    readonly backend: DecoderBackend,
    readonly tokenizer: ChatTokenizer,
    private readonly opts: EngineOptions,
    private readonly metrics?: Metrics,
    private readonly log?: Logger,
  ) {
    this.planner = new PromptPlanner(tokenizer, backend.lastRows === true, opts.prefixCache)
    this.guard = new Guard(opts.guardMs)
    this.exec = new Executor(backend, this.cost, { chunkTokens: opts.chunkTokens, guard: this.guard }, log)
    this.explainer = new Explainer(this.exec, tokenizer, backend.config.vocab_size, opts.explainQueueMax ?? 8, metrics, log)
  }

  static async load(opts: EngineOptions, metrics?: Metrics, log?: Logger): Promise<VerdictEngine> {
    const tokenizer = await ChatTokenizer.load(opts.dir)
    const backend = await loadBackend(opts.backend, opts.dir, { ...opts.backendOptions, threads: decoderThreads(opts.threads), nice: opts.nice ?? 0 })
    const e = new VerdictEngine(backend, tokenizer, opts, metrics, log)
    await e.calibrate()
    return e
  }

  get vocab(): number {
    return this.backend.config.vocab_size
  }

  get queueDepth(): number {
    return this.queue.length
  }

  /**
   * Seeds the cost model by timing a CAL_TOKENS-token prefill and CAL_ONES 1-token calls (after one warm-up
   * each; the median 1-token call counts).
   */
  private async calibrate(): Promise<void> {
    const V = this.vocab
    const toks = Int32Array.from({ length: CAL_TOKENS }, (_, i) => (i * 7 + 1) % V)
    const s = await this.backend.newState()
    try {
      await this.backend.prefill(s, toks)
      let t = performance.now()
      await this.backend.prefill(s, toks)
      const tLong = s.lastMs ?? performance.now() - t
      await this.backend.prefill(s, toks.subarray(0, 1))
      const ones: number[] = []
      for (let i = 0; i < CAL_ONES; i++) {
        t = performance.now()
        await this.backend.prefill(s, toks.subarray(i, i + 1))
        ones.push(s.lastMs ?? performance.now() - t)
      }
      ones.sort((a, b) => a - b)
      const one = ones[(CAL_ONES - 1) >> 1]!
      this.cost.set(one, (tLong - one) / (CAL_TOKENS - 1))
    } finally {
      s.dispose()
    }
    this.log?.info({ per_call_ms: round(this.cost.perCallMs), per_token_ms: round(this.cost.perTokenMs), backend: this.backend.kind }, 'decoder calibrated')
  }

  /** Predicted ms of calibrate(): its calls, warm-ups included. */
  private calibrationMs(): number {
    return 2 * this.cost.call(CAL_TOKENS) + (CAL_ONES + 1) * this.cost.call(1)
  }

  /** A scored verdict: the cost model is in touch with the decoder again. */
  private scored(): void {
    this.probeEvery = PROBE_MIN_MS
  }

  /**
   * Builds the prefix caches of a rule set before it becomes active; entries whose prefix did not change are
   * kept, the others are freed once no queued request uses them.
   */
  async prepare(rules: readonly CompiledRule[]): Promise<void> {
    const built = await this.planner.prepare(rules, async (tokens) => {
      const s = await this.backend.newState()
      await this.exec.timed(s, tokens)
      return s
    })
    this.metrics?.modelPrefixBuilds.inc(built)
  }

  /**
   * The request's prompt tokens. With a cached prefix only the text after it is tokenized: the cached tokens
   * end where no continuation changes them, so this equals tokenizing the whole text.
   */
  promptTokens(rule: CompiledRule, prompt: string): { tokens: Int32Array; cached: number } {
    return this.planner.tokensOf(this.planner.planOf(rule), prompt)
  }

  /**
   * Asks the decoder to choose among the rule's labels. `done` is called exactly once, by the deadline (minus
   * guard) in every case, and synchronously when the request is shed at once (no promise turn: a burst of
   * shed requests must not wait behind each other's microtasks).
   */
  judge(rule: CompiledRule, prompt: string, o: JudgeOptions, done: (o: ModelOutcome) => void): void {
    const t0 = performance.now()
    const step = rule.reason!
    const plan = this.planner.planOf(rule)
    this.expireDue()
    const { tokens, cached } = this.planner.tokensOf(plan, prompt)
    this.metrics?.modelPrefixCache.inc({ result: cached > 0 ? 'hit' : 'miss' })

    const job: Job = {
      inspection: rule.id,
      plan,
      tokens,
      cached,
      deadline: o.deadline,
      est: 0,
      estEnd: 0,
      done: false,
      t0,
      onExplain: step.explain ? o.onExplain : undefined,
      maxExplain: step.explain?.maxTokens ?? 0,
      settle: (out) => {
        if (job.done) return
        job.done = true
        clearTimeout(job.timer)
        // Settled after its deadline (a late timer, or a loop that could not take the result sooner): later
        // jobs get the margin this one would have needed.
        if (job.due !== undefined) this.guard.settled(job.due, job.deadline)
        if (out.status !== 'ok') {
          this.metrics?.modelFallbacks.inc({ inspection: job.inspection, status: out.status, reason: out.reason })
          if (out.reason === 'decoder_error') this.lastError = { at: Date.now(), inspection: job.inspection, detail: out.detail }
        } else {
          this.metrics?.modelLatency.observe({ inspection: job.inspection }, out.ms / 1000)
          this.scored()
        }
        done(out)
      },
    }
    if (this.closed) return job.settle(skipped(job, 'shutdown', 'the decoder is shutting down'))
    job.est = this.cost.job(tokens.length - cached, this.opts.chunkTokens, plan.labels, plan.fold?.length ?? 0)
    const now = performance.now()
    const until = o.deadline - this.guard.ms(now)
    const busy = this.running !== undefined || this.queue.length > 0
    if (this.queue.length >= this.opts.queueMax) {
      return job.settle(skipped(job, 'queue_full', `${this.queue.length} requests already wait for the decoder`))
    }
    const ahead = this.workAhead(now, o.deadline)
    if (now + ahead + job.est > until) {
      const left = until - now
      if (busy && now + job.est <= until) {
        return job.settle(skipped(job, 'overload', `decoder busy: ~${round(ahead)} ms of earlier work ahead, needs ~${round(job.est)} ms, ${round(left)} ms left`))
      }
      job.settle(skipped(job, 'budget', `needs ~${round(job.est)} ms, ${round(left)} ms left in the budget`))
      this.probe(now)
      return
    }
    plan.entry.users++
    job.due = until
    job.timer = setTimeout(() => this.onDeadline(job), Math.max(0, until - now))
    this.queue.insert(job)
    this.metrics?.modelQueueDepth.set(this.queue.length)
    // A running explanation yields at its next token: verdicts come first.
    this.pump()
  }

  /**
   * The cost model learns only from calls that run. When it predicts that every request misses its budget
   * (it was seeded while the machine was busy, say at boot), nothing runs and it would never learn again: so
   * while requests are skipped for their budget and the decoder is idle, it is calibrated again in the
   * background, at most every `probeEvery` ms, an interval that doubles (to a minute) while probes change
   * nothing and returns to two seconds once a verdict is scored.
   */
  private probe(now: number): void {
    if (this.probing || this.running || this.explaining || this.queue.length > 0 || this.closed) return
    if (now - this.lastProbe < this.probeEvery) return
    this.probing = true
    this.lastProbe = now
    this.probeEvery = Math.min(this.probeEvery * 2, PROBE_MAX_MS)
    void this.calibrate()
      .catch((err: unknown) => this.log?.warn({ err }, 'decoder re-calibration failed'))
      .finally(() => {
        this.probing = false
        this.pump()
      })
  }

  /** ms of decoder work that runs before a job with this deadline could start. */
  private workAhead(now: number, deadline: number): number {
    let ms = 0
    if (this.running) ms += Math.max(0, this.running.estEnd - now)
    else if (this.explaining) ms += this.cost.call(1)
    else if (this.probing) ms += this.calibrationMs()
    return ms + this.queue.workBefore(deadline)
  }

  /**
   * Settles requests whose publish time has come even when their timers cannot fire because the event loop
   * is busy with a burst of messages; the service calls it per message, judge() per request. O(1) when idle.
   */
  expireDue(): void {
    const now = performance.now()
    const g = this.guard.ms(now)
    for (let head = this.queue.head; head && head.deadline - g <= now; head = this.queue.head) this.onDeadline(head)
    const r = this.running
    if (r && !r.done && r.deadline - g <= now) this.onDeadline(r)
  }

  private onDeadline(job: Job): void {
    if (job.done) return
    if (this.queue.remove(job)) {
      this.metrics?.modelQueueDepth.set(this.queue.length)
      release(job.plan.entry, 1)
      job.settle(skipped(job, 'deadline', 'still waiting for the decoder at the deadline'))
      return
    }
    job.settle(aborted(job, 'deadline', 'the decoder had not finished at the deadline'))
  }

  private pump(): void {
    if (this.running || this.explaining || this.probing || this.closed) return
    const job = this.queue.shift()
    if (job) {
      this.metrics?.modelQueueDepth.set(this.queue.length)
      this.running = job
      void this.exec
        .run(job)
        .then((more) => {
          if (more) this.explainer.push(more, job.maxExplain, job.onExplain!, job.inspection)
        })
        .finally(() => {
          this.running = undefined
          release(job.plan.entry, 1)
          this.pump()
        })
      return
    }
    const ex = this.explainer.shift()
    if (ex) {
      this.explaining = true
      void this.explainer.run(ex, () => this.queue.length > 0 || this.closed).finally(() => {
        this.explaining = false
        this.pump()
      })
    }
  }

  /** Settles every waiting request with its fallback, then frees states and the backend. */
  async close(): Promise<void> {
    this.closed = true
    for (const job of this.queue.drain()) job.settle(skipped(job, 'shutdown', 'the decoder is shutting down'))
    this.explainer.clear()
    while (this.running || this.explaining || this.probing) await new Promise((r) => setTimeout(r, 5))
    this.planner.dispose()
    await this.backend.dispose()
  }
}

/** calibrate(): the prefill length timed, and how many 1-token calls (the median counts). */
const CAL_TOKENS = 32
const CAL_ONES = 3

/** Bounds of the interval between re-calibrations while requests are skipped for their budget. */
const PROBE_MIN_MS = 2000
const PROBE_MAX_MS = 60_000

/** model.threads 0: every core but one, which stays with the event loop, MQTT and the broker. */
export function decoderThreads(configured: number): number {
  return configured > 0 ? configured : Math.max(1, availableParallelism() - 1)
}

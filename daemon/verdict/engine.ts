// The decoder side of model-assisted verdicts: prefix caches per rule, choice scoring, and an
// earliest-deadline-first queue that never lets a request wait past its budget. Every request gets exactly
// one outcome, on time: a scored choice, or `skipped` (never started: no time, overload) or `aborted`
// (started, could not finish); a per-request timer settles it at deadline - guard whatever the decoder is
// doing. Decoder calls are asynchronous (native pool threads or the onnx worker): the event loop stays free.
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import type { BackendKind, DecoderBackend, DecoderState, PrefillOpts } from '../model/backend.js'
import { loadBackend, type BackendOptions } from '../model/load-backend.js'
import type { CompiledRule, ReasonStep } from '../rules/types.js'
import { CostModel } from './cost.js'
import { argmaxRow, choose, logProbAt } from './score.js'
import { ChatTokenizer } from './tokenizer.js'

export interface EngineOptions {
  dir: string
  backend: BackendKind
  threads: number
  /** Priority decrement of the decoder threads (see model.nice). */
  nice?: number
  /** Backend-specific options (onnx providers, graphs, TensorRT); threads and nice above take precedence. */
  backendOptions?: BackendOptions
  /** Margin before a deadline at which a fallback is published if the model is not done. */
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

export interface TokenCounts {
  /** Prompt tokens. */
  prompt: number
  /** Of those, taken from the prefix cache. */
  cached: number
  /** Tokens run through the decoder for this request (prompt suffix and label tokens). */
  computed: number
}

export type ModelOutcome =
  | { status: 'ok'; choice: string; confidence: number; scores: Record<string, number>; ms: number; prefix_cached: boolean; tokens: TokenCounts; calls: number }
  | { status: 'skipped' | 'aborted'; reason: SkipReason; detail: string; ms: number; tokens?: TokenCounts }

/** decided: the checks' verdict already is the most severe any choice could give (no decoder run). */
export type SkipReason = 'budget' | 'overload' | 'queue_full' | 'deadline' | 'prompt' | 'decoder_error' | 'shutdown' | 'decided'

export interface Explanation {
  text: string
  tokens: number
  ms: number
}

export interface JudgeOptions {
  /** performance.now() time by which the verdict must be published. */
  deadline: number
  /** Called with the generated text after the verdict, when the rule has explain and the decoder has time. */
  onExplain?: (e: Explanation) => void
}

/** A cached prompt prefix: the system text and template text before the first placeholder, prefilled. */
interface PrefixEntry {
  key: string
  tokens: Int32Array
  /** Characters of the rendered prompt those tokens spell; -1 when they do not map back exactly. */
  chars: number
  /** The text those characters are. */
  text: string
  state?: DecoderState
  users: number
  retired: boolean
}

interface RulePlan {
  step: ReasonStep
  entry: PrefixEntry
  labels: Int32Array[]
  /** The chat template rendered around the user prompt, when it inserts the prompt verbatim. */
  frame?: { before: string; after: string }
  /**
   * Label tokens fed along with the prompt's last chunk, asking for the logits of its last rows: when every
   * multi-token label lies on this one path, all labels are scored from that single call (no label passes).
   */
  fold?: Int32Array
}

interface Job {
  inspection: string
  plan: RulePlan
  tokens: Int32Array
  cached: number
  deadline: number
  est: number
  estEnd: number
  done: boolean
  settle: (o: ModelOutcome) => void
  timer?: NodeJS.Timeout
  t0: number
  onExplain?: (e: Explanation) => void
  maxExplain: number
}

interface ExplainJob {
  state: DecoderState
  logits: Float32Array
  maxTokens: number
  onExplain: (e: Explanation) => void
  inspection: string
}

class Abort extends Error {
  constructor(readonly reason: SkipReason, readonly detail: string) {
    super(detail)
  }
}

// Marks where the first placeholder's value goes, to cut the rendered chat at the static prefix.
const SENTINEL = '\uE000flashcheck-prefix\uE001'
// Continuations tried after the static prefix: tokens common to all of them do not depend on what follows.
const PROBES = ['0', '9', 'A', 'a', 'z', ' ', ' x', '\n', '.', '-', '{', '(', '"', 'é']

const CLONE_MS = 0.2

/** a equals b followed by c. */
function sameIds(a: readonly number[], b: readonly number[], c: readonly number[]): boolean {
  if (a.length !== b.length + c.length) return false
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return false
  for (let i = 0; i < c.length; i++) if (a[b.length + i] !== c[i]) return false
  return true
}

export class VerdictEngine {
  readonly cost = new CostModel()
  private readonly plans = new WeakMap<ReasonStep, RulePlan>()
  private entries = new Map<string, PrefixEntry>()
  private readonly queue: Job[] = [] // sorted by deadline, then arrival
  private readonly explains: ExplainJob[] = []
  private running?: Job
  private explaining = false
  private closed = false

  private constructor(
    readonly backend: DecoderBackend,
    readonly tokenizer: ChatTokenizer,
    private readonly opts: EngineOptions,
    private readonly metrics?: Metrics,
    private readonly log?: Logger,
  ) {}

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

  /** Seeds the cost model by timing a 1-token call and a 32-token prefill (after one warm-up each). */
  private async calibrate(): Promise<void> {
    const V = this.vocab
    const toks = Int32Array.from({ length: 32 }, (_, i) => (i * 7 + 1) % V)
    const s = await this.backend.newState()
    try {
      await this.backend.prefill(s, toks)
      let t = performance.now()
      await this.backend.prefill(s, toks)
      const t32 = s.lastMs ?? performance.now() - t
      await this.backend.prefill(s, toks.subarray(0, 1))
      const ones: number[] = []
      for (let i = 0; i < 3; i++) {
        t = performance.now()
        await this.backend.prefill(s, toks.subarray(i, i + 1))
        ones.push(s.lastMs ?? performance.now() - t)
      }
      ones.sort((a, b) => a - b)
      const one = ones[1]!
      this.cost.set(one, (t32 - one) / 31)
    } finally {
      s.dispose()
    }
    this.log?.info({ per_call_ms: round(this.cost.perCallMs), per_token_ms: round(this.cost.perTokenMs), backend: this.backend.kind }, 'decoder calibrated')
  }

  /**
   * Builds the prefix caches of a rule set before it becomes active; entries whose prefix did not change are
   * kept, the others are freed once no queued request uses them.
   */
  async prepare(rules: readonly CompiledRule[]): Promise<void> {
    const next = new Map<string, PrefixEntry>()
    for (const rule of rules) {
      const step = rule.reason
      if (!step) continue
      const prefixText = this.prefixText(step)
      const key = `${step.system ?? ''}\u0000${prefixText}`
      let entry = next.get(key) ?? this.entries.get(key)
      if (!entry) {
        const stable = this.stablePrefix(prefixText)
        const text = this.tokenizer.decodeRaw(stable)
        const tokens = Int32Array.from(stable)
        entry = { key, tokens, chars: prefixText.startsWith(text) ? text.length : -1, text, users: 0, retired: false }
        if (this.opts.prefixCache && tokens.length > 0) {
          const s = await this.backend.newState()
          await this.timed(s, tokens)
          entry.state = s
        }
        this.metrics?.modelPrefixBuilds.inc()
      }
      next.set(key, entry)
      const labels = this.labelTokens(step)
      labels.forEach((l, i) => {
        if (l.length === 0) throw new Error(`rule ${rule.id}: choice '${step.choices[i]}' encodes to no tokens`)
      })
      this.plans.set(step, { step, entry, labels, frame: this.frame(step), fold: this.foldOf(labels, step) })
    }
    for (const [key, entry] of this.entries) {
      if (next.get(key) === entry) continue
      entry.retired = true
      this.release(entry, 0)
    }
    this.entries = next
  }

  /** The rendered chat up to where the prompt's first placeholder value goes. */
  private prefixText(step: ReasonStep): string {
    const full = this.tokenizer.render(step.system, step.staticPrefix + SENTINEL)
    const at = full.indexOf(SENTINEL)
    return at < 0 ? '' : full.slice(0, at)
  }

  private labelTokens(step: ReasonStep): Int32Array[] {
    return step.choices.map((c) => Int32Array.from(this.tokenizer.encode(c)))
  }

  /** The label path to fold into the prompt's last call, if the labels allow it (see RulePlan.fold). */
  private foldOf(labels: Int32Array[], step: ReasonStep): Int32Array | undefined {
    // Explanations continue from the state right after the prompt, which a fold would move past.
    if (!this.backend.lastRows || step.explain) return undefined
    const multi = labels.filter((l) => l.length > 1)
    if (multi.length === 0) return undefined
    const main = multi.reduce((a, b) => (b.length > a.length ? b : a))
    const path = main.subarray(0, main.length - 1)
    for (const l of multi) for (let i = 0; i < l.length - 1; i++) if (l[i] !== path[i]) return undefined
    return path.length < 64 ? path : undefined
  }

  /** Splits the rendered chat around the user prompt, so requests concatenate instead of rendering Jinja. */
  private frame(step: ReasonStep): { before: string; after: string } | undefined {
    const full = this.tokenizer.render(step.system, SENTINEL)
    const at = full.indexOf(SENTINEL)
    if (at < 0) return undefined
    const f = { before: full.slice(0, at), after: full.slice(at + SENTINEL.length) }
    // Templates that transform the content (trim, escaping) must be rendered per request.
    const probe = ' Probe: {x} 1.5\n'
    return this.tokenizer.render(step.system, probe) === f.before + probe + f.after ? f : undefined
  }

  /**
   * The request's prompt tokens. With a cached prefix only the text after it is tokenized: the cached tokens
   * end where no continuation changes them (see stablePrefix), so this equals tokenizing the whole text.
   */
  promptTokens(rule: CompiledRule, prompt: string): { tokens: Int32Array; cached: number } {
    return this.tokensOf(this.planOf(rule), prompt)
  }

  private planOf(rule: CompiledRule): RulePlan {
    const step = rule.reason!
    let plan = this.plans.get(step)
    if (!plan) {
      // A rule outside the prepared set (should not happen): run uncached rather than fail.
      const labels = this.labelTokens(step)
      plan = { step, entry: { key: '', tokens: new Int32Array(0), chars: -1, text: '', users: 0, retired: true }, labels, fold: this.foldOf(labels, step) }
    }
    return plan
  }

  private tokensOf(plan: RulePlan, prompt: string): { tokens: Int32Array; cached: number } {
    const step = plan.step
    const text = plan.frame ? plan.frame.before + prompt + plan.frame.after : this.tokenizer.render(step.system, prompt)
    const e = plan.entry
    if (e.state && e.chars >= 0 && text.length > e.chars && text.startsWith(e.text)) {
      const rest = this.tokenizer.encode(text.slice(e.chars))
      const tokens = new Int32Array(e.tokens.length + rest.length)
      tokens.set(e.tokens)
      tokens.set(rest, e.tokens.length)
      return { tokens, cached: rest.length > 0 ? e.tokens.length : 0 }
    }
    const tokens = Int32Array.from(this.tokenizer.encode(text))
    const cached = e.state && e.tokens.length < tokens.length && startsWith(tokens, e.tokens) ? e.tokens.length : 0
    return { tokens, cached }
  }

  /** Tokens of `text` that stay the same whatever text follows (BPE merges can cross the boundary), and
   *  after which the rest of the text tokenizes on its own as it would inside the whole: a special token
   *  marked rstrip swallows the whitespace after it, so when the continuation may start with a space or a
   *  newline it stays out of the cached part (which then ends before it). */
  private stablePrefix(text: string): number[] {
    if (text === '') return []
    const enc = (s: string) => this.tokenizer.encode(s)
    const whole = PROBES.map((p) => enc(text + p))
    let common = enc(text)
    for (const t of whole) {
      let n = 0
      while (n < common.length && n < t.length && common[n] === t[n]) n++
      common = common.slice(0, n)
    }
    for (; common.length > 0; common = common.slice(0, -1)) {
      const raw = this.tokenizer.decodeRaw(common)
      // Not a prefix of the text: requests are encoded whole (tokensOf), nothing to splice.
      if (!text.startsWith(raw)) break
      const rest = text.slice(raw.length)
      if (PROBES.every((p, i) => sameIds(whole[i]!, common, enc(rest + p)))) break
    }
    return common
  }

  /**
   * Asks the decoder to choose among the rule's labels. `done` is called exactly once, by the deadline (minus
   * guard) in every case, and synchronously when the request is shed at once (no promise turn: a burst of
   * shed requests must not wait behind each other's microtasks).
   */
  judge(rule: CompiledRule, prompt: string, o: JudgeOptions, done: (o: ModelOutcome) => void): void {
    const t0 = performance.now()
    const step = rule.reason!
    const plan = this.planOf(rule)
    this.expireDue()
    const { tokens, cached } = this.tokensOf(plan, prompt)
    const e = plan.entry
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
        if (out.status !== 'ok') this.metrics?.modelFallbacks.inc({ inspection: job.inspection, status: out.status, reason: out.reason })
        else this.metrics?.modelLatency.observe({ inspection: job.inspection }, out.ms / 1000)
        done(out)
      },
    }
    if (this.closed) return job.settle(this.skip(job, 'shutdown', 'the decoder is shutting down'))
    job.est = this.estimate(job)
    const now = performance.now()
    const until = o.deadline - this.opts.guardMs
    const busy = this.running !== undefined || this.queue.length > 0
    if (this.queue.length >= this.opts.queueMax) {
      return job.settle(this.skip(job, 'queue_full', `${this.queue.length} requests already wait for the decoder`))
    }
    const ahead = this.workAhead(now, o.deadline)
    if (now + ahead + job.est > until) {
      const left = until - now
      return job.settle(
        busy && now + job.est <= until
          ? this.skip(job, 'overload', `decoder busy: ~${round(ahead)} ms of earlier work ahead, needs ~${round(job.est)} ms, ${round(left)} ms left`)
          : this.skip(job, 'budget', `needs ~${round(job.est)} ms, ${round(left)} ms left in the budget`),
      )
    }
    e.users++
    job.timer = setTimeout(() => this.onDeadline(job), Math.max(0, until - now))
    this.insert(job)
    this.metrics?.modelQueueDepth.set(this.queue.length)
    // A running explanation yields at its next token: verdicts come first.
    this.pump()
  }

  /** Predicted ms of the job's decoder work. */
  private estimate(job: Job): number {
    const c = this.opts.chunkTokens
    const fold = job.plan.fold?.length ?? 0
    const feed = job.tokens.length - job.cached
    let ms = CLONE_MS + Math.floor(feed / c) * this.cost.call(c) + this.cost.call((feed % c) + fold)
    if (!fold) for (const l of job.plan.labels) if (l.length > 1) ms += CLONE_MS + this.cost.call(l.length - 1)
    return ms
  }

  /** ms of decoder work that runs before a job with this deadline could start. */
  private workAhead(now: number, deadline: number): number {
    let ms = 0
    if (this.running) ms += Math.max(0, this.running.estEnd - now)
    else if (this.explaining) ms += this.cost.call(1)
    for (const q of this.queue) {
      if (q.deadline > deadline) break
      ms += q.est
    }
    return ms
  }

  private insert(job: Job): void {
    let lo = 0
    let hi = this.queue.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.queue[mid]!.deadline <= job.deadline) lo = mid + 1
      else hi = mid
    }
    this.queue.splice(lo, 0, job)
  }

  private skip(job: Job, reason: SkipReason, detail: string): ModelOutcome {
    return { status: 'skipped', reason, detail, ms: round(performance.now() - job.t0), tokens: this.counts(job, 0) }
  }

  private counts(job: Job, computed: number): TokenCounts {
    return { prompt: job.tokens.length, cached: job.cached, computed }
  }

  /**
   * Settles requests whose publish time has come even when their timers cannot fire because the event loop
   * is busy with a burst of messages; the daemon calls it per message, judge() per request. O(1) when idle.
   */
  expireDue(): void {
    const now = performance.now()
    const g = this.opts.guardMs
    while (this.queue.length > 0 && this.queue[0]!.deadline - g <= now) this.onDeadline(this.queue[0]!)
    const r = this.running
    if (r && !r.done && r.deadline - g <= now) this.onDeadline(r)
  }

  private onDeadline(job: Job): void {
    if (job.done) return
    const i = this.queue.indexOf(job)
    if (i >= 0) {
      this.queue.splice(i, 1)
      this.metrics?.modelQueueDepth.set(this.queue.length)
      this.release(job.plan.entry, 1)
      job.settle(this.skip(job, 'deadline', 'still waiting for the decoder at the deadline'))
      return
    }
    job.settle({ status: 'aborted', reason: 'deadline', detail: 'the decoder had not finished at the deadline', ms: round(performance.now() - job.t0), tokens: this.counts(job, 0) })
  }

  private release(entry: PrefixEntry, users: number): void {
    entry.users -= users
    if (entry.retired && entry.users <= 0 && entry.state) {
      entry.state.dispose()
      entry.state = undefined
    }
  }

  private pump(): void {
    if (this.running || this.explaining || this.closed) return
    const job = this.queue.shift()
    if (job) {
      this.metrics?.modelQueueDepth.set(this.queue.length)
      this.running = job
      void this.run(job).finally(() => {
        this.running = undefined
        this.release(job.plan.entry, 1)
        this.pump()
      })
      return
    }
    const ex = this.explains.shift()
    if (ex) {
      this.explaining = true
      void this.runExplain(ex).finally(() => {
        this.explaining = false
        this.pump()
      })
    }
  }

  /** Throws Abort when the job was settled by its timer or the rest of its work no longer fits. */
  private checkpoint(job: Job, restMs: number): void {
    if (job.done) throw new Abort('deadline', 'the decoder had not finished at the deadline')
    const now = performance.now()
    const left = job.deadline - this.opts.guardMs - now
    if (restMs > left) throw new Abort('budget', `~${round(restMs)} ms of decoder work left, ${round(left)} ms left in the budget`)
    job.estEnd = now + restMs
  }

  private async timed(state: DecoderState, tokens: Int32Array, opts?: PrefillOpts): Promise<Float32Array> {
    const t = performance.now()
    const out = await this.backend.prefill(state, tokens, opts)
    const wall = performance.now() - t
    this.cost.observe(tokens.length, state.lastMs ?? wall, wall)
    return out
  }

  private async run(job: Job): Promise<void> {
    const b = this.backend
    const V = this.vocab
    const c = this.opts.chunkTokens
    let state: DecoderState | undefined
    let keep = false
    try {
      if (job.done) return
      const feed = job.tokens.subarray(job.cached)
      const fold = job.plan.fold
      const labelsRest = (from: number): number => {
        let ms = 0
        if (fold) return 0
        for (let i = from; i < job.plan.labels.length; i++) if (job.plan.labels[i]!.length > 1) ms += CLONE_MS + this.cost.call(job.plan.labels[i]!.length - 1)
        return ms
      }
      const feedRest = (from: number): number => {
        const n = feed.length - from
        return Math.floor(n / c) * this.cost.call(c) + this.cost.call((n % c) + (fold?.length ?? 0))
      }
      this.checkpoint(job, CLONE_MS + feedRest(0) + labelsRest(0))
      state = job.cached > 0 ? await b.clone(job.plan.entry.state!) : await b.newState()
      let logits: Float32Array = new Float32Array(0)
      let calls = 0
      for (let i = 0; i < feed.length; i += c, calls++) {
        this.checkpoint(job, feedRest(i) + labelsRest(0))
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
      let computed = feed.length + (fold?.length ?? 0)
      for (let k = 0; k < job.plan.labels.length; k++) {
        const lab = job.plan.labels[k]!
        let lp = logProbAt(logits, 0, V, lab[0]!)
        if (fold) {
          for (let j = 1; j < lab.length; j++) lp += logProbAt(logits, j * V, V, lab[j]!)
        } else if (lab.length > 1) {
          this.checkpoint(job, labelsRest(k))
          const s = await b.clone(state)
          try {
            const rows = await this.timed(s, lab.subarray(0, lab.length - 1), { allLogits: true })
            calls++
            for (let j = 1; j < lab.length; j++) lp += logProbAt(rows, (j - 1) * V, V, lab[j]!)
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
        this.explains.push({ state, logits, maxTokens: job.maxExplain, onExplain: job.onExplain, inspection: job.inspection })
        const max = this.opts.explainQueueMax ?? 8
        while (this.explains.length > max) {
          this.explains.shift()!.state.dispose()
          this.metrics?.modelExplains.inc({ result: 'dropped' })
        }
      }
    } catch (e) {
      if (e instanceof Abort) {
        job.settle({ status: 'aborted', reason: e.reason, detail: e.detail, ms: round(performance.now() - job.t0), tokens: this.counts(job, 0) })
      } else {
        this.log?.error({ err: e, inspection: job.inspection }, 'decoder failed')
        job.settle({ status: 'aborted', reason: 'decoder_error', detail: (e as Error).message, ms: round(performance.now() - job.t0) })
      }
    } finally {
      if (!keep) state?.dispose()
    }
  }

  /** Greedy generation after a verdict; gives way (is dropped) as soon as a verdict waits. */
  private async runExplain(ex: ExplainJob): Promise<void> {
    const t0 = performance.now()
    const V = this.vocab
    const out: number[] = []
    try {
      let logits: Float32Array = ex.logits
      for (let i = 0; i < ex.maxTokens; i++) {
        const next = argmaxRow(logits, 0, V)
        if (this.tokenizer.stopIds.has(next)) break
        out.push(next)
        if (i + 1 === ex.maxTokens) break
        if (this.queue.length > 0 || this.closed) {
          this.metrics?.modelExplains.inc({ result: 'dropped' })
          return
        }
        logits = await this.timed(ex.state, Int32Array.of(next))
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

  /** Settles every waiting request with its fallback, then frees states and the backend. */
  async close(): Promise<void> {
    this.closed = true
    for (const job of this.queue.splice(0)) job.settle(this.skip(job, 'shutdown', 'the decoder is shutting down'))
    for (const ex of this.explains.splice(0)) ex.state.dispose()
    while (this.running || this.explaining) await new Promise((r) => setTimeout(r, 5))
    for (const e of this.entries.values()) e.state?.dispose()
    this.entries.clear()
    await this.backend.dispose()
  }
}

/** model.threads 0: every core but one, which stays with the event loop, MQTT and the broker. */
export function decoderThreads(configured: number): number {
  return configured > 0 ? configured : Math.max(1, availableParallelism() - 1)
}

function startsWith(a: Int32Array, prefix: Int32Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false
  return true
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000
}

function round6(x: number): number {
  return Number(x.toPrecision(9))
}

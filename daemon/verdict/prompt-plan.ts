// The prompt side of reason rules: per rule, which tokens its requests share (the rendered chat up to the
// prompt's first placeholder, prefilled once and cloned per request), how the rest of a request's prompt is
// tokenized, and how its choice labels are scored (label tokens, folded into the prompt's last call when
// they allow it). Prefix entries are reference-counted across rule reloads.
import type { DecoderState } from '../model/backend.js'
import type { CompiledRule, ReasonStep } from '../rules/types.js'
import type { ChatTokenizer } from './tokenizer.js'

/** A cached prompt prefix: the system text and template text before the first placeholder, prefilled. */
export interface PrefixEntry {
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

export interface RulePlan {
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

/** Prefills a prefix into a new state (the engine's timed call path). */
export type PrefixBuilder = (tokens: Int32Array) => Promise<DecoderState>

// Marks where the first placeholder's value goes, to cut the rendered chat at the static prefix.
const SENTINEL = '\uE000flashcheck-prefix\uE001'
// Continuations tried after the static prefix: tokens common to all of them do not depend on what follows.
const PROBES = ['0', '9', 'A', 'a', 'z', ' ', ' x', '\n', '.', '-', '{', '(', '"', 'é']

export class PromptPlanner {
  private readonly plans = new WeakMap<ReasonStep, RulePlan>()
  private entries = new Map<string, PrefixEntry>()

  /** `lastRows`: the backend can return the logits of the last rows (needed for folding labels). */
  constructor(private readonly tokenizer: ChatTokenizer, private readonly lastRows: boolean, private readonly cachePrefixes: boolean) {}

  /**
   * Builds the plans of a rule set before it becomes active; prefix entries whose text did not change are
   * kept, the others are freed once no queued request uses them. Returns how many prefixes were built.
   */
  async prepare(rules: readonly CompiledRule[], build: PrefixBuilder): Promise<number> {
    const next = new Map<string, PrefixEntry>()
    let built = 0
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
        if (this.cachePrefixes && tokens.length > 0) entry.state = await build(tokens)
        built++
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
      release(entry, 0)
    }
    this.entries = next
    return built
  }

  planOf(rule: CompiledRule): RulePlan {
    const step = rule.reason!
    let plan = this.plans.get(step)
    if (!plan) {
      // A rule outside the prepared set (should not happen): run uncached rather than fail.
      const labels = this.labelTokens(step)
      plan = { step, entry: { key: '', tokens: new Int32Array(0), chars: -1, text: '', users: 0, retired: true }, labels, fold: this.foldOf(labels, step) }
    }
    return plan
  }

  /**
   * The request's prompt tokens. With a cached prefix only the text after it is tokenized: the cached tokens
   * end where no continuation changes them (see stablePrefix), so this equals tokenizing the whole text.
   */
  tokensOf(plan: RulePlan, prompt: string): { tokens: Int32Array; cached: number } {
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

  /** Frees every prefix state (shutdown). */
  dispose(): void {
    for (const e of this.entries.values()) e.state?.dispose()
    this.entries.clear()
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
    if (!this.lastRows || step.explain) return undefined
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
      // Not a prefix of the text: requests are encoded whole, nothing to splice.
      if (!text.startsWith(raw)) break
      const rest = text.slice(raw.length)
      if (PROBES.every((p, i) => sameIds(whole[i]!, common, enc(rest + p)))) break
    }
    return common
  }
}

/** Drops `users` uses of a prefix entry; a retired entry frees its state with its last user. */
export function release(entry: PrefixEntry, users: number): void {
  entry.users -= users
  if (entry.retired && entry.users <= 0 && entry.state) {
    entry.state.dispose()
    entry.state = undefined
  }
}

/** a equals b followed by c. */
function sameIds(a: readonly number[], b: readonly number[], c: readonly number[]): boolean {
  if (a.length !== b.length + c.length) return false
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return false
  for (let i = 0; i < c.length; i++) if (a[b.length + i] !== c[i]) return false
  return true
}

function startsWith(a: Int32Array, prefix: Int32Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false
  return true
}

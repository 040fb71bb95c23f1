// Runs the tests of parsed test files: each test gets a fresh service (empty signal windows) on a virtual
// clock that reads the test's at_ms / sample times, fed through the daemon's own request path.
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { loadRuleDir } from '../rules/load.js'
import type { RuleError, RuleSet } from '../rules/types.js'
import type { ModelJudge } from '../service/exchange.js'
import type { Response } from '../service/response.js'
import { VirtualService, type Published } from '../virtual/service.js'
import type { Expect, TestCase, TestFile, TestRequest } from './format.js'
import { renderPayload } from './series.js'
import { StandInModel } from './stand-in.js'

export interface RequestFailure {
  /** 1-based index of the request in its test. */
  index: number
  request: TestRequest
  /** One line per difference: `- key: expected` / `+ key: actual`. */
  diff: string[]
  /** What the daemon answered (null: no answer at all). */
  actual: Response | null
}

export interface TestResult {
  file: string
  name: string
  ok: boolean
  ms: number
  failures: RequestFailure[]
  /** A problem running the test at all (invalid rules, a stand-in choice the rule does not offer). */
  error?: string
  /** Every request's answer in order (with RunOptions.keepAnswers). */
  answers?: (Response | null)[]
}

export interface RunOptions {
  /** Overrides every file's rules_dir. */
  rulesDir?: string
  /** A real decoder for reason rules (--model-dir), shared by every test. */
  model?: (set: RuleSet) => Promise<ModelJudge>
  /** Keep every answer in TestResult.answers (tests compare them with the live daemon's). */
  keepAnswers?: boolean
}

type Loaded = { ok: true; set: RuleSet; model?: ModelJudge } | { ok: false; errors: RuleError[] }

export class TestRunner {
  private readonly sets = new Map<string, Promise<Loaded>>()
  readonly config: Config

  constructor(private readonly o: RunOptions = {}) {
    // Defaults only: a test must give the same result on every machine, whatever its environment says.
    this.config = loadConfig({ env: {}, args: [] })
  }

  private load(dir: string): Promise<Loaded> {
    let p = this.sets.get(dir)
    if (!p) {
      p = (async (): Promise<Loaded> => {
        const res = await loadRuleDir(dir, { defaultBudgetMs: this.config.budget.defaultMs, model: true })
        if (!res.ok) return res
        return { ok: true, set: res.set, model: this.o.model && (res.set.reasonRules?.length ?? 0) > 0 ? await this.o.model(res.set) : undefined }
      })()
      this.sets.set(dir, p)
    }
    return p
  }

  async runFile(tf: TestFile): Promise<TestResult[]> {
    const dir = this.o.rulesDir ?? tf.rulesDir
    const out: TestResult[] = []
    for (const t of tf.tests) {
      const t0 = performance.now()
      const r = dir === undefined ? { ok: false as const, errors: [{ file: tf.file, line: 1, col: 1, message: 'no rules_dir in the file and no --rules-dir' }] } : await this.load(dir)
      const res = r.ok ? await this.runTest(r.set, r.model, t) : { failures: [], error: `rules invalid:\n${r.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join('\n')}` }
      out.push({ file: tf.file, name: t.name, ok: res.failures.length === 0 && res.error === undefined, ms: performance.now() - t0, ...res })
    }
    return out
  }

  private async runTest(set: RuleSet, model: ModelJudge | undefined, t: TestCase): Promise<{ failures: RequestFailure[]; error?: string; answers?: (Response | null)[] }> {
    for (const [id, choice] of Object.entries(t.choices ?? {})) {
      const rule = set.rules.find((r) => r.id === id)
      if (!rule?.reason) return { failures: [], error: `model.choices names ${id}, which is not a rule with a reason step` }
      if (!rule.reason.choices.includes(choice)) return { failures: [], error: `model.choices: ${choice} is not a choice of ${id} (${rule.reason.choices.join(', ')})` }
    }
    const svc = new VirtualService({ config: this.config, set, engine: t.choices || !model ? new StandInModel(t.choices) : model })
    type Ev = { at: number; order: number; signal?: { topic: string; payload: Buffer }; request?: TestRequest; index?: number }
    const events: Ev[] = []
    let order = 0
    for (const s of t.signals) {
      s.values.forEach((v, k) => {
        if (v !== null) events.push({ at: s.startMs + k * s.intervalMs, order: order++, signal: { topic: s.topic, payload: Buffer.from(renderPayload(s.payload, v)) } })
      })
    }
    // At the same millisecond samples go first: a request sees the samples stamped with its own time.
    const base = 1 << 30
    t.requests.forEach((r, i) => events.push({ at: r.atMs, order: base + i, request: r, index: i + 1 }))
    events.sort((a, b) => a.at - b.at || a.order - b.order)
    const failures: RequestFailure[] = []
    const answers: (Response | null)[] = []
    for (const ev of events) {
      if (ev.signal) {
        await svc.deliver(ev.at, ev.signal.topic, ev.signal.payload).settled
        continue
      }
      const r = ev.request!
      const isRequest = set.matchRequest(r.topic) !== null || !set.matchTrigger(r.topic).length
      const d = svc.deliver(ev.at, r.topic, r.payload, { reply: isRequest })
      await d.settled
      const answer = pick(d.published, isRequest ? d.replyTopic : undefined, r.expect.inspection)
      answers.push(answer?.response ?? null)
      const diff = compare(r.expect, answer?.response ?? null)
      if (diff.length > 0) failures.push({ index: ev.index!, request: r, diff, actual: answer?.response ?? null })
    }
    return this.o.keepAnswers ? { failures, answers } : { failures }
  }
}

function pick(published: Published[], replyTopic: string | undefined, inspection: string | undefined): Published | undefined {
  if (replyTopic !== undefined) return published.find((p) => p.topic === replyTopic)
  return inspection === undefined ? published[0] : published.find((p) => p.response.inspection === inspection)
}

const show = (v: unknown): string => (v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v))

/** The differences between what a request expects and the answer, as `- expected` / `+ actual` line pairs. */
export function compare(e: Expect, res: Response | null): string[] {
  const d: string[] = []
  const diff = (key: string, want: unknown, got: unknown) => {
    if (JSON.stringify(want) === JSON.stringify(got)) return
    d.push(`- ${key}: ${show(want)}`, `+ ${key}: ${show(got)}`)
  }
  if (res === null) {
    d.push('- an answer', '+ no answer was published')
    return d
  }
  if (e.inspection !== undefined) diff('inspection', e.inspection, res.inspection)
  if (e.verdict !== undefined) diff('verdict', e.verdict, res.verdict)
  if (e.error !== undefined) diff('error', e.error, res.error?.code)
  // An unexpected error verdict: its message says why.
  if (d.length > 0 && e.error === undefined && res.error) d.push(`+ error: ${res.error.code}: ${res.error.message}`)
  if (e.fallback !== undefined) diff('fallback', e.fallback, res.fallback ?? false)
  for (const [id, want] of Object.entries(e.checks ?? {})) {
    const c = res.checks.find((x) => x.id === id)
    diff(`checks.${id}`, want, c ? c.ok : undefined)
  }
  for (const [k, want] of Object.entries(e.model ?? {})) diff(`model.${k}`, want, (res.model as Record<string, unknown> | undefined)?.[k])
  return d
}

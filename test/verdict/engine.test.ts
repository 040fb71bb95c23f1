// The verdict engine on the real native kernel and a real (tiny, random) checkpoint with its tokenizer:
// prefix-cached scores against a full recompute, multi-token labels, determinism, deadlines and shedding.
import t from 'tap'
import { performance } from 'node:perf_hooks'
import { compileSources } from '../../daemon/rules/load.js'
import type { CompiledRule } from '../../daemon/rules/types.js'
import { Model } from '../../daemon/model/kernel.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { VerdictEngine, type EngineOptions, type JudgeOptions, type ModelOutcome } from '../../daemon/verdict/engine.js'
import { ChatTokenizer } from '../../daemon/verdict/tokenizer.js'
import { jointRule, modelFixture, type ModelFixture } from '../helpers/model.js'

let fx: ModelFixture
const engines: VerdictEngine[] = []

t.before(async () => {
  fx = await modelFixture()
})
t.teardown(async () => {
  for (const e of engines) await e.close()
  fx?.cleanup()
})

function rule(src: string): CompiledRule {
  const r = compileSources([{ file: 'r.yaml', src }], { defaultBudgetMs: 50, model: true })
  if (!r.rules) throw new Error(JSON.stringify(r.errors))
  return r.rules[0]!
}

/** judge() as a promise (the daemon uses the callback so that shed requests are answered synchronously). */
function judge(e: VerdictEngine, r: CompiledRule, prompt: string, o: JudgeOptions): Promise<ModelOutcome> {
  return new Promise((resolve) => e.judge(r, prompt, o, resolve))
}

async function engine(o: Partial<EngineOptions> = {}, metrics = new Metrics()): Promise<VerdictEngine> {
  const e = await VerdictEngine.load({ dir: fx.model, backend: 'native', threads: 2, guardMs: 5, queueMax: 32, chunkTokens: 64, prefixCache: true, ...o }, metrics)
  engines.push(e)
  return e
}

/** Independent reference: the whole prompt prefilled from scratch, each label scored in double precision. */
async function reference(r: CompiledRule, prompt: string): Promise<Record<string, number>> {
  const tok = await ChatTokenizer.load(fx.model)
  const m = Model.load(fx.model, { threads: 2 })
  try {
    const V = m.config.vocab_size
    const s = m.newState()
    const last = m.prefill(s, tok.encode(tok.render(r.reason!.system, prompt)))
    const lsm = (row: Float32Array, off: number, id: number) => {
      let max = -Infinity
      for (let i = 0; i < V; i++) max = Math.max(max, row[off + i]!)
      let z = 0
      for (let i = 0; i < V; i++) z += Math.exp(row[off + i]! - max)
      return row[off + id]! - max - Math.log(z)
    }
    const out: Record<string, number> = {}
    for (const label of r.reason!.choices) {
      const ids = tok.encode(label)
      let lp = lsm(last, 0, ids[0]!)
      if (ids.length > 1) {
        const c = s.clone()
        const rows = m.prefill(c, ids.slice(0, -1), { allLogits: true })
        for (let j = 1; j < ids.length; j++) lp += lsm(rows, (j - 1) * V, ids[j]!)
        c.dispose()
      }
      out[label] = lp
    }
    s.dispose()
    return out
  } finally {
    m.dispose()
  }
}

const PROMPT = 'Screw joint at station st3: torque 11.2 Nm, angle 700 deg. Checks: torque-in-spec pass. Verdict?'
const soon = (ms: number) => performance.now() + ms

/**
 * judge() with the time it settled and, as an independent witness of how late this loop runs timers just then,
 * when a timer due with the job's fallback (deadline minus the guard) actually ran. On a loaded machine (CI runs
 * test files side by side on two cores) every timer can run after its time: the engine is on time when it
 * settles no later than the deadline or, failing that, than that timer.
 */
async function judgeTimed(e: VerdictEngine, r: CompiledRule, prompt: string, deadline: number): Promise<{ o: ModelOutcome; onTime: boolean; note: string }> {
  const settled = judge(e, r, prompt, { deadline })
  const due = deadline - e.guard.ms()
  const witness = timerRan(due)
  const o = await settled
  const at = performance.now()
  const ran = await witness
  return { o, onTime: at <= Math.max(deadline, ran + 1), note: `settled ${(deadline - at).toFixed(2)} ms before the deadline (a timer due with the fallback ran ${Math.max(0, ran - due).toFixed(2)} ms late)` }
}

function timerRan(due: number): Promise<number> {
  return new Promise((res) => setTimeout(() => res(performance.now()), Math.max(0, due - performance.now())))
}

function ok(o: ModelOutcome): Extract<ModelOutcome, { status: 'ok' }> {
  if (o.status !== 'ok') throw new Error(`expected a scored choice, got ${JSON.stringify(o)}`)
  return o
}

t.test('prefix-cached scores equal a full recompute, and so do uncached ones', async (t) => {
  const r = rule(jointRule())
  const ref = await reference(r, PROMPT)
  for (const prefixCache of [true, false]) {
    const e = await engine({ prefixCache })
    await e.prepare([r])
    const o = ok(await judge(e, r, PROMPT, { deadline: soon(10_000) }))
    t.equal(o.prefix_cached, prefixCache, `prefix_cached with prefixCache=${prefixCache}`)
    if (prefixCache) t.ok(o.tokens.cached > 20 && o.tokens.cached < o.tokens.prompt, `most of the static prefix is cached (${o.tokens.cached}/${o.tokens.prompt})`)
    else t.equal(o.tokens.cached, 0)
    const tok = await ChatTokenizer.load(fx.model)
    const extra = r.reason!.choices.reduce((a, c) => a + tok.encode(c).length - 1, 0)
    t.equal(o.tokens.computed, o.tokens.prompt - o.tokens.cached + extra, 'the prompt suffix plus label tokens after the first are computed')
    for (const label of r.reason!.choices) {
      t.ok(Math.abs(o.scores[label]! - ref[label]!) <= 1e-4, `${label}: ${o.scores[label]} vs recompute ${ref[label]} (cache ${prefixCache})`)
    }
    const best = Object.entries(ref).sort((a, b) => b[1] - a[1])[0]![0]
    t.equal(o.choice, best, 'the choice is the label with the highest log-probability')
    const z = Object.values(ref).reduce((a, v) => a + Math.exp(v - ref[best]!), 0)
    t.ok(Math.abs(o.confidence - 1 / z) < 1e-4, `confidence is the softmax over label log-probabilities (${o.confidence} vs ${1 / z})`)
  }
})

t.test('tokenizing only the text after the cached prefix gives the tokens of the whole prompt', async (t) => {
  const r = rule(jointRule())
  const e = await engine()
  await e.prepare([r])
  const tok = await ChatTokenizer.load(fx.model)
  const words = ['st3', '11.25', ' Nm', 'é', '\n', '  ', '{x}', '<|end|>', 'REWORK', '-0.5', 'ü', '??', "'s", 'joint', '0']
  let seed = 1
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  let hits = 0
  for (let i = 0; i < 300; i++) {
    let p = 'Screw joint at station'
    const n = 1 + Math.floor(rnd() * 8)
    for (let k = 0; k < n; k++) p += (rnd() < 0.5 ? ' ' : '') + words[Math.floor(rnd() * words.length)]
    const got = e.promptTokens(r, p)
    const want = tok.encode(tok.render(r.reason!.system, p))
    if (got.cached > 0) hits++
    if (JSON.stringify([...got.tokens]) !== JSON.stringify(want)) {
      t.fail(`tokens differ for ${JSON.stringify(p)}`)
      return
    }
  }
  t.equal(hits, 300, 'every prompt used the cached prefix')
})

t.test('multi-token labels are scored over all their tokens', async (t) => {
  const r = rule(jointRule({ verdicts: '[ACCEPTABLE_JOINT, NEEDS_RETORQUE, SCRAP_ASSEMBLY]', choices: '[ACCEPTABLE_JOINT, NEEDS_RETORQUE, SCRAP_ASSEMBLY]', fallback: 'NEEDS_RETORQUE' }).replace('on_fail: FAIL', 'on_fail: SCRAP_ASSEMBLY'))
  const tok = await ChatTokenizer.load(fx.model)
  const lens = r.reason!.choices.map((c) => tok.encode(c).length)
  t.ok(lens.every((n) => n > 1), `labels are several tokens each (${lens.join(', ')})`)
  const e = await engine()
  await e.prepare([r])
  const o = ok(await judge(e, r, PROMPT, { deadline: soon(10_000) }))
  const ref = await reference(r, PROMPT)
  for (const label of r.reason!.choices) t.ok(Math.abs(o.scores[label]! - ref[label]!) <= 1e-4, `${label}: ${o.scores[label]} vs ${ref[label]}`)
  t.equal(o.tokens.computed, o.tokens.prompt - o.tokens.cached + lens.reduce((a, n) => a + n - 1, 0), 'label tokens after the first are run through the decoder')
  t.equal(o.calls, 1 + lens.length, 'labels on different paths take a decoder call each')
  const sum = Object.values(o.scores).reduce((a, v) => a + Math.exp(v), 0)
  t.ok(sum < 1, 'label sequence probabilities are proper (sum below 1)')
})

t.test('a multi-token label on one path is scored from the prompt call itself (lastRows)', async (t) => {
  const r = rule(jointRule({ choices: '[PASS, WARN, REWORK, FAIL]' }))
  const tok = await ChatTokenizer.load(fx.model)
  const lens = r.reason!.choices.map((c) => tok.encode(c).length)
  t.same(lens.map((n) => n > 1), [true, false, false, false], `PASS is the one multi-token label (${lens.join(', ')})`)
  const e = await engine()
  await e.prepare([r])
  const o = ok(await judge(e, r, PROMPT, { deadline: soon(10_000) }))
  const ref = await reference(r, PROMPT)
  for (const label of r.reason!.choices) t.ok(Math.abs(o.scores[label]! - ref[label]!) <= 1e-4, `${label}: ${o.scores[label]} vs ${ref[label]}`)
  t.equal(o.tokens.computed, o.tokens.prompt - o.tokens.cached + lens[0]! - 1)
  t.equal(o.calls, 1, 'one decoder call scores every label')
})

t.test('the same request gives the same verdict and confidence', async (t) => {
  const r = rule(jointRule())
  const e = await engine()
  await e.prepare([r])
  const a = ok(await judge(e, r, PROMPT, { deadline: soon(10_000) }))
  const b = ok(await judge(e, r, PROMPT, { deadline: soon(10_000) }))
  t.same(b.scores, a.scores)
  t.equal(b.confidence, a.confidence)
  t.equal(b.choice, a.choice)
  const other = ok(await judge(e, r, PROMPT.replace('11.2', '11.9'), { deadline: soon(10_000) }))
  t.not(other.scores.PASS, a.scores.PASS, 'a different request gives different scores')
})

t.test('a decoder fault gives the fallback, counted by reason, and is kept as the last error', async (t) => {
  const r = rule(jointRule())
  const metrics = new Metrics()
  const e = await engine({}, metrics)
  await e.prepare([r])
  t.equal(e.lastError, undefined, 'no error yet')
  const backend = e.backend as unknown as { prefill: (...a: unknown[]) => Promise<unknown> }
  const prefill = backend.prefill
  backend.prefill = async () => { throw new Error('injected fault') }
  const before = Date.now()
  const got = await judge(e, r, PROMPT, { deadline: soon(10_000) })
  backend.prefill = prefill
  t.match(got, { status: 'aborted', reason: 'decoder_error', detail: 'injected fault' })
  t.match(e.lastError, { inspection: r.id, detail: 'injected fault' })
  t.ok(e.lastError!.at >= before && e.lastError!.at <= Date.now())
  t.match(await metrics.registry.getSingleMetricAsString('flashcheck_model_fallbacks_total'), /reason="decoder_error"\} 1/)
  ok(await judge(e, r, PROMPT, { deadline: soon(10_000) }))
  t.equal(e.lastError!.detail, 'injected fault', 'a later success leaves the last error as it was')
})

t.test('a budget the decoder cannot meet is skipped at once', async (t) => {
  const r = rule(jointRule())
  const e = await engine()
  await e.prepare([r])
  let got: ModelOutcome | undefined
  e.judge(r, PROMPT, { deadline: performance.now() + 3 }, (o) => (got = o))
  t.ok(got, 'settled synchronously, before judge() returns')
  t.equal(got?.status, 'skipped')
  t.equal(got?.status !== 'ok' && got?.reason, 'budget')
})

t.test('a cost model seeded far too slow is calibrated again in idle time, and verdicts resume', async (t) => {
  const r = rule(jointRule())
  const e = await engine()
  await e.prepare([r])
  const real = { call: e.cost.perCallMs, token: e.cost.perTokenMs }
  // As if calibrated while the machine was busy: every request looks 100x over its budget.
  e.cost.set(real.call * 100 + 100, real.token * 100 + 10)
  const first = await judge(e, r, PROMPT, { deadline: soon(200) })
  t.equal(first.status !== 'ok' && first.reason, 'budget', 'skipped while the estimate is wrong')
  const t0 = performance.now()
  while (e.cost.perCallMs > real.call * 10 + 10 && performance.now() - t0 < 10_000) await new Promise((res) => setTimeout(res, 20))
  t.ok(e.cost.perCallMs < real.call * 10 + 10, `re-calibrated in the background: ${e.cost.perCallMs.toFixed(2)} ms per call`)
  const next = await judge(e, r, PROMPT, { deadline: soon(2000) })
  t.equal(next.status, 'ok', 'the next request is scored')
  // While the budget really cannot be met, probes back off instead of running every request.
  e.cost.set(real.call * 100 + 100, real.token * 100 + 10)
  let probes = 0
  const orig = e.cost.set.bind(e.cost)
  e.cost.set = (a: number, b: number, h?: number) => { probes++; orig(a, b, h); orig(real.call * 100 + 100, real.token * 100 + 10) }
  for (let i = 0; i < 40; i++) {
    await judge(e, r, PROMPT, { deadline: soon(20) })
    await new Promise((res) => setTimeout(res, 100))
  }
  t.ok(probes >= 1 && probes <= 2, `${probes} re-calibrations over 4 s of skipped requests (every 2 s, then 4 s, ...)`)
})

t.test('a job that overruns is settled at the deadline minus the guard', async (t) => {
  const r = rule(jointRule())
  const e = await engine({ chunkTokens: 1 })
  await e.prepare([r])
  // Pretend decoder calls are nearly free so admission lets the job in; real calls then overrun.
  e.cost.set(0.001, 0.0001, 0)
  const { o, onTime, note } = await judgeTimed(e, r, PROMPT + ' Consider the angle window and the spindle vibration too.', soon(12))
  t.equal(o.status, 'aborted', JSON.stringify(o))
  t.ok(o.status !== 'ok' && (o.reason === 'budget' || o.reason === 'deadline'), `reason ${o.status !== 'ok' && o.reason}`)
  t.ok(onTime, note)
  // The engine keeps working afterwards.
  e.cost.set(2, 0.1)
  t.equal((await judge(e, r, PROMPT, { deadline: soon(10_000) })).status, 'ok')
})

t.test('a decoder call that outlasts the whole budget: the timer settles the job while the call runs', async (t) => {
  const r = rule(jointRule())
  const e = await engine()
  await e.prepare([r])
  e.cost.set(0.001, 0.0001, 0)
  // As if the decoder shared its cores with something heavier: every call takes 80 ms.
  const prefill = e.backend.prefill.bind(e.backend)
  e.backend.prefill = async (...a) => {
    await new Promise((res) => setTimeout(res, 80))
    return prefill(...a)
  }
  try {
    const { o, onTime, note } = await judgeTimed(e, r, PROMPT + ' And the spindle.', soon(25))
    t.equal(o.status !== 'ok' && o.reason, 'deadline', JSON.stringify(o))
    t.ok(onTime, `${note}, with the decoder call still running`)
  } finally {
    e.backend.prefill = prefill
  }
  e.cost.set(2, 0.1)
  t.equal((await judge(e, r, PROMPT, { deadline: soon(10_000) })).status, 'ok', 'the engine takes the next request once the slow call is over')
})

t.test('after a verdict went out late, later fallbacks are due earlier by what it needed', async (t) => {
  const r = rule(jointRule())
  const e = await engine({ chunkTokens: 1 })
  await e.prepare([r])
  e.cost.set(0.001, 0.0001, 0)
  const long = PROMPT + ' Consider the angle window and the spindle vibration too.'
  // The loop is busy when the fallback is due: it goes out after the deadline, and the guard learns by how much.
  const deadline = soon(30)
  const first = judge(e, r, long, { deadline })
  const end = deadline + 8
  while (performance.now() < end) { /* a burst of messages or a starved loop */ }
  const o = await first
  t.equal(o.status, 'aborted')
  const widened = e.guard.ms()
  t.ok(widened >= 5 + 8, `guard ${widened.toFixed(1)} ms after a fallback went out 8 ms after its deadline`)
  // Admission counts the widened guard: the time left for the next request is that much shorter.
  e.cost.set(100, 1, 0)
  const next = soon(60)
  const o2 = await judge(e, r, long, { deadline: next })
  const left = Number(/(-?[\d.]+) ms left in the budget/.exec(o2.status === 'skipped' ? o2.detail : '')?.[1])
  t.ok(o2.status === 'skipped' && left <= 60 - widened + 1, `${o2.status === 'skipped' ? o2.detail : o2.status} (guard ${widened.toFixed(1)} ms)`)
  e.cost.set(2, 0.1)
})

t.test('overload sheds to fallbacks instead of queueing past deadlines', async (t) => {
  const r = rule(jointRule())
  const metrics = new Metrics()
  const e = await engine({ queueMax: 8 }, metrics)
  await e.prepare([r])
  const deadline = soon(60)
  let maxDepth = 0
  const pending = Promise.all(
    Array.from({ length: 60 }, (_, i) => {
      const p = judge(e, r, PROMPT.replace('11.2', String(10 + i / 100)), { deadline }).then((o) => ({ o, at: performance.now() }))
      maxDepth = Math.max(maxDepth, e.queueDepth)
      return p
    }),
  )
  const witness = timerRan(deadline - e.guard.ms())
  const outs = await pending
  const byStatus = (s: string) => outs.filter((x) => x.o.status === s).length
  t.ok(byStatus('ok') >= 1, `some requests were scored (${byStatus('ok')})`)
  t.ok(byStatus('skipped') >= 1, `the rest were shed (${byStatus('skipped')} skipped, ${byStatus('aborted')} aborted)`)
  t.ok(maxDepth <= 8, `queue stayed within queueMax (max ${maxDepth})`)
  const ran = await witness
  const last = Math.max(...outs.map((x) => x.at))
  t.ok(last <= Math.max(deadline, ran + 1), `every outcome was settled before the deadline (the last ${(deadline - last).toFixed(2)} ms before it)`)
  const reasons = new Set(outs.map((x) => (x.o.status === 'ok' ? 'ok' : x.o.reason)))
  t.ok(reasons.has('overload') || reasons.has('queue_full'), `shedding reasons: ${[...reasons].join(', ')}`)
  const text = await metrics.registry.getSingleMetricAsString('flashcheck_model_fallbacks_total')
  t.match(text, /reason="(overload|queue_full)"/, 'fallbacks are counted by reason')
})

t.test('explain: greedy text after the verdict, within max_tokens', async (t) => {
  const r = rule(jointRule({ extra: '  explain: { max_tokens: 6, topic: "flashcheck/explain/{station}/joint" }' }))
  const e = await engine()
  await e.prepare([r])
  const got = new Promise<{ text: string; tokens: number }>((resolve) => {
    e.judge(r, PROMPT, { deadline: soon(10_000), onExplain: resolve }, () => {})
  })
  const ex = await got
  t.ok(ex.tokens >= 1 && ex.tokens <= 6, `generated ${ex.tokens} tokens`)
  // A random model may emit special tokens, which the text leaves out; the text is never longer than the tokens allow.
  t.type(ex.text, 'string')
  t.ok(Buffer.byteLength(ex.text) <= ex.tokens * 32, `text: ${JSON.stringify(ex.text)}`)
})

t.test('prepare() rebuilds only prefixes that changed', async (t) => {
  const metrics = new Metrics()
  const e = await engine({}, metrics)
  const builds = async () => (await metrics.registry.getSingleMetric('flashcheck_model_prefix_builds_total')!.get()).values[0]?.value ?? 0
  const a = rule(jointRule())
  await e.prepare([a])
  t.equal(await builds(), 1)
  await e.prepare([rule(jointRule())])
  t.equal(await builds(), 1, 'an unchanged prefix is reused')
  const b = rule(jointRule({ prefix: 'Bolted joint inspection at assembly station' }))
  await e.prepare([b])
  t.equal(await builds(), 2, 'a changed prefix is prefilled again')
  const o = ok(await judge(e, b, PROMPT.replace('Screw joint at station', 'Bolted joint inspection at assembly station'), { deadline: soon(10_000) }))
  t.equal(o.prefix_cached, true)
  const ref = await reference(b, PROMPT.replace('Screw joint at station', 'Bolted joint inspection at assembly station'))
  for (const l of b.reason!.choices) t.ok(Math.abs(o.scores[l]! - ref[l]!) <= 1e-4, `${l} after reload equals a recompute`)
})

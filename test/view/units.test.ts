// The stream tap and the figures' arithmetic, in isolation: an idle tap takes nothing, the queue is bounded, a
// client that does not read skips events (and is told how many) instead of growing the daemon's memory;
// quantiles from histogram buckets against a direct computation; since parsing.
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import { VerdictTap } from '../../daemon/view/tap.js'
import { StatsSampler, modelStatus, quantileMs, type ModelWindow } from '../../daemon/view/stats.js'
import { FirstPassCounter } from '../../daemon/metrics/first-pass.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { parseSince } from '../../daemon/view/journal.js'
import { LATENCY_BUCKETS_S } from '../../daemon/metrics/metrics.js'

class FakeRes extends EventEmitter {
  written = ''
  writes = 0
  writableLength = 0
  status = 0
  writeHead(s: number) { this.status = s; return this }
  write(x: string | Buffer) { this.written += x.toString(); this.writes++; return true }
  end() { this.emit('close') }
}

const response = (i: number) => ({ verdict_id: `id-${i}`, ts: new Date(1000 + i).toISOString(), inspection: 'torque-joint', verdict: i % 2 ? 'FAIL' : 'PASS', checks: [{ id: 'a', ok: i % 2 === 0, reason: '<b>x</b>' }], inputs: { s: 'é "q" \u2028' }, latency_ms: 0.5, deadline_missed: false, correlation_id: `c${i}` })
const verdict = (i: number): string => JSON.stringify(response(i))
const events = (s: string) => s.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)) as Record<string, unknown>)

t.test('tap: idle, attach, flush, detach', async (t) => {
  const tap = new VerdictTap({ flushMs: 10_000 })
  t.equal(tap.active, false)
  const a = new FakeRes()
  const b = new FakeRes()
  t.ok(tap.attach(a as unknown as ServerResponse))
  t.ok(tap.attach(b as unknown as ServerResponse))
  t.equal(a.status, 200)
  t.equal(tap.active, true)
  const w0 = a.writes
  for (let i = 0; i < 3; i++) tap.push(verdict(i), i === 2 ? 'plant/"odd"/topic' : 'flashcheck/inspect/st1/torque')
  t.equal(a.writes, w0, 'nothing written per verdict')
  tap.flush()
  t.equal(a.writes, w0 + 1, 'one write per client per flush')
  const got = events(a.written)
  t.equal(got.length, 3)
  t.same(got[1], { topic: 'flashcheck/inspect/st1/torque', ...response(1) }, 'the response as published, with its topic')
  t.equal(got[2].topic, 'plant/"odd"/topic')
  t.same(events(b.written), got, 'every client gets the same events')
  tap.flush()
  t.equal(a.writes, w0 + 1, 'nothing to write, nothing written')
  a.emit('close')
  t.equal(tap.active, true, 'still active while a page is open')
  b.emit('close')
  t.equal(tap.active, false, 'idle again once the last page left')
  tap.close()
})

t.test('tap: bounded queue and slow clients', async (t) => {
  const tap = new VerdictTap({ flushMs: 10_000, queueMax: 5, clientBufferBytes: 100 })
  const fast = new FakeRes()
  const slow = new FakeRes()
  tap.attach(fast as unknown as ServerResponse)
  tap.attach(slow as unknown as ServerResponse)
  for (let i = 0; i < 8; i++) tap.push(verdict(i), 't')
  t.equal(tap.dropped, 3, 'beyond the queue bound, verdicts are dropped and counted')
  slow.writableLength = 1000
  const before = slow.written
  tap.flush()
  t.equal(events(fast.written).length, 5)
  t.equal(slow.written, before, 'a backed-up client gets nothing written')
  slow.writableLength = 0
  tap.push(verdict(9), 't')
  tap.flush()
  t.match(slow.written, /event: gap\ndata: \{"skipped":5\}\n\n/, 'and is told what it missed')
  t.equal(events(slow.written).length, 1)
  tap.close()
})

t.test('tap: client limit', async (t) => {
  const tap = new VerdictTap({ maxClients: 2 })
  t.ok(tap.attach(new FakeRes() as unknown as ServerResponse))
  t.ok(tap.attach(new FakeRes() as unknown as ServerResponse))
  const third = new FakeRes()
  t.notOk(tap.attach(third as unknown as ServerResponse))
  t.equal(third.status, 0, 'nothing written to a refused client')
  tap.close()
})

t.test('tap: the queue is bounded in characters too', async (t) => {
  const tap = new VerdictTap({ flushMs: 10_000, queueChars: 1000 })
  const a = new FakeRes()
  tap.attach(a as unknown as ServerResponse)
  const big = JSON.stringify({ verdict_id: 'x', inputs: { blob: 'y'.repeat(600) } })
  tap.push(big, 't')
  tap.push(big, 't')
  t.equal(tap.dropped, 1, 'a second 600-char response does not fit in 1000')
  tap.flush()
  t.equal(events(a.written).length, 1)
  tap.push(big, 't')
  t.equal(tap.dropped, 1, 'room again after the flush')
  tap.close()
})

t.test('quantiles from buckets match a direct computation within the bucket', async (t) => {
  const samples: number[] = []
  for (let i = 0; i < 1000; i++) samples.push(0.0003 + (i % 97) * 0.00045)
  const cum = [...LATENCY_BUCKETS_S, Infinity].map((le) => samples.filter((x) => x <= le).length)
  for (const q of [0.5, 0.99]) {
    const exact = [...samples].sort((a, b) => a - b)[Math.ceil(q * samples.length) - 1] * 1000
    const est = quantileMs(cum, q)!
    const i = LATENCY_BUCKETS_S.findIndex((le) => le * 1000 >= exact)
    const lo = i > 0 ? LATENCY_BUCKETS_S[i - 1] * 1000 : 0
    t.ok(est > lo - 1e-9 && est <= LATENCY_BUCKETS_S[i] * 1000 + 1e-9, `q${q}: ${est} ms in the bucket of ${exact} ms (${lo}..${LATENCY_BUCKETS_S[i] * 1000})`)
  }
  t.equal(quantileMs(new Array(LATENCY_BUCKETS_S.length + 1).fill(0), 0.5), null, 'no samples, no quantile')
  const allLate = new Array(LATENCY_BUCKETS_S.length + 1).fill(0)
  allLate[allLate.length - 1] = 3
  t.equal(quantileMs(allLate, 0.99), 1000, 'in +Inf: the largest finite bound')
})

t.test('since', async (t) => {
  t.equal(parseSince('-5m', 1_000_000), 700_000)
  t.equal(parseSince('-2h', 10_000_000), 2_800_000)
  t.equal(parseSince('2026-03-03T08:00:00Z'), Date.UTC(2026, 2, 3, 8))
  t.equal(parseSince('1700000000000'), 1_700_000_000_000)
  t.throws(() => parseSince('yesterday'), /since: not a time/)
})

const partsOf = async (m: Metrics) => Object.fromEntries((await m.parts.get()).values.map((v) => [`${v.labels.inspection}/${v.labels.first_pass}`, v.value]))

t.test('first pass: a traced part counts once, by its first verdict', async (t) => {
  const m = new Metrics()
  const fp = new FirstPassCounter(m.partCounts)
  fp.record('weigh', 'A', false)
  fp.record('weigh', 'A', true) // reworked, passes: not a first pass, not a new part
  fp.record('weigh', 'B', true)
  t.same(await partsOf(m), { 'weigh/true': 1, 'weigh/false': 1 }, 'A FAIL then PASS, B PASS: 2 parts, 1 first pass (50 %)')
  fp.record('gauge', 'A', true)
  t.equal((await partsOf(m))['gauge/true'], 1, 'the same serial at another inspection is a part there')
  fp.record('gauge', undefined, false)
  fp.record('gauge', undefined, false)
  t.equal((await partsOf(m))['gauge/false'], 2, 'untraced: every request is a part')
  t.equal(fp.remembered, 3)
})

t.test('first pass: the parts remembered are bounded, oldest forgotten first', async (t) => {
  const m = new Metrics()
  const fp = new FirstPassCounter(m.partCounts, 2)
  fp.record('w', 'A', true)
  fp.record('w', 'B', true)
  fp.record('w', 'A', false)
  fp.record('w', 'C', true) // forgets A
  t.equal(fp.remembered, 2)
  fp.record('w', 'B', false)
  t.same(await partsOf(m), { 'w/true': 3, 'w/false': 0 }, 'B still remembered')
  fp.record('w', 'A', false)
  t.same(await partsOf(m), { 'w/true': 3, 'w/false': 1 }, 'A forgotten: counted anew')
  // One bound for all inspections, oldest first whichever inspection it belongs to.
  const m2 = new Metrics()
  const two = new FirstPassCounter(m2.partCounts, 2)
  two.record('a', 'X', true)
  two.record('b', 'X', true)
  two.record('a', 'Y', true) // forgets a/X
  two.record('b', 'X', false)
  t.same(await partsOf(m2), { 'a/true': 2, 'a/false': 0, 'b/true': 1, 'b/false': 0 }, 'b/X still remembered')
  two.record('a', 'X', false)
  t.same(await partsOf(m2), { 'a/true': 2, 'a/false': 1, 'b/true': 1, 'b/false': 0 }, 'a/X forgotten: counted anew')
  t.equal(two.remembered, 2)
})

t.test('sampler: yield per part, fallbacks by reason and the model over the last minute', async (t) => {
  const m = new Metrics()
  const sampler = new StatsSampler(m, 60_000)
  await sampler.start()
  t.teardown(() => sampler.stop())
  const fp = new FirstPassCounter(m.partCounts)
  for (const [trace, ok] of [['A', false], ['A', true], ['B', true]] as const) {
    m.verdicts.record('weigh', ok ? 'OK' : 'NOK', 0.001)
    fp.record('weigh', trace, ok)
  }
  // The model: 6 scored choices at 5..10 ms, one of them below min_confidence; 2 deadline, 1 queue_full.
  for (let i = 0; i < 6; i++) m.modelLatency.observe({ inspection: 'weigh' }, 0.005 + i * 0.001)
  m.modelFallbacks.inc({ inspection: 'weigh', status: 'ok', reason: 'low_confidence' })
  m.modelFallbacks.inc({ inspection: 'weigh', status: 'aborted', reason: 'deadline' })
  m.modelFallbacks.inc({ inspection: 'weigh', status: 'skipped', reason: 'deadline' })
  m.modelFallbacks.inc({ inspection: 'weigh', status: 'skipped', reason: 'queue_full' })
  const f = await sampler.figures([{ id: 'weigh', budgetMs: 50, passLabel: 'OK' }])
  const w = f.inspections[0]!
  t.match(w.m5, { requests: 3, parts: 2, first_pass_yield: 0.5, fallbacks: 4, fallback_reasons: { deadline: 2, queue_full: 1, low_confidence: 1 } })
  t.match(f.model, { verdicts: 9, fell_back: 4, fallback_share: 0.4444, fallback_reasons: { deadline: 2, queue_full: 1, low_confidence: 1 } }, '6 choices + 3 without one = 9 model verdicts; 4 fell back')
  t.ok(f.model.p50_ms! > 5 && f.model.p50_ms! <= 10, `p50 ${f.model.p50_ms} ms within the 5..10 ms bucket`)
  t.equal(modelStatus(true, f.model), 'partly falling back')
})

t.test('model status in a word', async (t) => {
  const w = (verdicts: number, fell: number): ModelWindow => ({ seconds: 60, verdicts, fell_back: fell, fallback_share: verdicts ? fell / verdicts : null, fallback_reasons: {}, p50_ms: null, p99_ms: null })
  t.equal(modelStatus(false, w(10, 0)), 'not loaded')
  t.equal(modelStatus(true, w(0, 0)), 'idle')
  t.equal(modelStatus(true, w(10, 0)), 'answering')
  t.equal(modelStatus(true, w(10, 4)), 'partly falling back')
  t.equal(modelStatus(true, w(10, 5)), 'falling back')
})

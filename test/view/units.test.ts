// The stream tap and the figures' arithmetic, in isolation: an idle tap takes nothing, the queue is bounded, a
// client that does not read skips events (and is told how many) instead of growing the daemon's memory;
// quantiles from histogram buckets against a direct computation; since parsing.
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import { VerdictTap, eventOf, type PublishedVerdict } from '../../daemon/view/tap.js'
import { quantileMs } from '../../daemon/view/stats.js'
import { parseSince } from '../../daemon/view/journal.js'
import { LATENCY_BUCKETS_S } from '../../daemon/metrics/metrics.js'

class FakeRes extends EventEmitter {
  written = ''
  writableLength = 0
  status = 0
  writeHead(s: number) { this.status = s; return this }
  write(x: string) { this.written += x; return true }
  end() { this.emit('close') }
}

const verdict = (i: number): PublishedVerdict => ({ inspection: 'torque-joint', verdict: i % 2 ? 'FAIL' : 'PASS', checks: [{ id: 'a', ok: i % 2 === 0, reason: '<b>x</b>' }], latency_ms: 0.5, deadline_missed: false, correlation_id: `c${i}` })
const events = (s: string) => s.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)) as Record<string, unknown>)

t.test('tap: idle, attach, flush, detach', async (t) => {
  const tap = new VerdictTap({ flushMs: 10_000 })
  t.equal(tap.active, false)
  const a = new FakeRes()
  t.ok(tap.attach(a as unknown as ServerResponse))
  t.equal(a.status, 200)
  t.equal(tap.active, true)
  for (let i = 0; i < 3; i++) tap.push(verdict(i), 'flashcheck/inspect/st1/torque', 1000 + i)
  tap.flush()
  const got = events(a.written)
  t.equal(got.length, 3)
  t.same(got[1], { ts: 1001, topic: 'flashcheck/inspect/st1/torque', inspection: 'torque-joint', verdict: 'FAIL', trace: null, correlation_id: 'c1', failed: [{ id: 'a', reason: '<b>x</b>' }], latency_ms: 0.5, deadline_missed: false, fallback: false, error: null })
  a.emit('close')
  t.equal(tap.active, false, 'idle again once the last page left')
  tap.close()
})

t.test('tap: bounded queue and slow clients', async (t) => {
  const tap = new VerdictTap({ flushMs: 10_000, queueMax: 5, clientBufferBytes: 100 })
  const fast = new FakeRes()
  const slow = new FakeRes()
  tap.attach(fast as unknown as ServerResponse)
  tap.attach(slow as unknown as ServerResponse)
  for (let i = 0; i < 8; i++) tap.push(verdict(i), 't', i)
  t.equal(tap.dropped, 3, 'beyond the queue bound, verdicts are dropped and counted')
  slow.writableLength = 1000
  const before = slow.written
  tap.flush()
  t.equal(events(fast.written).length, 5)
  t.equal(slow.written, before, 'a backed-up client gets nothing written')
  slow.writableLength = 0
  tap.push(verdict(9), 't', 9)
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

t.test('eventOf: errors and fallbacks', async (t) => {
  const e = eventOf({ inspection: null, verdict: 'ERROR', checks: [], latency_ms: 1, deadline_missed: true, error: { code: 'BAD_JSON', message: 'm' }, fallback: true, trace: 'SN-1' }, 'x', 5)
  t.match(e, { inspection: null, verdict: 'ERROR', error: { code: 'BAD_JSON', message: 'm' }, fallback: true, deadline_missed: true, trace: 'SN-1', failed: [] })
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

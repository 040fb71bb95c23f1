import t from 'tap'
import { SignalStore } from '../../daemon/signals/store.js'
import { compileSources } from '../../daemon/rules/load.js'
import { json } from './helpers.js'

const two = (keepA: string, keepB: string) =>
  compileSources(
    [
      { file: 'a.yaml', src: `id: a\nrequest: r/{station}/a\nsignals:\n  v: { topic: 'plant/{station}/vib', value: payload.rms, keep: ${keepA} }\nchecks:\n  - { id: c, expr: 'count(v, "1s") > 0', on_fail: FAIL }\n` },
      { file: 'b.yaml', src: `id: b\nrequest: r/{station}/b\nsignals:\n  p: { topic: 'plant/{station}/vib', value: payload.peak, keep: ${keepB} }\n  q: { topic: 'plant/{station}/vib', value: payload.rms, keep: ${keepB} }\nchecks:\n  - { id: c, expr: 'count(p, "1s") > 0 && count(q, "1s") > 0', on_fail: FAIL }\n` },
    ],
    { defaultBudgetMs: 50 },
  )

t.test('one history per (topic filter, value path); specs sharing both merge with the longest keep', async (t) => {
  const r = two('10s', '30s')
  t.same(r.errors, [])
  t.same(r.signals.map((s) => [s.key, s.filter, s.value, s.keepMs]), [
    ['plant/+/vib payload.peak', 'plant/+/vib', 'payload.peak', 30000],
    ['plant/+/vib payload.rms', 'plant/+/vib', 'payload.rms', 30000],
  ])
  const store = new SignalStore()
  store.configure(r.signals)
  t.equal(store.ingest('plant/st3/vib', json({ rms: 1.5, peak: 4 }), 1000), true)
  t.equal(store.series('plant/+/vib payload.rms', 'plant/st3/vib')!.lastValue(0, 1000), 1.5)
  t.equal(store.series('plant/+/vib payload.peak', 'plant/st3/vib')!.lastValue(0, 1000), 4)
  t.equal(store.series('plant/+/vib payload.rms', 'plant/st4/vib'), undefined, 'topics are kept apart')
})

t.test('non-numeric values are ignored and counted; unrelated topics are not touched', async (t) => {
  const r = two('10s', '10s')
  const store = new SignalStore()
  store.configure(r.signals)
  t.equal(store.ingest('plant/st3/vib', json({ rms: 'high', peak: 2 }), 1), true, 'peak still stored')
  t.equal(store.ingest('plant/st3/vib', Buffer.from('not json'), 2), false)
  t.equal(store.ingest('plant/st3/vib', json({ rms: true }), 3), false)
  t.equal(store.ingest('elsewhere/x', json({ rms: 1 }), 4), false)
  t.same(store.stats(), { messages: 3, samples: 1, ignored: 5, topics: 1 })
})

t.test('a bare-number payload is read with value: payload', async (t) => {
  const r = compileSources([{ file: 'x.yaml', src: 'id: x\nrequest: r/{s}\nsignals:\n  temp: { topic: "t/{s}", keep: 1m }\nchecks:\n  - { id: c, expr: "last(temp) < 70.0", on_fail: FAIL }\n' }], { defaultBudgetMs: 50 })
  const store = new SignalStore()
  store.configure(r.signals)
  t.equal(store.ingest('t/a', Buffer.from('61.5'), 10), true)
  t.equal(store.series(r.signals[0]!.key, 't/a')!.lastValue(0, 10), 61.5)
})

t.test('reconfiguring keeps histories of specs still wanted, with the new keep, and drops the rest', async (t) => {
  const first = two('10s', '10s')
  const store = new SignalStore()
  store.configure(first.signals)
  store.ingest('plant/st3/vib', json({ rms: 1, peak: 2 }), 1000)
  const onlyA = compileSources([{ file: 'a.yaml', src: 'id: a\nrequest: r/{station}/a\nsignals:\n  v: { topic: "plant/{station}/vib", value: payload.rms, keep: 2s }\nchecks:\n  - { id: c, expr: "last(v) > 0.0", on_fail: FAIL }\n' }], { defaultBudgetMs: 50 })
  store.configure(onlyA.signals)
  t.equal(store.series('plant/+/vib payload.rms', 'plant/st3/vib')!.lastValue(0, 1000), 1, 'history survived the swap')
  t.equal(store.series('plant/+/vib payload.peak', 'plant/st3/vib'), undefined)
  store.ingest('plant/st3/vib', json({ rms: 5 }), 3500)
  t.equal(store.series('plant/+/vib payload.rms', 'plant/st3/vib')!.count(0, 4000), 1, 'new keep (2s) applies')
  store.prune(10_000)
  t.equal(store.stats().topics, 0, 'prune forgets topics with nothing left')
})

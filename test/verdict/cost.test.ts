// The decoder cost model: per-call and per-token parts learnt from observed calls, hand-off cost capped.
import t from 'tap'
import { CostModel } from '../../daemon/verdict/cost.js'

t.test('learns per-call and per-token costs from observations', async (t) => {
  const c = new CostModel(10, 10)
  for (let i = 0; i < 60; i++) {
    c.observe(1, 3)
    c.observe(33, 3 + 32 * 0.5)
  }
  t.ok(Math.abs(c.perCallMs - 3) < 0.01, `per call ${c.perCallMs}`)
  t.ok(Math.abs(c.perTokenMs - 0.5) < 0.01, `per token ${c.perTokenMs}`)
  t.ok(Math.abs(c.call(49) - (c.hopMs + 3 + 48 * 0.5)) < 0.01, `call(49) = ${c.call(49)}`)
  t.equal(c.call(0), 0, 'no tokens, no cost')
})

t.test('hand-off cost is learnt from wall time but capped', async (t) => {
  const c = new CostModel(2, 0.2)
  for (let i = 0; i < 60; i++) c.observe(1, 2, 2.5)
  t.ok(Math.abs(c.hopMs - 0.5) < 0.01, `hop ${c.hopMs}`)
  for (let i = 0; i < 60; i++) c.observe(1, 2, 150) // an event loop held up by a burst
  t.ok(c.hopMs <= 3, `capped: ${c.hopMs}`)
  t.ok(Math.abs(c.perCallMs - 2) < 0.01, 'kernel time, not wall time, drives the per-call cost')
})

t.test('nonsense observations are ignored', async (t) => {
  const c = new CostModel(2, 0.2)
  c.observe(0, 5)
  c.observe(3, NaN)
  c.observe(3, -1)
  t.equal(c.perCallMs, 2)
  t.equal(c.perTokenMs, 0.2)
})

// The deadline guard: model.guardMs widened by how late the event loop has lately run its timers, decaying,
// capped; its probe sees a loop blocked by a busy wait.
import t from 'tap'
import { performance } from 'node:perf_hooks'
import { Guard } from '../../daemon/verdict/guard.js'

t.test('widens by observed lateness, keeps the largest, decays with a 10 s half-life, capped at 20 ms', async (t) => {
  const g = new Guard(5)
  t.equal(g.ms(0), 5, 'a loop that keeps time: the configured guard')
  g.observe(100, 112)
  t.equal(g.ms(112), 17)
  g.observe(200, 203)
  t.ok(Math.abs(g.extra(203) - 12 * 0.5 ** (91 / 10_000)) < 1e-9, 'a smaller lateness does not narrow it')
  t.ok(Math.abs(g.ms(10_112) - 11) < 1e-9, 'half of it left after 10 s')
  t.ok(g.ms(200_000) < 5.001, 'gone after minutes')
  g.observe(0, 500)
  t.equal(g.ms(500), 25, 'capped at 20 ms over the configured guard')
  const before = g.ms(600)
  g.observe(600, 590)
  t.equal(g.ms(600), before, 'an early timer changes nothing')
})

t.test('the probe measures a loop blocked past its timer', async (t) => {
  const g = new Guard(5)
  g.start()
  t.teardown(() => g.stop())
  await new Promise((r) => setTimeout(r, 150))
  t.ok(g.extra() < 10, `an idle loop: ${g.extra().toFixed(2)} ms`)
  const end = performance.now() + 250
  while (performance.now() < end) { /* the loop blocked, as by a burst or starved by the decoder threads */ }
  await new Promise((r) => setTimeout(r, 20))
  t.ok(g.extra() >= 15, `after a 250 ms stall: +${g.extra().toFixed(2)} ms`)
})

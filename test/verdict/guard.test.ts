// The deadline guard: model.guardMs, widened after a verdict went out after its deadline by what it would have
// needed, decaying with a 10 s half-life, capped; nothing on time widens it.
import t from 'tap'
import { Guard } from '../../daemon/verdict/guard.js'

t.test('widens after a late verdict by what it needed, keeps the largest, decays, capped at 20 ms', async (t) => {
  const g = new Guard(5)
  t.equal(g.ms(0), 5, 'verdicts on time: the configured guard')
  g.settled(95, 100, 99)
  t.equal(g.ms(99), 5, 'settled after its fallback was due but before the deadline: on time, nothing changes')
  g.settled(95, 100, 107)
  t.equal(g.ms(107), 12, 'settled 7 ms late: the next fallback is due 12 ms before its deadline')
  g.settled(195, 200, 203)
  t.ok(Math.abs(g.extra(203) - 7 * 0.5 ** (96 / 10_000)) < 1e-9, 'a smaller lateness does not narrow it')
  t.ok(Math.abs(g.ms(10_107) - 8.5) < 1e-9, 'half of it left after 10 s')
  t.ok(g.ms(200_000) < 5.001, 'gone after minutes')
  g.settled(295, 300, 900)
  t.equal(g.ms(900), 25, 'capped at 20 ms over the configured guard')
})

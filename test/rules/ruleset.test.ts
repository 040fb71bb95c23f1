// Request routing with the rule set's topic memory: the most specific rule still wins, a repeated topic gets the
// same frozen match back, a topic that matches nothing is remembered as such, and signal windows follow each
// request's own station even when the rule's signal topic is memoised by the params' identity.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { compileSources } from '../../daemon/rules/load.js'
import { RuleSetImpl } from '../../daemon/rules/ruleset.js'
import { SignalStore } from '../../daemon/signals/store.js'

const TORQUE = readFileSync(new URL('../../rules/examples/torque-joint.yaml', import.meta.url), 'utf8')
const SPECIAL = `
id: st9-torque
request: flashcheck/inspect/st9/torque
inputs: { torque: payload.torque_nm }
checks:
  - { id: low, expr: torque < 5.0, on_fail: FAIL }
`
const NOW = 1_700_000_000_000

function set(): RuleSetImpl {
  const r = compileSources([{ file: 'a.yaml', src: TORQUE }, { file: 'b.yaml', src: SPECIAL }], { defaultBudgetMs: 50 })
  if (!r.rules) throw new Error(r.errors.map((e) => e.message).join('\n'))
  return new RuleSetImpl('rev', 'dir', r.rules, r.signals)
}

t.test('matchRequest: specific rule first, the same frozen match for a repeated topic, misses remembered', async (t) => {
  const s = set()
  const a = s.matchRequest('flashcheck/inspect/st3/torque')
  t.equal(a?.rule.id, 'torque-joint')
  t.same(a?.params, { station: 'st3' })
  t.equal(s.matchRequest('flashcheck/inspect/st3/torque'), a, 'the same object for the same topic')
  t.ok(Object.isFrozen(a) && Object.isFrozen(a!.params), 'frozen: no caller can change what the next one gets')
  t.equal(s.matchRequest('flashcheck/inspect/st9/torque')?.rule.id, 'st9-torque', 'a literal level wins over {station}')
  t.equal(s.matchRequest('flashcheck/inspect/st3/other'), null)
  t.equal(s.matchRequest('flashcheck/inspect/st3/other'), null, 'a miss stays a miss')
  // Far more distinct topics than the memory holds: routing stays right throughout.
  let wrong = 0
  for (let i = 0; i < 10_000; i++) if (s.matchRequest(`flashcheck/inspect/s${i}/torque`)?.params.station !== `s${i}`) wrong++
  t.equal(wrong, 0, '10,000 distinct topics routed right')
  t.equal(s.matchRequest('flashcheck/inspect/st3/torque')?.params.station, 'st3')
})

t.test('signal windows follow each request\'s station across memoised topics', async (t) => {
  const s = set()
  const store = new SignalStore()
  store.configure(s.signals)
  for (const [station, rms] of [['st3', 2.0], ['st4', 9.0]] as const) {
    for (let i = 0; i < 3; i++) store.ingest(`plant/${station}/spindle/vibration`, Buffer.from(JSON.stringify({ rms })), NOW - 900 + i * 300)
  }
  const payload = { torque_nm: 11, angle_deg: 600 }
  for (let round = 0; round < 3; round++) {
    for (const [station, verdict, avg] of [['st3', 'PASS', 2], ['st4', 'WARN', 9]] as const) {
      const topic = `flashcheck/inspect/${station}/torque`
      const m = s.matchRequest(topic)!
      const res = m.rule.evaluate({ topic, params: m.params, payload, now: NOW }, store)
      t.equal(res.verdict, verdict, `${station}, round ${round}`)
      t.equal(res.checks[2]!.values['avg(vib, "2s")'], avg)
    }
    // A caller's own (unfrozen) params object that changes between calls is rendered afresh each time.
    const params: Record<string, string> = { station: 'st3' }
    const rule = s.matchRequest('flashcheck/inspect/st3/torque')!.rule
    t.equal(rule.evaluate({ topic: 'x', params, payload, now: NOW }, store).verdict, 'PASS')
    params.station = 'st4'
    t.equal(rule.evaluate({ topic: 'x', params, payload, now: NOW }, store).verdict, 'WARN')
  }
})

// replay against recorded verdicts, in-process on a hand-made recording: streaming verdicts are matched to
// their trigger messages, requests to their responses by reply address; malformed lines are skipped, counted.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../daemon/config/load.js'
import { loadRuleDir } from '../../daemon/rules/load.js'
import { replayRecording } from '../../daemon/replay/replay.js'

const EXAMPLES = join(import.meta.dirname, '..', '..', 'rules', 'examples')

t.test('recorded verdicts: stream verdicts by trigger, MQTT 5 and 3.1.1 responses by reply address', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'flashcheck-replay-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64')
  const msg = (t_ms: number, topic: string, payload: unknown, properties?: Record<string, unknown>) => JSON.stringify({ t_ms, topic, payload_b64: b64(payload), ...(properties ? { properties } : {}) })
  const verdict = (inspection: string, v: string, extra: Record<string, unknown> = {}) => ({ inspection, verdict: v, checks: [], inputs: {}, latency_ms: 1, deadline_missed: false, rules_rev: 'old', node: 'n', ...extra })
  const cycle = 'plant/L1/press/P1/cycle'
  const lines = [
    JSON.stringify({ flashcheck_recording: 1, rules_rev: 'old', rules_dir: 'x', t0_epoch_ms: 1_700_000_000_000, started_at: '', filters: ['#'], node: 'n' }),
    msg(0, cycle, { peak_kn: 200, cycle_ms: 1000 }),
    msg(1, 'flashcheck/verdict/L1/press/P1', verdict('press-cycle', 'PASS', { trigger_topic: cycle })),
    msg(10, cycle, { peak_kn: 230, cycle_ms: 1000 }),
    msg(11, 'flashcheck/verdict/L1/press/P1', verdict('press-cycle', 'PASS', { trigger_topic: cycle })),
    'not json',
    msg(20, 'flashcheck/inspect/st1/bore', { diameter_mm: 25.0, part_id: 'AB123456' }, { responseTopic: 'r/1', correlationData: { b64: b64('c1') } }),
    msg(21, 'r/1', verdict('bore-gauge', 'NOK'), { correlationData: { b64: b64('c1') } }),
    msg(30, 'flashcheck/inspect/st1/bore', { diameter_mm: 25.0, part_id: 'AB123456', reply_to: 'r/2', correlation_id: 7 }),
    msg(31, 'r/2', verdict('bore-gauge', 'OK', { correlation_id: '7' })),
    msg(40, cycle, { peak_kn: 200, cycle_ms: 1000 }), // its verdict was not recorded
  ]
  const file = join(tmp, 'rec.jsonl')
  writeFileSync(file, lines.join('\n') + '\n')
  const set = await loadRuleDir(EXAMPLES, { defaultBudgetMs: 50, model: true })
  if (!set.ok) throw new Error('examples invalid')
  const s = await replayRecording({ file, config: loadConfig({ env: {}, args: [] }), set: set.set, speed: Infinity, keepChanges: true })
  t.equal(s.skipped, 1)
  t.equal(s.uncompared, 1)
  t.equal(s.requests, 4)
  t.equal(s.changed, 2)
  t.same(s.changes.map((c) => [c.line, c.inspection, c.before.verdict, c.after.verdict]), [[4, 'press-cycle', 'PASS', 'FAIL'], [7, 'bore-gauge', 'NOK', 'OK']])
  t.same(Object.fromEntries(s.byInspection), { 'press-cycle': { verdicts: 2, changed: 1 }, 'bore-gauge': { verdicts: 2, changed: 1 } })
})

// A model verdict that is published later must carry its own request's dedupe key, never the key of whichever
// message the daemon handled last. The key decides what the redelivery memory (state.dir) leaves out: a
// request still being worked on must stay out of snapshots, so that after a crash the broker's redelivery of
// it is answered instead of being dropped as a duplicate.
//
// With the audit journal on, the journal takes the snapshot's place; this test runs with it off (audit.enabled
// false), where the snapshot is what remains.
//
// The daemon runs on MQTT 3.1.1 (requests carry reply_to/correlation_id in the payload) against a real
// mosquitto with the native decoder on a tiny checkpoint; the test only holds the decoder's answers back so
// that "settles later" happens in a known order.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import { jointRule, modelFixture, RULES_ONLY, ruleDir } from '../helpers/model.js'
import { Dedupe } from '../../daemon/service/dedupe.js'
import { dedupeKey } from '../../daemon/service/envelope.js'
import type { ModelOutcome, VerdictEngine } from '../../daemon/verdict/engine.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

t.test('a late model verdict (MQTT 3.1.1) does not take over the dedupe key of the request handled after it', async (t) => {
  const fx = await modelFixture()
  const broker = await Mosquitto.start()
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-state-'))
  const rules = ruleDir(fx, 'rules', { 'joint.yaml': jointRule({ budgetMs: 60_000 }), 'torque.yaml': RULES_ONLY })
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--mqtt-protocol-version', '4', '--rules-dir', rules, '--rules-watch', 'false', '--model-dir', fx.model, '--model-threads', '1', '--state-dir', state, '--audit-enabled', 'false']))
  const req = await Requester.connect(broker.url, 4)
  t.teardown(async () => {
    await req.end()
    await d.stop()
    await broker.stop()
    fx.cleanup()
    rmSync(state, { recursive: true, force: true })
  })

  // Decoder outcomes are held here until the test releases them; the decoder itself runs for real.
  const engine = (d.daemon as unknown as { engine: VerdictEngine }).engine
  t.ok(engine, 'the daemon runs a decoder')
  const judge = engine.judge.bind(engine)
  const held: { prompt: string; release: () => void }[] = []
  engine.judge = (rule, prompt, o, done) => judge(rule, prompt, o, (out: ModelOutcome) => void held.push({ prompt, release: () => done(out) }))

  const payload = (torque: number, id: string) => JSON.stringify({ torque_nm: torque, angle_deg: 700, reply_to: req.replyTo, correlation_id: id })
  const a = payload(11.1, 'req-a')
  const b = payload(11.3, 'req-b')
  const keyA = dedupeKey({ replyTo: req.replyTo, correlationId: 'req-a' })!
  const keyB = dedupeKey({ replyTo: req.replyTo, correlationId: 'req-b' })!

  await req.client.publishAsync('flashcheck/inspect/st1/joint', a, { qos: 1 })
  await req.client.publishAsync('flashcheck/inspect/st1/joint', b, { qos: 1 })
  for (let i = 0; i < 200 && held.length < 2; i++) await sleep(25)
  t.equal(held.length, 2, 'both requests reached the decoder')

  // A's verdict goes out after B was handled; the broker acknowledges it.
  held.find((h) => h.prompt.includes('11.1'))!.release()
  const [ra] = await req.waitFor(1)
  t.equal(ra!.body.correlation_id, 'req-a')
  t.equal(ra!.body.model.status, 'ok')

  // A new request marks the memory changed, so the next periodic snapshot is written while B is still open.
  const c = await req.request311('flashcheck/inspect/st1/torque', { torque_nm: 11 }, 'req-c')
  t.equal(c.body.verdict, 'PASS')
  await sleep(1500)

  const mem = new Dedupe(60_000, 1024)
  t.ok(mem.restore(readFileSync(join(state, 'dedupe.bin')), Date.now()) >= 2, 'a snapshot was written')
  const now = Date.now()
  t.equal(mem.check(keyA, Buffer.from(a), now), true, 'A is answered and acknowledged: remembered')
  t.equal(mem.check(keyB, Buffer.from(b), now), false, 'B is still waiting for its verdict: left out of the snapshot, so a redelivery after a crash is answered')

  held.find((h) => h.prompt.includes('11.3'))!.release()
  const replies = await req.waitFor(3)
  t.equal(replies[2]!.body.correlation_id, 'req-b')
  t.equal(replies[2]!.body.model.status, 'ok')
  const again = await req.request311('flashcheck/inspect/st1/torque', { torque_nm: 11 }, 'req-d')
  t.equal(again.body.verdict, 'PASS')
  await sleep(1500)
  const after = new Dedupe(60_000, 1024)
  after.restore(readFileSync(join(state, 'dedupe.bin')), Date.now())
  t.equal(after.check(keyB, Buffer.from(b), Date.now()), true, 'once B is answered and acknowledged it is remembered')
})

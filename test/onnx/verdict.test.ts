// A reason rule served by the daemon with model.backend onnx: a real mosquitto, the daemon in-process on a
// tiny random checkpoint; the scores must be those the native backend gives for the same request.
import t from 'tap'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon, type Running } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import { jointRule, modelFixture, ruleDir, type ModelFixture } from '../helpers/model.js'

let fx: ModelFixture
let broker: Mosquitto
let rulesDir: string

t.before(async () => {
  fx = await modelFixture()
  broker = await Mosquitto.start()
  // a generous budget: this test is about what the model answers, not how fast
  rulesDir = ruleDir(fx, 'rules', { 'joint.yaml': jointRule({ budgetMs: 5000 }) })
})

t.teardown(async () => {
  await broker?.stop()
  fx?.cleanup()
})

const GOOD = { torque_nm: 11.2, angle_deg: 700 }

async function scores(backend: 'native' | 'onnx'): Promise<Record<string, any>[]> {
  let d: Running | undefined
  let v5: Requester | undefined
  try {
    d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', rulesDir, '--rules-watch', 'false', '--model-dir', fx.model, '--model-threads', '1', '--model-backend', backend]))
    v5 = await Requester.connect(broker.url, 5)
    const out: Record<string, any>[] = []
    for (const p of [GOOD, { torque_nm: 10.4, angle_deg: 640 }]) out.push((await v5.request5('flashcheck/inspect/st3/joint', p)).body)
    return out
  } finally {
    await v5?.end()
    await d?.stop()
  }
}

t.test('reason rule with model.backend onnx: same choice and scores as native', async (t) => {
  const onnx = await scores('onnx')
  const native = await scores('native')
  for (const [i, o] of onnx.entries()) {
    const n = native[i]!
    t.equal(o.model.status, 'ok', JSON.stringify(o.model))
    t.equal(o.model.prefix_cached, true, 'the prefix cache works on onnx states (clone)')
    t.equal(o.model.choice, n.model.choice)
    t.equal(o.verdict, n.verdict)
    t.same(Object.keys(o.model.scores).sort(), Object.keys(n.model.scores).sort())
    for (const k of Object.keys(n.model.scores)) {
      t.ok(Math.abs(o.model.scores[k] - n.model.scores[k]) <= 1e-3, `${k}: onnx ${o.model.scores[k]} native ${n.model.scores[k]}`)
    }
  }
})

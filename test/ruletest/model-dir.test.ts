// `rules test --model-dir DIR`: reason steps without a stand-in run on a real checkpoint (a tiny random one
// made by `flashcheck model init`); tests with stand-ins keep them.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cli } from '../helpers/cli.js'
import { modelFixture, ruleDir } from '../helpers/model.js'

const EXAMPLE = join(import.meta.dirname, '..', '..', 'rules', 'examples', 'model', 'torque-joint-ai.yaml')

t.test('reason steps run on the checkpoint; stand-ins still answer where a test gives them', async (t) => {
  const fx = await modelFixture()
  t.teardown(() => fx.cleanup())
  // The random checkpoint's confidence may fall below min_confidence (fallback then), so only the status is
  // expected. A generous budget: the test is about which answer is used, not about the decoder's speed on a busy machine.
  const rules = ruleDir(fx, 'rules', { 'torque-joint-ai.yaml': readFileSync(EXAMPLE, 'utf8').replace('budget_ms: 50', 'budget_ms: 5000') })
  const file = join(fx.root, 'ai.test.yaml')
  const sig = '    signals:\n      - {topic: plant/st1/spindle/vibration, interval_ms: 100, values: "1x9", payload: \'{"rms": $value}\'}\n'
  const req = (expect: string) => `    requests:\n      - {at_ms: 1000, topic: flashcheck/inspect/st1/torque-ai, payload: {torque_nm: 11.0, angle_deg: 700}, expect: ${expect}}\n`
  writeFileSync(file, `rules_dir: ${rules}\ntests:\n` +
    `  - name: the decoder answers\n${sig}${req('{model: {status: ok}}')}` +
    `  - name: a stand-in wins over the checkpoint\n${sig}    model: {choices: {torque-joint-ai: FAIL}}\n${req('{verdict: FAIL, model: {status: ok, choice: FAIL, confidence: 1}}')}`)
  const r = await cli(['rules', 'test', '--model-dir', fx.model, file], { timeoutMs: 60_000 })
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.equal(r.stdout.trim().split('\n').at(-1), '2 passed, 0 failed')
  const without = await cli(['rules', 'test', file])
  t.equal(without.code, 1, 'without --model-dir the first test gets the fallback')
  t.match(without.stdout, /- model\.status: ok\n +\+ model\.status: skipped/)
})

// The reason: step of the rule format: validation with file:line:col, prompt rendering over inputs,
// signals and {checks}, and refusal when no model is configured.
import t from 'tap'
import { compileSources } from '../../daemon/rules/load.js'
import { splitPrompt } from '../../daemon/rules/compile.js'
import { compileOne, errorsOf, json } from '../rules/helpers.js'
import { jointRule } from '../helpers/model.js'

const BASE = `id: r
request: flashcheck/inspect/{station}/joint
inputs:
  torque: payload.torque_nm
  station: topic.station
signals:
  vib: { topic: "plant/{station}/vib", value: payload.rms, keep: 10s }
checks:
  - { id: torque-in-spec, expr: "torque >= 10.0 && torque <= 12.0", on_fail: FAIL, reason: "torque {torque} out of spec" }
`

function withReason(lines: string): string {
  return BASE + 'reason:\n' + lines
}

t.test('a valid reason step compiles and exposes what the engine needs', async (t) => {
  const { rule } = compileOne(withReason(`  prompt: |
    Joint at {station}: torque {torque} Nm, vib {avg(vib, "2s")}. {checks}. Braces: {{ok}}.
  system: You inspect.
  choices: [PASS, REWORK, FAIL]
  min_confidence: 0.6
  fallback: REWORK
  combine: model
  explain: { max_tokens: 32, topic: "flashcheck/explain/{station}/joint" }
`))
  const r = rule.reason!
  t.equal(r.staticPrefix, 'Joint at ')
  t.equal(r.system, 'You inspect.')
  t.same(r.choices, ['PASS', 'REWORK', 'FAIL'])
  t.equal(r.minConfidence, 0.6)
  t.equal(r.fallback, 'REWORK')
  t.equal(r.combine, 'model')
  t.equal(r.explain?.maxTokens, 32)
  t.equal(r.explain?.render({ station: 'st3' }), 'flashcheck/explain/st3/joint')
  t.equal(r.template.endsWith('\n'), false, 'the block scalar newline is not part of the prompt')
})

t.test('prompts render inputs, signal functions, {checks} and literal braces', async (t) => {
  const { rule, store } = compileOne(withReason(`  prompt: "Joint at {station}: torque {torque} Nm, vib {avg(vib, \\"2s\\")}, n {count(vib, \\"2s\\")}. Checks: {checks}. {{x}}"
  choices: [PASS, FAIL]
  fallback: FAIL
`))
  const now = 1_000_000
  for (const [dt, v] of [[1500, 2], [1000, 3], [100, 3.5]] as const) store.ingest('plant/st3/vib', json({ rms: v }), now - dt)
  const res = rule.evaluate({ topic: 'flashcheck/inspect/st3/joint', params: { station: 'st3' }, payload: { torque_nm: 9.5 }, now }, store)
  t.equal(res.verdict, 'FAIL')
  t.equal(res.prompt, 'Joint at st3: torque 9.5 Nm, vib 2.83333, n 3. Checks: torque-in-spec fail (FAIL: torque 9.5 out of spec). {x}')
  t.equal(res.promptError, undefined)
  const pass = rule.evaluate({ topic: 'flashcheck/inspect/st3/joint', params: { station: 'st3' }, payload: { torque_nm: 11 }, now }, store)
  t.match(pass.prompt, /Checks: torque-in-spec pass\./)
  // No samples: the placeholder cannot be rendered; the checks still are, the model is skipped.
  const quiet = rule.evaluate({ topic: 'flashcheck/inspect/st9/joint', params: { station: 'st9' }, payload: { torque_nm: 11 }, now }, store)
  t.equal(quiet.verdict, 'PASS')
  t.equal(quiet.prompt, undefined)
  t.match(quiet.promptError, /^prompt \{avg\(vib, "2s"\)\}: no samples of vib/)
})

t.test('reason step errors point at file:line:col', async (t) => {
  const at = (src: string) => errorsOf({ 'r.yaml': withReason(src) })
  const line0 = BASE.split('\n').length // the line of `reason:` is line0, its first entry line0 + 1
  t.same(at('  prompt: "x {torque}"\n  choices: [PASS, FAIL]\n'), [`r.yaml:${line0 + 1}:3: reason: missing required key 'fallback' (the verdict used when the model is below min_confidence or out of time)`])
  t.same(at('  prompt: "x"\n  choices: [PASS, SCRAP]\n  fallback: FAIL\n'), [`r.yaml:${line0 + 2}:19: reason: each choice must be one of the verdicts [PASS, WARN, REWORK, FAIL], got string "SCRAP"`])
  t.same(at('  prompt: "x"\n  choices: [PASS]\n  fallback: FAIL\n'), [`r.yaml:${line0 + 2}:12: reason: choices must be a list of at least two verdict labels, got a list`])
  t.same(at('  prompt: "x"\n  choices: [PASS, FAIL]\n  fallback: MAYBE\n'), [`r.yaml:${line0 + 3}:13: reason: fallback must be one of the verdicts [PASS, WARN, REWORK, FAIL], got string "MAYBE"`])
  t.same(at('  prompt: "x"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n  min_confidence: 1.5\n'), [`r.yaml:${line0 + 4}:19: reason: min_confidence must be a number from 0 to 1, got number 1.5`])
  t.same(at('  prompt: "x"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n  combine: min\n'), [`r.yaml:${line0 + 4}:12: reason: combine must be 'max' (the more severe of checks and model) or 'model', got string "min"`])
  t.same(at('  prompt: "x"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n  temperature: 0.2\n'), [`r.yaml:${line0 + 4}:3: reason: unknown key 'temperature' (allowed: prompt, system, choices, min_confidence, fallback, combine, explain)`])
  t.same(at('  prompt: "torque {torq} Nm"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n'), [`r.yaml:${line0 + 1}:20: reason: prompt {torq}: unknown identifier: torq (inputs: torque, station; signals: vib)`])
  t.same(at('  prompt: "torque {torque Nm"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n'), [`r.yaml:${line0 + 1}:19: reason: prompt: placeholder '{' is not closed with '}'`])
  t.same(at('  prompt: "x}"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n'), [`r.yaml:${line0 + 1}:13: reason: prompt: unmatched '}' (write '}}' for a literal brace)`])
  t.same(at(`  prompt: 'v {avg(vib, "20s")}'\n  choices: [PASS, FAIL]\n  fallback: FAIL\n`), [`r.yaml:${line0 + 1}:24: reason: prompt {avg(vib, "20s")}: window "20s" is longer than signal vib's keep (10s); raise keep`])
  t.same(at('  prompt: "x"\n  choices: [PASS, FAIL]\n  fallback: FAIL\n  explain: { topic: "flashcheck/explain/{line}" }\n'), [`r.yaml:${line0 + 4}:41: reason: explain.topic: {line} is not bound by the rule's topic flashcheck/inspect/{station}/joint (bound: {station})`])
})

t.test('splitPrompt', async (t) => {
  t.same(splitPrompt('a {b} c {{d}} {e("}")}').parts, [{ text: 'a ' }, { expr: 'b', at: 3 }, { text: ' c {d} ' }, { expr: 'e("}")', at: 15 }])
  t.same(splitPrompt('{}').problem, { at: 0, message: 'empty placeholder {}' })
})

t.test('rules with a reason step are refused when no model is configured', async (t) => {
  const src = jointRule()
  const refused = compileSources([{ file: 'j.yaml', src }], { defaultBudgetMs: 50, model: false })
  t.equal(refused.rules, undefined)
  t.equal(refused.errors.length, 1)
  t.match(refused.errors[0]!.message, /has a reason: step, which needs the decoder, but no model is configured: set model\.dir/)
  t.equal(refused.errors[0]!.line, src.split('\n').indexOf('reason:') + 1)
  t.equal(compileSources([{ file: 'j.yaml', src }], { defaultBudgetMs: 50, model: true }).errors.length, 0)
})

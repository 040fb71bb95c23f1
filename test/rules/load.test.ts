import t from 'tap'
import { loadRuleDir } from '../../daemon/rules/load.js'
import { errorsOf } from './helpers.js'

const FIX = new URL('../fixtures/rules/', import.meta.url).pathname
const rule = (body: string) => `id: r\nrequest: flashcheck/inspect/{station}/x\n${body}`

t.test('each kind of error is reported at its file:line:col', async (t) => {
  const cases: [string, string, string][] = [
    ['YAML syntax', 'id: r\nrequest: [a\n', 'f.yaml:3:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['not a mapping', '- a\n- b\n', 'f.yaml:1:1: a rule file must be a mapping with id, request or trigger, inputs and checks; got a list'],
    ['unknown key', rule('colour: red\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:3:1: rule: unknown key 'colour' (allowed: id, description, request, trigger, publish, budget_ms, verdicts, inputs, signals, checks, reason, trace)"],
    ['duplicate key', 'id: r\nid: s\nrequest: a\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n', 'f.yaml:2:1: YAML: Map keys must be unique'],
    ['missing checks', rule(''), "f.yaml:1:1: rule: missing required key 'checks' (a list of {id, expr, on_fail})"],
    ['wrong type', rule('budget_ms: fast\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), 'f.yaml:3:12: budget_ms must be a positive number of milliseconds, got string "fast"'],
    ['bad topic filter', 'id: r\nrequest: a/#/b\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n', "f.yaml:2:12: request: '#' is only allowed as the last level"],
    ['request and trigger', rule('trigger: a/b\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:3:1: a rule has either 'request' (request/response) or 'trigger' (streaming), not both"],
    ['trigger without publish', 'id: r\ntrigger: a/b\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n', "f.yaml:2:1: a streaming rule ('trigger') needs 'publish: <topic>' for its verdicts"],
    ['unbound publish name', 'id: r\ntrigger: a/{x}\npublish: out/{x}/{y}\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n', 'f.yaml:3:18: publish: {y} is not bound by the rule\'s topic a/{x} (bound: {x})'],
    ['unbound signal name', rule('signals:\n  v:\n    topic: plant/{line}/v\n    keep: 5s\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:5:18: signal v: topic: {line} is not bound by the rule's topic flashcheck/inspect/{station}/x (bound: {station})"],
    ['wildcard signal topic', rule('signals:\n  v:\n    topic: plant/+/v\n    keep: 5s\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:5:18: signal v: topic: wildcards are not allowed here; name the level and bind it through the rule's topic, e.g. {station}"],
    ['bad keep duration', rule('signals:\n  v:\n    topic: p/{station}\n    keep: 10 s\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), 'f.yaml:6:11: signal v: keep must be a duration like "500ms", "2s", "1.5m", "1h" or "1m30s", got string "10 s"'],
    ['bad input source', rule('inputs:\n  x: body.x\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:4:6: input x: source must be 'payload', 'payload.<path>' or 'topic.<name>', got \"body.x\""],
    ['unnamed topic level', rule('inputs:\n  s: topic.line\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:4:6: input s: topic level {line} is not named in the rule's topic flashcheck/inspect/{station}/x (named: {station})"],
    ['bad input type', rule('inputs:\n  x: { from: payload.x, type: float }\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), 'f.yaml:4:31: input x: type must be one of number, string, bool, any, got string "float"'],
    ['default of wrong type', rule('inputs:\n  x: { from: payload.x, default: "1" }\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), 'f.yaml:4:34: input x: default must be a number, got string "1"'],
    ['reserved input name', rule('inputs:\n  in: payload.x\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:4:3: input name 'in' is a reserved word of the expression language"],
    ['on_fail not a verdict', rule('checks:\n  - id: c\n    expr: "true"\n    on_fail: BROKEN\n'), "f.yaml:6:14: check c: on_fail 'BROKEN' is not one of the verdicts [PASS, WARN, REWORK, FAIL]"],
    ['ERROR as a verdict', rule('verdicts: [OK, ERROR]\nchecks:\n  - { id: c, expr: "true", on_fail: OK }\n'), "f.yaml:3:16: 'ERROR' is reserved for input and evaluation errors and cannot be a verdict label"],
    ['duplicate check id', rule('checks:\n  - { id: c, expr: "true", on_fail: FAIL }\n  - { id: c, expr: "true", on_fail: FAIL }\n'), "f.yaml:5:5: check id 'c' is used twice in this rule"],
    ['unknown identifier', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: x > 1.0 && y < 2.0\n    on_fail: FAIL\n'), 'f.yaml:7:22: check c: unknown identifier: y (inputs: x; signals: none)'],
    ['unknown function', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: x > 1.0 && median(x) > 2.0\n    on_fail: FAIL\n'), 'f.yaml:7:22: check c: unknown function median() (signal functions: last, age_ms, avg, min, max, count, slope; plus the CEL standard library)'],
    ['syntax error in expr', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: x > > 1.0\n    on_fail: FAIL\n'), 'f.yaml:7:15: check c: syntax error: Unexpected token: GT'],
    ['bad window', rule('signals:\n  v: { topic: "p/{station}", keep: 5s }\nchecks:\n  - id: c\n    expr: avg(v, "2 sec") > 1.0\n    on_fail: FAIL\n'), 'f.yaml:7:18: check c: invalid window "2 sec": use a duration like "500ms", "2s", "1.5m", "1h" or "1m30s"'],
    ['window longer than keep', rule('signals:\n  v: { topic: "p/{station}", keep: 5s }\nchecks:\n  - id: c\n    expr: avg(v, "10s") > 1.0\n    on_fail: FAIL\n'), 'f.yaml:7:18: check c: window "10s" is longer than signal v\'s keep (5s); raise keep'],
    ['non-literal window', rule('inputs:\n  w: { from: payload.w, type: string }\nsignals:\n  v: { topic: "p/{station}", keep: 5s }\nchecks:\n  - id: c\n    expr: avg(v, w) > 1.0\n    on_fail: FAIL\n'), 'f.yaml:9:18: check c: the window of avg() must be a string literal, a duration like "500ms", "2s", "1.5m", "1h" or "1m30s"'],
    ['signal function on an input', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: last(x) > 1.0\n    on_fail: FAIL\n'), 'f.yaml:7:11: check c: use last(signal) with a signal name as its first argument (signals: none declared)'],
    ['not a condition', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: x + 1.0\n    on_fail: FAIL\n'), 'f.yaml:7:11: check c: expr must be a condition (bool); it gives double'],
    ['int and double mixed', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: x * 2 > 1.0\n    on_fail: FAIL\n'), 'f.yaml:7:11: check c: no such overload: double * int: CEL does not mix int and double in arithmetic; write number literals with a decimal point (2.0)'],
    ['reason names a non-input', rule('checks:\n  - id: c\n    expr: "true"\n    on_fail: FAIL\n    reason: "value {v} too high"\n'), 'f.yaml:7:20: check c: reason refers to {v}, which is not an input (inputs: none)'],
    ['trace names a non-input', rule('inputs:\n  x: payload.x\ntrace: serial\nchecks:\n  - id: c\n    expr: x > 1.0\n    on_fail: FAIL\n'), "f.yaml:5:8: trace: 'serial' is not an input of this rule (inputs: x)"],
    ['trace not a name', rule('inputs:\n  x: payload.x\ntrace: [x]\nchecks:\n  - id: c\n    expr: x > 1.0\n    on_fail: FAIL\n'), 'f.yaml:5:8: trace must name an input, got a list'],
    ['expr in a block scalar', rule('inputs:\n  x: payload.x\nchecks:\n  - id: c\n    expr: |\n      x > 1.0 &&\n        nope\n    on_fail: FAIL\n'), 'f.yaml:9:9: check c: unknown identifier: nope (inputs: x; signals: none)'],
  ]
  for (const [name, src, want] of cases) t.same(errorsOf({ 'f.yaml': src }), [want], name)
})

t.test('ids and request topics must be unique across files', async (t) => {
  const a = 'id: same\nrequest: a/{s}\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'
  const b = 'id: same\nrequest: a/{t}\nchecks:\n  - { id: c, expr: "true", on_fail: FAIL }\n'
  t.same(errorsOf({ 'a.yaml': a, 'b.yaml': b }), [
    "b.yaml:1:5: duplicate rule id 'same' (also in a.yaml:1:5)",
    "b.yaml:2:10: request topic a/{t} is also served by rule 'same' (a.yaml:2:10); a request must map to one rule",
  ])
})

t.test('loadRuleDir: a valid directory gives the whole set with a content hash and routing', async (t) => {
  const res = await loadRuleDir(FIX + 'valid', { defaultBudgetMs: 40 })
  if (!res.ok) throw new Error(JSON.stringify(res.errors))
  t.match(res.set.rev, /^[0-9a-f]{12}$/)
  t.same(res.set.rules.map((r) => r.id).sort(), ['gauge', 'gauge-line2', 'stream'], 'only *.yaml / *.yml files')
  t.equal(res.set.rules.find((r) => r.id === 'gauge')!.budgetMs, 40, 'default budget applies')
  t.equal(res.set.matchRequest('flashcheck/inspect/line2/gauge')?.rule.id, 'gauge-line2', 'the more specific filter wins')
  t.same(res.set.matchRequest('flashcheck/inspect/line2/gauge')?.params, {})
  t.same(res.set.matchRequest('flashcheck/inspect/st1/gauge')?.params, { station: 'st1' })
  t.equal(res.set.matchRequest('flashcheck/inspect/st1/gauge')?.rule.id, 'gauge')
  t.equal(res.set.matchRequest('flashcheck/inspect/st1/other'), null)
  const trig = res.set.matchTrigger('plant/L1/press/p3/cycle')
  t.same(trig.map((m) => [m.rule.id, m.params]), [['stream', { line: 'L1' }]])
  t.equal(trig[0]!.rule.publishTopic!(trig[0]!.params), 'flashcheck/verdict/L1/press')
  t.equal(trig[0]!.rule.filter, 'plant/+/press/+/cycle')
  const again = await loadRuleDir(FIX + 'valid', { defaultBudgetMs: 40 })
  t.equal(again.ok && again.set.rev, res.set.rev, 'same content, same rev')
})

t.test('loadRuleDir: any error rejects the whole set and lists every error', async (t) => {
  const res = await loadRuleDir(FIX + 'broken', { defaultBudgetMs: 50 })
  t.equal(res.ok, false)
  if (res.ok) return
  const dir = FIX + 'broken/'
  t.same(res.errors.map((e) => `${e.file.slice(dir.length)}:${e.line}:${e.col}: ${e.message}`), [
    'a-unknown.yaml:7:22: check c1: unknown identifier: y (inputs: x; signals: none)',
    'b-syntax.yaml:9:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    "c-dup.yaml:1:5: duplicate rule id 'a' (also in " + dir + 'a-unknown.yaml:1:5)',
  ])
})

t.test('loadRuleDir: a missing directory is an error; an empty one is an empty set', async (t) => {
  const missing = await loadRuleDir(FIX + 'nope', { defaultBudgetMs: 50 })
  t.equal(missing.ok, false)
  t.match(!missing.ok && missing.errors[0]!.message, /^cannot read rules directory: /)
  const empty = await loadRuleDir(FIX + 'empty', { defaultBudgetMs: 50 })
  t.same(empty.ok && empty.set.rules, [])
})

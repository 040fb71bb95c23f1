// `flashcheck rules test`: test files, series strings, payload templates, stand-in model answers, reports.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import Ajv2020 from 'ajv/dist/2020.js'
import { parse } from 'yaml'
import { parseSeries, renderPayload } from '../../daemon/ruletest/series.js'
import { parseTestFile, TestFileError } from '../../daemon/ruletest/format.js'
import { TestRunner } from '../../daemon/ruletest/runner.js'
import { rulesTest } from '../../daemon/cli/rules-test.js'
import { cli } from '../helpers/cli.js'

const ROOT = join(import.meta.dirname, '..', '..')
const EXAMPLE_TESTS = join(ROOT, 'rules', 'examples', 'tests')
const FAILING = join(import.meta.dirname, '..', 'fixtures', 'ruletest', 'failing.test.yaml')
const tmp = mkdtempSync(join(tmpdir(), 'flashcheck-ruletest-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

t.test('series strings expand as promtool does', async (t) => {
  t.same(parseSeries('0.2+0.05x4'), [0.2, 0.25, 0.3, 0.35, 0.4])
  t.same(parseSeries('10-2x3'), [10, 8, 6, 4])
  t.same(parseSeries('7x2'), [7, 7, 7])
  t.same(parseSeries('1 _ 3 -1.5+0.5x1'), [1, null, 3, -1.5, -1])
  t.same(parseSeries('1e3+1e2x1'), [1000, 1100])
  t.throws(() => parseSeries('1+x3'), /bad series term "1\+x3"/)
  t.throws(() => parseSeries(''), /empty series/)
})

t.test('payload templates put the sample value in place of $value', async (t) => {
  t.equal(renderPayload('{"rms": $value, "unit": "g"}', 0.25), '{"rms": 0.25, "unit": "g"}')
  t.equal(renderPayload('{"a": $value, "b": $value}', -3), '{"a": -3, "b": -3}')
  t.equal(renderPayload(undefined, 21.5), '21.5')
})

t.test('the shipped examples pass their test files (CLI, exit 0, summary line)', async (t) => {
  const files = readdirSync(EXAMPLE_TESTS).filter((f) => f.endsWith('.yaml')).map((f) => join(EXAMPLE_TESTS, f))
  t.ok(files.length >= 5, 'a test file per example')
  const r = await cli(['rules', 'test', ...files])
  t.equal(r.code, 0, r.stdout + r.stderr)
  const lines = r.stdout.trim().split('\n')
  const oks = lines.filter((l) => /^ok \d+ - /.test(l)).length
  t.ok(oks >= 15, `${oks} tests`)
  t.equal(lines.at(-1), `${oks} passed, 0 failed`)
  t.notMatch(r.stdout, /^not ok/m)
})

t.test('the examples\' test files validate against rules/test-schema.json, and it rejects what the parser rejects', async (t) => {
  const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ allErrors: true, strict: true, strictRequired: false })
  const validate = ajv.compile(JSON.parse(readFileSync(join(ROOT, 'rules', 'test-schema.json'), 'utf8')))
  for (const f of readdirSync(EXAMPLE_TESTS).filter((n) => n.endsWith('.yaml'))) {
    t.ok(validate(parse(readFileSync(join(EXAMPLE_TESTS, f), 'utf8'))), `${f}: ${JSON.stringify(validate.errors)}`)
  }
  const ok = { tests: [{ name: 'a', requests: [{ topic: 'x/y', expect: { verdict: 'PASS' } }] }] }
  t.ok(validate(ok))
  t.notOk(validate({ tests: [{ name: 'a', requests: [{ topic: 'x/y', expect: { verdit: 'PASS' } }] }] }), 'unknown expect key')
  t.notOk(validate({ tests: [{ name: 'a', requests: [] }] }), 'no requests')
  t.notOk(validate({ tests: [{ name: 'a', signals: [{ topic: 's', values: 'x' }], requests: ok.tests[0]!.requests }] }), 'bad series')
})

t.test('a failing test file names the test, the request and the difference (exit 1)', async (t) => {
  const r = await cli(['rules', 'test', FAILING])
  t.equal(r.code, 1)
  t.match(r.stdout, /^not ok 1 - .*failing\.test\.yaml › calm spindle expected, but it is rough$/m)
  t.match(r.stdout, /^ok 2 - .* › this one passes$/m)
  t.match(r.stdout, /request: "#2 at_ms 1800 on flashcheck\/inspect\/st4\/torque \(.*failing\.test\.yaml:15:9\)"/)
  t.match(r.stdout, /- verdict: PASS\n +\+ verdict: WARN\n +- checks\.spindle-calm: true\n +\+ checks\.spindle-calm: false/)
  t.match(r.stdout, /"avg\(vib, \\"2s\\"\)":3\.5/, 'the values the check saw')
  t.notMatch(r.stdout, /request: "#1/, 'the passing request is not reported')
  t.equal(r.stdout.trim().split('\n').at(-1), '1 passed, 1 failed')
})

t.test('--junit writes JUnit XML that parses, with the failure and its diff', async (t) => {
  const out = join(tmp, 'junit.xml')
  const r = await cli(['rules', 'test', '--junit', out, FAILING, join(EXAMPLE_TESTS, 'bore-gauge.test.yaml')])
  t.equal(r.code, 1)
  const xml = readFileSync(out, 'utf8')
  t.equal(XMLValidator.validate(xml), true)
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => name === 'testsuite' || name === 'testcase' }).parse(xml)
  const root = doc.testsuites
  t.equal(root.failures, '1')
  t.equal(Number(root.tests), r.stdout.match(/^(?:not )?ok /gm)!.length)
  t.equal(root.testsuite.length, 2)
  const failed = root.testsuite.flatMap((s: any) => s.testcase).filter((c: any) => c.failure)
  t.equal(failed.length, 1)
  t.equal(failed[0].name, 'calm spindle expected, but it is rough')
  t.match(failed[0].failure.message, /request #2: - verdict: PASS \+ verdict: WARN/)
  t.match(failed[0].failure['#text'], /checks\.spindle-calm: false/)
})

t.test('malformed test files exit 2 with file:line:col', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['syntax.yaml', 'tests:\n  - name: a\n    requests: [\n', /syntax\.yaml:\d+:\d+: /],
    ['key.yaml', 'tests:\n  - name: a\n    requests:\n      - topic: x\n        expect: {verdit: PASS}\n', /key\.yaml:5:18: unknown key "verdit"/],
    ['series.yaml', 'tests:\n  - name: a\n    signals:\n      - topic: s\n        interval_ms: 10\n        values: "1+x"\n    requests:\n      - topic: x\n        expect: {verdict: PASS}\n', /series\.yaml:6:17: test "a": bad series term "1\+x"/],
    ['dup.yaml', 'tests:\n  - name: a\n    requests: [{topic: x, expect: {verdict: OK}}]\n  - name: a\n    requests: [{topic: x, expect: {verdict: OK}}]\n', /dup\.yaml:4:11: duplicate test name "a"/],
    ['checks.yaml', 'tests:\n  - name: a\n    requests:\n      - topic: x\n        expect: {checks: {c: yes-ish}}\n', /checks\.yaml:5:30: test "a": expect\.checks values must be true or false/],
  ]
  for (const [name, src, re] of cases) {
    const f = join(tmp, name)
    writeFileSync(f, src)
    // In-process (the CLI's own function): the exit code and stderr as the CLI prints them.
    let stderr = ''
    const code = await rulesTest(['--rules-dir', join(ROOT, 'rules', 'examples'), f], { out: () => {}, err: (x) => { stderr += x } })
    t.equal(code, 2, name)
    t.match(stderr, re, name)
  }
  try {
    parseTestFile('x.yaml', 'tests: []\n')
    t.fail('an empty test list must be refused')
  } catch (e) {
    t.ok(e instanceof TestFileError)
    t.equal((e as TestFileError).located, 'x.yaml:1:8: tests must be a non-empty list')
  }
  let out = ''
  const mixed = await rulesTest([join(tmp, 'key.yaml'), join(EXAMPLE_TESTS, 'bore-gauge.test.yaml')], { out: (x) => { out += x }, err: () => {} })
  t.equal(mixed, 2, 'a malformed file makes the exit 2 even when the others pass')
  t.match(out, /^4 passed, 0 failed$/m, 'the other files still ran')
  t.equal(await rulesTest([], { out: () => {}, err: () => {} }), 2, 'no file: usage')
  t.equal(await rulesTest(['--frobnicate', 'x.yaml'], { out: () => {}, err: () => {} }), 2, 'unknown option')
})

t.test('invalid rules fail the tests that use them, with the rule error located', async (t) => {
  const rules = mkdtempSync(join(tmp, 'rules-'))
  writeFileSync(join(rules, 'r.yaml'), 'id: r\nrequest: a/b\nchecks:\n  - id: c\n    expr: x >\n    on_fail: FAIL\n')
  const f = join(tmp, 'uses-bad-rules.yaml')
  writeFileSync(f, `rules_dir: ${rules}\ntests:\n  - name: a\n    requests: [{topic: a/b, expect: {verdict: PASS}}]\n`)
  const r = await cli(['rules', 'test', f])
  t.equal(r.code, 1)
  t.match(r.stdout, /not ok 1 .* › a\n {2}---\n {2}error: \|\n {4}rules invalid:\n {4}.*r\.yaml:5:\d+: /)
})

t.test('reason rules: stand-in choices, else the fallback; stand-ins must be choices of the rule', async (t) => {
  const runner = new TestRunner({ rulesDir: join(ROOT, 'rules', 'examples', 'model') })
  const file = join(tmp, 'ai.yaml')
  const req = (expect: string) => `      - topic: flashcheck/inspect/st1/torque-ai\n        payload: {torque_nm: 11.0, angle_deg: 700}\n        at_ms: 1000\n        expect: ${expect}\n`
  const sig = '    signals:\n      - {topic: plant/st1/spindle/vibration, interval_ms: 100, values: "1x9", payload: \'{"rms": $value}\'}\n'
  const src = `tests:\n  - name: stand-in PASS\n${sig}    model: {choices: {torque-joint-ai: PASS}}\n    requests:\n${req('{verdict: PASS, model: {status: ok, choice: PASS}, fallback: false}')}` +
    `  - name: no stand-in gives the fallback\n${sig}    requests:\n${req('{verdict: REWORK, fallback: true, model: {status: skipped}}')}` +
    `  - name: checks decide without the model\n    model: {choices: {torque-joint-ai: PASS}}\n    requests:\n      - topic: flashcheck/inspect/st1/torque-ai\n        payload: {torque_nm: 14.0, angle_deg: 700}\n        expect: {verdict: FAIL, model: {status: skipped, reason: decided}}\n` +
    `  - name: a stand-in that is no choice\n    model: {choices: {torque-joint-ai: WARN}}\n    requests:\n${req('{verdict: WARN}')}`
  writeFileSync(file, src)
  const results = await runner.runFile(parseTestFile(file, src))
  t.same(results.map((r) => [r.name, r.ok]), [
    ['stand-in PASS', true],
    ['no stand-in gives the fallback', true],
    ['checks decide without the model', true],
    ['a stand-in that is no choice', false],
  ], JSON.stringify(results.map((r) => r.failures.map((f) => f.diff)), null, 1))
  t.match(results[3]!.error, /WARN is not a choice of torque-joint-ai \(PASS, REWORK, FAIL\)/)
})

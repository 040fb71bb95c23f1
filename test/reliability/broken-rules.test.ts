// Broken rule files: each kind is reported as file:line:col, and a running daemon that is asked to load it
// keeps serving its previous rule set.
import t from 'tap'
import { copyFileSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { errorsOf } from '../rules/helpers.js'
import { loadRuleDir, MAX_RULE_FILE_BYTES } from '../../daemon/rules/load.js'
import { filtersOverlap } from '../../daemon/rules/topic.js'
import { Mosquitto } from '../../harness/mosquitto.js'
import { once, startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'
const check = '  - { id: c, expr: "true", on_fail: FAIL }\n'
const stream = (id: string, trigger: string, publish: string) => `id: ${id}\ntrigger: ${trigger}\npublish: ${publish}\nchecks:\n${check}`

t.test('filter overlap', async (t) => {
  const yes: [string, string][] = [['a/b', 'a/b'], ['a/+', 'a/b'], ['a/{x}', 'a/+'], ['a/#', 'a'], ['#', 'x/y/z'], ['a/+/c', 'a/b/+'], ['+/+', 'a/b']]
  const no: [string, string][] = [['a/b', 'a/c'], ['a/+', 'a/b/c'], ['a/b', 'a'], ['#', '$SYS/x'], ['+/x', '$SYS/x'], ['a/+/c', 'a/b/d']]
  for (const [a, b] of yes) { t.ok(filtersOverlap(a, b), `${a} ~ ${b}`); t.ok(filtersOverlap(b, a)) }
  for (const [a, b] of no) { t.notOk(filtersOverlap(a, b), `${a} !~ ${b}`); t.notOk(filtersOverlap(b, a)) }
})

t.test('cyclic and conflicting topic bindings are refused at the publish line', async (t) => {
  t.same(errorsOf({ 'loop.yaml': stream('loop', 'plant/{line}/press', 'plant/{line}/press') }), [
    "loop.yaml:3:10: publish topic plant/{line}/press overlaps the trigger topic plant/{line}/press of rule 'loop' (loop.yaml:2:10): its verdicts would trigger it again",
  ])
  t.same(errorsOf({ 'a.yaml': stream('a', 'plant/{line}/x', 'plant/{line}/y'), 'b.yaml': stream('b', 'plant/+/y', 'out/b') }), [
    "a.yaml:3:10: publish topic plant/{line}/y overlaps the trigger topic plant/+/y of rule 'b' (b.yaml:2:10): its verdicts would trigger that rule again",
  ], 'a cycle through two rules')
  t.same(errorsOf({ 'a.yaml': stream('a', 'plant/{line}/x', 'flashcheck/inspect/{line}/torque'), 'r.yaml': `id: r\nrequest: flashcheck/inspect/{station}/torque\nchecks:\n${check}` }), [
    "a.yaml:3:10: publish topic flashcheck/inspect/{line}/torque overlaps the request topic flashcheck/inspect/{station}/torque of rule 'r' (r.yaml:2:10): its verdicts would be taken as requests",
  ])
  const withSignal = `id: r\nrequest: q/{station}\nsignals:\n  v: { topic: "plant/{station}/vib", keep: 5s }\nchecks:\n  - { id: c, expr: 'count(v, \"1s\") > 0', on_fail: FAIL }\n`
  t.same(errorsOf({ 'a.yaml': stream('a', 'plant/{line}/x', 'plant/{line}/vib'), 'r.yaml': withSignal }), [
    "a.yaml:3:10: publish topic plant/{line}/vib overlaps signal topic plant/+/vib of rule 'r' (r.yaml:2:10): its verdicts would be read as sensor samples",
  ])
  t.same(errorsOf({ 'ok.yaml': stream('ok', 'plant/{line}/x', 'flashcheck/verdict/{line}') }), [], 'a separate verdict topic is fine')
})

t.test('a huge rule file is refused without being parsed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-huge-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'huge.yaml'), `id: huge\nrequest: a/{s}\nchecks:\n${check}` + '# padding\n'.repeat(MAX_RULE_FILE_BYTES / 10 + 10))
  const res = await loadRuleDir(dir, { defaultBudgetMs: 50 })
  t.equal(res.ok, false)
  if (!res.ok) t.match(`${res.errors[0]!.file}:${res.errors[0]!.line}:${res.errors[0]!.col}: ${res.errors[0]!.message}`, /huge\.yaml:1:1: rule file is \d+ bytes; the limit is 1048576/)
  // Just under the limit with many checks: loads.
  let many = `id: many\nrequest: a/{s}\ninputs:\n  x: payload.x\nchecks:\n`
  for (let i = 0; many.length < 200_000; i++) many += `  - { id: c${i}, expr: "x > ${i}.0", on_fail: FAIL }\n`
  writeFileSync(join(dir, 'huge.yaml'), many)
  const ok = await loadRuleDir(dir, { defaultBudgetMs: 50 })
  t.equal(ok.ok, true, 'a large but sane file loads')
})

t.test('a running daemon keeps its rules through every kind of broken reload', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-broken-'))
  copyFileSync(join(FIXTURES, 'torque.yaml'), join(dir, 'torque.yaml'))
  const broker = await Mosquitto.start()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', dir, '--rules-watch', 'false']))
  const req = await Requester.connect(broker.url, 5)
  t.teardown(async () => { await req.end(); await d.stop(); await broker.stop(); rmSync(dir, { recursive: true, force: true }) })
  const rev = d.daemon.rulesRev
  const broken: [string, string, RegExp][] = [
    ['YAML syntax error', 'id: x\nrequest: [a\n', /x\.yaml:3:1: YAML: /],
    ['unknown function', `id: x\nrequest: q/{s}\ninputs:\n  v: payload.v\nchecks:\n  - { id: c, expr: "median(v) > 1.0", on_fail: FAIL }\n`, /x\.yaml:6:\d+: check c: unknown function median\(\)/],
    ['type error', `id: x\nrequest: q/{s}\ninputs:\n  v: payload.v\nchecks:\n  - { id: c, expr: "v + 1.0", on_fail: FAIL }\n`, /x\.yaml:6:\d+: check c: expr must be a condition \(bool\)/],
    ['duplicate id', `id: torque-joint\nrequest: q/{s}\nchecks:\n${check}`, /x\.yaml:1:5: duplicate rule id 'torque-joint'/],
    ['conflicting request topic', `id: x\nrequest: flashcheck/inspect/{line}/torque\nchecks:\n${check}`, /x\.yaml:2:10: request topic .* is also served by rule 'torque-joint'/],
    ['cyclic binding', stream('x', 'plant/{l}/t', 'plant/{l}/t'), /x\.yaml:3:10: publish topic .* its verdicts would trigger it again/],
    ['verdicts onto a signal topic', stream('x', 'plant/{l}/t', 'plant/{l}/spindle/vibration'), /x\.yaml:3:10: publish topic .* would be read as sensor samples/],
    ['huge file', `id: x\nrequest: q/{s}\nchecks:\n${check}` + '#'.repeat(MAX_RULE_FILE_BYTES), /x\.yaml:1:1: rule file is \d+ bytes/],
    ['not UTF-8 / binary', '\u0000\u0001\u0002id: x', /x\.yaml:\d+:\d+: /],
  ]
  for (const [name, src, want] of broken) {
    const failed = once<{ file: string; line: number; col: number; message: string }[]>(d.daemon, 'reload-failed')
    writeFileSync(join(dir, 'x.yaml'), src)
    t.equal(await d.daemon.reload('test'), false, `${name}: not applied`)
    const errors = await failed
    const lines = errors.map((e) => `${e.file.slice(dir.length + 1)}:${e.line}:${e.col}: ${e.message}`)
    t.ok(lines.some((l) => want.test(l)), `${name}: ${lines[0]}`)
    t.equal(d.daemon.rulesRev, rev, `${name}: old rules still active`)
    const r = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
    t.equal(r.body.verdict, 'FAIL', `${name}: still answered by the old rules`)
    t.equal(r.body.rules_rev, rev)
  }
  unlinkSync(join(dir, 'x.yaml'))
  t.equal(d.daemon.connected, true)
})

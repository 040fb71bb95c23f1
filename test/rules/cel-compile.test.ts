// Rule expressions compiled to JavaScript against the CEL library's own evaluator, the independent peer:
// generated, type-checked expressions over doubles, ints, strings, bools and the signal functions (with
// samples, and without: the functions' errors) must give the same value, or the same error, and record the
// same check values through both.
import t from 'tap'
import fc from 'fast-check'
import type { ASTNode } from '@marcbachmann/cel-js'
import { compileExpression } from '../../daemon/rules/cel-compile.js'
import { ruleEnvironment, SignalRef } from '../../daemon/rules/functions.js'
import { SignalHistory } from '../../daemon/signals/history.js'
import { compileOne } from './helpers.js'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { cli } from '../helpers/cli.js'

const NOW = 1_700_000_000_000

type Checked = ((ctx: Record<string, unknown>) => unknown) & { ast: ASTNode; check(): { valid: boolean } }

function environment() {
  const env = ruleEnvironment()
  for (const n of ['x', 'y']) env.registerVariable(n, 'double')
  for (const n of ['s', 'u']) env.registerVariable(n, 'string')
  env.registerVariable('b', 'bool')
  env.registerVariable('d', 'dyn')
  for (const n of ['vib', 'idle']) env.registerVariable(n, 'Signal')
  return env
}

function refs(): { vib: SignalRef; idle: SignalRef } {
  const vib = new SignalRef('vib', 'k vib', 10_000)
  const h = new SignalHistory(10_000)
  for (let i = 0; i < 12; i++) h.push(NOW - 3000 + i * 250, 2 + (i % 5) * 0.37)
  vib.series = h
  vib.now = NOW
  vib.topic = 'plant/st1/vib'
  const idle = new SignalRef('idle', 'k idle', 10_000)
  idle.now = NOW
  idle.topic = 'plant/st1/idle'
  return { vib, idle }
}

/** What one evaluation gave: its value (typed, -0 kept), or its error's class and message; and the values recorded. */
function outcome(fn: (ctx: Record<string, unknown>) => unknown, ctx: Record<string, unknown>, sigs: SignalRef[]): string {
  const values: Record<string, unknown> = {}
  for (const s of sigs) s.values = values
  let r: string
  try {
    const v = fn(ctx)
    r = `${typeof v}:${Object.is(v, -0) ? '-0' : String(v)}`
  } catch (e) {
    const err = e as Error
    r = `throws ${err.constructor.name}: ${err.message}`
  }
  return `${r} values=${JSON.stringify(values)}`
}

const windows = fc.constantFrom('"500ms"', '"1s"', '"2s"', '"5s"')
const sig = fc.constantFrom('vib', 'idle')

const { dbl, int, str, bool } = fc.letrec<{ dbl: string; int: string; str: string; bool: string }>((tie) => ({
  dbl: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('x', 'y', '1.5', '0.0', '3.2', '1e308', '-2.25'),
    fc.tuple(fc.constantFrom('avg', 'min', 'max', 'slope'), sig, windows).map(([f, s, w]) => `${f}(${s}, ${w})`),
    fc.tuple(fc.constantFrom('last', 'age_ms'), sig).map(([f, s]) => `${f}(${s})`),
    fc.tuple(tie('dbl'), fc.constantFrom('+', '-', '*', '/'), tie('dbl')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('dbl').map((a) => `-(${a})`),
    fc.tuple(tie('bool'), tie('dbl'), tie('dbl')).map(([c, a, b]) => `(${c} ? ${a} : ${b})`),
  ),
  int: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('0', '3', '-2', '9223372036854775807', '-9223372036854775807'),
    fc.tuple(sig, windows).map(([s, w]) => `count(${s}, ${w})`),
    fc.tuple(tie('int'), fc.constantFrom('+', '-', '*', '/', '%'), tie('int')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('int').map((a) => `-(${a})`),
  ),
  str: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('s', 'u', '"a"', '""', '"b\\"q"'),
    fc.tuple(tie('str'), tie('str')).map(([a, b]) => `(${a} + ${b})`),
  ),
  bool: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('true', 'false', 'b'),
    tie('bool').map((a) => `!(${a})`),
    fc.tuple(tie('bool'), fc.constantFrom('&&', '||', '==', '!='), tie('bool')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc
      .tuple(fc.oneof(tie('dbl'), tie('int')), fc.constantFrom('<', '<=', '>', '>=', '==', '!='), fc.oneof(tie('dbl'), tie('int')))
      .map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc.tuple(tie('str'), fc.constantFrom('<', '==', '!=', '>='), tie('str')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc.tuple(tie('bool'), tie('bool'), tie('bool')).map(([c, a, b]) => `(${c} ? ${a} : ${b})`),
  ),
}))

const scalar = fc.record({
  x: fc.double(),
  y: fc.constantFrom(0, -0, 1, 2.5, 1e-300, -7),
  s: fc.constantFrom('', 'a', 'b"q', 'zz'),
  u: fc.string({ maxLength: 3 }),
  b: fc.boolean(),
})

t.test('compiled expressions give the library evaluator\'s values, errors and recorded values', async (t) => {
  const env = environment()
  let compiled = 0
  let compared = 0
  fc.assert(
    fc.property(fc.oneof(bool, dbl, int, str), scalar, (expr, vars) => {
      let fn: Checked
      try {
        fn = env.parse(expr) as unknown as Checked
      } catch {
        return
      }
      if (!fn.check().valid) return
      const fast = compileExpression(fn.ast)
      if (fast === undefined) return
      compiled++
      const { vib, idle } = refs()
      const ctx = { ...vars, d: 1, vib, idle }
      const want = outcome(fn, ctx, [vib, idle])
      const got = outcome(fast, ctx, [vib, idle])
      if (got !== want) throw new Error(`${expr}\n  library:  ${want}\n  compiled: ${got}`)
      compared++
    }),
    { numRuns: 3000 },
  )
  t.ok(compiled > 1000, `most generated expressions compile (${compiled})`)
  t.equal(compared, compiled)
})

t.test('the subset: what compiles and what keeps the library evaluator', async (t) => {
  const env = environment()
  const fast = (expr: string) => {
    const fn = env.parse(expr) as unknown as Checked
    t.ok(fn.check().valid, expr)
    return compileExpression(fn.ast)
  }
  for (const e of [
    'x >= 10.0 && x <= 12.0',
    'count(vib, "2s") >= 3 && avg(vib, "2s") < 3.2 && age_ms(vib) < 1000',
    'count(vib, "1m") < 10 || slope(vib, "1m") < 0.05',
    'b ? x : -x',
    's == "ok"',
  ]) t.type(fast(e), 'function', `compiled: ${e}`)
  for (const e of ['s.matches("^[A-Z]+$")', 'size(s) > 2', 'd > 1', '[1, 2].exists(v, v > 1)', 'x in [1.0, 2.0]', 'double(count(vib, "2s")) > 1.0', 'duration("1s") > duration("2s")']) {
    t.equal(fast(e), undefined, `library evaluator kept: ${e}`)
  }
})

t.test('a rule with a compiled check and one the library evaluates gives the same verdicts as before', async (t) => {
  const { rule, store } = compileOne(`
id: mixed
request: t/{station}/x
inputs:
  part: { from: payload.part, type: string }
  v: payload.v
signals:
  vib: { topic: "plant/{station}/vib", value: payload, keep: 10s }
checks:
  - id: part-format
    expr: part.matches("^[A-Z]{2}[0-9]{4}$")
    on_fail: FAIL
  - id: calm
    expr: count(vib, "2s") >= 2 && avg(vib, "2s") < v
    on_fail: WARN
`)
  const req = (payload: Record<string, unknown>) => ({ topic: 't/st1/x', params: { station: 'st1' }, payload, now: NOW })
  const none = rule.evaluate(req({ part: 'AB1234', v: 3 }), store)
  t.equal(none.verdict, 'WARN', 'no samples: count < 2 decides && without an error')
  t.same(none.checks[1]!.values, { v: 3, 'count(vib, "2s")': 0 })
  store.ingest('plant/st1/vib', Buffer.from('2'), NOW - 1500)
  store.ingest('plant/st1/vib', Buffer.from('3'), NOW - 500)
  const pass = rule.evaluate(req({ part: 'AB1234', v: 3 }), store)
  t.equal(pass.verdict, 'PASS')
  t.same(pass.checks[1]!.values, { v: 3, 'count(vib, "2s")': 2, 'avg(vib, "2s")': 2.5 })
  t.equal(rule.evaluate(req({ part: 'ab12', v: 3 }), store).verdict, 'FAIL')
})

t.test('where code generation is disallowed, rules load and the library evaluates them', async (t) => {
  const files = readdirSync(join(PACKAGE_ROOT, 'rules', 'examples', 'tests')).map((f) => join('rules', 'examples', 'tests', f))
  const plain = await cli(['rules', 'test', ...files])
  const locked = await cli(['rules', 'test', ...files], { env: { NODE_OPTIONS: '--disallow-code-generation-from-strings' } })
  t.equal(locked.code, 0, locked.stderr)
  t.equal(locked.stdout, plain.stdout, 'the same results line for line')
  t.match(locked.stdout, /\n(\d+) passed, 0 failed/)
})

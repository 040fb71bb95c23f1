// The response writer against JSON.stringify, the independent peer: generated responses (every optional field,
// any JSON in inputs, check values and the model report, strings with quotes, control characters and lone
// surrogates) must come out byte for byte the same.
import t from 'tap'
import fc from 'fast-check'
import { response } from './helpers/responses.js'
import { jsonValue, responseJson } from '../../daemon/service/response-json.js'
import type { Response } from '../../daemon/service/response.js'

t.test('responses are written byte for byte as JSON.stringify writes them', async (t) => {
  fc.assert(
    fc.property(response, (r) => {
      const got = responseJson(r)
      const want = JSON.stringify(r)
      if (got !== want) throw new Error(`\n  got:  ${got}\n  want: ${want}`)
    }),
    { numRuns: 2000 },
  )
  t.pass('2000 generated responses')
})

t.test('values JSON.stringify treats specially are handed to it', async (t) => {
  class Point {
    constructor(readonly x: number) {}
  }
  const deep: Record<string, unknown> = {}
  let at = deep
  for (let i = 0; i < 100; i++) at = (at.n = {}) as Record<string, unknown>
  const cases: unknown[] = [
    { when: new Date(0), p: new Point(1), list: [1, undefined, () => 2, Symbol('s')] },
    { toJSON: () => 'replaced' },
    Object.assign(Object.create(null), { a: 1 }),
    { 2: 'b', 1: 'a', z: 0, 10: 'c' },
    new Uint8Array([1, 2]),
    deep,
    [[], {}, [null]],
  ]
  for (const v of cases) t.equal(jsonValue(v), JSON.stringify(v))
  t.equal(jsonValue(undefined), undefined)
  t.throws(() => jsonValue({ n: 1n }), TypeError, 'a bigint throws as in JSON.stringify')
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  t.throws(() => jsonValue(cycle), TypeError, 'a cycle throws as in JSON.stringify')
})

t.test('quoted ids and labels are reused only while they still say the same', async (t) => {
  // A reloaded rule can keep a check's id and change its on_fail; the quoted opening of the check must follow.
  // Fields in reply()'s order, as the writer writes them.
  const response = (verdict: string, checks: unknown[], rulesRev = 'r1'): Response =>
    ({ verdict_id: 'v', ts: 't', inspection: 'torque-joint', verdict, checks, inputs: {}, latency_ms: 1, deadline_missed: false, rules_rev: rulesRev, node: 'n' }) as Response
  const steps: Array<[boolean, string, string]> = [[true, 'FAIL', 'PASS'], [false, 'FAIL', 'FAIL'], [false, 'WARN', 'WARN'], [true, 'WARN', 'PASS'], [false, 'a"b', 'a"b'], [true, 'FAIL', 'PASS']]
  for (const [ok, onFail, verdict] of steps) {
    const r = response(verdict, [{ id: 'torque-in-spec', ok, on_fail: onFail, values: { torque: 11.2 } }, { id: 'torque-in-spec', ok: !ok, on_fail: 'FAIL', values: {} }])
    t.equal(responseJson(r), JSON.stringify(r), `ok ${ok}, on_fail ${onFail}`)
  }
  for (let i = 0; i < 5000; i++) {
    // More distinct ids than the caches hold: they are cleared and refilled, and the output stays exact.
    const r = response(`V${i % 4099}`, [{ id: `c${i}`, ok: i % 2 === 0, on_fail: `F${i % 3}`, values: {} }], `rev${i}`)
    if (responseJson(r) !== JSON.stringify(r)) t.fail(`response ${i}`)
  }
  t.pass('5000 responses with ids beyond the cache bound')
})

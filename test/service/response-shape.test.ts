// The writers compiled per response shape, against JSON.stringify (the independent peer): families of responses
// that share a shape and then leave it (a key more, less or moved, another check, another container, other
// constants) must come out byte for byte as JSON.stringify writes them, whichever writer takes them.
import t from 'tap'
import fc from 'fast-check'
import { anyJson, record, response, text } from './helpers/responses.js'
import { compileShape, shapedResponseJson } from '../../daemon/service/response-shape.js'
import type { Response } from '../../daemon/service/response.js'

type Mutable = Record<string, unknown>

/** The torque-joint example's response, as reply() builds it. */
function example(i: number, over: Partial<Response> = {}): Response {
  const torque = 11 + (i % 10) / 10
  const angle = 700 + (i % 50)
  return {
    verdict_id: `019ae4a2-5a3a-71be-b8a8-0dbb6088${(1000 + i).toString(16)}`,
    ts: `2026-12-03T14:07:10.${String(i % 1000).padStart(3, '0')}Z`,
    inspection: 'torque-joint',
    verdict: i % 3 === 0 ? 'WARN' : 'PASS',
    checks: [
      { id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque } },
      { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle } },
      i % 3 === 0
        ? { id: 'spindle-calm', ok: false, on_fail: 'WARN', reason: `vibration "${i}"`, values: { 'count(vib, "2s")': 3, 'avg(vib, "2s")': 1.1 + (i % 7) * 0.03, 'age_ms(vib)': i % 40 } }
        : { id: 'spindle-calm', ok: true, on_fail: 'WARN', values: { 'count(vib, "2s")': 3, 'avg(vib, "2s")': 1.1 + (i % 7) * 0.03, 'age_ms(vib)': i % 40 } },
    ],
    inputs: { torque, angle, station: 'st1' },
    latency_ms: Math.round((i * 7919) % 20000) / 1000,
    deadline_missed: false,
    rules_rev: '983c09995761',
    node: 'line4-gw',
    ...(i % 2 === 0 ? { correlation_id: `req-${i}` } : {}),
    ...over,
  }
}

const clone = (r: Response): Response => ({ ...r, checks: r.checks.map((c) => ({ ...c, values: { ...c.values } })), inputs: { ...r.inputs } })

/** Ways to take a response out of its shape, each one a guard of the compiled writer. */
const leaves: Array<[string, (r: Response) => void]> = [
  ['a value key moved', (r) => { const v = r.checks[2]!.values; const [k, x] = Object.entries(v)[0]!; delete v[k]; v[k] = x }],
  ['a value key more', (r) => { r.checks[0]!.values.extra = 1 }],
  ['a value key less', (r) => { delete r.checks[2]!.values['age_ms(vib)'] }],
  ['an input key more', (r) => { r.inputs.zz = 'x' }],
  ['inputs in another order', (r) => { r.inputs = { station: r.inputs.station, torque: r.inputs.torque, angle: r.inputs.angle } }],
  ['a check more', (r) => { r.checks.push({ id: 'extra', ok: false, on_fail: 'FAIL', values: {} }) }],
  ['a check less', (r) => { r.checks.pop() }],
  ['another check id', (r) => { r.checks[1]!.id = 'angle' }],
  ['another on_fail', (r) => { r.checks[1]!.on_fail = 'FAIL' }],
  ['an error in a check', (r) => { const c = r.checks[0]!; r.checks[0] = { id: c.id, ok: false, on_fail: c.on_fail, error: 'no samples of "vib"', values: c.values } }],
  ['values as an array', (r) => { (r.checks[0] as unknown as Mutable).values = [1, 2] }],
  ['values as null', (r) => { (r.checks[0] as unknown as Mutable).values = null }],
  ['values without a prototype', (r) => { r.checks[0]!.values = Object.assign(Object.create(null) as Mutable, r.checks[0]!.values) }],
  ['values of a class', (r) => { r.checks[0]!.values = new (class V { torque = 1 })() as unknown as Mutable }],
  ['values with toJSON', (r) => { Object.defineProperty(r.checks[0]!.values, 'toJSON', { value: () => 'j' }) }],
  ['an undefined value', (r) => { r.checks[0]!.values.torque = undefined }],
  ['a function value', (r) => { r.inputs.angle = () => 1 }],
  ['a nested value', (r) => { r.inputs.station = { line: [1, 'two', null], deep: { x: NaN } } }],
  ['a string needing escapes', (r) => { r.inputs.station = 'st"1\n\u2028\ud800' }],
  ['a number that is not finite', (r) => { r.checks[2]!.values['avg(vib, "2s")'] = Infinity }],
  ['minus zero', (r) => { r.inputs.torque = -0 }],
  ['another inspection', (r) => { r.inspection = null }],
  ['another rules_rev', (r) => { r.rules_rev = 'r2' }],
  ['another node', (r) => { r.node = 'n"2' }],
  ['the optional fields', (r) => { Object.assign(r, { trace: 'SN-1', error: { code: 'E', message: 'm' }, trigger_topic: 't', model: { status: 'ok', ms: 1 }, fallback: true }) }],
  ['integer-like keys', (r) => { r.inputs = { 2: 'b', 1: 'a', z: 0 } }],
]

t.test('a compiled writer takes its own shape and gives every other response back', async (t) => {
  const base = example(3)
  const w = compileShape(base)!
  t.ok(w, 'the example compiles')
  for (let i = 0; i < 60; i++) {
    const r = example(i)
    // Checks that failed carry a reason: the same shape either way.
    t.equal(w(r), JSON.stringify(r), `response ${i} of the shape`)
  }
  for (const [what, leave] of leaves) {
    const r = clone(base)
    leave(r)
    const got = w(r)
    if (got !== undefined) t.equal(got, JSON.stringify(r), `${what}: the shape still fits and writes it exactly`)
    else t.pass(`${what}: left to another writer`)
  }
  // The guards themselves: each of these would be written wrongly by the writer if it took it.
  for (const what of ['a value key moved', 'a value key more', 'a value key less', 'inputs in another order', 'a check more', 'another check id', 'another on_fail', 'values with toJSON', 'an undefined value', 'another node', 'integer-like keys']) {
    const r = clone(base)
    leaves.find(([w]) => w === what)![1](r)
    t.equal(w(r), undefined, `${what}: not taken`)
  }
})

t.test('through the shapes of one rule, every response is written as JSON.stringify writes it', async (t) => {
  const owner = {}
  let n = 0
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 200; i++) {
      const r = example(i)
      if (i % 7 === 0) leaves[(i / 7 + round) % leaves.length]![1](r)
      const got = shapedResponseJson(owner, r)
      const want = JSON.stringify(r)
      if (got !== want) t.fail(`round ${round}, response ${i}\n  got:  ${got}\n  want: ${want}`)
      n++
    }
  }
  t.pass(`${n} responses, more shapes than one rule keeps (the least used ones are replaced)`)
  const other = example(1, { node: 'x' })
  t.equal(shapedResponseJson(undefined, other), JSON.stringify(other), 'without an owner, the generic writer')
})

t.test('generated families of responses sharing shapes', async (t) => {
  // A family: one generated response, then copies with new leaf values (same shape) and with one of the
  // generated parts swapped in (a new shape), all through one owner.
  const family = fc.tuple(
    response,
    fc.array(fc.tuple(fc.nat(), anyJson, text, record, fc.boolean()), { minLength: 1, maxLength: 12 }),
  )
  fc.assert(
    fc.property(family, ([first, steps]) => {
      const owner = {}
      const all: Response[] = [first]
      for (const [pick, leaf, word, values, ok] of steps) {
        const r = clone(first)
        const keysOf = (o: Mutable) => Object.keys(o)
        switch (pick % 6) {
          case 0: { // same shape, other leaves
            const ks = keysOf(r.inputs)
            if (ks.length > 0) r.inputs[ks[pick % ks.length]!] = leaf
            break
          }
          case 1:
            if (r.checks.length > 0) r.checks[pick % r.checks.length]!.values = values
            break
          case 2:
            if (r.checks.length > 0) {
              // A check's fields in the order rule evaluation creates them.
              const c = r.checks[pick % r.checks.length]!
              r.checks[pick % r.checks.length] = { id: c.id, ok, on_fail: c.on_fail, reason: word, values: c.values }
            }
            break
          case 3:
            r.inputs = values
            break
          case 4:
            r.verdict = word
            break
          default:
            r.node = word
        }
        all.push(r)
      }
      for (const r of [...all, ...all]) {
        const got = shapedResponseJson(owner, r)
        const want = JSON.stringify(r)
        if (got !== want) throw new Error(`\n  got:  ${got}\n  want: ${want}`)
      }
    }),
    { numRuns: 500 },
  )
  t.pass('500 families')
})

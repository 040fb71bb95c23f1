// The native log Σ exp (label scoring's row normaliser) against a float64 reference written here, on every ISA
// this CPU has (FLASHCHECK_ISA, one process each) and in-process: row lengths around every vector width, a wide
// spread, terms that underflow, and the non-finite logits whose answer is NaN.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ADDON_PATH, loadAddon } from '../../daemon/model/addon.js'
import { logSumExp, logSumExpJs } from '../../daemon/model/log-sum-exp.js'
import { isas } from './helpers/isas.js'

/** log Σ exp in float64, apart from the daemon's code: the sum sorted ascending (the most accurate order). */
function reference(xs: number[]): number {
  if (xs.some((x) => Number.isNaN(x) || x === Infinity)) return NaN
  const m = Math.max(...xs)
  if (m === -Infinity) return NaN
  const terms = xs.map((x) => Math.exp(x - m)).sort((a, b) => a - b)
  return m + Math.log(terms.reduce((a, b) => a + b, 0))
}

function rows(): number[][] {
  let s = 12345
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 40 - 20
  const out: number[][] = []
  for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 1000, 32064]) out.push(Array.from({ length: n }, rnd).map(Math.fround))
  out.push([1000, ...new Array<number>(63).fill(0)]) // one term dominates: the rest vanish against it
  out.push([0, -650, -710, -800, -1e30, ...new Array<number>(27).fill(-750)]) // terms below e^-700 underflow
  out.push(new Array<number>(40).fill(3.5)) // all equal: 3.5 + log 40
  const withNaN = out[6]!.slice()
  withNaN[9] = NaN
  const withInf = out[6]!.slice()
  withInf[20] = Infinity
  const withNegInf = out[6]!.slice()
  withNegInf[0] = -Infinity
  out.push(withNaN, withInf, withNegInf, new Array<number>(19).fill(-Infinity))
  return out
}

const cases = rows()

function check(t: Test, label: string, got: number[]): void {
  let bad = 0
  cases.forEach((xs, i) => {
    const want = reference(xs)
    const ok = Number.isNaN(want) ? Number.isNaN(got[i]!) : Math.abs(got[i]! - want) <= 1e-12 * Math.max(1, Math.abs(want))
    if (!ok) {
      bad++
      t.fail(`${label}: row ${i} (${xs.length} logits): ${got[i]} vs reference ${want}`)
    }
  })
  t.equal(bad, 0, `${label}: all ${cases.length} rows within 1e-12 of the reference (NaN where it is NaN)`)
}

t.test('the daemon uses the native loop where the addon is built', async (t) => {
  const native = loadAddon<{ logSumExp?: unknown }>().logSumExp
  t.type(native, 'function', 'the addon exports logSumExp')
  const row = Float32Array.from(cases[15]!)
  t.equal(logSumExp(row, 0, row.length), (native as (a: Float32Array, o: number, n: number) => number)(row, 0, row.length))
})

t.test('in-process (default ISA) and the JavaScript fallback match the reference', async (t) => {
  const packed = cases.map((xs) => Float32Array.from(xs))
  check(t, 'native', packed.map((r) => logSumExp(r, 0, r.length)))
  check(t, 'JavaScript', packed.map((r) => logSumExpJs(r, 0, r.length)))
  // a row inside a larger array: offset and length select it
  const two = new Float32Array([...cases[3]!, ...cases[10]!])
  t.equal(logSumExp(two, 4, cases[10]!.length), logSumExp(Float32Array.from(cases[10]!), 0, cases[10]!.length))
  t.equal(logSumExp(two, 0, 0), -Infinity, 'an empty row: log 0')
  t.throws(() => logSumExp(two, 1, two.length), /within the array/, 'a range past the end is refused')
})

t.test('every ISA this CPU has matches the reference (FLASHCHECK_ISA)', async (t) => {
  const list = isas()
  if (list.length === 0) return t.plan(0, `no ISA to force on ${process.arch}`)
  const dir = mkdtempSync(join(tmpdir(), 'fc-lse-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const input = join(dir, 'rows.json')
  writeFileSync(input, JSON.stringify(cases.map((xs) => xs.map(String))))
  const code = `const a = require(${JSON.stringify(ADDON_PATH)}); const rows = require(${JSON.stringify(input)});
    console.log(JSON.stringify({ isa: a.isa(), got: rows.map((r) => { const f = Float32Array.from(r.map(Number)); return String(a.logSumExp(f, 0, f.length)) }) }))`
  for (const want of list) {
    const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, FLASHCHECK_ISA: want }, encoding: 'utf8' })
    t.equal(r.status, 0, `${want}: ran (${r.stderr.trim()})`)
    const out = JSON.parse(r.stdout) as { isa: string; got: string[] }
    t.equal(out.isa, want, `the addon ran ${want}`)
    check(t, want, out.got.map(Number))
  }
})

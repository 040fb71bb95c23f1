// Choice scoring: log-probabilities of label tokens against a float64 reference written here, and each
// logits row's normaliser computed once however many labels read it (a row is the whole vocabulary).
import t from 'tap'
import { logSumExpJs } from '../../daemon/model/log-sum-exp.js'
import { choose, RowLogProbs } from '../../daemon/verdict/score.js'

/** log softmax in float64, written apart from score.ts: log(exp(x_t) / Σ exp(x_i)) with a max shift. */
function reference(row: Float32Array, token: number): number {
  const xs = Array.from(row, Number)
  const m = Math.max(...xs)
  const z = xs.reduce((a, x) => a + Math.exp(x - m), 0)
  return xs[token]! - m - Math.log(z)
}

function randomRows(rows: number, V: number, seed: number): Float32Array {
  let s = seed >>> 0
  const out = new Float32Array(rows * V)
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = (s / 2 ** 32) * 40 - 20
  }
  return out
}

for (const [name, lse] of [['native', undefined], ['JavaScript', logSumExpJs]] as const) {
  t.test(`log-probabilities of label tokens match a float64 reference (${name} normaliser)`, async (t) => {
    const V = 1000
    const logits = randomRows(3, V, 7)
    const rows = new RowLogProbs(logits, V, lse)
    let close = 0
    for (let row = 0; row < 3; row++) {
      for (const token of [0, 1, 499, 998, 999]) {
        const want = reference(logits.subarray(row * V, (row + 1) * V), token)
        const got = rows.at(row, token)
        t.equal(got, new RowLogProbs(logits, V, lse).at(row, token), `row ${row} token ${token}: the same value as from a row normalised afresh`)
        if (Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want))) close++
        else t.fail(`row ${row} token ${token}: ${got} vs reference ${want}`)
      }
    }
    t.equal(close, 15, 'all 15 within 1e-9 of the reference')
    let total = 0
    for (let token = 0; token < V; token++) total += Math.exp(rows.at(1, token))
    t.ok(Math.abs(total - 1) < 1e-9, `a row's probabilities sum to 1 (${total})`)
  })
}

t.test('a row is normalised once, however many labels read it', async (t) => {
  const V = 5000
  const logits = randomRows(2, V, 11)
  const asked: number[] = []
  const rows = new RowLogProbs(logits, V, (a, offset, n) => {
    asked.push(offset)
    return logSumExpJs(a, offset, n)
  })
  for (const token of [3, 17, 256, 4999]) rows.at(0, token)
  t.same(asked, [0], 'four labels on row 0: one normaliser')
  rows.at(1, 5)
  rows.at(1, 6)
  t.same(asked, [0, V], 'row 1 read twice: one more, at its offset')
})

t.test('the JavaScript normaliser is one pass of exp over the row', async (t) => {
  const V = 5000
  const logits = randomRows(1, V, 13)
  const exp = Math.exp
  let calls = 0
  Math.exp = (x: number) => {
    calls++
    return exp(x)
  }
  try {
    logSumExpJs(logits, 0, V)
  } finally {
    Math.exp = exp
  }
  t.equal(calls, V)
})

t.test('choose: softmax over the labels, ties to the earlier label', async (t) => {
  const c = choose(['PASS', 'FAIL', 'REWORK'], [-1, -1, -3])
  t.equal(c.choice, 'PASS')
  t.ok(Math.abs(c.confidence - Math.exp(-1) / (2 * Math.exp(-1) + Math.exp(-3))) < 1e-12)
  t.ok(Math.abs(c.probs.reduce((a, b) => a + b, 0) - 1) < 1e-12)
})

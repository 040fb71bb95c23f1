import t from 'tap'
import { SignalHistory } from '../../daemon/signals/history.js'

/** Deterministic pseudo-random numbers so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32)
}

function brute(ts: number[], vs: number[], from: number, to: number) {
  const idx = ts.map((t, i) => i).filter((i) => ts[i]! >= from && ts[i]! <= to)
  const x = idx.map((i) => ts[i]!)
  const y = idx.map((i) => vs[i]!)
  const n = x.length
  const mx = x.reduce((a, b) => a + b, 0) / n
  const my = y.reduce((a, b) => a + b, 0) / n
  let sxy = 0
  let sxx = 0
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my)
    sxx += (x[i]! - mx) ** 2
  }
  return { n, mean: my, min: Math.min(...y), max: Math.max(...y), slope: (sxy / sxx) * 1000, last: y[n - 1] }
}

t.test('slope is the least-squares fit, per second', async (t) => {
  const h = new SignalHistory(60_000)
  // v = 3 + 0.5/s * t, plus symmetric noise that does not change the fit
  const pts: [number, number][] = [[0, 3], [1000, 3.6], [2000, 3.9], [3000, 4.6]]
  for (const [tm, v] of pts) h.push(1_000_000 + tm, v)
  // closed form: mean t = 1500, mean v = 3.775; sxy = (-1500)(-0.775)+(-500)(-0.175)+(500)(0.125)+(1500)(0.825) = 2550; sxx = 5e6
  t.equal(Math.round(h.slopePerSecond(0, 2e6) * 1e9) / 1e9, 0.51)
  t.equal(h.mean(0, 2e6), 3.775)
  t.equal(h.count(1_001_000, 1_002_000), 2, 'window bounds are inclusive')
  t.ok(Number.isNaN(h.slopePerSecond(1_002_500, 1_003_000)), 'one sample: no slope')
})

t.test('slope of samples at one instant is undefined (NaN), not infinite', async (t) => {
  const h = new SignalHistory(10_000)
  h.push(5000, 1)
  h.push(5000, 2)
  h.push(5000, 3)
  t.ok(Number.isNaN(h.slopePerSecond(0, 6000)))
  t.equal(h.mean(0, 6000), 2)
})

t.test('window queries agree with brute force across growth, wrap-around, eviction and rebasing', async (t) => {
  const rand = rng(7)
  const keep = 3000
  const h = new SignalHistory(keep)
  const ts: number[] = []
  const vs: number[] = []
  let now = 1_700_000_000_000 // epoch-sized times exercise the precision of the running sums
  for (let i = 0; i < 5000; i++) {
    now += Math.floor(rand() * 40)
    const v = 50 + 10 * Math.sin(i / 50) + rand()
    h.push(now, v)
    ts.push(now)
    vs.push(v)
    if (i % 97 === 0 || i === 4999) {
      for (const w of [1, 50, 500, 2999]) {
        const from = now - w
        const b = brute(ts.slice(-1000).filter((x) => x >= now - keep), vs.slice(-1000).filter((_, k) => ts.slice(-1000)[k]! >= now - keep), from, now)
        t.equal(h.count(from, now), b.n, `count i=${i} w=${w}`)
        if (b.n === 0) continue
        t.ok(Math.abs(h.mean(from, now) - b.mean) < 1e-9, `mean i=${i} w=${w}`)
        t.equal(h.min(from, now), b.min, `min i=${i} w=${w}`)
        t.equal(h.max(from, now), b.max, `max i=${i} w=${w}`)
        t.equal(h.lastValue(from, now), b.last)
        if (b.n >= 3 && Number.isFinite(b.slope)) {
          t.ok(Math.abs(h.slopePerSecond(from, now) - b.slope) < 1e-6 * (1 + Math.abs(b.slope)), `slope i=${i} w=${w}: ${h.slopePerSecond(from, now)} vs ${b.slope}`)
        }
      }
    }
  }
})

t.test('samples older than keep are evicted; late samples are clamped to keep time order', async (t) => {
  const h = new SignalHistory(1000)
  h.push(0, 1)
  h.push(500, 2)
  h.push(1600, 3)
  t.equal(h.length, 1, 'samples before 1600-1000 are gone')
  h.push(1200, 4) // arrived late: stored at 1600
  t.equal(h.lastTime(0, 2000), 1600)
  t.equal(h.lastValue(0, 2000), 4)
  h.evictBefore(5000)
  t.equal(h.length, 0)
  t.ok(Number.isNaN(h.mean(0, 1e9)))
  t.ok(Number.isNaN(h.lastTime(0, 1e9)))
  h.push(9000, 7)
  t.equal(h.mean(0, 1e9), 7, 'usable again after emptying')
})

// bench/verdict/score: the event-loop time of scoring a verdict's labels from the decoder's last logits row,
// per vocabulary size, three ways in the same run: each label normalising the row itself in JavaScript (how the
// executor scored first), one JavaScript normaliser shared by all labels (the baseline), and one native normaliser
// (the kernel's vectorised float64 log Σ exp; what the executor does now).
//   node dist/bench/verdict/score.js [--labels 4] [--vocab 32064,200064] [--reps 30]
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { kernelIsa } from '../../daemon/model/kernel.js'
import { logSumExp, logSumExpJs } from '../../daemon/model/log-sum-exp.js'
import { RowLogProbs } from '../../daemon/verdict/score.js'
import { cpuInfo } from '../kernel/cpu-peak.js'

const { values } = parseArgs({ options: { labels: { type: 'string', default: '4' }, vocab: { type: 'string', default: '32064,200064' }, reps: { type: 'string', default: '30' } } })
const labels = Number(values.labels)
const reps = Number(values.reps)
const cpu = cpuInfo()
const isa = kernelIsa()
console.log(`machine: ${cpu.model}, ${cpu.arch}, kernel ISA ${isa}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
console.log(`bench/verdict/score: ${labels} single-token labels scored on one logits row, median of ${reps} repetitions`)
let sink = 0
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
for (const V of values.vocab.split(',').map(Number)) {
  const row = new Float32Array(V)
  for (let i = 0; i < V; i++) row[i] = Math.sin(i * 12.9898) * 8
  const tokens = Array.from({ length: labels }, (_, k) => (k * 7919) % V)
  const perLabel: number[] = []
  const js: number[] = []
  const native: number[] = []
  for (let r = 0; r < reps; r++) {
    let t0 = performance.now()
    for (const tok of tokens) sink += new RowLogProbs(row, V, logSumExpJs).at(0, tok)
    perLabel.push(performance.now() - t0)
    t0 = performance.now()
    const a = new RowLogProbs(row, V, logSumExpJs)
    for (const tok of tokens) sink += a.at(0, tok)
    js.push(performance.now() - t0)
    t0 = performance.now()
    const b = new RowLogProbs(row, V, logSumExp)
    for (const tok of tokens) sink += b.at(0, tok)
    native.push(performance.now() - t0)
  }
  console.log(
    `vocab ${V}: per label (JavaScript) ${med(perLabel).toFixed(3)} ms, one JavaScript normaliser per row ${med(js).toFixed(3)} ms, ` +
      `one native normaliser per row ${med(native).toFixed(3)} ms (${(med(js) / med(native)).toFixed(2)}x less than JavaScript's)`,
  )
}
if (!Number.isFinite(sink)) throw new Error('scores are not finite')

// bench/verdict/score: the event-loop time of scoring a verdict's labels from the decoder's last logits row,
// per vocabulary size: each label normalising the row itself (a RowLogProbs of its own per label, as the
// executor scored before; the baseline, same run) against one RowLogProbs shared by all labels (what it does now).
//   node dist/bench/verdict/score.js [--labels 4] [--vocab 32064,200064] [--reps 30]
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { RowLogProbs } from '../../daemon/verdict/score.js'
import { cpuInfo, vectorIsa } from '../kernel/cpu-peak.js'

const { values } = parseArgs({ options: { labels: { type: 'string', default: '4' }, vocab: { type: 'string', default: '32064,200064' }, reps: { type: 'string', default: '30' } } })
const labels = Number(values.labels)
const reps = Number(values.reps)
const cpu = cpuInfo()
console.log(`machine: ${cpu.model}, ${cpu.arch}, ISA ${vectorIsa(cpu)} (JavaScript only), ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
console.log(`bench/verdict/score: ${labels} single-token labels scored on one logits row, median of ${reps} repetitions`)
let sink = 0
for (const V of values.vocab.split(',').map(Number)) {
  const row = new Float32Array(V)
  for (let i = 0; i < V; i++) row[i] = Math.sin(i * 12.9898) * 8
  const tokens = Array.from({ length: labels }, (_, k) => (k * 7919) % V)
  const perLabel: number[] = []
  const shared: number[] = []
  for (let r = 0; r < reps; r++) {
    let t0 = performance.now()
    for (const tok of tokens) sink += new RowLogProbs(row, V).at(0, tok)
    perLabel.push(performance.now() - t0)
    t0 = performance.now()
    const rows = new RowLogProbs(row, V)
    for (const tok of tokens) sink += rows.at(0, tok)
    shared.push(performance.now() - t0)
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
  console.log(`vocab ${V}: per label ${med(perLabel).toFixed(3)} ms, one normaliser per row ${med(shared).toFixed(3)} ms (${(med(perLabel) / med(shared)).toFixed(2)}x less)`)
}
if (!Number.isFinite(sink)) throw new Error('scores are not finite')

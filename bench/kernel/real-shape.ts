// The real Phi-4-mini-flash-reasoning shape (3.8B parameters, random weights) as a quantized checkpoint, loaded by
// the daemon's kernel: file size, resident memory after load and after decode steps, ms/token and its fraction
// of the memory bandwidth measured right before and after.
//   flashcheck model init --config phi4-mini-flash --quant q4_0 --out DIR
//   node dist/bench/kernel/real-shape.js --dir DIR [--steps 64] [--threads N] [--quantize none|q8_0|q4_0]
import { readdirSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { QuantType } from '../../daemon/model/backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { measureBandwidthInChild } from './membw.js'
import { summarize } from './stats.js'

const { values: v } = parseArgs({ options: { dir: { type: 'string' }, steps: { type: 'string', default: '64' }, threads: { type: 'string' }, quantize: { type: 'string', default: 'none' } } })
if (!v.dir) {
  process.stderr.write('usage: node dist/bench/kernel/real-shape.js --dir DIR [--steps 64] [--threads N] [--quantize none|q8_0|q4_0]\n')
  process.exit(2)
}
const threads = Number(v.threads ?? availableParallelism())
const steps = Number(v.steps)
const log = (s: string) => process.stdout.write(s + '\n')
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`
const files = readdirSync(v.dir).filter((f) => f.endsWith('.safetensors'))
const fileBytes = files.reduce((a, f) => a + statSync(join(v.dir!, f)).size, 0)
log(`checkpoint ${v.dir}: ${files.length} safetensors file(s), ${gib(fileBytes)} (${(fileBytes / 1e9).toFixed(2)} GB)`)
const bw0 = (await measureBandwidthInChild({ threads, bytes: 1024 * 2 ** 20, reps: 3, sweep: [], singleThread: false })).headline.gbps.median
const rss0 = process.memoryUsage().rss
const t0 = performance.now()
const m = await Model.loadAsync(v.dir, { threads, quantize: v.quantize as QuantType })
const loadS = (performance.now() - t0) / 1000
const c = m.config
const rssLoad = process.memoryUsage().rss
log(`loaded in ${loadS.toFixed(1)} s: ${(c.param_count / 1e9).toFixed(2)}B parameters, weights ${c.weight_dtype} (quant ${c.quant}) ${gib(c.weight_bytes)} as they run, ` +
  `repacked/converted ${gib(c.converted_bytes)}, isa ${c.isa}, ${c.threads} threads`)
log(`resident memory: ${gib(rss0)} before load, ${gib(rssLoad)} after load`)
const s = m.newState()
const V = c.vocab_size
let tok = 1
m.prefill(s, [200021, 1, 2, 3, 4, 5, 6, 7].map((x) => x % V))
const ms: number[] = []
for (let i = 0; i < steps; i++) {
  const t1 = performance.now()
  const l = m.step(s, tok)
  ms.push(performance.now() - t1)
  let b = 0
  for (let k = 1; k < l.length; k++) if (l[k]! > l[b]!) b = k
  tok = b
}
const rssSteps = process.memoryUsage().rss
const bw1 = (await measureBandwidthInChild({ threads, bytes: 1024 * 2 ** 20, reps: 3, sweep: [], singleThread: false })).headline.gbps.median
const sm = summarize(ms.slice(2))
const gbps = c.weight_bytes / (sm.median / 1000) / 1e9
log(`decode ${steps} steps after an 8-token prefill: median ${sm.median.toFixed(1)} ms/token (p99 ${sm.p99.toFixed(1)}), weights ${gbps.toFixed(1)} GB/s = ` +
  `${((100 * gbps) / Math.max(bw0, bw1)).toFixed(0)}% of the measured bandwidth (${bw0.toFixed(1)} before, ${bw1.toFixed(1)} GB/s after)`)
log(`resident memory after load and ${steps} decode steps: ${gib(rssSteps)} (goal < 4 GiB: ${rssSteps < 4 * 2 ** 30 ? 'meets' : 'MISSES'}); file ${(fileBytes / 1e9).toFixed(2)} GB (goal <= 2.4 GB: ${fileBytes <= 2.4e9 ? 'meets' : 'MISSES'})`)
s.dispose()
m.dispose()

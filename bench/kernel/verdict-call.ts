// bench/kernel/verdict-call: the decoder call a model verdict makes — a prompt suffix prefilled on a clone of a
// cached prefix state, logits of the last rows — timed isolated (the first call after --gap ms idle, as verdicts
// arrive) and back to back (the call right after it) on N threads, and isolated on 1 thread as the baseline of the
// same run. An isolated call near the 1-thread time means the pool's other threads did not take part. Then an
// explanation's decode: --steps async steps one after another from JavaScript, as the explainer issues them.
//   node dist/bench/kernel/verdict-call.js [--preset verdict] [--quant none,q8_0] [--threads 2] [--gap 100]
//        [--reps 20] [--prefix 523] [--suffix 49] [--rows 2] [--steps 32] [--cache DIR]
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { QuantType } from '../../daemon/model/backend.js'
import { Model, type State } from '../../daemon/model/kernel.js'
import { posInt } from './args.js'
import { fromPreset } from './checkpoints.js'
import { cpuInfo } from './cpu-peak.js'
import { summarize } from './stats.js'

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'verdict' }, quant: { type: 'string', default: 'none,q8_0' }, threads: { type: 'string' },
    gap: { type: 'string' }, reps: { type: 'string' }, prefix: { type: 'string' }, suffix: { type: 'string' }, rows: { type: 'string' },
    steps: { type: 'string' }, cache: { type: 'string' },
  },
})
const threads = posInt(values.threads, 'threads', 2), gap = posInt(values.gap, 'gap', 100), reps = posInt(values.reps, 'reps', 20)
const prefixLen = posInt(values.prefix, 'prefix', 523), rows = posInt(values.rows, 'rows', 2), steps = posInt(values.steps, 'steps', 32)
const suffixLen = posInt(values.suffix, 'suffix', 49) + rows - 1 // the folded label path's tokens ride with the suffix
const quants = values.quant!.split(',') as QuantType[]
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const log = (s: string) => process.stdout.write(s + '\n')

const cacheDir = values.cache ?? (await mkdtemp(join(tmpdir(), 'fc-verdict-call-')))
try {
  const ckpt = await fromPreset(values.preset!, 'bf16', cacheDir, log)
  const cpu = cpuInfo()
  log(`machine: ${cpu.model}, ${cpu.arch}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
  log(`bench/kernel/verdict-call: preset ${values.preset} (bf16 checkpoint), ${prefixLen}-token cached prefix, ${suffixLen}-token suffix, logits of the last ${rows} rows; ${reps} calls per mode; isolated = one call every ${gap} ms`)
  for (const quant of quants) {
    const many = Model.load(ckpt.dir, { threads, quantize: quant })
    const one = Model.load(ckpt.dir, { threads: 1, quantize: quant })
    const V = many.config.vocab_size
    const tokens = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 7919 + seed) % V)
    const suffix = tokens(suffixLen, 3)
    const bases = [many, one].map((m) => {
      const s = m.newState()
      m.prefill(s, tokens(prefixLen, 1))
      return s
    })
    const call = async (m: Model, base: State): Promise<number> => {
      const s = base.clone()
      try {
        const t0 = performance.now()
        await m.prefillAsync(s, suffix, { lastRows: rows })
        return performance.now() - t0
      } finally {
        s.dispose()
      }
    }
    const b2b: number[] = [], iso: number[] = [], iso1: number[] = []
    await call(many, bases[0]!)
    // the modes interleaved per repetition, so that drift hits all three alike
    for (let r = 0; r < reps; r++) {
      await sleep(gap)
      iso.push(await call(many, bases[0]!))
      b2b.push(await call(many, bases[0]!))
      await sleep(gap)
      iso1.push(await call(one, bases[1]!))
    }
    const [a, b, c] = [b2b, iso, iso1].map(summarize)
    log(
      `${quant === 'none' ? 'bf16' : quant} (isa ${many.config.isa}): ${threads} threads back to back p50 ${a!.median.toFixed(2)} ms (p99 ${a!.p99.toFixed(2)}); ` +
        `isolated p50 ${b!.median.toFixed(2)} ms (p99 ${b!.p99.toFixed(2)}); 1 thread isolated p50 ${c!.median.toFixed(2)} ms; ` +
        `isolated / back to back ${(b!.median / a!.median).toFixed(2)}x, 1 thread / ${threads} threads isolated ${(c!.median / b!.median).toFixed(2)}x`,
    )
    // an explanation: decode steps one after another (each awaited, as the explainer does), after an idle gap
    const perStep: number[] = []
    for (let r = 0; r < Math.min(reps, 5); r++) {
      await sleep(gap)
      const s = bases[0]!.clone()
      try {
        let tok = 5
        const t0 = performance.now()
        for (let i = 0; i < steps; i++) {
          await many.stepAsync(s, tok)
          tok = (tok * 31 + 7) % V
        }
        perStep.push((performance.now() - t0) / steps)
      } finally {
        s.dispose()
      }
    }
    log(`  decode (${threads} threads): ${summarize(perStep).median.toFixed(3)} ms per step (${steps} steps, median of ${perStep.length})`)
    bases.forEach((s) => s.dispose())
    many.dispose()
    one.dispose()
  }
} finally {
  if (values.cache === undefined) await rm(cacheDir, { recursive: true, force: true })
}

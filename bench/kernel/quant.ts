// Quantized weights against BF16 in one run: the same checkpoint loaded as it is (the baseline) and with
// load-time quantization per type, timed alternately (round r runs every type in turn), so that all see the
// same machine load. Decode: ms/token and the weight bytes streamed per second against the memory bandwidth
// measured next to each round; prefill: tokens/s. Ratios are medians of the whole run.
import type { QuantType } from '../../daemon/model/backend.js'
import type { Model as KernelModel } from '../../daemon/model/kernel.js'
import { Prng } from '../../daemon/model/offline/prng.js'
import type { Checkpoint } from './checkpoints.js'
import { measureBandwidthInChild } from './membw.js'
import { type Summary, summarize } from './stats.js'

type KernelModule = typeof import('../../daemon/model/kernel.js')

export interface QuantFigure {
  quant: QuantType
  isa: string
  weightDtype: string
  weightBytes: number
  residentBytes: number
  loadSeconds: number
  prefill: { tokens: number; seconds: Summary; tokPerSec: number }[]
  decode: { msPerToken: Summary; weightGBps: number; pctBandwidth: number }
  /** Against the baseline's logits on the same 64-token prompt (every position) and 16 greedy steps. */
  fidelity?: { top1Agree: number; relRms: number; rows: number }
}

export interface QuantComparison {
  label: string
  figures: QuantFigure[]
  bandwidthGBps: number[]
  /** baseline ms/token / type's ms/token, and type's tok/s / baseline tok/s (first prefill size). */
  speedup: Record<string, { decode: number; prefill: number }>
}

const fmt = (x: number, d = 1) => x.toFixed(d)
function argmax(x: Float32Array): number {
  let b = 0
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i
  return b
}

export async function benchQuant(
  k: KernelModule,
  c: Checkpoint,
  o: { threads: number; quants: QuantType[]; prefill: number[]; reps: number; steps: number; bwBytes: number },
  log: (s: string) => void,
): Promise<QuantComparison> {
  const models: { quant: QuantType; model: KernelModel; loadSeconds: number }[] = []
  const rng = new Prng(11)
  try {
    for (const q of o.quants) {
      const t0 = performance.now()
      const model = await k.Model.loadAsync(c.dir, { threads: o.threads, quantize: q })
      models.push({ quant: q, model, loadSeconds: (performance.now() - t0) / 1000 })
    }
    log(`\nquantized weights, ${c.label}: ${o.quants.join(', ')} loaded from the same ${models[0]!.model.config.weight_dtype} checkpoint; ` +
      `${o.reps} alternating rounds`)
    for (const m of models) {
      const cfg = m.model.config
      log(`  ${m.quant.padEnd(5)}: weights ${cfg.weight_dtype} ${fmt(cfg.weight_bytes / 2 ** 20)} MiB as they run, isa ${cfg.isa}, load ${fmt(m.loadSeconds, 2)} s` +
        (m.quant !== 'none' ? ' (load-time quantization)' : ''))
    }
    const V = models[0]!.model.config.vocab_size
    const tok = (n: number) => {
      const t = new Int32Array(n)
      for (let i = 0; i < n; i++) t[i] = rng.nextU32() % V
      return t
    }
    const secs = (fn: () => void) => {
      const t0 = process.hrtime.bigint()
      fn()
      return Number(process.hrtime.bigint() - t0) / 1e9
    }
    const pre = models.map(() => o.prefill.map(() => [] as number[]))
    const dec = models.map(() => [] as number[])
    const ratios = models.map(() => [] as number[])
    const states = models.map((m) => {
      const s = m.model.newState()
      m.model.prefill(s, tok(32))
      for (let i = 0; i < 4; i++) m.model.step(s, rng.nextU32() % V)
      return s
    })
    const bws: number[] = []
    const stepsPerRound = Math.max(1, Math.ceil(o.steps / o.reps))
    for (let r = 0; r <= o.reps; r++) {
      const bw = (await measureBandwidthInChild({ threads: o.threads, bytes: o.bwBytes, reps: 3, sweep: [], singleThread: false })).headline.gbps.median
      if (r > 0) bws.push(bw)
      for (let i = 0; i < models.length; i++) {
        const m = models[i]!
        o.prefill.forEach((n, j) => {
          const s = m.model.newState()
          const t = tok(n)
          const x = secs(() => m.model.prefill(s, t))
          s.dispose()
          if (r > 0) pre[i]![j]!.push(x)
        })
        const round: number[] = []
        for (let j = 0; j < stepsPerRound; j++) {
          const t = rng.nextU32() % V
          round.push(secs(() => m.model.step(states[i]!, t)) * 1000)
        }
        if (r > 0) {
          dec[i]!.push(...round)
          ratios[i]!.push(m.model.config.weight_bytes / (summarize(round).median / 1000) / 1e9 / bw)
        }
      }
    }
    states.forEach((s) => s.dispose())
    // fidelity: logits of every position of one prompt, then teacher-forced steps on the baseline's greedy tokens
    const prompt = tok(64)
    const rowsOf = (m: KernelModel, forced?: number[]) => {
      const s = m.newState()
      const all = m.prefill(s, prompt, { allLogits: true })
      const rows: Float32Array[] = []
      for (let i = 0; i < prompt.length; i++) rows.push(all.subarray(i * V, (i + 1) * V))
      const greedy: number[] = []
      let last = rows[rows.length - 1]!
      for (let i = 0; i < 16; i++) {
        const next = forced ? forced[i]! : argmax(last)
        greedy.push(next)
        last = m.step(s, next)
        rows.push(last)
      }
      s.dispose()
      return { rows, greedy }
    }
    const ref = rowsOf(models[0]!.model)
    const fidelity = models.map((m, i) => {
      if (i === 0) return undefined
      const got = rowsOf(m.model, ref.greedy)
      let agree = 0
      let num = 0
      let den = 0
      got.rows.forEach((r, j) => {
        const b = ref.rows[j]!
        if (argmax(r) === argmax(b)) agree++
        for (let k = 0; k < V; k++) {
          num += (r[k]! - b[k]!) ** 2
          den += b[k]! ** 2
        }
      })
      return { top1Agree: agree / got.rows.length, relRms: Math.sqrt(num / den), rows: got.rows.length }
    })
    const figures: QuantFigure[] = models.map((m, i) => {
      const cfg = m.model.config
      const ms = summarize(dec[i]!)
      return {
        quant: m.quant, isa: cfg.isa, weightDtype: cfg.weight_dtype, weightBytes: cfg.weight_bytes, residentBytes: cfg.converted_bytes, loadSeconds: m.loadSeconds,
        prefill: o.prefill.map((n, j) => {
          const s = summarize(pre[i]![j]!)
          return { tokens: n, seconds: s, tokPerSec: n / s.median }
        }),
        decode: { msPerToken: ms, weightGBps: cfg.weight_bytes / (ms.median / 1000) / 1e9, pctBandwidth: 100 * summarize(ratios[i]!).median },
        fidelity: fidelity[i],
      }
    })
    const base = figures[0]!
    const speedup: QuantComparison['speedup'] = {}
    for (const f of figures) {
      speedup[f.quant] = { decode: base.decode.msPerToken.median / f.decode.msPerToken.median, prefill: f.prefill[0]!.tokPerSec / base.prefill[0]!.tokPerSec }
      log(`  ${f.quant.padEnd(5)} (${f.weightDtype}, isa ${f.isa}): decode median ${fmt(f.decode.msPerToken.median, 2)} ms/token (p99 ${fmt(f.decode.msPerToken.p99, 2)}), ` +
        `weights ${fmt(f.decode.weightGBps)} GB/s = ${fmt(f.decode.pctBandwidth)}% of the adjacent bandwidth; prefill ` +
        f.prefill.map((p) => `${p.tokens} tokens ${fmt(p.tokPerSec)} tok/s`).join(', ') +
        (f === base ? ' (baseline)' : `; vs ${base.quant}: decode ${fmt(speedup[f.quant]!.decode, 2)}x, prefill ${fmt(speedup[f.quant]!.prefill, 2)}x`))
    }
    for (const f of figures)
      if (f.fidelity)
        log(`  fidelity ${f.quant} vs ${base.quant} (random weights, ${f.fidelity.rows} rows: 64 prompt positions + 16 teacher-forced steps): ` +
          `top-1 agreement ${fmt(100 * f.fidelity.top1Agree)}%, rel-RMS logit error ${f.fidelity.relRms.toExponential(2)}`)
    log(`  memory bandwidth next to the rounds: ${bws.map((b) => fmt(b)).join(', ')} GB/s`)
    return { label: c.label, figures, bandwidthGBps: bws, speedup }
  } finally {
    for (const m of models) m.model.dispose()
  }
}

/** The summary line (exact format). */
export function speedupLine(q: QuantComparison): string {
  const s = (t: string, w: 'decode' | 'prefill') => (q.speedup[t] ? fmt(q.speedup[t]![w], 2) : 'n/a')
  return `quant speedup vs bf16: decode q8_0 ${s('q8_0', 'decode')}x q4_0 ${s('q4_0', 'decode')}x; prefill q8_0 ${s('q8_0', 'prefill')}x q4_0 ${s('q4_0', 'prefill')}x`
}

// Kernel benchmark: prefill and decode speed of the native SambaY kernel against limits measured in
// the same run (memory bandwidth, fp32 peak), and decode cost against context length for a SambaY
// model and its all-attention twin of equal size. With --backend native,onnx the same checkpoints also run
// through the exported ONNX graphs on onnxruntime's CPU provider, timed alternately with the native kernel.
//
//   node dist/bench/kernel/main.js [--preset large] [--ctx-preset tiny] [--ctx 1024,4096,16384,32768]
//        [--threads N] [--checkpoint DIR,...] [--ctx-checkpoints SAMBAY_DIR,ATTN_DIR] [--cache DIR] [--json FILE]
//        [--backend native,onnx] [--quant none,q8_0,q4_0]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { estimate, flops, stateBytesAt } from '../../daemon/model/offline/estimate.js'
import type { WeightDType } from '../../daemon/model/offline/init.js'
import type { Model as KernelModel } from '../../daemon/model/kernel.js'
import { Prng } from '../../daemon/model/offline/prng.js'
import { type Checkpoint, fromDir, fromPreset } from './checkpoints.js'
import { cpuInfo, estimatePeak, type PeakEstimate } from './cpu-peak.js'
import { benchQuant, speedupLine, type QuantComparison } from './quant.js'
import type { QuantType } from '../../daemon/model/backend.js'
import { type BandwidthResult, measureBandwidthInChild } from './membw.js'
import { posInt } from './args.js'
import { type Summary, summarize } from './stats.js'

const USAGE = `usage: node dist/bench/kernel/main.js [options]
  --preset NAME[,NAME]        models for prefill/decode figures (default large)
  --checkpoint DIR[,DIR]      use these checkpoints instead of presets
  --ctx-preset NAME           SambaY preset for the context sweep; its NAME-attn twin is the baseline (default tiny:
                              small-attn needs ~7 min of prefill to reach 32K on 2 cores)
  --ctx-checkpoints A,B       SambaY and all-attention checkpoints for the context sweep instead
  --ctx LIST                  context lengths (default 1024,4096,16384,32768); --ctx none skips the sweep
  --threads N                 kernel and bandwidth threads (default: all cores)
  --dtype f32|bf16            dtype of generated checkpoints (default f32)
  --prefill LIST              prefill chunk sizes in tokens (default 512,2048)
  --reps N                    timed prefills per size (default 5)
  --steps N                   timed decode steps (default 64)
  --ctx-steps N               timed decode steps per context length (default 16)
  --ctx-max-prefill S         skip a context point whose prefill is predicted to exceed S seconds (default 300)
  --bw-bytes MIB              bandwidth buffer in MiB (default 2048)
  --cache DIR                 keep generated checkpoints here and reuse them (default: a temp dir, removed)
  --json FILE                 also write every figure as JSON
  --backend LIST              native (default), or native,onnx: also the exported ONNX graphs on onnxruntime's CPU
                              provider (same checkpoints, threads and token counts, timed alternately with native)
  --quant LIST                e.g. none,q8_0,q4_0: the checkpoint as it is (first: the baseline; presets are written
                              as BF16 unless --dtype says otherwise) against load-time quantization, timed
                              alternately; replaces the per-model figures (and the context sweep unless --ctx is
                              given). Last line: quant speedup vs bf16: decode q8_0 <x>x q4_0 <y>x; prefill ...`

const log = (s: string) => process.stdout.write(s + '\n')
const fmt = (x: number, d = 1) => x.toFixed(d)
const gib = (b: number) => `${fmt(b / 2 ** 30, 2)} GiB`
const mib = (b: number) => (b >= 2 ** 30 ? gib(b) : `${fmt(b / 2 ** 20)} MiB`)

function intList(s: string, flag: string): number[] {
  const v = s.split(',').map((x) => Number(x.trim()))
  if (v.some((x) => !Number.isSafeInteger(x) || x <= 0)) throw new Error(`--${flag}: expected positive integers, got "${s}"`)
  return v
}

function randomTokens(rng: Prng, n: number, vocab: number): Int32Array {
  const t = new Int32Array(n)
  for (let i = 0; i < n; i++) t[i] = rng.nextU32() % vocab
  return t
}

function secondsOf(fn: () => void): number {
  const t0 = process.hrtime.bigint()
  fn()
  return Number(process.hrtime.bigint() - t0) / 1e9
}

interface PrefillFigure { tokens: number; seconds: Summary; tokPerSec: number; gflops: number; pctPeak: number }
interface DecodeFigure {
  position: number
  msPerToken: Summary
  weightGBps: number
  /** Bandwidth measured just before each decode round. */
  bandwidthGBps: number[]
  /** Median over rounds of (weight bytes/s in the round) / (bandwidth measured next to it). */
  pctBandwidth: number
  /** Against the best bandwidth measured in the run up to then (the stricter figure). */
  pctBestBandwidth: number
  gflops: number
}
interface ModelFigures { label: string; layout: string; params: number; weightBytes: number; weightDtype: string; loadSeconds: number; prefill: PrefillFigure[]; decode: DecodeFigure }
type CtxPoint = { context: number; prefillSeconds: number; msPerToken: Summary; stateBytes: number } | { context: number; skippedPredictedSeconds: number }
interface CtxFigures { label: string; layout: string; params: number; points: CtxPoint[] }

type KernelModule = typeof import('../../daemon/model/kernel.js')

interface OnnxFigures {
  label: string
  exportSeconds: number
  /** Native and onnx timed alternately on the same tokens, so both see the same machine load. onnx: compute
   *  time inside the worker (the ratio compares computation, as the native synchronous call does) and wall
   *  time as a caller sees it (plus the message hop). */
  prefill: { tokens: number; native: Summary; onnx: Summary; onnxWall: Summary; ratio: number }[]
  decode: { position: number; native: Summary; onnx: Summary; onnxWall: Summary; ratio: number }
}

/** The same checkpoint through the native kernel and through its exported ONNX graphs on onnxruntime's CPU
 *  provider (graphs exported once into the cache directory), interleaved: prefill reps alternate, decode
 *  alternates rounds of steps. */
async function benchOnnx(k: KernelModule, c: Checkpoint, o: Opts, tmp: string): Promise<OnnxFigures> {
  const { OnnxBackend } = await import('../../daemon/model/onnx/backend.js')
  const { exportOnnx, MANIFEST } = await import('../../daemon/model/onnx/export.js')
  const { existsSync } = await import('node:fs')
  const graphs = join(tmp, `${basename(c.dir)}-onnx`)
  const t0 = performance.now()
  let exported = false
  if (!existsSync(join(graphs, MANIFEST))) {
    await exportOnnx(c.dir, graphs)
    exported = true
  }
  let b: Awaited<ReturnType<typeof OnnxBackend.load>>
  try {
    b = await OnnxBackend.load(c.dir, { threads: o.threads, graphs })
  } catch {
    // graphs cached from an older checkpoint of the same name
    await rm(graphs, { recursive: true, force: true })
    await exportOnnx(c.dir, graphs)
    exported = true
    b = await OnnxBackend.load(c.dir, { threads: o.threads, graphs })
  }
  const exportSeconds = (performance.now() - t0) / 1000
  const model = k.Model.load(c.dir, { threads: o.threads })
  const V = b.config.vocab_size
  const rng = new Prng(3)
  log(`\nnative vs onnx ${c.label}: graphs ${exported ? 'exported and ' : ''}loaded in ${fmt(exportSeconds, 1)} s (${graphs}), ` +
    `onnxruntime ${b.providers.join(',')}, ${o.threads} intra-op threads; timed alternately`)
  try {
    const prefill: OnnxFigures['prefill'] = []
    for (const n of o.prefill) {
      const nat: number[] = []
      const onx: number[] = []
      const wall: number[] = []
      for (let r = 0; r <= o.reps; r++) {
        const toks = randomTokens(rng, n, V)
        const ns = model.newState()
        const secs = secondsOf(() => model.prefill(ns, toks))
        ns.dispose()
        const os = await b.newState()
        const t1 = performance.now()
        await b.prefill(os, toks)
        const w = (performance.now() - t1) / 1000
        if (r > 0) {
          nat.push(secs)
          onx.push(os.lastMs! / 1000)
          wall.push(w)
        }
        os.dispose()
      }
      const f = { tokens: n, native: summarize(nat), onnx: summarize(onx), onnxWall: summarize(wall), ratio: summarize(onx).median / summarize(nat).median }
      prefill.push(f)
      log(`  prefill ${n} tokens: native ${fmt(n / f.native.median)} tok/s (${fmt(f.native.median, 3)} s), onnx ${fmt(n / f.onnx.median)} tok/s ` +
        `(${fmt(f.onnx.median, 3)} s in the worker, ${fmt(f.onnxWall.median, 3)} s wall): native ${fmt(f.ratio, 2)}x faster`)
    }
    const prompt = randomTokens(rng, 32, V)
    const ns = model.newState()
    model.prefill(ns, prompt)
    const os = await b.newState()
    await b.prefill(os, prompt)
    for (let i = 0; i < 4; i++) {
      const tok = rng.nextU32() % V
      model.step(ns, tok)
      await b.prefill(os, Int32Array.of(tok))
    }
    const position = ns.position
    const nat: number[] = []
    const onx: number[] = []
    const wall: number[] = []
    const rounds = Math.min(o.steps, 8)
    for (let r = 0; r < rounds; r++) {
      const toks = Array.from({ length: Math.ceil(o.steps / rounds) }, () => rng.nextU32() % V)
      for (const tok of toks) nat.push(secondsOf(() => model.step(ns, tok)) * 1000)
      for (const tok of toks) {
        const t1 = performance.now()
        await b.prefill(os, Int32Array.of(tok))
        wall.push(performance.now() - t1)
        onx.push(os.lastMs!)
      }
    }
    ns.dispose()
    os.dispose()
    const decode = { position, native: summarize(nat), onnx: summarize(onx), onnxWall: summarize(wall), ratio: summarize(onx).median / summarize(nat).median }
    log(`  decode at position ${position}: native ${fmt(decode.native.median, 2)} ms/token (p99 ${fmt(decode.native.p99, 2)}), onnx ` +
      `${fmt(decode.onnx.median, 2)} ms/token in the worker (p99 ${fmt(decode.onnx.p99, 2)}; ${fmt(decode.onnxWall.median, 2)} ms wall), ` +
      `${rounds} alternating rounds: native ${fmt(decode.ratio, 2)}x faster`)
    return { label: c.label, exportSeconds, prefill, decode }
  } finally {
    model.dispose()
    await b.dispose()
  }
}


async function benchModel(k: KernelModule, c: Checkpoint, o: Opts, peak: PeakEstimate, bwLimit: number): Promise<ModelFigures> {
  let model!: KernelModel
  const loadSeconds = secondsOf(() => (model = k.Model.load(c.dir, { threads: o.threads })))
  const cfg = model.config
  const f = flops(c.arch)
  const rng = new Prng(1)
  log(`\nmodel ${c.label}: ${cfg.layout}, ${fmt(cfg.param_count / 1e6)}M parameters, ${cfg.weight_dtype} weights ${mib(cfg.weight_bytes)}, ` +
    `isa ${cfg.isa}, ${cfg.threads} threads, load ${fmt(loadSeconds, 2)} s`)
  try {
    const prefill: PrefillFigure[] = []
    for (const n of o.prefill) {
      const times: number[] = []
      for (let r = 0; r <= o.reps; r++) {
        const s = model.newState()
        const toks = randomTokens(rng, n, cfg.vocab_size)
        const secs = secondsOf(() => model.prefill(s, toks))
        s.dispose()
        if (r > 0) times.push(secs) // the first run warms up
      }
      const seconds = summarize(times)
      const gflops = f.prefill(0, n) / seconds.median / 1e9
      const fig = { tokens: n, seconds, tokPerSec: n / seconds.median, gflops, pctPeak: (100 * gflops) / peak.gflops }
      prefill.push(fig)
      log(`  prefill ${n} tokens: median ${fmt(seconds.median, 3)} s (p99 ${fmt(seconds.p99, 3)} s, ${seconds.n} runs) = ${fmt(fig.tokPerSec)} tok/s, ` +
        `${fmt(gflops)} GFLOP/s = ${fmt(fig.pctPeak)}% of fp32 peak`)
    }
    // Decode in rounds, each right after a bandwidth measurement: the machine's bandwidth drifts
    // by tens of percent over minutes (shared host), so each round is judged against its neighbour.
    const s = model.newState()
    model.prefill(s, randomTokens(rng, 32, cfg.vocab_size))
    for (let i = 0; i < 4; i++) model.step(s, rng.nextU32() % cfg.vocab_size)
    const position = s.position
    const ms: number[] = []
    const ratios: number[] = []
    const bwRounds: number[] = []
    const rounds = Math.min(o.steps, 4)
    for (let r = 0; r < rounds; r++) {
      const bw = (await measureBandwidthInChild({ threads: o.threads, bytes: o.bwBytes, reps: 3, sweep: [], singleThread: false })).headline.gbps.median
      const round: number[] = []
      for (let i = 0; i < Math.ceil(o.steps / rounds); i++) {
        const tok = rng.nextU32() % cfg.vocab_size
        round.push(secondsOf(() => model.step(s, tok)) * 1000)
      }
      ms.push(...round)
      bwRounds.push(bw)
      ratios.push(cfg.weight_bytes / (summarize(round).median / 1000) / 1e9 / bw)
    }
    s.dispose()
    const msPerToken = summarize(ms)
    const weightGBps = cfg.weight_bytes / (msPerToken.median / 1000) / 1e9
    const decode = {
      position, msPerToken, weightGBps, bandwidthGBps: bwRounds, pctBandwidth: 100 * summarize(ratios).median,
      pctBestBandwidth: (100 * weightGBps) / Math.max(bwLimit, ...bwRounds),
      gflops: f.step(position + o.steps / 2) / (msPerToken.median / 1000) / 1e9,
    }
    log(`  decode at position ${position}: median ${fmt(msPerToken.median, 2)} ms/token (p99 ${fmt(msPerToken.p99, 2)} ms, ${msPerToken.n} steps), ` +
      `weights ${fmt(weightGBps)} GB/s, ${fmt(decode.gflops)} GFLOP/s`)
    log(`    = ${fmt(decode.pctBandwidth)}% of the bandwidth measured next to each of ${rounds} rounds (${bwRounds.map((b) => fmt(b)).join(', ')} GB/s), ` +
      `${fmt(decode.pctBestBandwidth)}% of the best bandwidth seen so far`)
    return { label: c.label, layout: cfg.layout, params: cfg.param_count, weightBytes: cfg.weight_bytes, weightDtype: cfg.weight_dtype, loadSeconds, prefill, decode }
  } finally {
    model.dispose()
  }
}

/** Prefills one sequence up to each context length in turn; at each, times decode steps on a clone.
 *  A point whose prefill would take longer than `ctxMaxPrefill` seconds (predicted from the FLOP
 *  count at the rate of the previous segment) is skipped, with the prediction recorded. */
async function contextSweep(k: KernelModule, c: Checkpoint, o: Opts): Promise<CtxFigures> {
  const model = k.Model.load(c.dir, { threads: o.threads })
  const cfg = model.config
  const e = estimate(c.arch)
  const f = flops(c.arch)
  const rng = new Prng(2)
  const points: CtxPoint[] = []
  log(`  ${c.label} (${cfg.layout}, ${fmt(cfg.param_count / 1e6)}M parameters):`)
  try {
    const s = model.newState()
    let flopRate = Infinity
    for (const ctx of o.ctx) {
      const p0 = s.position
      const predicted = f.prefill(p0, ctx - p0) / flopRate
      if (predicted > o.ctxMaxPrefill) {
        points.push({ context: ctx, skippedPredictedSeconds: predicted })
        log(`    context ${String(ctx).padStart(6)}: skipped, its prefill would take ~${fmt(predicted, 0)} s (> --ctx-max-prefill ${o.ctxMaxPrefill})`)
        continue
      }
      const prefillSeconds = secondsOf(() => model.prefill(s, randomTokens(rng, ctx - p0, cfg.vocab_size)))
      flopRate = f.prefill(p0, ctx - p0) / prefillSeconds
      const probe = s.clone()
      for (let i = 0; i < 2; i++) model.step(probe, rng.nextU32() % cfg.vocab_size)
      const ms: number[] = []
      for (let i = 0; i < o.ctxSteps; i++) {
        const tok = rng.nextU32() % cfg.vocab_size
        ms.push(secondsOf(() => model.step(probe, tok)) * 1000)
      }
      probe.dispose()
      const p = { context: ctx, prefillSeconds, msPerToken: summarize(ms), stateBytes: stateBytesAt(e, ctx) }
      points.push(p)
      log(`    context ${String(ctx).padStart(6)}: decode median ${fmt(p.msPerToken.median, 2)} ms/token (p99 ${fmt(p.msPerToken.p99, 2)}), ` +
        `state ${mib(p.stateBytes)}, prefill ${p0}->${ctx} ${fmt(prefillSeconds, 1)} s`)
    }
    s.dispose()
  } finally {
    model.dispose()
  }
  return { label: c.label, layout: cfg.layout, params: cfg.param_count, points }
}

interface Opts {
  presets: string[]
  checkpoints: string[]
  ctxPreset: string
  ctxCheckpoints: string[]
  ctx: number[]
  threads: number
  dtype: WeightDType
  prefill: number[]
  reps: number
  steps: number
  ctxSteps: number
  ctxMaxPrefill: number
  bwBytes: number
  cache?: string
  json?: string
  onnx: boolean
  quants: QuantType[]
}

function parse(argv: string[]): Opts {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      preset: { type: 'string' }, checkpoint: { type: 'string' }, 'ctx-preset': { type: 'string' },
      'ctx-checkpoints': { type: 'string' }, ctx: { type: 'string' }, threads: { type: 'string' }, dtype: { type: 'string' },
      prefill: { type: 'string' }, reps: { type: 'string' }, steps: { type: 'string' }, 'ctx-steps': { type: 'string' },
      'ctx-max-prefill': { type: 'string' }, 'bw-bytes': { type: 'string' }, cache: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean' },
      backend: { type: 'string' }, quant: { type: 'string' },
    },
  })
  if (v.help) {
    log(USAGE)
    process.exit(0)
  }
  if (v.dtype !== undefined && v.dtype !== 'f32' && v.dtype !== 'bf16') throw new Error(`--dtype must be f32 or bf16, got "${v.dtype}"`)
  const ctxCheckpoints = v['ctx-checkpoints']?.split(',') ?? []
  if (ctxCheckpoints.length !== 0 && ctxCheckpoints.length !== 2) throw new Error('--ctx-checkpoints takes two directories: SAMBAY,ATTN')
  const backends = (v.backend ?? 'native').split(',').map((x) => x.trim())
  if (!backends.includes('native') || backends.some((x) => x !== 'native' && x !== 'onnx')) throw new Error(`--backend takes native or native,onnx, got "${v.backend}"`)
  const quants = (v.quant ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '')
  for (const q of quants) if (q !== 'none' && q !== 'q8_0' && q !== 'q4_0') throw new Error(`--quant takes none, q8_0, q4_0, got "${q}"`)
  return {
    quants: quants as QuantType[],
    presets: v.checkpoint ? [] : (v.preset ?? 'large').split(','),
    checkpoints: v.checkpoint?.split(',') ?? [],
    ctxPreset: v['ctx-preset'] ?? 'tiny',
    ctxCheckpoints,
    ctx: v.ctx === 'none' || (quants.length && v.ctx === undefined) ? [] : intList(v.ctx ?? '1024,4096,16384,32768', 'ctx').sort((a, b) => a - b),
    threads: posInt(v.threads, 'threads', availableParallelism()),
    dtype: (v.dtype ?? (quants.length ? 'bf16' : 'f32')) as WeightDType,
    prefill: intList(v.prefill ?? '512,2048', 'prefill'),
    reps: posInt(v.reps, 'reps', 5),
    steps: posInt(v.steps, 'steps', 64),
    ctxSteps: posInt(v['ctx-steps'], 'ctx-steps', 16),
    ctxMaxPrefill: posInt(v['ctx-max-prefill'], 'ctx-max-prefill', 300),
    bwBytes: posInt(v['bw-bytes'], 'bw-bytes', 2048) * 2 ** 20,
    cache: v.cache,
    json: v.json,
    onnx: backends.includes('onnx'),
  }
}

async function main(): Promise<number> {
  let o: Opts
  try {
    o = parse(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`bench/kernel: ${(e as Error).message}\n${USAGE}\n`)
    return 2
  }
  const k: KernelModule = await import('../../daemon/model/kernel.js')
  const cpu = cpuInfo()
  const started = new Date().toISOString()
  log(`flashcheck kernel benchmark, ${started}`)
  log(`machine: ${cpu.model} (${cpu.arch}), ${availableParallelism()} cores; kernel isa ${k.kernelIsa()}, ${o.threads} threads; node ${process.version}`)
  // Other work on the machine distorts every figure (a kernel thread that loses its core stalls the
  // others at the next barrier): the load average is printed at both ends so a reader can judge.
  const loadStart = loadavg()
  log(`load average at start: ${loadStart.map((x) => fmt(x, 2)).join(' ')}`)

  const bwOpts = { threads: o.threads, bytes: o.bwBytes, reps: 5, singleThread: true, sweep: [1, 8, 32, 128, 512].map((m) => m * 2 ** 20).filter((b) => b < o.bwBytes) }
  const bwBefore = await measureBandwidthInChild(bwOpts)
  const peak = estimatePeak(o.threads)
  const showBw = (r: BandwidthResult, when: string) =>
    log(`memory bandwidth ${when} (${r.headline.threads} threads streaming ${mib(r.headline.bytes)}, ${r.headline.gbps.n} passes): ` +
      `median ${fmt(r.headline.gbps.median)} GB/s, best ${fmt(r.headline.gbps.max)} GB/s; 1 thread ${fmt(r.singleThread!.gbps.median)} GB/s`)
  showBw(bwBefore, 'before')
  log(`  working-set sweep (${o.threads} threads, median GB/s): ${bwBefore.sweep.map((p) => `${mib(p.bytes)} ${fmt(p.gbps.median)}`).join(' | ')}`)
  log(`fp32 peak estimate: ${fmt(peak.clockGHz, 2)} GHz (measured) x ${peak.flopsPerCycle} FLOP/cycle (${peak.basis}) x ${peak.cores} cores = ${fmt(peak.gflops)} GFLOP/s`)

  const tmp = o.cache ?? (await mkdtemp(join(tmpdir(), 'flashcheck-bench-')))
  if (o.cache) await mkdir(o.cache, { recursive: true })
  try {
    log(`checkpoints: ${o.checkpoints.length ? o.checkpoints.join(', ') : `presets written to ${tmp}`}`)
    const mains = o.checkpoints.length
      ? await Promise.all(o.checkpoints.map(fromDir))
      : await sequential(o.presets, (p) => fromPreset(p, o.dtype, tmp, log))
    let pair: Checkpoint[] = []
    if (o.ctx.length) {
      pair = o.ctxCheckpoints.length
        ? await Promise.all(o.ctxCheckpoints.map(fromDir))
        : await sequential([o.ctxPreset, `${o.ctxPreset}-attn`], (p) => fromPreset(p, o.dtype, tmp, log))
    }

    // The bandwidth limit the decode goal is judged against: the best headline pass of the run.
    let bwLimit = bwBefore.headline.gbps.max
    const models: ModelFigures[] = []
    const onnx: OnnxFigures[] = []
    const quant: QuantComparison[] = []
    for (const c of mains) {
      if (o.quants.length) quant.push(await benchQuant(k, c, { ...o, quants: o.quants }, log))
      else models.push(await benchModel(k, c, o, peak, bwLimit))
      if (o.onnx) onnx.push(await benchOnnx(k, c, o, tmp))
    }

    const sweeps: CtxFigures[] = []
    if (pair.length) {
      log(`\ndecode cost against context: ${pair[0]!.label} vs ${pair[1]!.label}, ${o.ctxSteps} timed steps per point on a clone of the state`)
      for (const c of pair) sweeps.push(await contextSweep(k, c, o))
      log('  context | SambaY ms/token (p99) | all-attention ms/token (p99) | all-attn / SambaY | state SambaY | state all-attn')
      const cell = (p: CtxPoint) =>
        'msPerToken' in p ? `${fmt(p.msPerToken.median, 2).padStart(8)} (${fmt(p.msPerToken.p99, 2)})` : `skipped (~${fmt(p.skippedPredictedSeconds, 0)} s prefill)`
      sweeps[0]!.points.forEach((a, i) => {
        const b = sweeps[1]!.points[i]!
        const ratio = 'msPerToken' in a && 'msPerToken' in b ? `${fmt(b.msPerToken.median / a.msPerToken.median, 2)}x` : '-'
        const state = (x: Checkpoint) => mib(stateBytesAt(estimate(x.arch), a.context))
        log(`  ${String(a.context).padStart(7)} | ${cell(a)} | ${cell(b)} | ${ratio.padStart(6)} | ${state(pair[0]!)} | ${state(pair[1]!)}`)
      })
    }

    const bwAfter = await measureBandwidthInChild(bwOpts)
    showBw(bwAfter, 'after')
    const loadEnd = loadavg()
    log(`load average at end: ${loadEnd.map((x) => fmt(x, 2)).join(' ')}`)
    bwLimit = Math.max(bwLimit, bwAfter.headline.gbps.max, ...models.flatMap((m) => m.decode.bandwidthGBps))
    log('\nsummary against the goals:')
    for (const m of models) {
      const best = (100 * m.decode.weightGBps) / bwLimit
      const prefillBest = Math.max(...m.prefill.map((p) => p.pctPeak))
      log(`  ${m.label}: decode ${fmt(m.decode.pctBandwidth)}% of the adjacent bandwidth measurements (${fmt(best)}% of the run's best, ${fmt(bwLimit)} GB/s): ` +
        `${m.decode.pctBandwidth >= 70 ? 'meets' : 'MISSES'} the 70% goal; prefill ${m.prefill.map((p) => `${p.tokens} tokens ${fmt(p.pctPeak)}%`).join(', ')} ` +
        `of fp32 peak: ${prefillBest >= 50 ? 'meets' : 'MISSES'} the 50% goal`)
    }
    if (onnx.length) {
      log('\nnative vs onnxruntime (CPU provider), timed alternately; goal: native >= 2x faster decode, >= 1.5x faster prefill:')
      for (const x of onnx) {
        const pre = x.prefill.map((p) => `prefill ${p.tokens} ${fmt(p.ratio, 2)}x (${p.ratio >= 1.5 ? 'meets' : 'MISSES'})`)
        log(`  ${x.label}: ${pre.join(', ')}; decode ${fmt(x.decode.ratio, 2)}x (${x.decode.ratio >= 2 ? 'meets' : 'MISSES'})`)
      }
    }
    if (o.json) {
      await mkdir(dirname(o.json), { recursive: true })
      await writeFile(o.json, JSON.stringify({ started, cpu: { ...cpu, flags: undefined }, options: o, loadAverage: { start: loadStart, end: loadEnd }, bandwidth: { before: bwBefore, after: bwAfter, limitGBps: bwLimit }, peak, models, onnx, quant, contextSweep: sweeps }, null, 2) + '\n')
      log(`figures written to ${o.json}`)
    }
    if (quant.length) {
      log(`\nquantized weights (isa: ${quant[0]!.figures.map((f) => `${f.quant} ${f.isa}`).join(', ')}; baseline ${quant[0]!.figures[0]!.quant} = ` +
        `${quant[0]!.figures[0]!.weightDtype}); goals: decode q8_0 >= 1.8x, q4_0 >= 3x; prefill q8_0 >= 2x (AVX2), >= 3x (VNNI)`)
      for (const q of quant.slice(0, -1)) log(`${q.label}: ${speedupLine(q)}`)
      log(speedupLine(quant[quant.length - 1]!))
    }
    return 0
  } finally {
    if (!o.cache) await rm(tmp, { recursive: true, force: true })
  }
}

async function sequential<T, R>(xs: readonly T[], fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (const x of xs) out.push(await fn(x))
  return out
}

main().then(
  (code) => { process.exitCode = code },
  (e: unknown) => {
    process.stderr.write(`bench/kernel: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
    process.exitCode = 1
  },
)

// `flashcheck model check DIR [--threads N] [--backend native|onnx] [--quant q8_0|q4_0]`: runs one golden case
// directory (layout of ../shared/golden/*: config.json + model.safetensors, inputs.json, expected.json,
// logits_full.f32, logits_decode.f32) through the native kernel, or through graphs exported for onnxruntime (CPU
// provider). Compares the full forward (all positions), prefill (last position) and prefill-then-step logits with
// the references and the greedy tokens with expected.json. Last stdout line: max_rel_err=<x>.
// Exit 0 only when max_rel_err <= 1e-4 (and <= the case's own tolerance) and the greedy tokens are identical.
// With --quant the native kernel loads the float checkpoint with load-time quantization (the daemon's kernels)
// and the last line is `max_rel_err=<x> top1_agree=<y>` (y: fraction of compared rows whose argmax matches the
// reference's); exit 0 iff the greedy tokens match and max_rel_err <= QUANT_TOLERANCE[type], a tolerance for
// weights already on the type's grid (quantizing them is exact; only the int8 activations differ).
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BackendKind, DecoderBackend } from '../model/backend.js'
import { loadBackend } from '../model/load-backend.js'

const LIMIT = 1e-4

/** max_rel_err allowed by `model check --quant` on grid weights: the error of the two-plane int8 activation blocks
 *  (~16-bit; worst 1.6e-3 over the golden cases' grids, chaotic tiny random models)
 *  (native/README.md, "Quantized weights"). */
export const QUANT_TOLERANCE = { q8_0: 1e-2, q4_0: 1e-2 } as const
export type CheckQuant = keyof typeof QUANT_TOLERANCE

interface Inputs {
  tokens: number[]
  decode_steps: number
}
interface Expected {
  greedy_tokens: number[]
  tolerances?: { max_rel_err?: number }
  files?: Record<string, { shape?: number[] }>
}

/** max over rows of max_i |got - ref| / max_i |ref|. */
export function maxRelErr(got: Float32Array, ref: Float32Array, rows: number, V: number): number {
  let worst = 0
  for (let r = 0; r < rows; r++) {
    let md = 0
    let mr = 0
    for (let i = 0; i < V; i++) {
      const d = Math.abs(got[r * V + i] - ref[r * V + i])
      if (d > md || Number.isNaN(d)) md = Number.isNaN(d) ? Infinity : d
      const a = Math.abs(ref[r * V + i])
      if (a > mr) mr = a
    }
    const e = mr > 0 ? md / mr : md
    if (e > worst) worst = e
  }
  return worst
}

export function argmax(x: Float32Array, offset = 0, n = x.length - offset): number {
  let best = 0
  for (let i = 1; i < n; i++) if (x[offset + i] > x[offset + best]) best = i
  return best
}

function readF32(path: string, expectLen: number): Float32Array {
  const b = readFileSync(path)
  if (b.length !== expectLen * 4) throw new Error(`${path}: ${b.length} bytes, expected ${expectLen * 4}`)
  const out = new Float32Array(expectLen)
  for (let i = 0; i < expectLen; i++) out[i] = b.readFloatLE(i * 4)
  return out
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(3) : String(x)
}

export interface CaseResult {
  /** Per-part details, one line each. */
  lines: string[]
  full: number
  prefill: number
  decode: number
  maxRelErr: number
  greedy: number[]
  greedyIdentical: boolean
  /** Fraction of compared rows (every full-forward position, every decode step) whose argmax is the reference's. */
  top1Agree: number
  limit: number
  ok: boolean
}

function top1(got: Float32Array, ref: Float32Array, rows: number, V: number): number {
  let n = 0
  for (let r = 0; r < rows; r++) if (argmax(got, r * V, V) === argmax(ref, r * V, V)) n++
  return n
}

/** Runs one golden case directory through a decoder backend (native: the addon's own threads; onnx: graphs
 *  exported into a temporary directory, onnxruntime's CPU provider in a worker thread). */
export async function checkCase(dir: string, opts: { threads?: number; backend?: BackendKind; quant?: CheckQuant } = {}): Promise<CaseResult> {
  for (const f of ['inputs.json', 'expected.json', 'logits_full.f32', 'logits_decode.f32']) {
    if (!existsSync(join(dir, f))) throw new Error(`${join(dir, f)} is missing (not a golden case directory?)`)
  }
  const inputs = JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8')) as Inputs
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected
  let model: DecoderBackend
  if (opts.quant) {
    if ((opts.backend ?? 'native') !== 'native') throw new Error('--quant runs the native kernel only')
    const { NativeBackend } = await import('../model/native-backend.js')
    model = await NativeBackend.load(dir, opts.threads ?? 0, 0, opts.quant)
  } else model = await loadBackend(opts.backend ?? 'native', dir, { threads: opts.threads ?? 0, onnx: { providers: ['cpu'] } })
  try {
    const lines: string[] = []
    const c = model.config
    const V = c.vocab_size
    const T = inputs.tokens.length
    const steps = inputs.decode_steps
    const limit = opts.quant ? QUANT_TOLERANCE[opts.quant] : Math.min(LIMIT, expected.tolerances?.max_rel_err ?? LIMIT)
    const fullRef = readF32(join(dir, 'logits_full.f32'), T * V)
    const decRef = readF32(join(dir, 'logits_decode.f32'), steps * V)
    lines.push(
      `case ${dir}: ${c.layout}, L=${c.num_hidden_layers} H=${c.hidden_size} heads=${c.num_attention_heads}/${c.num_key_value_heads}` +
        ` W=${c.sliding_window} V=${V} weights=${c.weight_dtype} isa=${c.isa} threads=${c.threads}` +
        (opts.quant ? ` quant=${c.quant} (load-time)` : ''),
    )

    // 1. full forward, every position
    const s0 = await model.newState()
    const full = await model.prefill(s0, Int32Array.from(inputs.tokens), { allLogits: true })
    s0.dispose()
    const eFull = maxRelErr(full, fullRef, T, V)
    lines.push(`full forward (${T} positions): max_rel_err=${fmt(eFull)}`)

    // 2. prefill (last position only), then one step per greedy token
    const state = await model.newState()
    const last = await model.prefill(state, Int32Array.from(inputs.tokens))
    const ePrefill = maxRelErr(last, fullRef.subarray((T - 1) * V), 1, V)
    lines.push(`prefill (last position): max_rel_err=${fmt(ePrefill)}`)
    const greedy = [argmax(last)]
    const dec = new Float32Array(steps * V)
    for (let i = 0; i < steps; i++) {
      const tok = expected.greedy_tokens[i] ?? greedy[i]
      const row = await model.prefill(state, Int32Array.of(tok))
      dec.set(row, i * V)
      greedy.push(argmax(row))
    }
    const eDecode = maxRelErr(dec, decRef, steps, V)
    lines.push(`prefill-then-step (${steps} steps): max_rel_err=${fmt(eDecode)}`)
    const fullGreedy = argmax(full, (T - 1) * V, V)
    const want = expected.greedy_tokens
    const same = fullGreedy === want[0] && greedy.length === want.length && greedy.every((t, i) => t === want[i])
    lines.push(`greedy tokens: ${same ? 'identical' : 'DIFFERENT'} (${greedy.join(' ')})`)
    if (!same) lines.push(`expected tokens:            (${want.join(' ')})`)
    const worst = Math.max(eFull, ePrefill, eDecode)
    const ok = worst <= limit && same
    state.dispose()
    const top1Agree = (top1(full, fullRef, T, V) + top1(dec, decRef, steps, V)) / (T + steps)
    lines.push(`${ok ? 'PASS' : 'FAIL'} (limit ${fmt(limit)}${opts.quant ? `, ${opts.quant} on grid weights` : ''})`)
    return { lines, full: eFull, prefill: ePrefill, decode: eDecode, maxRelErr: worst, greedy, greedyIdentical: same, top1Agree, limit, ok }
  } finally {
    await model.dispose()
  }
}

const USAGE = 'usage: flashcheck model check DIR [--threads N] [--backend native|onnx] [--quant q8_0|q4_0]\n'

export async function modelCheck(argv: string[]): Promise<number> {
  let dir: string | undefined
  let threads = 0
  let backend: BackendKind = 'native'
  let quant: CheckQuant | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--quant') {
      const q = argv[++i]
      if (q !== 'q8_0' && q !== 'q4_0') {
        process.stderr.write('model check: --quant needs q8_0 or q4_0\n')
        return 2
      }
      quant = q
    } else if (a === '--backend') {
      const b = argv[++i]
      if (b !== 'native' && b !== 'onnx') {
        process.stderr.write('model check: --backend needs native or onnx\n')
        return 2
      }
      backend = b
    } else if (a === '--threads') {
      threads = Number(argv[++i])
      if (!Number.isInteger(threads) || threads < 1) {
        process.stderr.write('model check: --threads needs a positive integer\n')
        return 2
      }
    } else if (a.startsWith('--')) {
      process.stderr.write(`model check: unknown option ${a}\n${USAGE}`)
      return 2
    } else if (dir === undefined) dir = a
    else {
      process.stderr.write(USAGE)
      return 2
    }
  }
  if (!dir) {
    process.stderr.write(USAGE)
    return 2
  }
  let res: CaseResult
  try {
    if (quant && backend !== 'native') {
      process.stderr.write('model check: --quant runs the native kernel only (--backend native)\n')
      return 2
    }
    res = await checkCase(dir, { threads, backend, quant })
  } catch (err) {
    process.stderr.write(`model check: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
  for (const l of res.lines) process.stdout.write(l + '\n')
  process.stdout.write(quant ? `max_rel_err=${fmt(res.maxRelErr)} top1_agree=${res.top1Agree.toFixed(4)}\n` : `max_rel_err=${fmt(res.maxRelErr)}\n`)
  return res.ok ? 0 : 1
}

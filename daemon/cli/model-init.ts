// `flashcheck model init` and `flashcheck model presets`: random-weight checkpoints in the real
// format for tests and benchmarks, and parameter / memory estimates for any config.
import { existsSync, statSync } from 'node:fs'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { type Arch, archFromConfig, ConfigError } from '../model/arch.js'
import { estimate, stateBytesAt } from '../model/offline/estimate.js'
import { DEFAULT_SHARD_BYTES, initCheckpoint, type WeightDType } from '../model/offline/init.js'
import { findPreset, PRESETS } from '../model/offline/presets.js'
import { WEIGHT_FILE } from '../model/offline/publish-dir.js'
import { parseQuantType, type QuantType } from '../model/offline/quant-format.js'
import { TOKENIZER_STYLES, type TokenizerStyle, writeTokenizer } from '../model/offline/tokenizer-init.js'

const INIT_USAGE =
  'usage: flashcheck model init --config <preset|config.json|checkpoint dir> --out DIR [--seed N] [--dtype f32|bf16] ' +
  '[--shard-size SIZE] [--quant q8_0|q4_0] [--tokenizer [small|real]] [--force] | --config X --dry-run [--json]\n' +
  '  --quant writes the weights straight into that quantized format (as `flashcheck model quantize` would)\n' +
  '  --tokenizer also writes a small byte-level BPE tokenizer.json and a tokenizer_config.json with a chat template;\n' +
  '  --tokenizer real gives them the real checkpoint\'s structure (o200k split, rstrip chat and tool tokens at their\n' +
  '  real ids when the vocabulary has them, the real chat template) plus generation_config.json with its stop ids'

export class UsageError extends Error {}

interface FlagSpec {
  [flag: string]: 'value' | 'bool' | 'optional'
}

/** Parses `--flag value`, `--flag=value` and boolean `--flag`; an 'optional' flag takes a value when the
 *  next argument is not a flag. Anything else is a usage error. */
export function parseFlags(argv: readonly string[], spec: FlagSpec): Map<string, string | true> {
  const out = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    if (!m || !(m[1]! in spec)) throw new UsageError(`unknown argument "${arg}"`)
    const name = m[1]!
    if (out.has(name)) throw new UsageError(`--${name} given twice`)
    if (spec[name] === 'optional') {
      const v = m[2] ?? (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--') ? argv[++i] : undefined)
      if (v === '') throw new UsageError(`--${name}= needs a value`)
      out.set(name, v ?? true)
    } else if (spec[name] === 'bool') {
      if (m[2] !== undefined) throw new UsageError(`--${name} takes no value`)
      out.set(name, true)
    } else {
      const v = m[2] ?? argv[++i]
      if (v === undefined || v === '' || (m[2] === undefined && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`)
      out.set(name, v)
    }
  }
  return out
}

/** Sizes as Hugging Face's max_shard_size takes them: decimal units (GB = 1e9), binary with "i". */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?$/i.exec(s.trim())
  if (!m) throw new UsageError(`--shard-size: cannot read "${s}" (examples: 2GB, 500MB, 1GiB, 1048576)`)
  const unit = (m[2] ?? 'B').toUpperCase()
  const pow = 'BKMGT'.indexOf(unit[0]!)
  const bytes = Math.floor(Number(m[1]) * (unit.includes('I') ? 1024 : 1000) ** pow)
  if (!(bytes > 0)) throw new UsageError(`--shard-size must be positive, got "${s}"`)
  return bytes
}

export interface LoadedConfig {
  config: Record<string, unknown>
  where: string
  arch: Arch
}

/** A preset name, a config.json path, or a checkpoint directory holding one. */
export async function loadConfigArg(arg: string): Promise<LoadedConfig> {
  const preset = findPreset(arg)
  if (preset) return { config: preset.config, where: `preset ${arg}`, arch: archFromConfig(preset.config, `preset ${arg}`) }
  let path = arg
  if (existsSync(arg) && statSync(arg).isDirectory()) path = join(arg, 'config.json')
  if (!existsSync(path)) {
    throw new UsageError(`--config: "${arg}" is neither a preset (${PRESETS.map((p) => p.name).join(', ')}) nor a file`)
  }
  let config: unknown
  try {
    config = JSON.parse(await readFile(path, 'utf8'))
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`)
  }
  const arch = archFromConfig(config, path)
  return { config: config as Record<string, unknown>, where: path, arch }
}

const MiB = 1024 * 1024
const GiB = 1024 * MiB

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`
  return `${(n / 1024).toFixed(1)} KiB`
}

export function fmtCount(n: number): string {
  return n.toLocaleString('en-US')
}

/** The human-readable estimate printed by --dry-run. */
export function describe(name: string, a: Arch): string {
  const e = estimate(a)
  const k = e.layerKinds
  const plan =
    a.layout === 'all-attention'
      ? `all-attention layout (flashcheck baseline), ${a.layers} full-attention layers`
      : `SambaY layout, ${a.layers} layers: ${k.mamba + k.mamba_mem} Mamba (one emits the GMU memory), ${k.swa} sliding-window attention, ` +
        `${k.full} full attention, ${k.gmu} GMU, ${k.cross} cross-attention`
  const at = (t: number) => fmtBytes(stateBytesAt(e, t))
  return [
    `${name}: ${plan}`,
    `  hidden ${a.hidden}, heads ${a.heads} / kv ${a.kvHeads} (head dim ${a.headDim}), intermediate ${a.intermediate}, ` +
      `vocab ${a.vocab}, window ${a.window}, d_inner ${a.dInner}, d_state ${a.dState}, ${a.tied ? 'tied' : 'untied'} embeddings`,
    `parameters: ${fmtCount(e.params)} (${(e.params / 1e9).toFixed(3)} B)`,
    `weights: f32 ${fmtBytes(e.bytesF32)}, bf16 ${fmtBytes(e.bytesBf16)} (A_log and lambda vectors stay f32)`,
    `decode state per sequence (fp32): ${fmtBytes(e.stateConstBytes)} constant + ${fmtBytes(e.stateBytesPerToken)} per token of context; ` +
      `4K context ${at(4096)}, 32K context ${at(32768)}`,
  ].join('\n')
}

function defaultDType(config: Record<string, unknown>): WeightDType {
  return config.torch_dtype === 'bfloat16' ? 'bf16' : 'f32'
}


export async function modelInit(argv: string[]): Promise<number> {
  let flags: Map<string, string | true>
  let loaded: LoadedConfig
  let seed = 0
  let dtype: WeightDType
  let shardBytes = DEFAULT_SHARD_BYTES
  let quant: QuantType | undefined
  try {
    flags = parseFlags(argv, { quant: 'value', config: 'value', out: 'value', seed: 'value', dtype: 'value', 'shard-size': 'value', 'dry-run': 'bool', json: 'bool', force: 'bool', tokenizer: 'optional', help: 'bool' })
    if (flags.has('help')) {
      process.stdout.write(INIT_USAGE + '\n')
      return 0
    }
    const cfgArg = flags.get('config')
    if (typeof cfgArg !== 'string') throw new UsageError('--config is required')
    if (!flags.has('dry-run') && typeof flags.get('out') !== 'string') throw new UsageError('--out is required (or --dry-run)')
    if (flags.has('json') && !flags.has('dry-run')) throw new UsageError('--json goes with --dry-run')
    const seedArg = flags.get('seed')
    if (typeof seedArg === 'string') {
      if (!/^\d+$/.test(seedArg) || !Number.isSafeInteger(Number(seedArg))) throw new UsageError(`--seed must be a non-negative integer, got "${seedArg}"`)
      seed = Number(seedArg)
    }
    const dt = flags.get('dtype')
    if (dt !== undefined && dt !== 'f32' && dt !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got "${String(dt)}"`)
    const ss = flags.get('shard-size')
    if (typeof ss === 'string') shardBytes = parseSize(ss)
    const tk = flags.get('tokenizer')
    if (typeof tk === 'string' && !(TOKENIZER_STYLES as readonly string[]).includes(tk)) throw new UsageError(`--tokenizer takes ${TOKENIZER_STYLES.join(' or ')}, got "${tk}"`)
    const q = flags.get('quant')
    if (typeof q === 'string') {
      try {
        quant = parseQuantType(q, '--quant')
      } catch (e) {
        throw new UsageError((e as Error).message)
      }
    }
    loaded = await loadConfigArg(cfgArg)
    dtype = (dt as WeightDType | undefined) ?? defaultDType(loaded.config)
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      process.stderr.write(`flashcheck model init: ${e.message}${e instanceof UsageError ? ' (see --help)' : ''}\n`)
      return 2
    }
    throw e
  }

  const name = findPreset(String(flags.get('config'))) ? String(flags.get('config')) : loaded.where
  if (flags.has('dry-run')) {
    if (flags.has('json')) {
      const e = estimate(loaded.arch)
      const json = { name, arch: loaded.arch, ...e, stateBytes4K: stateBytesAt(e, 4096), stateBytes32K: stateBytesAt(e, 32768) }
      process.stdout.write(JSON.stringify(json, null, 2) + '\n')
    } else {
      process.stdout.write(describe(name, loaded.arch) + '\n')
    }
    return 0
  }

  const out = String(flags.get('out'))
  try {
    if (existsSync(out)) {
      if (!statSync(out).isDirectory()) throw new UsageError(`--out: ${out} exists and is not a directory`)
      const old = (await readdir(out)).filter((f) => f === 'config.json' || WEIGHT_FILE.test(f))
      if (old.length > 0 && !flags.has('force')) throw new UsageError(`--out: ${out} already holds a checkpoint (${old.join(', ')}); pass --force to replace it`)
      // Stale shards of an earlier, differently sharded checkpoint would confuse loaders.
      await Promise.all(old.map((f) => rm(join(out, f))))
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`flashcheck model init: ${e.message}\n`)
      return 2
    }
    throw e
  }
  try {
    const r = await initCheckpoint({ config: loaded.config, where: loaded.where, outDir: out, seed, dtype, maxShardBytes: shardBytes, quant })
    process.stdout.write(
      `wrote ${out}: ${r.files.length === 1 ? r.files[0] : `${r.files.length} shards + model.safetensors.index.json`}, ` +
        `${r.tensors} tensors, ${fmtCount(r.params)} parameters, ${dtype}${quant ? ` quantized ${quant}` : ''}, seed ${seed}, ${fmtBytes(r.fileBytes)}\n`,
    )
    if (flags.has('tokenizer')) {
      const tk = flags.get('tokenizer')
      const style: TokenizerStyle = tk === true ? 'small' : (tk as TokenizerStyle)
      const t = await writeTokenizer(out, loaded.arch.vocab, undefined, style)
      process.stdout.write(
        style === 'real'
          ? `wrote ${out}: tokenizer.json (o200k-style split + byte-level BPE, rstrip chat tokens, ${t.size} ids), tokenizer_config.json (the real chat template), generation_config.json (stop ids ${JSON.stringify(t.generation!.eos_token_id)})\n`
          : `wrote ${out}: tokenizer.json (byte-level BPE, ${t.size} tokens), tokenizer_config.json (chat template)\n`,
      )
    }
    return 0
  } catch (e) {
    process.stderr.write(`flashcheck model init: writing ${out} failed: ${(e as Error).message}\n`)
    return 1
  }
}

export async function modelPresets(argv: string[]): Promise<number> {
  let flags: Map<string, string | true>
  try {
    flags = parseFlags(argv, { json: 'bool', help: 'bool' })
  } catch (e) {
    process.stderr.write(`flashcheck model presets: ${(e as Error).message} (usage: flashcheck model presets [--json])\n`)
    return 2
  }
  if (flags.has('help')) {
    process.stdout.write('usage: flashcheck model presets [--json]\n')
    return 0
  }
  const rows = PRESETS.map((p) => {
    const a = archFromConfig(p.config, `preset ${p.name}`)
    return { name: p.name, description: p.description, layout: a.layout, hidden: a.hidden, layers: a.layers, heads: a.heads, kvHeads: a.kvHeads, intermediate: a.intermediate, vocab: a.vocab, params: estimate(a).params }
  })
  if (flags.has('json')) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n')
    return 0
  }
  const lines = rows.map((r) =>
    `${r.name.padEnd(21)} ${(r.params / 1e6).toFixed(1).padStart(7)}M  H ${String(r.hidden).padStart(4)}  L ${String(r.layers).padStart(2)}  ` +
      `heads ${r.heads}/${r.kvHeads}  I ${String(r.intermediate).padStart(5)}  V ${String(r.vocab).padStart(6)}  ${r.description}`,
  )
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}

// `flashcheck model quantize SRC --out DST --type q8_0|q4_0`: a quantized copy of a float checkpoint.
import { existsSync, statSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { WEIGHT_FILE } from '../model/offline/publish-dir.js'
import { parseQuantType, type QuantType } from '../model/offline/quant-format.js'
import { QuantizeError, quantizeCheckpoint } from '../model/offline/quantize.js'
import { fmtBytes, parseFlags, parseSize, UsageError } from './model-init.js'

const USAGE =
  'usage: flashcheck model quantize SRC --out DST --type q8_0|q4_0 [--shard-size SIZE] [--force]\n' +
  '  SRC: a float (F32/BF16/F16) checkpoint directory, single file or sharded; DST gets config.json with a\n' +
  '  quantization_config, the quantized safetensors and copies of the tokenizer files. Every file is written\n' +
  '  under a temporary name and renamed into place. --force replaces a checkpoint already in DST.'

export async function modelQuantize(argv: string[]): Promise<number> {
  let src: string
  let out: string
  let type: QuantType
  let shardBytes: number | undefined
  let flags: Map<string, string | true>
  try {
    const positional: string[] = []
    const rest: string[] = []
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!
      if (!a.startsWith('--')) positional.push(a)
      else {
        rest.push(a)
        if (/^--(out|type|shard-size)$/.test(a) && i + 1 < argv.length) rest.push(argv[++i]!)
      }
    }
    flags = parseFlags(rest, { out: 'value', type: 'value', 'shard-size': 'value', force: 'bool', help: 'bool' })
    if (flags.has('help')) {
      process.stdout.write(USAGE + '\n')
      return 0
    }
    if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'SRC (the float checkpoint directory) is required' : `one SRC expected, got ${positional.join(' ')}`)
    src = positional[0]!
    const o = flags.get('out')
    if (typeof o !== 'string') throw new UsageError('--out is required')
    out = o
    const t = flags.get('type')
    if (typeof t !== 'string') throw new UsageError('--type is required (q8_0 or q4_0)')
    try {
      type = parseQuantType(t, '--type')
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
    const ss = flags.get('shard-size')
    if (typeof ss === 'string') shardBytes = parseSize(ss)
    if (resolve(src) === resolve(out)) throw new UsageError(`--out must differ from the source ${src} (the float checkpoint is kept)`)
    if (existsSync(out)) {
      if (!statSync(out).isDirectory()) throw new UsageError(`--out: ${out} exists and is not a directory`)
      const old = (await readdir(out)).filter((f) => f === 'config.json' || WEIGHT_FILE.test(f))
      if (old.length > 0 && !flags.has('force')) throw new UsageError(`--out: ${out} already holds a checkpoint (${old.join(', ')}); pass --force to replace it`)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`flashcheck model quantize: ${e.message} (see --help)\n`)
      return 2
    }
    throw e
  }
  try {
    // Progress on a terminal only (a multi-gigabyte checkpoint takes minutes); logs and pipes get the summary.
    const tty = process.stderr.isTTY === true
    const onTensor = tty ? (done: number, total: number, name: string) => void process.stderr.write(`\r\x1b[K[${done + 1}/${total}] ${name}`) : undefined
    const r = await quantizeCheckpoint({ src, out, type, maxShardBytes: shardBytes, onTensor })
    if (tty) process.stderr.write('\r\x1b[K')
    for (const n of r.keptFloat) process.stderr.write(`flashcheck model quantize: ${n} stays float (input dimension not a multiple of 32)\n`)
    const q8 = r.quantized.filter((q) => q.type === 'q8_0').length
    const counts = type === 'q8_0' ? `${q8} q8_0` : `${r.quantized.length - q8} q4_0 + ${q8} q8_0`
    process.stdout.write(
      `wrote ${out}: ${r.files.length === 1 ? r.files[0] : `${r.files.length} shards + model.safetensors.index.json`}, ` +
        `${type}: ${counts} weights quantized, ${fmtBytes(r.fileBytes)} (source tensor data ${fmtBytes(r.srcBytes)})` +
        `${r.copied.length ? `; copied ${r.copied.join(', ')}` : ''}\n`,
    )
    return 0
  } catch (e) {
    if (e instanceof QuantizeError) {
      process.stderr.write(`flashcheck model quantize: ${e.message}\n`)
      return 2
    }
    process.stderr.write(`flashcheck model quantize: writing ${out} failed: ${(e as Error).message}\n`)
    return 1
  }
}

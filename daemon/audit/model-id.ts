// The identity of the checkpoint behind model verdicts: a hash of config.json and every weight file's
// safetensors header (names, dtypes, shapes, offsets), plus the quant type when the config names one.
// Headers change with any retraining or re-quantisation; hashing them costs microseconds, not gigabytes.
import { createHash } from 'node:crypto'
import { open, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

export async function modelIdentity(dir: string): Promise<string> {
  const h = createHash('sha256')
  const configText = await readFile(join(dir, 'config.json'))
  h.update(configText)
  const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort()
  for (const f of files) {
    const fh = await open(join(dir, f), 'r')
    try {
      const len = Buffer.alloc(8)
      await fh.read(len, 0, 8, 0)
      const n = Math.min(Number(len.readBigUInt64LE(0)), 100 * 1024 * 1024)
      const header = Buffer.alloc(n)
      await fh.read(header, 0, n, 8)
      h.update(f).update(len).update(header)
    } finally {
      await fh.close()
    }
  }
  let quant: string | undefined
  try {
    const c = JSON.parse(configText.toString('utf8')) as { quantization_config?: { quant_method?: string; quant_type?: string }; quant_type?: string }
    quant = c.quantization_config?.quant_type ?? c.quantization_config?.quant_method ?? c.quant_type
  } catch { /* the loader reports a broken config.json */ }
  const id = `sha256:${h.digest('hex').slice(0, 16)}`
  return quant ? `${id} ${quant}` : id
}

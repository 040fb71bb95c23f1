// Checkpoints the benchmark runs on: given directories, or presets written with `model init`'s
// writer into a cache directory (reused when the same preset and dtype are already there).
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Arch, archFromConfig } from '../../daemon/model/arch.js'
import { initCheckpoint, type WeightDType } from '../../daemon/model/offline/init.js'
import { findPreset, PRESETS } from '../../daemon/model/offline/presets.js'

export interface Checkpoint {
  label: string
  dir: string
  arch: Arch
}

export async function fromDir(dir: string): Promise<Checkpoint> {
  const path = join(dir, 'config.json')
  const config = JSON.parse(await readFile(path, 'utf8'))
  return { label: dir, dir, arch: archFromConfig(config, path) }
}

export async function fromPreset(name: string, dtype: WeightDType, cacheDir: string, log: (s: string) => void): Promise<Checkpoint> {
  const preset = findPreset(name)
  if (!preset) throw new Error(`unknown preset "${name}" (presets: ${PRESETS.map((p) => p.name).join(', ')})`)
  const dir = join(cacheDir, `${name}-${dtype}`)
  const want = { ...preset.config, torch_dtype: dtype === 'bf16' ? 'bfloat16' : 'float32' }
  const cfgPath = join(dir, 'config.json')
  const have = existsSync(cfgPath) ? await readFile(cfgPath, 'utf8') : ''
  if (have !== JSON.stringify(want, null, 2) + '\n' || !existsSync(join(dir, 'model.safetensors'))) {
    const t0 = performance.now()
    const r = await initCheckpoint({ config: preset.config, outDir: dir, seed: 0, dtype, maxShardBytes: Number.MAX_SAFE_INTEGER })
    log(`  wrote ${name} (${dtype}, ${(r.fileBytes / 2 ** 30).toFixed(2)} GiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
  return { label: name, dir, arch: archFromConfig(preset.config, `preset ${name}`) }
}

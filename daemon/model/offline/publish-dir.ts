// Writing a checkpoint directory that a running daemon may have mapped: every file is written under a
// temporary name first (a staging directory beside the target, so renames stay on one filesystem) and
// renamed over the old one when complete. A rename swaps the directory entry and never truncates the
// old file, so a process that mapped it keeps reading the old, intact weights.
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, rename, rm, rmdir } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'

/** Weight files of a checkpoint (single file, shards, shard index). */
export const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors$|^model\.safetensors\.index\.json$/

/** A fresh staging directory beside `out` (same parent, hence same filesystem). */
export async function stagingDir(out: string): Promise<string> {
  const parent = dirname(resolve(out))
  await mkdir(parent, { recursive: true })
  const dir = await mkdtemp(join(parent, `.${basename(resolve(out))}.tmp-`))
  // mkdtemp makes it 0700; the checkpoint it becomes must be readable by the daemon's own user.
  await chmod(dir, 0o755)
  return dir
}

/** Moves every file of `staging` into `out` by rename (weights first, config.json last, so a reader that
 *  sees the new config sees the new weights), then removes weight files of `out` that the new
 *  checkpoint does not have (an earlier, differently sharded one) and the staging directory. */
export async function publishDir(staging: string, out: string): Promise<void> {
  const files = await readdir(staging)
  if (!existsSync(out)) {
    await rename(staging, out)
    return
  }
  const order = (f: string) => (f === 'config.json' ? 2 : WEIGHT_FILE.test(f) ? 0 : 1)
  files.sort((a, b) => order(a) - order(b))
  for (const f of files) await rename(join(staging, f), join(out, f))
  const fresh = new Set(files)
  for (const f of await readdir(out)) {
    if (WEIGHT_FILE.test(f) && !fresh.has(f)) await rm(join(out, f))
  }
  await rmdir(staging)
}

export async function discardStaging(staging: string): Promise<void> {
  await rm(staging, { recursive: true, force: true })
}

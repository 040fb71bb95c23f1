// Runs token sequences through the native kernel (the daemon's own loader) and writes every position's
// logits as little-endian float32, so the PyTorch model can be compared with what the daemon computes.
// usage: node tools/train/kernel_logits.mjs CHECKPOINT_DIR TOKENS_JSON OUT_F32
//   TOKENS_JSON: [[ids...], ...]; OUT_F32: the rows of every sequence, concatenated.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { Model } = await import(join(root, 'dist', 'daemon', 'model', 'kernel.js'))
const [dir, tokensPath, outPath] = process.argv.slice(2)
if (!outPath) {
  console.error('usage: node tools/train/kernel_logits.mjs CHECKPOINT_DIR TOKENS_JSON OUT_F32')
  process.exit(2)
}
const seqs = JSON.parse(readFileSync(tokensPath, 'utf8'))
const model = Model.load(dir, { threads: 1 })
const parts = []
for (const seq of seqs) {
  const st = model.newState()
  parts.push(Buffer.from(model.prefill(st, seq, { allLogits: true }).buffer.slice(0)))
  st.dispose()
}
writeFileSync(outPath, Buffer.concat(parts))
model.dispose()

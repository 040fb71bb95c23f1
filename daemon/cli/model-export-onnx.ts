// `flashcheck model export-onnx DIR --out OUTDIR [--external-above BYTES]`: writes the ONNX graphs of a
// checkpoint for the onnx backend (model.onnx.graphs): prefill.onnx, decode.onnx, manifest.json and, for
// models whose float32 weights exceed the threshold, one external weights.bin both graphs share.
import { exportOnnx } from '../model/onnx/export.js'

const USAGE = 'usage: flashcheck model export-onnx DIR --out OUTDIR [--external-above BYTES]\n'

export async function modelExportOnnx(argv: string[]): Promise<number> {
  let dir: string | undefined
  let out: string | undefined
  let externalAbove: number | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--out') out = argv[++i]
    else if (a === '--external-above') {
      externalAbove = Number(argv[++i])
      if (!Number.isSafeInteger(externalAbove) || externalAbove < 0) {
        process.stderr.write('model export-onnx: --external-above needs a byte count\n')
        return 2
      }
    } else if (a.startsWith('--')) {
      process.stderr.write(`model export-onnx: unknown option ${a}\n${USAGE}`)
      return 2
    } else if (dir === undefined) dir = a
    else {
      process.stderr.write(USAGE)
      return 2
    }
  }
  if (!dir || !out) {
    process.stderr.write(USAGE)
    return 2
  }
  const t0 = performance.now()
  try {
    const r = await exportOnnx(dir, out, { externalAbove })
    const m = r.manifest
    process.stdout.write(
      `exported ${dir} (${m.layout}, ${m.layers.length} layers) to ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ` +
        `opset ${m.opset}, ${(m.weightBytes / 2 ** 20).toFixed(1)} MiB of float32 weights ${m.external ? `in ${m.external}` : 'inline'}\n`,
    )
    for (const f of r.files) process.stdout.write(`  ${f}\n`)
    return 0
  } catch (err) {
    process.stderr.write(`model export-onnx: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}

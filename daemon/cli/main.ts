#!/usr/bin/env node
// flashcheck command line: dispatches to one module per command. Commands load lazily so that `run` never
// pays for (or depends on) the native kernel unless a rule needs it.
import { VERSION } from '../version.js'

const USAGE = `flashcheck ${VERSION} — edge daemon for model-assisted quality inspection over MQTT

usage:
  flashcheck run [--config FILE] [--<key> VALUE ...]   run the daemon (keys as in config, e.g. --mqtt-url, --rules-dir)
  flashcheck rules check DIR                           validate a rules directory (file:line:col: message; exit 1 on errors)
  flashcheck rules test [--rules-dir DIR] [--model-dir DIR] [--junit FILE] FILE...
                                                       run rule test files on a virtual clock (exit 0 pass, 1 fail, 2 malformed)
  flashcheck record --out FILE [--duration S] [--topics FILTER...] [--config FILE] [--<key> VALUE ...]
                                                       record request and signal traffic to JSONL (Ctrl-C ends)
  flashcheck replay FILE [--rules-dir DIR] [--against DIR] [--speed N|max] [--json]
                                                       replay a recording through rules on its own clock; count changed verdicts
  flashcheck request TOPIC JSON [--url URL] [--timeout MS] [--mqtt311]
                                                       send one request (MQTT 5 request/response) and print the response
  flashcheck config [--config FILE] [--<key> VALUE ...]   print the effective configuration (secrets redacted)
  flashcheck model init --config PRESET|FILE --out DIR [--seed N] [--dtype f32|bf16] [--quant q8_0|q4_0]
  flashcheck model quantize SRC --out DST --type q8_0|q4_0   quantized copy of a float checkpoint (streaming)
  flashcheck model check DIR [--backend native|onnx] [--quant q8_0|q4_0]   run a golden case against the kernel (or exported ONNX graphs; --quant: load-time quantization)
  flashcheck model export-onnx DIR --out OUTDIR [--external-above BYTES]
                                                       write ONNX prefill/decode graphs for model.backend onnx
  flashcheck model presets                             list model presets
  flashcheck audit show ID|TRACE [--db FILE]           the audit record(s) of a verdict id or traced part, newest first
  flashcheck audit export [--since T] [--until T] [--inspection ID] [--verdict V] [--format jsonl|csv] [--out FILE] [--db FILE]
                                                       stream audit records (T: ISO-8601 or relative, e.g. -24h)
  flashcheck audit stats [--since T] [--rules-dir DIR] [--db FILE]
                                                       per inspection: count, verdict mix, parts, first-pass yield, misses, p50/p99
  flashcheck doctor [--config FILE] [--timeout MS] [--<key> VALUE ...]
                                                       check config, broker, rules, model files, memory, CPU (PASS/WARN/FAIL)
  flashcheck --version
`

async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv
  switch (cmd) {
    case 'run':
      return (await import('./run.js')).run(argv.slice(1))
    case 'config':
      return (await import('./run.js')).printConfig(argv.slice(1))
    case 'doctor':
      return (await import('./doctor.js')).doctor(argv.slice(1))
    case 'record':
      return (await import('./record.js')).record(argv.slice(1))
    case 'replay':
      return (await import('./replay.js')).replay(argv.slice(1))
    case 'audit':
      return (await import('./audit.js')).audit(argv.slice(1))
    case 'request':
      return (await import('./request.js')).request(argv.slice(1))
    case 'rules':
      if (sub === 'check') return (await import('./rules-check.js')).rulesCheck(rest)
      if (sub === 'test') return (await import('./rules-test.js')).rulesTest(rest)
      break
    case 'model':
      if (sub === 'init') return (await import('./model-init.js')).modelInit(rest)
      if (sub === 'check') return (await import('./model-check.js')).modelCheck(rest)
      if (sub === 'quantize') return (await import('./model-quantize.js')).modelQuantize(rest)
      if (sub === 'export-onnx') return (await import('./model-export-onnx.js')).modelExportOnnx(rest)
      if (sub === 'presets') return (await import('./model-init.js')).modelPresets(rest)
      break
    case '--version':
    case 'version':
      process.stdout.write(`${VERSION}\n`)
      return 0
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE)
      return cmd === undefined ? 2 : 0
  }
  process.stderr.write(`flashcheck: unknown command: ${argv.slice(0, 2).join(' ')}\n\n${USAGE}`)
  return 2
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`flashcheck: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 70
  },
)

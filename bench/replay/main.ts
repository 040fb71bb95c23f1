// Throughput of `flashcheck replay --speed max`: writes a recording of N requests (torque-joint, with a
// vibration sample every 10 ms per station, as a plant sends them) and replays it through the CLI's code,
// rules vs. a changed copy. Baseline in the same run: the bare rule evaluation of the same requests
// (matchRequest + evaluate on a signal store), so the ratio is what the service path costs on top.
// Run after a build: node dist/bench/replay/main.js [requests] [rounds]; with BENCH_REPLAY_KEEP=DIR the
// recording (DIR/rec.jsonl) and both rule directories (DIR/a, DIR/b) are kept there to time the CLI itself.
import { cpus, tmpdir } from 'node:os'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../daemon/config/load.js'
import { loadRuleDir } from '../../daemon/rules/load.js'
import { SignalStore } from '../../daemon/signals/store.js'
import { replayRecording } from '../../daemon/replay/replay.js'
import type { RuleSet } from '../../daemon/rules/types.js'

const N = Number(process.argv[2] ?? 100_000)
const ROUNDS = Number(process.argv[3] ?? 3)
const examples = fileURLToPath(new URL('../../../rules/examples/torque-joint.yaml', import.meta.url))
const keep = process.env.BENCH_REPLAY_KEEP
const tmp = keep ?? mkdtempSync(join(tmpdir(), 'flashcheck-replay-bench-'))
mkdirSync(tmp, { recursive: true })
const dirA = join(tmp, 'a')
const dirB = join(tmp, 'b')
mkdirSync(dirA, { recursive: true })
mkdirSync(dirB, { recursive: true })
const src = readFileSync(examples, 'utf8')
writeFileSync(join(dirA, 'torque-joint.yaml'), src)
writeFileSync(join(dirB, 'torque-joint.yaml'), src.replace('torque <= 12.0', 'torque <= 11.5'))

/** One request every 2 ms over 8 stations; a vibration sample per station every 10 ms. */
async function writeRecording(file: string): Promise<{ topic: string; payload: Buffer; t: number; request: boolean }[]> {
  const out = createWriteStream(file)
  const t0 = 1_760_000_000_000
  out.write(JSON.stringify({ flashcheck_recording: 1, rules_rev: null, rules_dir: dirA, t0_epoch_ms: t0, started_at: new Date(t0).toISOString(), filters: ['#'], node: 'bench' }) + '\n')
  const msgs: { topic: string; payload: Buffer; t: number; request: boolean }[] = []
  let x = 1
  const rnd = () => ((x = (x * 48271) % 2147483647) / 2147483647)
  for (let i = 0; i < N; i++) {
    const t = i * 2
    if (i % 5 === 0) for (let st = 0; st < 8; st++) msgs.push({ topic: `plant/st${st}/spindle/vibration`, payload: Buffer.from(JSON.stringify({ rms: Number((1 + rnd() * 2.5).toFixed(3)) })), t, request: false })
    const body = { torque_nm: Number((10.5 + rnd() * 1.8).toFixed(2)), angle_deg: Math.round(560 + rnd() * 300), part_id: `P${i}` }
    msgs.push({ topic: `flashcheck/inspect/st${i % 8}/torque`, payload: Buffer.from(JSON.stringify(body)), t, request: true })
  }
  for (const m of msgs) {
    const line = JSON.stringify({ t_ms: m.t, topic: m.topic, payload_b64: m.payload.toString('base64') }) + '\n'
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  await new Promise<void>((r) => out.end(() => r()))
  return msgs.map((m) => ({ ...m, t: t0 + m.t }))
}

async function load(dir: string): Promise<RuleSet> {
  const r = await loadRuleDir(dir, { defaultBudgetMs: 50, model: true })
  if (!r.ok) throw new Error(JSON.stringify(r.errors))
  return r.set
}

const file = join(tmp, 'rec.jsonl')
const msgs = await writeRecording(file)
const config = loadConfig({ env: {}, args: ['--rules-dir', dirB] })
const [a, b] = [await load(dirA), await load(dirB)]

function baseline(): number {
  const t0 = performance.now()
  for (const set of [a, b]) {
    const store = new SignalStore()
    store.configure(set.signals)
    for (const m of msgs) {
      if (!m.request) {
        store.ingest(m.topic, m.payload, m.t)
        continue
      }
      const hit = set.matchRequest(m.topic)!
      hit.rule.evaluate({ topic: m.topic, params: hit.params, payload: JSON.parse(m.payload.toString('utf8')) as Record<string, unknown>, now: m.t }, store)
    }
  }
  return N / ((performance.now() - t0) / 1000)
}

const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? ''
const isa = `${process.arch} ${cpus()[0]?.model ?? ''} (${['avx512f', 'avx2', 'asimd'].filter((f) => flags.includes(' ' + f)).join(', ') || 'no SIMD flags'})`
console.log(`ISA: ${isa}; node ${process.version}; recording: ${N} requests + ${msgs.length - N} signal samples`)
const rates: number[] = []
const bases: number[] = []
let last = ''
for (let r = 0; r < ROUNDS; r++) {
  bases.push(baseline())
  const t0 = performance.now()
  const s = await replayRecording({ file, config, set: b, against: a, speed: Infinity, keepChanges: false })
  const secs = (performance.now() - t0) / 1000
  rates.push(s.requests / secs)
  last = `replayed ${s.requests} requests: ${s.same} same, ${s.changed} changed`
  console.log(`round ${r + 1}: replay ${(s.requests / secs).toFixed(0)} requests/s (${secs.toFixed(2)} s), baseline evaluate ${bases[r]!.toFixed(0)} requests/s`)
}
const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!
console.log(last)
console.log(`median: replay --speed max ${med(rates).toFixed(0)} requests/s; baseline (bare evaluate, both sets) ${med(bases).toFixed(0)} requests/s; ratio ${(med(bases) / med(rates)).toFixed(2)}x`)
if (keep === undefined) rmSync(tmp, { recursive: true, force: true })
else console.log(`kept: ${tmp}/rec.jsonl, rules ${dirA} (baseline) and ${dirB}`)

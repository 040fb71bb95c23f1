// bench/weld: the trained weld model (rules/examples/model/weld-demo) through a real mosquitto and the daemon
// as its own process, with the shipped rule rules/examples/model/weld-seam.yaml.
//  1. accuracy: every note of the generator's held-out split and the hand-written notes, closed loop, per
//     label (confusion matrix: row = policy label, column = model choice), plus the verdict after
//     min_confidence (fallbacks counted);
//  2. latency: open-loop requests at each rate, alternating in rounds with a checks-only twin of the rule
//     (same inputs and CEL check, no `reason:`) as the baseline measured in the same run; p50/p99 and ratios.
//   node dist/bench/weld/main.js [--rates 10,100] [--seconds 10] [--rounds 2] [--threads 1] [--model DIR]
//     [--quantize none|q8_0|q4_0] [--skip-accuracy] [--skip-latency]
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { arch, cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { Mosquitto } from '../../harness/mosquitto.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { setNoDelay } from '../../daemon/mqtt/nodelay.js'
import { kernelIsa } from '../../daemon/model/kernel.js'

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '10,100' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
    model: { type: 'string', default: join(PACKAGE_ROOT, 'rules', 'examples', 'model', 'weld-demo') },
    quantize: { type: 'string', default: 'none' },
    'skip-accuracy': { type: 'boolean', default: false },
    'skip-latency': { type: 'boolean', default: false },
    out: { type: 'string', default: join(PACKAGE_ROOT, 'bench', 'out', 'weld') },
  },
})
const CLI = join(PACKAGE_ROOT, 'dist', 'daemon', 'cli', 'main.js')
const LABELS = ['PASS', 'REWORK', 'FAIL'] as const
const OUT = values.out!
interface Note { note: string; label: string }
const notes = (f: string): Note[] => readFileSync(join(PACKAGE_ROOT, 'test', 'fixtures', 'weld', f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Note)

function rules(budget: number): string {
  const dir = join(OUT, `rules-${budget}`)
  mkdirSync(dir, { recursive: true })
  const rule = readFileSync(join(PACKAGE_ROOT, 'rules', 'examples', 'model', 'weld-seam.yaml'), 'utf8').replace(/\nbudget_ms: \d+\n/, `\nbudget_ms: ${budget}\n`)
  writeFileSync(join(dir, 'weld-seam.yaml'), rule)
  // The baseline: the same request, inputs and check, answered by CEL alone.
  writeFileSync(join(dir, 'weld-cel.yaml'), rule.replace('id: weld-seam', 'id: weld-cel').replace('/weld\n', '/weld-cel\n').replace(/\nreason:[\s\S]*$/, '\n'))
  return dir
}

async function startDaemon(url: string, rulesDir: string): Promise<ChildProcess> {
  const watcher = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 })
  await watcher.subscribeAsync('flashcheck/bench/status')
  const online = new Promise<void>((resolve) => watcher.on('message', (_t, p) => { if (String(p) === 'online') resolve() }))
  const p = spawn(process.execPath, [CLI, 'run', '--mqtt-url', url, '--rules-dir', rulesDir, '--rules-watch', 'false', '--log-level', 'warn', '--node-id', 'bench',
    '--model-dir', values.model!, '--model-threads', values.threads!, '--model-quantize', values.quantize!, '--state-dir', '',
    ...(process.getuid?.() === 0 ? ['--security-allow-root', 'true'] : [])], { stdio: ['ignore', 'inherit', 'inherit'] })
  await Promise.race([online, new Promise((_, reject) => p.once('exit', (c) => reject(new Error(`daemon exited ${c}`))))])
  await watcher.endAsync()
  return p
}

interface Sample { rtt: number; body?: Record<string, any> }

/** Requests at `rate` per second (open loop), or closed loop when rate is 0; answers in request order. */
async function send(client: MqttClient, replyTo: string, topic: string, payloads: unknown[], rate: number): Promise<Sample[]> {
  const sent = new Map<string, { i: number; t0: number }>()
  const out: Sample[] = payloads.map(() => ({ rtt: Infinity }))
  const onMsg = (_t: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
    const id = packet.properties?.correlationData?.toString('hex')
    const s = id === undefined ? undefined : sent.get(id)
    if (!s) return
    sent.delete(id!)
    out[s.i] = { rtt: performance.now() - s.t0, body: JSON.parse(String(payload)) as Record<string, any> }
  }
  client.on('message', onMsg)
  const start = performance.now()
  for (let i = 0; i < payloads.length; i++) {
    if (rate > 0) {
      const wait = start + (i * 1000) / rate - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    } else {
      while (sent.size > 0) await new Promise((r) => setTimeout(r, 0.5))
    }
    const corr = randomBytes(8)
    sent.set(corr.toString('hex'), { i, t0: performance.now() })
    client.publish(topic, JSON.stringify(payloads[i]), { qos: 1, properties: { responseTopic: replyTo, correlationData: corr } })
  }
  const end = performance.now() + 5000
  while (sent.size > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 10))
  client.off('message', onMsg)
  return out
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN
}
const r2 = (x: number) => Math.round(x * 100) / 100

function scoreSplit(name: string, ns: Note[], xs: Sample[]) {
  const confusion: Record<string, Record<string, number>> = {}
  for (const l of LABELS) confusion[l] = { PASS: 0, REWORK: 0, FAIL: 0 }
  let right = 0
  let verdictRight = 0
  let fallbacks = 0
  ns.forEach((n, i) => {
    const b = xs[i]!.body
    const choice = b?.model?.choice ?? 'none'
    if (confusion[n.label]![choice] !== undefined) confusion[n.label]![choice]! += 1
    if (choice === n.label) right++
    if (b?.verdict === n.label) verdictRight++
    if (b?.fallback === true) fallbacks++
  })
  return {
    split: name,
    notes: ns.length,
    'model accuracy %': r2((100 * right) / ns.length),
    'verdict accuracy %': r2((100 * verdictRight) / ns.length),
    'fallbacks (confidence < min)': fallbacks,
    confusion,
  }
}

async function main(): Promise<void> {
  const rates = values.rates!.split(',').map(Number)
  const seconds = Number(values.seconds)
  const rounds = Number(values.rounds)
  mkdirSync(OUT, { recursive: true })
  const broker = await Mosquitto.start()
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `bench-weld-${process.pid}` })
  setNoDelay(client)
  const replyTo = `bench/weld/reply/${process.pid}`
  await client.subscribeAsync(replyTo, { qos: 1 })
  const held = notes('heldout.jsonl')
  const hand = notes('handwritten.jsonl')
  const report: Record<string, unknown> = { isa: kernelIsa(), arch: arch(), cpu: cpus()[0]?.model, threads: Number(values.threads) }
  console.log(`ISA ${kernelIsa()} (${arch()}, ${cpus()[0]?.model}), decoder threads ${values.threads}`)
  try {
    if (!values['skip-accuracy']) {
      const d = await startDaemon(broker.url, rules(5000))
      try {
        const acc = []
        for (const [name, ns] of [['held-out (generator, seed 1001)', held], ['hand-written', hand]] as const) {
          const xs = await send(client, replyTo, 'flashcheck/inspect/st1/weld', ns.map((n) => ({ note: n.note, bead_width_mm: 5 })), 0)
          acc.push(scoreSplit(name, ns, xs))
        }
        report.accuracy = acc
        console.log(`\n== accuracy (weights ${values.quantize === 'none' ? 'float' : values.quantize}; closed loop, budget 5000 ms so that no answer is a deadline fallback)`)
        console.table(acc.map(({ confusion, ...rest }) => rest))
        for (const a of acc) {
          console.log(`confusion, ${a.split} (row = policy label, column = model choice)`)
          console.table(a.confusion)
        }
      } finally {
        d.kill('SIGTERM')
        await new Promise((res) => d.once('exit', res))
      }
    }
    if (values['skip-latency']) return
    const d = await startDaemon(broker.url, rules(50))
    const lat: Record<string, unknown>[] = []
    try {
      const payload = (i: number) => ({ note: held[i % held.length]!.note, bead_width_mm: 5 })
      await send(client, replyTo, 'flashcheck/inspect/st1/weld', Array.from({ length: 20 }, (_, i) => payload(i)), 0) // warm-up
      for (const rate of rates) {
        const all: Record<'model' | 'cel', Sample[]> = { model: [], cel: [] }
        for (let r = 0; r < rounds; r++) {
          for (const mode of r % 2 === 0 ? (['cel', 'model'] as const) : (['model', 'cel'] as const)) {
            const n = Math.round(rate * seconds)
            const xs = await send(client, replyTo, `flashcheck/inspect/st1/${mode === 'model' ? 'weld' : 'weld-cel'}`, Array.from({ length: n }, (_, i) => payload(i + r * n)), rate)
            all[mode].push(...xs)
          }
        }
        const m = all.model.map((x) => x.rtt)
        const c = all.cel.map((x) => x.rtt)
        const row = {
          'req/s': rate,
          n: m.length,
          'model p50 ms': r2(pct(m, 50)),
          'model p99 ms': r2(pct(m, 99)),
          'checks-only p50 ms': r2(pct(c, 50)),
          'checks-only p99 ms': r2(pct(c, 99)),
          'ratio p50': r2(pct(m, 50) / pct(c, 50)),
          'ratio p99': r2(pct(m, 99) / pct(c, 99)),
          'decoder ms p50': r2(pct(all.model.filter((x) => x.body?.model?.status === 'ok').map((x) => x.body!.model.ms as number), 50)),
          'scored by model': all.model.filter((x) => x.body?.model?.status === 'ok').length,
          'deadline fallbacks': all.model.filter((x) => x.body?.deadline_missed === true).length,
          lost: all.model.filter((x) => !x.body).length + all.cel.filter((x) => !x.body).length,
        }
        lat.push(row)
        console.log(JSON.stringify(row))
      }
    } finally {
      d.kill('SIGTERM')
      await new Promise((res) => d.once('exit', res))
    }
    report.latency = lat
    console.log(`\n== latency through mosquitto (client round trip), budget 50 ms, ${seconds} s × ${rounds} rounds per rate and mode`)
    console.table(lat)
  } finally {
    await client.endAsync(true)
    await broker.stop()
  }
  writeFileSync(join(OUT, 'report.json'), JSON.stringify(report, null, 2) + '\n')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

// bench/verdict: model-assisted verdicts end to end through a real mosquitto. The daemon runs as its own
// process with the native decoder on a ~30M-parameter SambaY checkpoint (preset `verdict`, random weights,
// byte-level BPE tokenizer), one reason rule with a ~512-token static prompt prefix, a ~48-token request
// suffix and 4 labels. Rounds alternate prefix cache on and off, so machine noise hits both alike.
// With --quant q8_0|q4_0 the rounds instead alternate the BF16 checkpoint as it is and the same checkpoint
// quantized at load (model.quantize), both with the prefix cache on at the paced rate.
//   node dist/bench/verdict/main.js [--rate 10] [--seconds 10] [--rounds 2] [--threads 2] [--budget 50] [--quant q8_0]
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { CLI, spawnDaemon, stopProcess } from '../../harness/daemon-process.js'
import { Mosquitto } from '../../harness/mosquitto.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { setNoDelay } from '../../daemon/mqtt/nodelay.js'
import { ChatTokenizer } from '../../daemon/verdict/tokenizer.js'
import { projectVerdict } from './project.js'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    budget: { type: 'string', default: '50' },
    // Without the cache a verdict prefills the whole ~570-token prompt: far over 50 ms here, so those rounds
    // get a budget that lets them finish and run closed-loop, to measure what the cache saves.
    'off-budget': { type: 'string', default: '5000' },
    'off-requests': { type: 'string', default: '10' },
    quant: { type: 'string' },
    out: { type: 'string', default: join(PACKAGE_ROOT, 'bench', 'out', 'verdict') },
  },
})
const rate = Number(values.rate)
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const budget = Number(values.budget)
const OUT = values.out!
const TOPIC = 'flashcheck/inspect/st4/joint'
const QUANT = values.quant
if (QUANT !== undefined && QUANT !== 'q8_0' && QUANT !== 'q4_0') {
  console.error(`--quant must be q8_0 or q4_0, got ${QUANT}`)
  process.exit(2)
}

// Static instructions shared by every request: what the cache holds. Grown to ~512 tokens below.
const PROCEDURE = [
  'Inspection procedure for threaded joints on the final assembly line.',
  'Each joint is fastened by a DC nutrunner that reports the final torque in Nm and the turn angle in degrees.',
  'A joint in specification has a torque between 10.0 and 12.0 Nm and an angle between 540 and 900 degrees.',
  'A joint whose torque is low but whose angle is high may have a stripped thread: answer REWORK or FAIL.',
  'A joint whose torque is high and angle low may be cross-threaded: answer FAIL.',
  'Spindle vibration above 3.2 mm/s during the rundown suggests a worn socket or a loose fixture: answer WARN.',
  'When every check passes and the signals are calm, answer PASS.',
]

function promptPrefix(tok: ChatTokenizer, system: string): string {
  let text = ''
  for (let i = 0; ; i++) {
    text += (i ? ' ' : '') + PROCEDURE[i % PROCEDURE.length]
    if (tok.encode(tok.render(system, text)).length >= 505) return text + '\n\nJoint report:'
  }
}

const SYSTEM = 'You are a quality inspector on a car assembly line. Answer with one word.'

async function prepare(): Promise<{ model: string; rulesOn: string; rulesOff: string; prefixTokens: number }> {
  mkdirSync(OUT, { recursive: true })
  const model = join(OUT, 'model')
  if (!existsSync(join(model, 'tokenizer.json'))) {
    // bf16 weights, as the real checkpoint ships: half the bytes per decoder pass.
    await run(process.execPath, [CLI, 'model', 'init', '--config', 'verdict', '--out', model, '--seed', '1', '--dtype', 'bf16', '--tokenizer', '--force'])
  }
  const tok = await ChatTokenizer.load(model)
  const prefix = promptPrefix(tok, SYSTEM)
  const write = (dir: string, budgetMs: number) => {
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, 'joint.yaml'),
    [
      'id: joint-ai',
      'request: flashcheck/inspect/{station}/joint',
      `budget_ms: ${budgetMs}`,
      'inputs:',
      '  station: topic.station',
      '  serial: { from: payload.serial, type: string }',
      '  torque: payload.torque_nm',
      '  angle: payload.angle_deg',
      '  vib: payload.vib_rms',
      '  temp: payload.temp_c',
      'checks:',
      '  - { id: torque-in-spec, expr: "torque >= 10.0 && torque <= 12.0", on_fail: FAIL }',
      '  - { id: angle-window, expr: "angle >= 540.0 && angle <= 900.0", on_fail: REWORK }',
      'reason:',
      `  system: ${JSON.stringify(SYSTEM)}`,
      `  prompt: ${JSON.stringify(prefix + ' station {station}: torque {torque} Nm, angle {angle} deg, vibration {vib}, motor {temp} C. Checks: {checks}. Verdict?')}`,
      '  choices: [PASS, WARN, REWORK, FAIL]',
      '  fallback: REWORK',
      '',
    ].join('\n'),
  )
  }
  const rulesOn = join(OUT, 'rules')
  const rulesOff = join(OUT, 'rules-uncached')
  write(rulesOn, budget)
  write(rulesOff, Number(values['off-budget']))
  return { model, rulesOn, rulesOff, prefixTokens: tok.encode(tok.render(SYSTEM, prefix)).length }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] })
    p.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${c}`))))
  })
}

function startDaemon(url: string, model: string, rulesDir: string, cache: boolean, quantize = 'none'): Promise<ChildProcess> {
  return spawnDaemon({ url, args: ['--rules-dir', rulesDir, '--model-dir', model, '--model-threads', String(values.threads), '--model-prefix-cache', String(cache), '--model-quantize', quantize] })
}

interface Sample {
  rtt: number
  server: number
  modelMs?: number
  status: string
  fallback: boolean
  missed: boolean
  suffix?: number
  cached?: number
}

/** Paced requests (open loop; closed loop with `closed`) from one MQTT 5 client, timed at the client. */
async function load(client: MqttClient, replyTo: string, n: number, closed = false): Promise<Sample[]> {
  const sent = new Map<string, number>()
  const out: Sample[] = []
  const onMsg = (_t: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
    const id = packet.properties?.correlationData?.toString('hex')
    const t0 = id === undefined ? undefined : sent.get(id)
    if (t0 === undefined) return
    sent.delete(id!)
    const b = JSON.parse(String(payload)) as Record<string, any>
    out.push({
      rtt: performance.now() - t0,
      server: b.latency_ms,
      modelMs: b.model?.ms,
      status: b.model?.status === 'ok' ? 'ok' : `${b.model?.status}:${b.model?.reason}`,
      // tokens are reported for shed requests too, so the suffix length is known either way
      fallback: b.fallback === true,
      missed: b.deadline_missed === true,
      suffix: b.model?.tokens ? b.model.tokens.prompt - b.model.tokens.cached : undefined,
      cached: b.model?.tokens?.cached,
    })
  }
  client.on('message', onMsg)
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (closed) while (sent.size > 0) await new Promise((r) => setTimeout(r, 1))
    else if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    const corr = randomBytes(8)
    const body = { serial: `SN-${100000 + i}`, torque_nm: 10.5 + (i % 17) / 10, angle_deg: 600 + (i % 29) * 7, vib_rms: 1.5 + (i % 11) / 7, temp_c: 40 + (i % 13) }
    sent.set(corr.toString('hex'), performance.now())
    client.publish(TOPIC, JSON.stringify(body), { qos: 1, properties: { responseTopic: replyTo, correlationData: corr } })
  }
  const end = performance.now() + (closed ? 10_000 : 3000)
  while (sent.size > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 20))
  client.off('message', onMsg)
  for (let i = 0; i < sent.size; i++) out.push({ rtt: Infinity, server: Infinity, status: 'lost', fallback: false, missed: true })
  return out
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN
}

function summary(name: string, xs: Sample[]): Record<string, number | string> {
  const rtt = xs.map((x) => x.rtt)
  const model = xs.filter((x) => x.modelMs !== undefined && x.status === 'ok').map((x) => x.modelMs!)
  const f = (x: number) => Math.round(x * 100) / 100
  return {
    mode: name,
    n: xs.length,
    rtt_p50: f(pct(rtt, 50)),
    rtt_p99: f(pct(rtt, 99)),
    rtt_max: f(Math.max(...rtt)),
    model_ms_p50: f(pct(model, 50)),
    scored: xs.filter((x) => x.status === 'ok').length,
    fallbacks: xs.filter((x) => x.fallback).length,
    deadline_missed: xs.filter((x) => x.missed).length,
    late: rtt.filter((r) => r > budget).length,
    // The budget bounds the daemon's receive-to-publish time (latency_ms); the round trip adds the broker hops.
    server_late: xs.filter((x) => x.server > budget).length,
    server_max: f(Math.max(...xs.map((x) => x.server))),
    outcomes: Object.entries(xs.reduce<Record<string, number>>((a, x) => ((a[x.status] = (a[x.status] ?? 0) + 1), a), {})).map(([k, v]) => `${k} ${v}`).join(', '),
    suffix_tokens: f(xs.filter((x) => x.suffix !== undefined).reduce((a, x) => a + x.suffix!, 0) / Math.max(1, xs.filter((x) => x.suffix !== undefined).length)),
  }
}

/** BF16 against load-time quantization, both cached at the paced rate, alternating rounds. */
async function mainQuant(q: string): Promise<void> {
  const { model, rulesOn, prefixTokens } = await prepare()
  const broker = await Mosquitto.start()
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `bench-verdict-${process.pid}` })
  setNoDelay(client)
  const replyTo = `bench/verdict/reply/${process.pid}`
  await client.subscribeAsync(replyTo, { qos: 1 })
  const modes = ['none', q]
  const all: Record<string, Sample[]> = { none: [], [q]: [] }
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
        const d = await startDaemon(broker.url, model, rulesOn, true, mode)
        try {
          await load(client, replyTo, Math.max(5, Math.round(rate)))
          const xs = await load(client, replyTo, Math.round(rate * seconds))
          all[mode]!.push(...xs)
          console.log(JSON.stringify({ round: r + 1, ...summary(mode === 'none' ? 'bf16' : mode, xs) }))
        } finally {
          d.kill('SIGTERM')
          await new Promise((res) => d.once('exit', res))
        }
      }
    }
  } finally {
    await client.endAsync(true)
    await broker.stop()
  }
  const base = summary('bf16', all.none!)
  const qs = summary(`${q} (load-time)`, all[q]!)
  console.log('\n== totals (client-side round trips through mosquitto, ms), prefix cache on')
  console.table([base, qs])
  const { kernelIsa } = await import('../../daemon/model/kernel.js')
  console.log(`kernel isa ${kernelIsa()} (FLASHCHECK_ISA ${process.env.FLASHCHECK_ISA || 'unset'}); static prompt prefix: ${prefixTokens} tokens; mean request suffix: ${qs.suffix_tokens} tokens; 4 labels; budget ${budget} ms; ${rate} req/s; threads ${values.threads}`)
  console.log(`${q} at ${rate} req/s, budget ${budget} ms: p50 ${qs.rtt_p50} ms, p99 ${qs.rtt_p99} ms; fallbacks ${qs.fallbacks} of ${qs.n} (bf16: ${base.fallbacks} of ${base.n})`)
  console.log(`per-verdict decoder time, bf16 / ${q}: p50 ${(Number(base.model_ms_p50) / Number(qs.model_ms_p50)).toFixed(2)}x less (${base.model_ms_p50} / ${qs.model_ms_p50} ms; over scored verdicts)`)
}

async function main(): Promise<void> {
  if (QUANT) return mainQuant(QUANT)
  const { model, rulesOn, rulesOff, prefixTokens } = await prepare()
  const broker = await Mosquitto.start()
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `bench-verdict-${process.pid}` })
  setNoDelay(client)
  const replyTo = `bench/verdict/reply/${process.pid}`
  await client.subscribeAsync(replyTo, { qos: 1 })
  const all: Record<'on' | 'off', Sample[]> = { on: [], off: [] }
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const d = await startDaemon(broker.url, model, mode === 'on' ? rulesOn : rulesOff, mode === 'on')
        try {
          await load(client, replyTo, mode === 'on' ? Math.max(5, Math.round(rate)) : 2, mode === 'off') // warm-up: page in, settle the cost model
          const xs = mode === 'on' ? await load(client, replyTo, Math.round(rate * seconds)) : await load(client, replyTo, Number(values['off-requests']), true)
          all[mode].push(...xs)
          console.log(JSON.stringify({ round: r + 1, ...summary(`cache ${mode}`, xs) }))
        } finally {
          await stopProcess(d)
        }
      }
    }
  } finally {
    await client.endAsync(true)
    await broker.stop()
  }
  const on = summary('cache on', all.on)
  const off = summary('cache off (closed loop)', all.off)
  console.log('\n== totals (client-side round trips through mosquitto, ms)')
  console.table([on, off])
  console.log(`static prompt prefix: ${prefixTokens} tokens; mean request suffix: ${on.suffix_tokens} tokens; 4 labels; budget ${budget} ms; ${rate} req/s; threads ${values.threads}`)
  console.log(`cache off: closed loop, budget ${values['off-budget']} ms (the whole prompt is prefilled per request)`)
  console.log(`per-verdict decoder time, cache on / off: p50 ${(Number(on.model_ms_p50) / Number(off.model_ms_p50)).toFixed(3)} (${on.model_ms_p50} / ${off.model_ms_p50} ms)`)
  console.log(`cache on at ${rate} req/s, budget ${budget} ms: p50 ${on.rtt_p50} ms, p99 ${on.rtt_p99} ms, max ${on.rtt_max} ms; late (round trip over budget) ${on.late}; fallbacks ${on.fallbacks} (deadline_missed ${on.deadline_missed}) of ${on.n}`)
  console.log('\n== projection: the real 3.8B Phi-4-mini-flash-reasoning per verdict (cached prefix, bf16 weights)')
  console.table(projectVerdict({ suffixTokens: Number(on.suffix_tokens), prefixTokens, labels: 4, extraLabelPasses: 0 }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

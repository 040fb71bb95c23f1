// bench/audit: the cost of the verdict journal. Two daemons on two mosquittos, one with the journal (state.dir
// set) and one without, under the same rules-only load in alternating rounds, so that machine noise hits both
// alike; then the journal's growth per verdict and the export speed of `flashcheck audit export`.
//   node dist/bench/audit/main.js [--rate 2000] [--seconds 5] [--rounds 4] [--clients 8] [--warmup 2]
// BENCH_DAEMON_NODE_ARGS='--cpu-prof' profiles the daemon with the journal.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import mqtt from 'mqtt'
import { Mosquitto } from '../../harness/mosquitto.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { LatencyLoad as LoadGen, type LoadResult } from '../../harness/load.js'
import { cpuSeconds, mainThreadCpuSeconds } from '../../harness/proc.js'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '4' },
    clients: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
  },
})
const rate = Number(values.rate)
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const nClients = Number(values.clients)
const warmup = Number(values.warmup)

const CLI = join(PACKAGE_ROOT, 'dist', 'daemon', 'cli', 'main.js')
const RULES = join(PACKAGE_ROOT, 'rules', 'examples')
const TOPIC = 'flashcheck/inspect/st1/torque'
const PAYLOAD = JSON.stringify({ torque_nm: 11.2, angle_deg: 720, serial: 'SN-0001' })

async function startDaemon(url: string, stateDir: string): Promise<ChildProcess> {
  const watcher = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 })
  await watcher.subscribeAsync('flashcheck/bench/status')
  const online = new Promise<void>((resolve) => watcher.on('message', (_t, p) => { if (String(p) === 'online') resolve() }))
  const nodeArgs = stateDir ? (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean) : []
  const p = spawn(process.execPath, [...nodeArgs, CLI, 'run', '--mqtt-url', url, '--rules-dir', RULES, '--rules-watch', 'false', '--log-level', 'warn', '--node-id', 'bench', '--state-dir', stateDir, '--security-allow-root', 'true'], { stdio: ['ignore', 'inherit', 'inherit'] })
  await Promise.race([online, new Promise((_, reject) => p.once('exit', (c) => reject(new Error(`daemon exited ${c}`))))])
  await watcher.endAsync()
  return p
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const f = (x: number) => x.toFixed(3)
type Which = 'off' | 'on'

async function main(): Promise<void> {
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-bench-audit-'))
  const brokers = { off: await Mosquitto.start(), on: await Mosquitto.start() }
  const daemons = { off: await startDaemon(brokers.off.url, ''), on: await startDaemon(brokers.on.url, state) }
  const loads = { off: await LoadGen.connect(brokers.off.url, nClients), on: await LoadGen.connect(brokers.on.url, nClients) }
  const db = join(state, 'audit.db')
  try {
    console.log(`bench/audit: ${rate} req/s rules-only, ${nClients} MQTT 5 requesters, QoS 1, ${rounds} alternating rounds of ${seconds} s; journal off vs on (audit.sync normal); ${cpus()[0]?.model ?? '?'} (${process.arch}, ${availableParallelism()} cores), load average ${loadavg()[0].toFixed(2)}`)
    await loads.off.run(TOPIC, PAYLOAD, rate, warmup)
    await loads.on.run(TOPIC, PAYLOAD, rate, warmup)
    const res: Record<Which, LoadResult[]> = { off: [], on: [] }
    const cpu = { off: 0, on: 0 }
    const mainCpu = { off: 0, on: 0 }
    let rowsInRounds = 0
    for (let r = 0; r < rounds; r++) {
      for (const which of (r % 2 ? ['on', 'off'] : ['off', 'on']) as Which[]) {
        const c0 = cpuSeconds(daemons[which].pid!)
        const m0 = mainThreadCpuSeconds(daemons[which].pid!)
        const n0 = which === 'on' ? rowCount(db) : 0
        const x = await loads[which].run(TOPIC, PAYLOAD, rate, seconds)
        cpu[which] += cpuSeconds(daemons[which].pid!) - c0
        mainCpu[which] += mainThreadCpuSeconds(daemons[which].pid!) - m0
        if (which === 'on') rowsInRounds += rowCount(db) - n0
        res[which].push(x)
        console.log(`round ${r + 1} journal ${which.padEnd(3)} sent ${x.sent} recv ${x.received}  p50 ${f(x.p50)} ms  p99 ${f(x.p99)} ms  max ${f(x.max)} ms`)
      }
    }
    const agg = (xs: LoadResult[]) => ({ p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), max: Math.max(...xs.map((x) => x.max)), lost: xs.reduce((a, x) => a + x.sent - x.received, 0), recv: xs.reduce((a, x) => a + x.received, 0) })
    const off = agg(res.off)
    const on = agg(res.on)
    const perReq = (w: Which) => (cpu[w] / agg(res[w]).recv) * 1e6
    const mainPerReq = (w: Which) => (mainCpu[w] / agg(res[w]).recv) * 1e6
    console.log('')
    console.log('| daemon | p50 ms | p99 ms | max ms | lost | CPU µs/request (process) | of which the event-loop thread |')
    console.log('|---|---|---|---|---|---|---|')
    console.log(`| journal off (baseline) | ${f(off.p50)} | ${f(off.p99)} | ${f(off.max)} | ${off.lost} | ${perReq('off').toFixed(1)} | ${mainPerReq('off').toFixed(1)} |`)
    console.log(`| journal on | ${f(on.p50)} | ${f(on.p99)} | ${f(on.max)} | ${on.lost} | ${perReq('on').toFixed(1)} | ${mainPerReq('on').toFixed(1)} |`)
    console.log('')
    console.log(`ratios on/off: p50 ${(on.p50 / off.p50).toFixed(3)}x, p99 ${(on.p99 / off.p99).toFixed(3)}x, CPU per request ${(perReq('on') / perReq('off')).toFixed(3)}x (event-loop thread ${(mainPerReq('on') / mainPerReq('off')).toFixed(3)}x) (goal <= 1.10x for p99 and CPU)`)
    console.log(`journal rows/s during the rounds: ${(rowsInRounds / (rounds * seconds)).toFixed(0)}`)
    daemons.on.kill('SIGTERM')
    await new Promise((r) => daemons.on.once('exit', r))
    const rows = rowCount(db)
    const d = new Database(db, { readonly: true })
    const bytes = (d.pragma('page_count', { simple: true }) as number) * (d.pragma('page_size', { simple: true }) as number)
    d.close()
    console.log(`database: ${rows} rows, ${(bytes / 1048576).toFixed(1)} MiB (file ${(statSync(db).size / 1048576).toFixed(1)} MiB) → ${(bytes / rows).toFixed(0)} B/verdict, ${((bytes / rows) * 1e6 / 1073741824).toFixed(2)} GiB per million verdicts`)
    for (const format of ['jsonl', 'csv']) {
      const t0 = process.hrtime.bigint()
      const out = spawnSync(process.execPath, [CLI, 'audit', 'export', '--format', format, '--out', '/dev/null', '--db', db], { encoding: 'utf8' })
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      if (out.status !== 0) throw new Error(out.stderr)
      console.log(`audit export --format ${format}: ${rows} rows in ${s.toFixed(2)} s → ${(rows / s).toFixed(0)} rows/s (process start included)`)
    }
  } finally {
    await Promise.all([loads.off.close(), loads.on.close()])
    for (const p of Object.values(daemons)) if (p.exitCode === null) p.kill('SIGTERM')
    await Promise.all(Object.values(daemons).map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))))
    await brokers.off.stop()
    await brokers.on.stop()
    rmSync(state, { recursive: true, force: true })
  }
}

function rowCount(db: string): number {
  try {
    const d = new Database(db, { readonly: true })
    try {
      return (d.prepare('SELECT COUNT(*) AS n FROM verdicts').get() as { n: number }).n
    } finally {
      d.close()
    }
  } catch {
    return 0
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

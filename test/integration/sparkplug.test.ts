// Sparkplug B against a real mosquitto, with Eclipse Tahu's codec as the peer on both sides: a PLC gateway
// publishing births/data/deaths that rules read, and a SCADA host reading what flashcheck publishes as an
// edge node.
import t from 'tap'
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import { cliProcess } from '../helpers/cli.js'
import { num, pressRule, SparkplugPeer, TahuLong, tahu, type SpMessage } from '../helpers/sparkplug.js'

const PRESS = pressRule('plant1/inspect/{station}')
const CYCLE = `id: cycle-count
trigger:
  sparkplug: {group: plant1, node: "press-{station}", device: spindle, metric: "Cycle/Count"}
publish: plant1/verdicts/{station}
inputs:
  count: {from: payload.value, type: any}
checks:
  - { id: seen, expr: 'true', on_fail: FAIL }
`

function rulesDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-sp-rules-'))
  for (const [f, src] of Object.entries(files)) writeFileSync(join(dir, f), src)
  return dir
}

const spArgs = (node: string, state: string, extra: string[] = []) => ['--sparkplug-enabled', 'true', '--sparkplug-group', 'flashcheck', '--sparkplug-edge-node', node, '--state-dir', state, ...extra]
const D = 'Double'
const T0 = 1_764_633_600_000

async function counter(d: { daemon: { metrics: { registry: { getSingleMetricAsString(n: string): Promise<string> } } } }, name: string): Promise<string> {
  return d.daemon.metrics.registry.getSingleMetricAsString(name)
}

t.test('PLC births, data by name and by alias, death, stale, rebirth requests; verdicts as DDATA', async (t) => {
  const broker = await Mosquitto.start()
  const rules = rulesDir({ 'press.yaml': PRESS, 'cycle.yaml': CYCLE })
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-sp-state-'))
  const scada = await SparkplugPeer.connect(broker.url)
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', rules, '--rules-watch', 'false', ...spArgs('fc-a', state)]))
  const plc = await SparkplugPeer.connect(broker.url, [])
  const req = await Requester.connect(broker.url, 5)
  const verdicts = await Requester.connect(broker.url, 5, 'plant1/verdicts/#')
  t.teardown(async () => {
    await Promise.all([req.end(), verdicts.end(), plc.end()])
    await d.stop()
    await scada.end()
    await broker.stop()
    rmSync(rules, { recursive: true, force: true })
    rmSync(state, { recursive: true, force: true })
  })

  // flashcheck is born as an edge node: NBIRTH with bdSeq 0 and seq 0, then one DBIRTH per inspection.
  const nbirth = await scada.next('spBv1.0/flashcheck/NBIRTH/fc-a')
  t.equal(num(scada.metric(nbirth, 'bdSeq')?.value), 0)
  t.equal(num(nbirth.payload?.seq), 0)
  t.equal(scada.metric(nbirth, 'Node Control/Rebirth')?.value, false)
  t.equal(scada.metric(nbirth, 'Node Info/Rules Revision')?.value, d.daemon.rulesRev)
  t.equal(nbirth.qos, 0)
  t.equal(nbirth.retain, false)
  const dbirth = await scada.next('spBv1.0/flashcheck/DBIRTH/fc-a/press-temp')
  await scada.next('spBv1.0/flashcheck/DBIRTH/fc-a/cycle-count')
  t.same(dbirth.payload!.metrics.map((m) => [m.name, m.type]), [['Verdict', 'String'], ['VerdictId', 'String'], ['Trace', 'String'], ['LatencyMs', 'Double'], ['DeadlineMissed', 'Boolean'], ['ErrorCode', 'String']])
  const aliasOf = new Map(dbirth.payload!.metrics.map((m) => [num(m.alias), m]))
  t.equal(aliasOf.size, 6, 'every device metric has its own alias')

  // Birth → data by name.
  await plc.send('spBv1.0/plant1/NBIRTH/press-3', { timestamp: T0, seq: 0, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 11 }, { name: 'Node Control/Rebirth', type: 'Boolean', value: false }] })
  await plc.send('spBv1.0/plant1/DBIRTH/press-3/spindle', { timestamp: Date.now(), seq: 1, metrics: [{ name: 'Spindle/Temperature', alias: 21, type: D, value: 60.5 }, { name: 'Cycle/Count', alias: 22, type: 'Int64', value: 1 }] })
  let r = await req.request5('plant1/inspect/3', {})
  t.equal(r.body.verdict, 'PASS')
  t.same(r.body.checks[0].values, { 'last(spindle_temp)': 60.5 })

  // Data by alias only.
  const sentAt = Date.now()
  await plc.send('spBv1.0/plant1/DDATA/press-3/spindle', { timestamp: Date.now(), seq: 2, metrics: [{ alias: 21, type: D, value: 91.25, timestamp: Date.now() }] })
  const scadaFrom = scada.messages.length
  r = await req.request5('plant1/inspect/3', {})
  t.equal(r.body.verdict, 'FAIL')
  t.same(r.body.checks[0].values, { 'last(spindle_temp)': 91.25 })

  // The verdict as DDATA of the press-temp device: aliases only, the right types, timestamp = inspection start.
  const verdictAlias = num(dbirth.payload!.metrics.find((m) => m.name === 'Verdict')!.alias)
  const ddata = await scada.next('spBv1.0/flashcheck/DDATA/fc-a/press-temp', { from: scadaFrom, pred: (m) => m.payload!.metrics.some((x) => num(x.alias) === verdictAlias && x.value === 'FAIL') })
  const byName = Object.fromEntries(ddata.payload!.metrics.map((m) => {
    t.equal(m.name, undefined, 'DDATA metrics carry aliases only')
    const b = aliasOf.get(num(m.alias))!
    return [b.name, [m.type, m.value, num(m.timestamp)]]
  }))
  t.equal(byName.Verdict[0], 'String')
  t.equal(byName.Verdict[1], 'FAIL')
  t.equal(byName.LatencyMs[0], 'Double')
  t.equal(byName.LatencyMs[1], r.body.latency_ms)
  t.same(byName.DeadlineMissed.slice(0, 2), ['Boolean', false])
  t.same(byName.ErrorCode.slice(0, 2), ['String', ''])
  t.same(byName.VerdictId.slice(0, 2), ['String', r.body.verdict_id ?? ''])
  const ts = byName.Verdict[2] as number
  t.ok(ts >= sentAt && ts <= ddata.at, `metric timestamp ${ts} is the inspection start (${sentAt}..${ddata.at})`)
  t.equal(ddata.qos, 0)
  t.equal(ddata.retain, false)
  const seqs = scada.messages.filter((m) => /^spBv1\.0\/flashcheck\/(NBIRTH|DBIRTH|DDATA|DDEATH|NDATA)\/fc-a/.test(m.topic)).map((m) => num(m.payload?.seq))
  t.same(seqs, seqs.map((_, i) => i % 256), 'seq counts up from the NBIRTH')

  // Int64 beyond 2^53 through a Sparkplug trigger: the verdict shows the exact value.
  const big = (2n ** 53n + 1n).toString()
  await plc.send('spBv1.0/plant1/DDATA/press-3/spindle', { timestamp: Date.now(), seq: 3, metrics: [{ alias: 22, type: 'Int64', value: TahuLong.fromString(big, false) }] })
  const [v] = await verdicts.waitFor(1)
  t.equal(v!.topic, 'plant1/verdicts/3')
  t.equal(v!.body.inspection, 'cycle-count')
  t.equal(v!.body.inputs.count, big)
  t.equal(v!.body.trigger_topic, 'spBv1.0/plant1/DDATA/press-3/spindle')
  t.equal(verdicts.replies.length, 1, 'the DBIRTH value of Cycle/Count triggered nothing')

  // Death (bdSeq matched) → samples are stale.
  await plc.send('spBv1.0/plant1/NDEATH/press-3', { timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: 11 }] })
  r = await req.request5('plant1/inspect/3', {})
  t.equal(r.body.verdict, 'ERROR')
  t.match(r.body.error.message, /no samples of spindle_temp/)

  // Data without a birth → one NCMD rebirth, not repeated within 5 s.
  const before = scada.messages.length
  await plc.send('spBv1.0/plant1/DDATA/press-3/spindle', { timestamp: Date.now(), seq: 4, metrics: [{ alias: 21, type: D, value: 50 }] })
  const ncmd = await scada.next('spBv1.0/plant1/NCMD/press-3', { from: before })
  t.equal(scada.metric(ncmd, 'Node Control/Rebirth')?.value, true)
  t.equal(scada.metric(ncmd, 'Node Control/Rebirth')?.type, 'Boolean')
  await plc.send('spBv1.0/plant1/NDATA/press-3', { timestamp: Date.now(), seq: 5, metrics: [] })
  r = await req.request5('plant1/inspect/3', {})
  t.equal(r.body.verdict, 'ERROR', 'data after the death was not used')
  t.equal(scada.count('spBv1.0/plant1/NCMD/press-3', before), 1, 'at most one rebirth request per node per 5 s')

  // A seq gap on another node → rebirth request too.
  await plc.send('spBv1.0/plant1/NBIRTH/press-4', { timestamp: Date.now(), seq: 0, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 1 }] })
  await plc.send('spBv1.0/plant1/NDATA/press-4', { timestamp: Date.now(), seq: 1, metrics: [] })
  await plc.send('spBv1.0/plant1/NDATA/press-4', { timestamp: Date.now(), seq: 3, metrics: [] })
  await scada.next('spBv1.0/plant1/NCMD/press-4', { from: before })
  const m = await counter(d, 'flashcheck_sparkplug_rebirth_requests_total')
  t.match(m, /reason="no_birth"} 1/)
  t.match(m, /reason="seq_gap"} 1/)
  t.match(await counter(d, 'flashcheck_sparkplug_rebirth_suppressed_total'), /} 1|total 1/)

  // Malformed protobuf on a Sparkplug topic: counted, logged, the daemon keeps serving.
  for (const bad of [Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from('{"rms":0.3}'), Buffer.alloc(0xff, 0xff)]) {
    await plc.client.publishAsync('spBv1.0/plant1/DDATA/press-3/spindle', bad, { qos: 1 })
  }
  await plc.client.publishAsync('spBv1.0/plant1/BOGUS/press-3', Buffer.from([1]), { qos: 1 })
  r = await req.request5('plant1/inspect/3', {})
  t.equal(r.body.inspection, 'press-temp', 'still serving')
  t.match(await counter(d, 'flashcheck_sparkplug_malformed_total'), /reason="payload"} 3/)
  t.match(await counter(d, 'flashcheck_sparkplug_malformed_total'), /reason="topic"} 1/)
  t.ok(d.logs.some((l) => /sparkplug message dropped: not a Sparkplug B payload/.test(String(l.msg)) && l.topic === 'spBv1.0/plant1/DDATA/press-3/spindle'))

  // NCMD Rebirth from a host → NBIRTH again with the same bdSeq, seq 0, and the DBIRTHs.
  const rb = scada.messages.length
  await scada.send('spBv1.0/flashcheck/NCMD/fc-a', { timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })
  const again = await scada.next('spBv1.0/flashcheck/NBIRTH/fc-a', { from: rb })
  t.equal(num(scada.metric(again, 'bdSeq')?.value), 0)
  t.equal(num(again.payload?.seq), 0)
  await scada.next('spBv1.0/flashcheck/DBIRTH/fc-a/press-temp', { from: rb })

  // A reload that adds an inspection births its device; one that removes it sends DDEATH.
  writeFileSync(join(rules, 'extra.yaml'), PRESS.replace('id: press-temp', 'id: extra').replace('plant1/inspect/{station}', 'plant1/extra/{station}'))
  const rl = scada.messages.length
  t.ok(await d.daemon.reload('test'))
  await scada.next('spBv1.0/flashcheck/DBIRTH/fc-a/extra', { from: rl })
  const ndata = await scada.next('spBv1.0/flashcheck/NDATA/fc-a', { from: rl })
  const revAlias = num(scada.metric(again, 'Node Info/Rules Revision')?.alias)
  t.same(ndata.payload!.metrics.filter((x) => num(x.alias) === revAlias).map((x) => x.value), [d.daemon.rulesRev], 'NDATA carries the new rules revision by alias')
  unlinkSync(join(rules, 'extra.yaml'))
  t.ok(await d.daemon.reload('test'))
  await scada.next('spBv1.0/flashcheck/DDEATH/fc-a/extra', { from: rl })
  t.equal(scada.count(/DBIRTH\/fc-a\/press-temp/, rl), 0, 'unchanged inspections are not reborn')
})

t.test('primary host: no NBIRTH until its STATE says online; offline ends the session, online again is a new birth', async (t) => {
  const broker = await Mosquitto.start()
  const rules = rulesDir({ 'press.yaml': PRESS })
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-sp-state-'))
  const scada = await SparkplugPeer.connect(broker.url)
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', rules, '--rules-watch', 'false', '--mqtt-reconnect-min-ms', '100', ...spArgs('fc-b', state, ['--sparkplug-primary-host', 'scada1'])]))
  t.teardown(async () => {
    await d.stop()
    await scada.end()
    await broker.stop()
    rmSync(rules, { recursive: true, force: true })
    rmSync(state, { recursive: true, force: true })
  })
  await new Promise((r) => setTimeout(r, 700))
  t.equal(scada.count(/NBIRTH\/fc-b/), 0, 'no NBIRTH while the primary host is not online')
  await scada.client.publishAsync('spBv1.0/STATE/scada1', JSON.stringify({ online: true, timestamp: Date.now() }), { qos: 1, retain: true })
  const b1 = await scada.next('spBv1.0/flashcheck/NBIRTH/fc-b')
  const bd1 = num(scada.metric(b1, 'bdSeq')?.value) as number
  const from = scada.messages.length
  await scada.client.publishAsync('spBv1.0/STATE/scada1', JSON.stringify({ online: false, timestamp: Date.now() }), { qos: 1, retain: true })
  const death = await scada.next('spBv1.0/flashcheck/NDEATH/fc-b', { from })
  t.equal(num(scada.metric(death, 'bdSeq')?.value), bd1, 'NDEATH carries the session bdSeq')
  await new Promise((r) => setTimeout(r, 400))
  t.equal(scada.count(/NBIRTH\/fc-b/, from), 0, 'no NBIRTH while the host is offline')
  await scada.client.publishAsync('spBv1.0/STATE/scada1', JSON.stringify({ online: true, timestamp: Date.now() }), { qos: 1, retain: true })
  const b2 = await scada.next('spBv1.0/flashcheck/NBIRTH/fc-b', { from })
  t.equal(num(scada.metric(b2, 'bdSeq')?.value), (bd1 + 1) % 256, 'the new session has the next bdSeq')
  await scada.client.publishAsync('spBv1.0/STATE/scada1', '', { qos: 1, retain: true })
})

t.test('daemon killed → NDEATH with the session bdSeq; restart → bdSeq incremented; clean stop → NDEATH too', async (t) => {
  const broker = await Mosquitto.start()
  const rules = rulesDir({ 'press.yaml': PRESS })
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-sp-state-'))
  const scada = await SparkplugPeer.connect(broker.url)
  const start = () => cliProcess(['run', '--mqtt-url', broker.url, '--rules-dir', rules, '--rules-watch', 'false', '--node-id', 'fc-c', '--log-level', 'info', ...spArgs('fc-c', state)], /sparkplug NBIRTH published/)
  let d = await start()
  t.teardown(async () => {
    d.proc.kill('SIGKILL')
    await scada.end()
    await broker.stop()
    rmSync(rules, { recursive: true, force: true })
    rmSync(state, { recursive: true, force: true })
  })
  const b1 = await scada.next('spBv1.0/flashcheck/NBIRTH/fc-c')
  const bd1 = num(scada.metric(b1, 'bdSeq')?.value) as number
  t.equal(bd1, 0, 'first session of a fresh state dir')
  let from = scada.messages.length
  d.proc.kill('SIGKILL')
  await d.exited
  const death = await scada.next('spBv1.0/flashcheck/NDEATH/fc-c', { from })
  t.equal(num(scada.metric(death, 'bdSeq')?.value), bd1, 'the Will carries the bdSeq of the NBIRTH')
  t.equal(death.retain, false)

  from = scada.messages.length
  d = await start()
  const b2 = await scada.next('spBv1.0/flashcheck/NBIRTH/fc-c', { from })
  t.equal(num(scada.metric(b2, 'bdSeq')?.value), bd1 + 1, 'bdSeq persisted in state.dir and incremented')
  from = scada.messages.length
  d.proc.kill('SIGTERM')
  t.equal(await d.exited, 0)
  const death2 = await scada.next('spBv1.0/flashcheck/NDEATH/fc-c', { from })
  t.equal(num(scada.metric(death2, 'bdSeq')?.value), bd1 + 1)
})

// record → replay round trip against a real mosquitto: the daemon answers with rules A while `flashcheck
// record` captures requests, signals and responses; replaying with a changed rule (B: torque limit 12.0 →
// 11.5) must report exactly the requests whose torque lies in (11.5, 12.0] as changed.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { cli, cliProcess } from '../helpers/cli.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const A = join(import.meta.dirname, '..', 'fixtures', 'ruletest', 'replay-a')
const B = join(import.meta.dirname, '..', 'fixtures', 'ruletest', 'replay-b')
const N = 40
const torque = (i: number) => Math.round((10 + i * 0.05) * 100) / 100
const CHANGED = Array.from({ length: N }, (_, i) => torque(i)).filter((x) => x > 11.5 && x <= 12.0).length

t.test('record → replay: a changed rule changes exactly the verdicts it should', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'flashcheck-record-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', A, '--rules-watch', 'false']))
  t.teardown(() => d.stop())
  const file = join(tmp, 'rec.jsonl')
  const rec = await cliProcess(['record', '--out', file, '--mqtt-url', broker.url, '--rules-dir', A, '--topics', 'flashcheck/inspect/#', 'plant/#', 'test/reply/#'], /Ctrl-C ends/)
  t.teardown(() => { if (rec.proc.exitCode === null) rec.proc.kill('SIGKILL') })
  const v5 = await Requester.connect(broker.url, 5)
  const v3 = await Requester.connect(broker.url, 4)
  t.teardown(async () => { await v5.end(); await v3.end() })

  for (let i = 0; i < 3; i++) await v5.client.publishAsync('plant/st1/spindle/vibration', JSON.stringify({ rms: 0.4 }), { qos: 1 })
  const verdicts: string[] = []
  for (let i = 0; i < N; i++) {
    await v5.client.publishAsync('plant/st1/spindle/vibration', JSON.stringify({ rms: 0.5 }), { qos: 1 })
    const body = { torque_nm: torque(i), angle_deg: 720 }
    const r = i % 2 === 0 ? await v5.request5('flashcheck/inspect/st1/torque', body) : await v3.request311('flashcheck/inspect/st1/torque', body)
    verdicts.push(r.body.verdict)
  }
  t.equal(verdicts.filter((v) => v === 'PASS').length, N, 'rules A pass every request')
  // The recorder hears the same responses; wait until the last one is in the file before stopping it.
  const lines = () => readFileSync(file, 'utf8').trim().split('\n').length
  for (let k = 0; k < 100 && lines() < 1 + 3 + 3 * N; k++) await new Promise((r) => setTimeout(r, 50))
  rec.proc.kill('SIGINT')
  t.equal(await rec.exited, 0)
  t.match(rec.output(), new RegExp(`recorded ${3 + 3 * N} messages to `))

  const header = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!)
  t.equal(header.rules_rev, d.daemon.rulesRev, 'the header names the rules revision')
  const first = JSON.parse(readFileSync(file, 'utf8').split('\n')[1]!)
  t.same(Object.keys(first).sort(), ['payload_b64', 'properties', 't_ms', 'topic'].filter((k) => k !== 'properties' || first.properties).sort())

  t.ok(CHANGED > 5, `${CHANGED} requests within the changed range`)
  const vsRecorded = await cli(['replay', file, '--rules-dir', B])
  t.equal(vsRecorded.code, 0, vsRecorded.stderr)
  t.equal(vsRecorded.stdout.trim().split('\n').at(-1), `replayed ${N} requests: ${N - CHANGED} same, ${CHANGED} changed`)
  t.match(vsRecorded.stdout, `torque-joint: ${N} verdicts, ${CHANGED} changed`)

  const vsDir = await cli(['replay', file, '--rules-dir', B, '--against', A, '--json'])
  t.equal(vsDir.code, 0, vsDir.stderr)
  const out = vsDir.stdout.trim().split('\n')
  t.equal(out.at(-1), `replayed ${N} requests: ${N - CHANGED} same, ${CHANGED} changed`)
  const report = JSON.parse(out[0]!)
  t.equal(report.changed.length, CHANGED)
  t.same(new Set(report.changed.map((c: any) => `${c.before.verdict}->${c.after.verdict}`)), new Set(['PASS->FAIL']))
  t.same(report.changed.map((c: any) => JSON.parse(Buffer.from(readFileSync(file, 'utf8').split('\n')[c.line - 1]!.match(/"payload_b64":"([^"]+)"/)![1]!, 'base64').toString()).torque_nm),
    Array.from({ length: N }, (_, i) => torque(i)).filter((x) => x > 11.5))

  const same = await cli(['replay', file, '--rules-dir', A, '--speed', '50'])
  t.equal(same.stdout.trim().split('\n').at(-1), `replayed ${N} requests: ${N} same, 0 changed`)
})

t.test('record --duration ends by itself with its count; bad usage exits 2', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'flashcheck-record-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const file = join(tmp, 'short.jsonl')
  const r = await cli(['record', '--out', file, '--duration', '1', '--mqtt-url', broker.url, '--rules-dir', A])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /recording flashcheck\/inspect\/# plant\/\+\/spindle\/vibration to /, 'the rules\' request and signal filters')
  t.match(r.stderr, `recorded 0 messages to ${file}`)
  t.equal(JSON.parse(readFileSync(file, 'utf8').trim()).flashcheck_recording, 1)
  t.equal((await cli(['record', '--mqtt-url', broker.url])).code, 2, 'no --out')
  t.equal((await cli(['replay', file, '--speed', 'fast'])).code, 2, 'bad --speed')
})

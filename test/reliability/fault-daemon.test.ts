// Fault injection on the daemon itself: it is killed (SIGKILL) five times under a persistent-session QoS 1
// load (160 requests/s) and started again with the same state directory. Requests queue in the broker for its
// kept session while it is down; those it had received but not acknowledged are redelivered; the audit journal
// (each verdict's row written before the verdict goes out) answers those it had answered with the stored
// verdict, so none is inspected twice. Run twice: daemon and requesters over MQTT 5 (response topic and
// correlation data in the properties), then over MQTT 3.1.1 (reply_to and correlation_id in the payload), where
// the PUBACK withheld until the verdict's row is written is what keeps a killed daemon's requests redelivered.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { cliProcess } from '../helpers/cli.js'
import { journalCounts } from '../helpers/journal.js'
import { LoadRun, sleep } from '../../harness/session-load.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'
// Two runs of about a minute each (five restarts of a process each), beyond the default per-file limit.
t.setTimeout(360_000)

for (const protocol of [5, 4] as const) t.test(`MQTT ${protocol === 5 ? '5' : '3.1.1'}: daemon killed (SIGKILL) and restarted five times under load: none lost, none inspected twice, each in the journal once`, { timeout: 240_000 }, async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-fault-'))
  const broker = await Mosquitto.start({ persistence: true })
  const start = () => cliProcess(['run', '--mqtt-url', broker.url, '--mqtt-protocol-version', String(protocol), '--rules-dir', RULES, '--rules-watch', 'false', '--node-id', 'fault', '--state-dir', state, '--log-level', 'info'], /connected to broker/)
  let d = await start()
  const load = new LoadRun(broker.url, TORQUE, { requesters: 4, ratePerRequester: 40, tag: `dkill${protocol}`, protocol })
  t.teardown(async () => { await load.end(); d.proc.kill('SIGKILL'); await broker.stop(); rmSync(state, { recursive: true, force: true }) })
  await load.connect()
  load.start()
  await sleep(1500)
  let restored = 0
  const kills: string[] = []
  for (let i = 0; i < 5; i++) {
    kills.push(new Date().toISOString())
    d.proc.kill('SIGKILL')
    await d.exited
    await sleep(500)
    d = await start()
    const m = /"requests":(\d+)[^\n]*restored from the audit journal/.exec(d.output())
    if (m) restored = Number(m[1])
    await sleep(1500)
  }
  await sleep(500)
  load.stop()
  const c = await load.drain(60_000)
  t.comment(`MQTT ${protocol}, daemon SIGKILL x5: sent ${c.sent}, answered ${c.answered}, answered twice ${c.answeredTwice}, lost ${c.lost}, identical copies redelivered by QoS 1 ${c.redelivered}`)
  t.ok(c.sent > 1000, `a real load: ${c.sent} requests`)
  t.equal(c.lost, 0, 'none lost: the broker kept them for the daemon session')
  // A request answered twice got the same bytes (same verdict_id) both times: a copy, not a second inspection.
  t.equal(c.answeredTwice, 0, 'none inspected twice')
  t.ok(restored > 0, `the redelivery memory came back from the journal (${restored} requests)`)
  // Read while the daemon runs (WAL readers do not wait for it): an answered request's row was written before its answer went out.
  const j = journalCounts(state, load)
  t.comment(`journal: ${j.rows} rows, answered requests missing ${j.missing}, in it twice ${j.duplicated}`)
  if (j.unansweredInJournal.length) t.comment(`unanswered but journaled: ${j.unansweredInJournal.slice(0, 10).join(' ')}; kills at ${kills.join(' ')}`)
  t.equal(j.missing, 0, 'every answered request is in the journal')
  t.equal(j.duplicated, 0, '... exactly once')
})

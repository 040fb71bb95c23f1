// Fault injection on the daemon itself: it is killed (SIGKILL) three times under a persistent-session QoS 1
// load and started again with the same state directory. Requests queue in the broker for its kept session
// while it is down; those it had received but not acknowledged are redelivered; the redelivery memory saved
// in state.dir keeps those it had answered from being answered again.
import t from 'tap'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { cliProcess } from '../helpers/cli.js'
import { LoadRun, sleep } from '../../harness/session-load.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'

t.test('daemon killed (SIGKILL) and restarted three times under load: none lost, (almost) none answered twice', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-fault-'))
  const broker = await Mosquitto.start({ persistence: true })
  const start = () => cliProcess(['run', '--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false', '--node-id', 'fault', '--state-dir', state, '--log-level', 'info'], /connected to broker/)
  let d = await start()
  const load = new LoadRun(broker.url, TORQUE, { requesters: 4, ratePerRequester: 40, tag: 'dkill' })
  t.teardown(async () => { await load.end(); d.proc.kill('SIGKILL'); await broker.stop(); rmSync(state, { recursive: true, force: true }) })
  await load.connect()
  load.start()
  await sleep(1500)
  let restored = 0
  for (let i = 0; i < 3; i++) {
    d.proc.kill('SIGKILL')
    await d.exited
    await sleep(500)
    d = await start()
    const m = /"entries":(\d+)[^\n]*redelivery memory restored/.exec(d.output())
    if (m) restored = Number(m[1])
    await sleep(1500)
  }
  await sleep(500)
  load.stop()
  const c = await load.drain(20_000)
  t.comment(`daemon SIGKILL x3: sent ${c.sent}, answered ${c.answered}, answered twice ${c.answeredTwice}, lost ${c.lost}, identical copies redelivered by QoS 1 ${c.redelivered}`)
  t.ok(c.sent > 1000, `a real load: ${c.sent} requests`)
  t.equal(c.lost, 0, 'none lost: the broker kept them for the daemon session')
  // Exactly once cannot survive every SIGKILL: when the kill cuts the socket after the broker has taken the
  // answer but before the request's PUBACK left (the kernel drops what was not sent), the broker redelivers a
  // request whose answer the daemon never saw acknowledged. Quiet runs give 0; a CPU-starved one gave 2 of 2240.
  t.ok(c.answeredTwice <= Math.ceil(c.sent * 0.002), `answered twice only in that window (${c.answeredTwice})`)
  t.ok(restored > 0, `the redelivery memory came back from state.dir (${restored} entries)`)
  t.ok(statSync(join(state, 'dedupe.bin')).size > 8, 'snapshot on disk')
})

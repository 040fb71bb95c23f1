// Fault injection against a real mosquitto with persistence: QoS 1 requests from persistent-session
// requesters while the broker is restarted ten times (SIGTERM), then while it is killed (SIGKILL). The daemon
// runs as its own process (the built CLI) with a kept session. Every request sent is accounted for:
// answered, answered twice (two different verdicts: the daemon inspected it twice) or lost.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { cliProcess } from '../helpers/cli.js'
import { journalCounts, type JournalCounts } from '../helpers/journal.js'
import { LoadRun, sleep, type Counts } from '../../harness/session-load.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'

async function startDaemon(url: string, stateDir: string) {
  return cliProcess(['run', '--mqtt-url', url, '--rules-dir', RULES, '--rules-watch', 'false', '--node-id', 'fault', '--state-dir', stateDir, '--mqtt-reconnect-min-ms', '50', '--mqtt-reconnect-max-ms', '250', '--log-level', 'info'], /connected to broker/)
}

function report(t: { comment(msg: string): void }, what: string, c: Counts): void {
  t.comment(`${what}: sent ${c.sent}, answered ${c.answered}, answered twice ${c.answeredTwice}, lost ${c.lost}, identical copies redelivered by QoS 1 ${c.redelivered}`)
}

/** A daemon with a state dir under 160 QoS 1 requests/s while its broker is stopped with `signal` `times` times. */
async function underBrokerStops(t: { teardown(fn: () => Promise<void>): void }, signal: 'SIGTERM' | 'SIGKILL', times: number, tag: string): Promise<{ c: Counts; daemonExit: number | null; j: JournalCounts }> {
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-fault-'))
  const broker = await Mosquitto.start({ persistence: true })
  const d = await startDaemon(broker.url, state)
  const load = new LoadRun(broker.url, TORQUE, { requesters: 4, ratePerRequester: 40, tag })
  t.teardown(async () => { await load.end(); d.proc.kill('SIGKILL'); await broker.stop(); rmSync(state, { recursive: true, force: true }) })
  await load.connect()
  load.start()
  await sleep(1000)
  for (let i = 0; i < times; i++) {
    await broker.stopProcess(signal)
    await sleep(300)
    await broker.startProcess()
    await sleep(1500)
  }
  await sleep(1000)
  load.stop()
  const c = await load.drain(20_000)
  return { c, daemonExit: d.proc.exitCode, j: journalCounts(state, load) }
}

t.test('broker restarted ten times (SIGTERM, persistence on) under load: none lost, none answered twice, each in the journal once', async (t) => {
  const { c, daemonExit, j } = await underBrokerStops(t, 'SIGTERM', 10, 'term')
  report(t, 'broker SIGTERM x10', c)
  t.comment(`journal: ${j.rows} rows, answered requests missing ${j.missing}, in it twice ${j.duplicated}`)
  t.equal(j.missing, 0, 'every answered request is in the journal')
  t.equal(j.duplicated, 0, '... exactly once')
  t.ok(c.sent > 1500, `a real load: ${c.sent} requests`)
  t.equal(c.lost, 0, 'none lost')
  t.equal(c.answeredTwice, 0, 'none answered twice')
  t.equal(daemonExit, null, 'the daemon kept running')
})

t.test('broker killed (SIGKILL) three times under load: the counts, and nothing answered twice', async (t) => {
  const { c, daemonExit } = await underBrokerStops(t, 'SIGKILL', 3, 'kill')
  report(t, 'broker SIGKILL x3', c)
  // What the broker had not saved is the broker's loss; the daemon must not add any of its own: every request
  // it received is answered (requester retries included), and never inspected twice.
  t.equal(c.answeredTwice, 0, 'none answered twice')
  t.ok(c.answered / c.sent > 0.95, `most answered despite the broker's losses (${c.answered}/${c.sent})`)
  t.equal(daemonExit, null, 'the daemon kept running')
})

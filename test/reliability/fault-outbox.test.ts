// The durable outbox, end to end: the daemon runs as its own process (the built CLI) with a state dir and a
// reason rule on a real decoder (a ~25M-parameter checkpoint, one thread, long prompts: about a second per
// verdict), against a real mosquitto with persistence. A batch of requests is queued at the decoder, the
// broker is stopped after the first verdict arrives, so the rest are decided while it is away and wait in the
// outbox (kept in the audit database). The daemon is then killed (SIGKILL) or stopped (SIGTERM) with the
// broker still down; the broker and then the daemon start again. The verdicts that waited arrive, in the
// order they were decided, each once, with the verdict_id they were journaled with: none is inspected twice.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import Database from 'better-sqlite3'
import { Mosquitto } from '../../harness/mosquitto.js'
import { sleep } from '../../harness/session-load.js'
import { cliProcess } from '../helpers/cli.js'
import { modelFixture, ruleDir, type ModelFixture } from '../helpers/model.js'

// Five restarts of processes and a few seconds of decoding per run.
t.setTimeout(300_000)

const TOPIC = 'flashcheck/inspect/st3/joint'
const N = 8

// The note makes each prompt long (hundreds of tokens), so that one verdict takes the decoder about a second.
const RULE = `id: slow-joint
request: flashcheck/inspect/{station}/joint
budget_ms: 120000
verdicts: [PASS, WARN, REWORK, FAIL]
inputs:
  torque: payload.torque_nm
  note: { from: payload.note, type: string }
checks:
  - { id: torque-in-spec, expr: "torque >= 10.0 && torque <= 12.0", on_fail: FAIL }
reason:
  prompt: "Screw joint: torque {torque} Nm. Operator note: {note}. Verdict?"
  system: "You are a quality inspector. Answer with one word."
  choices: [PASS, REWORK, FAIL]
  min_confidence: 0
  fallback: REWORK
`

interface Got {
  corr: string
  verdictId: string
  body: string
}

/** A persistent-session MQTT 5 requester: what arrives on its reply topic, in arrival order. */
async function requester(url: string, tag: string): Promise<{ client: MqttClient; got: Got[]; replyTo: string }> {
  const replyTo = `test/${tag}/reply`
  const client = mqtt.connect(url, { protocolVersion: 5, clientId: `${tag}-req`, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 100, connectTimeout: 3000, resubscribe: true })
  client.on('error', () => {}) // refused while the broker is away: mqtt.js reconnects
  const got: Got[] = []
  client.on('message', (_topic, payload, packet) => {
    const body = payload.toString()
    got.push({ corr: Buffer.from(packet.properties?.correlationData ?? []).toString(), verdictId: (JSON.parse(body) as { verdict_id: string }).verdict_id, body })
  })
  await new Promise<void>((resolve) => client.once('connect', () => resolve()))
  await client.subscribeAsync(replyTo, { qos: 1 })
  return { client, got, replyTo }
}

function count(db: Database.Database, table: 'verdicts' | 'outbox'): number {
  return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n
}

async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!pred() && Date.now() < end) await sleep(50)
  return pred()
}

let fx: ModelFixture
t.before(async () => { fx = await modelFixture({ preset: 'small' }) })
t.teardown(() => fx?.cleanup())

for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  t.test(`verdicts waiting for an absent broker survive a daemon ${signal}: sent in order, once, with their verdict_id`, async (t) => {
    const tag = `outbox-${signal.toLowerCase()}`
    const state = mkdtempSync(join(tmpdir(), 'flashcheck-outbox-'))
    const rules = ruleDir(fx, `rules-${tag}`, { 'joint.yaml': RULE })
    const broker = await Mosquitto.start({ persistence: true })
    const start = () => cliProcess(['run', '--mqtt-url', broker.url, '--rules-dir', rules, '--rules-watch', 'false', '--model-dir', fx.model, '--model-threads', '1',
      '--node-id', tag, '--state-dir', state, '--mqtt-reconnect-min-ms', '100', '--mqtt-reconnect-max-ms', '300', '--log-level', 'info'], /connected to broker/)
    let d = await start()
    const r = await requester(broker.url, tag)
    t.teardown(async () => { d.proc.kill('SIGKILL'); await r.client.endAsync(true); await broker.stop(); rmSync(state, { recursive: true, force: true }) })

    const note = Array.from({ length: 120 }, (_, i) => `bolt ${i * 7919 % 1000} seated at ${(i * 37) % 90} deg`).join('; ')
    const t0 = Date.now()
    for (let i = 0; i < N; i++) {
      await r.client.publishAsync(TOPIC, JSON.stringify({ torque_nm: 11, note: `${i}: ${note}` }), { qos: 1, properties: { responseTopic: r.replyTo, correlationData: Buffer.from(`${tag}-${i}`) } })
    }
    t.ok(await until(() => r.got.length >= 1, 60_000), 'the first verdict arrived')
    t.comment(`first verdict after ${Date.now() - t0} ms`)
    await broker.stopProcess('SIGTERM')

    // The rest are decided with the broker away: each journaled, then kept in the outbox.
    const db = new Database(join(state, 'audit.db'), { readonly: true })
    t.teardown(() => db.close())
    if (!t.ok(await until(() => count(db, 'verdicts') === N, 60_000), `all ${N} decided while the broker is away`)) t.comment(d.output())
    const before = r.got.length
    const pending = db.prepare('SELECT verdict_id AS id, payload FROM outbox ORDER BY seq').all() as { id: string; payload: string }[]
    t.comment(`${before} answered before the broker went, ${pending.length} waiting in the outbox`)
    t.ok(pending.length >= 3, `verdicts wait in the durable outbox (${pending.length})`)
    t.ok(pending.length >= N - before - 1 && pending.length <= N - before, 'the ones not answered (one may have been on the wire)')
    for (const p of pending) t.equal((JSON.parse(p.payload) as { verdict_id: string }).verdict_id, p.id, 'the row keeps the published bytes')

    d.proc.kill(signal)
    await d.exited
    if (signal === 'SIGTERM') t.match(d.output(), /kept in the audit journal/, 'a stop with verdicts waiting says where they are')
    t.equal(count(db, 'outbox'), pending.length, `still waiting after the ${signal}`)

    await broker.startProcess()
    t.ok(await until(() => r.client.connected, 10_000), 'the requester is back')
    d = await start()
    t.match(d.output(), new RegExp(`"outbox":${pending.length}[^\\n]*restored from the audit journal`), 'the outbox restored at start')
    if (!t.ok(await until(() => new Set(r.got.map((g) => g.corr)).size === N, 30_000), `all ${N} answered`)) t.comment(d.output(), r.got.map((g) => `${g.corr} ${g.verdictId}`))
    await sleep(1000) // late copies, if any, would arrive now

    const after = r.got.slice(before)
    const ids = pending.map((p) => p.id)
    t.same(after.filter((g) => ids.includes(g.verdictId)).map((g) => g.verdictId), ids, 'the waiting verdicts arrive in the order they were decided, each once')
    t.same(after.filter((g) => ids.includes(g.verdictId)).map((g) => g.body), pending.map((p) => p.payload), 'byte for byte as journaled')
    const byCorr = new Map<string, Set<string>>()
    for (const g of r.got) byCorr.set(g.corr, (byCorr.get(g.corr) ?? new Set()).add(g.verdictId))
    t.equal([...byCorr.values()].filter((s) => s.size > 1).length, 0, 'no request inspected twice')
    // QoS 1 is at least once: the broker may stop after forwarding a verdict but before reading the request's
    // PUBACK behind it. That request comes again and is answered again from the journal, the same bytes.
    const first = new Map<string, string>()
    const copies = r.got.filter((g) => first.has(g.corr) || (first.set(g.corr, g.body), false))
    t.ok(copies.every((c) => c.body === first.get(c.corr) && !ids.includes(c.verdictId)), 'a verdict comes again only byte for byte, and never one that waited in the outbox')
    t.equal(r.got.length - copies.length, N, 'each request answered')
    const journaled = db.prepare('SELECT verdict_id AS id FROM verdicts ORDER BY seq').all() as { id: string }[]
    t.equal(journaled.length, N, 'one journal row per request')
    t.same(new Set(r.got.map((g) => g.verdictId)), new Set(journaled.map((j) => j.id)), 'the answers are the journaled verdicts')
    t.ok(await until(() => count(db, 'outbox') === 0, 5000), 'the outbox is empty once the broker has them')
  })
}

// The journal's retention (by age, by bytes) and its durable outbox, on a real SQLite file.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Journal, type AuditRecord } from '../../daemon/audit/journal.js'
import { verdictId } from '../../daemon/audit/record.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { Publisher } from '../../daemon/service/publisher.js'

const DAY = 86_400_000

function dir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'flashcheck-retention-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

function rec(at: number, i: number, pad = ''): AuditRecord {
  const id = verdictId(at)
  const response = JSON.stringify({ verdict_id: id, ts: new Date(at).toISOString(), inspection: 'i', verdict: 'PASS', checks: [{ id: 'c', ok: true, note: pad }], inputs: {}, latency_ms: 0.1, deadline_missed: false, rules_rev: 'r', node: 'n', trace: `T-${i}` })
  return { verdict_id: id, trace: `T-${i}`, model_id: null, request_topic: 'q', response_topic: 'a', correlation: null, dedupe_key: `k${i}`, payload_sum: i, response }
}

async function flushed(j: Journal, recs: AuditRecord[]): Promise<void> {
  await new Promise<void>((resolve) => {
    let n = recs.length
    for (const r of recs) j.append(r, () => { if (--n === 0) resolve() })
  })
  // Long enough for an idle-priority thread on a loaded machine (it resolves as soon as the rows are in).
  await j.settled(30_000)
}

async function metric(m: Metrics, name: string, label?: string): Promise<number> {
  const s = await m.registry.getSingleMetricAsString(name)
  return [...s.matchAll(/^(\S+) (\S+)$/gm)].filter((x) => !label || x[1].includes(label)).reduce((a, x) => a + Number(x[2]), 0)
}

t.test('rows older than retentionDays go; younger ones stay', async (t) => {
  const m = new Metrics()
  const j = new Journal(dir(t), { enabled: true, retentionDays: 30, maxBytes: 1 << 30, sync: 'normal' }, createLogger('silent'), m)
  j.start()
  t.teardown(() => j.close())
  const now = Date.now()
  await flushed(j, [rec(now - 45 * DAY, 1), rec(now - 31 * DAY, 2), rec(now - 29 * DAY, 3), rec(now - 1000, 4)])
  j.prune(now)
  const db = new Database(j.file, { readonly: true })
  t.teardown(() => db.close())
  t.same((db.prepare('SELECT trace FROM verdicts ORDER BY seq').all() as { trace: string }[]).map((r) => r.trace), ['T-3', 'T-4'])
  t.equal(await metric(m, 'flashcheck_audit_pruned_total', 'age'), 2)
  t.same([...j.recentKeys(now - 60_000)].map((k) => k.key), ['k4'], 'redelivery keys of the last minute')
})

t.test('beyond maxBytes the oldest rows go first, and the data stays under the bound', async (t) => {
  const m = new Metrics()
  const max = 256 * 1024
  const j = new Journal(dir(t), { enabled: true, retentionDays: 400, maxBytes: max, sync: 'normal' }, createLogger('silent'), m)
  j.start()
  t.teardown(() => j.close())
  const now = Date.now()
  const recs = Array.from({ length: 1500 }, (_, i) => rec(now - 1500 + i, i, 'x'.repeat(400)))
  await flushed(j, recs)
  j.prune(now)
  const db = new Database(j.file, { readonly: true })
  t.teardown(() => db.close())
  const used = ((db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number)) * (db.pragma('page_size', { simple: true }) as number)
  t.ok(used <= max, `data ${used} bytes <= ${max}`)
  const left = db.prepare('SELECT trace FROM verdicts ORDER BY seq').all() as { trace: string }[]
  const pruned = await metric(m, 'flashcheck_audit_pruned_total', 'bytes')
  t.ok(pruned > 0 && left.length > 100, `${pruned} pruned, ${left.length} kept`)
  t.equal(pruned + left.length, 1500, 'every removal counted')
  t.equal(left.at(-1)!.trace, 'T-1499', 'the newest row kept')
  t.equal(left[0].trace, `T-${pruned}`, 'the oldest rows went')
})

t.test('durable outbox: verdicts waiting for the broker survive a restart, bounded, in order', async (t) => {
  const d = dir(t)
  const m = new Metrics()
  const j = new Journal(d, { enabled: true, retentionDays: 400, maxBytes: 1 << 30, sync: 'normal' }, createLogger('silent'), m)
  j.start()
  const limit = 3
  const p = new Publisher(() => undefined, {
    qos: 1, protocolVersion: 5, outboxSize: limit, closeKey: () => {},
    durable: { add: (id, topic, payload, cd, qos) => j.outboxAdd(id, topic, payload, cd, qos, limit), remove: (seq) => j.outboxRemove(seq) },
  }, m)
  for (let i = 0; i < 5; i++) p.send(`reply/${i}`, `{"n":${i}}`, p.replyOptions({ correlationData: Buffer.from([i]) }), undefined, `id-${i}`)
  t.equal(p.waiting, limit, 'in memory: bounded by limits.outboxSize')
  await j.close()
  const j2 = new Journal(d, { enabled: true, retentionDays: 400, maxBytes: 1 << 30, sync: 'normal' }, createLogger('silent'), m)
  j2.start()
  t.teardown(() => j2.close())
  const rows = j2.outboxPending()
  t.same(rows.map((r) => [r.topic, r.payload, [...r.correlation_data!], r.qos]), [2, 3, 4].map((i) => [`reply/${i}`, `{"n":${i}}`, [i], 1]), 'the newest ones, oldest first, with their correlation data')
  j2.outboxRemove(rows[0].seq)
  await new Promise((r) => setImmediate(r))
  await j2.settled(30_000)
  t.equal(j2.outboxPending().length, 2, 'sent ones leave')
})

t.test('durable outbox changes wait for no database lock: the ingest thread writes them, in order with the rows', async (t) => {
  const d = dir(t)
  const m = new Metrics()
  const j = new Journal(d, { enabled: true, retentionDays: 400, maxBytes: 1 << 30, sync: 'normal' }, createLogger('silent'), m)
  j.start()
  t.teardown(() => j.close())
  // Another writer holds the database (as the ingest thread does during its transaction, or a backup tool).
  const other = new Database(j.file)
  t.teardown(() => { if (other.open) other.close() })
  other.exec('BEGIN IMMEDIATE')
  const at = Date.now()
  const first = j.outboxAdd('id-1', 'reply/1', '{"n":1}', Buffer.from([1]), 1, 10)
  const second = j.outboxAdd('id-2', 'reply/2', '{"n":2}', undefined, 1, 10)
  t.type(first, 'number', 'kept: the change is spooled, not written on the event loop')
  t.ok(second! > first!, 'in order')
  j.outboxRemove(first!)
  const row = rec(at, 1)
  await new Promise<void>((resolve) => j.append(row, resolve))
  t.pass('a verdict of the same turns went out while the database was held')
  other.exec('ROLLBACK')
  other.close()
  await j.settled(10_000)
  t.same(j.outboxPending().map((r) => [r.seq, r.verdict_id, r.topic, r.payload, r.correlation_data, r.qos]), [[second, 'id-2', 'reply/2', '{"n":2}', null, 1]], 'added, the first removed again')
  t.equal(j.lookup('k1', 1, at)?.response, row.response, 'the verdict rows of the same turns are in too')
})

t.test('an ingest thread that dies is started again, and the rows spooled meanwhile reach the database', async (t) => {
  const m = new Metrics()
  const j = new Journal(dir(t), { enabled: true, retentionDays: 400, maxBytes: 1 << 30, sync: 'normal' }, createLogger('silent'), m)
  j.start()
  t.teardown(() => j.close())
  const now = Date.now()
  await flushed(j, [rec(now, 1), rec(now, 2)])
  // The thread exits as if it had crashed (not through IngestThread.stop or abandon, which mean it).
  const worker = (j as unknown as { ingest: { worker: { terminate(): Promise<number> } } }).ingest.worker
  await worker.terminate()
  // Verdicts keep going out while there is no thread: their rows wait in the spool.
  await new Promise<void>((resolve) => {
    let n = 3
    for (let i = 3; i <= 5; i++) j.append(rec(now, i), () => { if (--n === 0) resolve() })
  })
  await j.settled(10_000)
  const db = new Database(j.file, { readonly: true })
  t.teardown(() => db.close())
  t.same((db.prepare('SELECT trace FROM verdicts ORDER BY seq').all() as { trace: string }[]).map((r) => r.trace), ['T-1', 'T-2', 'T-3', 'T-4', 'T-5'])
  t.equal(await metric(m, 'flashcheck_audit_rows_total'), 5)
})

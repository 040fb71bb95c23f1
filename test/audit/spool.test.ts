// The journal's spool and its ingest into SQLite, on real files: lines written whole, segments finished and
// deleted only after a later one exists, the position kept with the rows (nothing ingested twice after a crash),
// a torn last line dropped, and schema-1 and schema-2 databases migrated with their rows intact.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import Database from 'better-sqlite3'
import { openReadOnly, openWritable } from '../../daemon/audit/db.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { Ingester, spoolBacklog } from '../../daemon/audit/ingest.js'
import { exportRows, recordOf, show } from '../../daemon/audit/query.js'
import { verdictId } from '../../daemon/audit/record.js'
import { nativeMapFile, outboxAddLine, outboxRemoveLine, SpoolWriter, segmentName, segments, spoolLine, type AuditRecord } from '../../daemon/audit/spool.js'
import { SCHEMA_2_VERDICTS } from '../../harness/audit-schema-2.js'

function dir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'flashcheck-spool-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

function rec(i: number, at = Date.now()): AuditRecord {
  const id = verdictId(at)
  const response = JSON.stringify({
    verdict_id: id, ts: new Date(at).toISOString(), inspection: 'torque', verdict: i % 3 ? 'PASS' : 'FAIL',
    checks: [{ id: 'in-spec', ok: i % 3 !== 0, value: 0.1 + 0.2, note: 'tab\there, newline\nthere, "quoted", ünïcode \u2028' }],
    inputs: { torque: 11.2 + i, serial: `SN-${i}` }, latency_ms: 0.25, deadline_missed: i === 4, rules_rev: 'r1', node: 'n1', trace: `SN-${i}`,
    ...(i === 5 ? { error: { code: 'BAD_INPUT', message: 'x' }, fallback: true, model: { status: 'ok', choice: 'PASS', confidence: 0.9 } } : {}),
  })
  return { verdict_id: id, trace: `SN-${i}`, model_id: i === 5 ? 'm1' : null, request_topic: 'in/torque', response_topic: `out/${i}`, correlation: (1000 + i).toString(16), dedupe_key: `out/${i}\u0000d${i}`, payload_sum: i, response }
}

/** A database file of an earlier schema, created by `ddl`. */
function olderDatabase(t: { teardown(fn: () => void): void }, ddl: string): { file: string; old: Database.Database } {
  const file = join(dir(t), 'audit.db')
  const old = new Database(file)
  old.pragma('journal_mode = WAL')
  old.exec(ddl)
  return { file, old }
}

/** What a migrated database must hold: schema 3 (other meta kept) and the indexes on the stored table. */
function assertSchema3(t: Test, db: Database.Database, writeErrors: string): void {
  t.same((db.prepare("SELECT v FROM meta WHERE k IN ('schema', 'write_errors') ORDER BY k").all() as { v: string }[]).map((r) => r.v), ['3', writeErrors], 'schema 3; other meta kept')
  t.same((db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'verdict_rows' ORDER BY name").all() as { name: string }[]).map((r) => r.name), ['verdicts_id', 'verdicts_trace'])
}

function ids(db: Database.Database): string[] {
  return (db.prepare('SELECT verdict_id FROM verdicts ORDER BY seq').all() as { verdict_id: string }[]).map((r) => r.verdict_id)
}

t.test('spooled rows go into the database as written; the derived columns are the response\'s own text', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  const w = new SpoolWriter(spoolDir, false)
  w.open()
  const recs = Array.from({ length: 6 }, (_, i) => rec(i))
  w.write(recs.slice(0, 4).map((r, i) => spoolLine(i + 1, r)).join(''))
  w.write(recs.slice(4).map((r, i) => spoolLine(i + 5, r)).join(''))
  t.same([...w.live], [w.segment, Buffer.byteLength(recs.map((r, i) => spoolLine(i + 1, r)).join(''))], 'the shared position: segment and bytes written')
  const db = openWritable(join(d, 'audit.db'), 'normal')
  t.teardown(() => db.close())
  const ing = new Ingester(db, spoolDir)
  t.teardown(() => ing.close())
  const r = ing.drain(undefined, w.live)
  t.same(r, { rows: 6, seq: 6 })
  t.same(ids(db), recs.map((x) => x.verdict_id), 'in order')
  for (const x of recs) {
    const stored = db.prepare('SELECT * FROM verdicts WHERE verdict_id = ?').get(x.verdict_id) as Record<string, unknown>
    const res = JSON.parse(x.response) as Record<string, unknown>
    t.equal(stored.response, x.response, 'the response byte for byte')
    t.equal(stored.checks, JSON.stringify(res.checks), 'checks: the text the daemon wrote')
    t.equal(stored.inputs, JSON.stringify(res.inputs))
    t.equal(stored.model, res.model ? JSON.stringify(res.model) : null)
    t.same([stored.ts, stored.node, stored.inspection, stored.verdict, stored.rules_rev, stored.latency_ms], [res.ts, res.node, res.inspection, res.verdict, res.rules_rev, res.latency_ms])
    t.equal(stored.error_code, (res.error as { code?: string } | undefined)?.code ?? null)
    t.equal(stored.deadline_missed, res.deadline_missed ? 1 : 0)
    t.equal(stored.fallback, res.fallback ? 1 : 0)
    t.same([stored.trace, stored.model_id, stored.request_topic, stored.response_topic, stored.correlation, stored.dedupe_key, stored.payload_sum],
      [x.trace, x.model_id, x.request_topic, x.response_topic, x.correlation, x.dedupe_key, x.payload_sum])
  }
  t.same(ing.drain(undefined, w.live), { rows: 0, seq: -1 }, 'nothing twice')
  w.close()
})

t.test('halted (a handover): the transaction ends early at a row boundary; a successor goes on from there, nothing lost or twice', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  const w = new SpoolWriter(spoolDir, false)
  w.open()
  const recs = Array.from({ length: 100 }, (_, i) => rec(i))
  w.write(recs.map((r, i) => spoolLine(i + 1, r)).join(''))
  const db = openWritable(join(d, 'audit.db'), 'normal')
  t.teardown(() => db.close())
  let halted = false
  const first = new Ingester(db, spoolDir, () => halted)
  halted = true
  const r = first.drain(undefined, w.live)
  first.close()
  t.same(r, { rows: 31, seq: 31 }, 'stopped after the first 31 rows (the flag is read every 32)')
  const next = new Ingester(db, spoolDir)
  t.teardown(() => next.close())
  t.same(next.drain(undefined, w.live), { rows: 69, seq: 100 }, 'the successor starts at the saved position')
  t.same(ids(db), recs.map((x) => x.verdict_id), 'all 100, in order, once')
  w.close()
})

t.test('segments: rotated by size, finished only once a later one exists, deleted once ingested; position survives a restart', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  const w = new SpoolWriter(spoolDir, false, undefined, 4096)
  w.open()
  const recs = Array.from({ length: 40 }, (_, i) => rec(i))
  for (let i = 0; i < 20; i++) w.write(spoolLine(i + 1, recs[i]))
  t.ok(segments(spoolDir).length >= 3, `rotated past 4 KiB: ${segments(spoolDir).length} segments`)
  const file = join(d, 'audit.db')
  let db = openWritable(file, 'normal')
  let ing = new Ingester(db, spoolDir)
  t.same(ing.drain(), { rows: 20, seq: 20 })
  t.same(segments(spoolDir), [w.segment], 'finished segments deleted, the one being written kept')
  // A restart: a new connection and ingester continue from the saved position.
  ing.close()
  db.close()
  for (let i = 20; i < 40; i++) w.write(spoolLine(i + 1, recs[i]))
  db = openWritable(file, 'normal')
  t.teardown(() => db.close())
  ing = new Ingester(db, spoolDir)
  t.teardown(() => ing.close())
  t.same(ing.drain(), { rows: 20, seq: 40 }, 'the rest, none again')
  t.same(ids(db), recs.map((x) => x.verdict_id))
  w.close()
})

t.test('the durable outbox\'s lines: kept in order as rows of their own seq, the oldest beyond the limit dropped, removals applied', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  const w = new SpoolWriter(spoolDir, false)
  w.open()
  const add = (seq: number, n: number, cd?: Buffer) => outboxAddLine(seq, { verdictId: `id-${n}`, topic: `reply/${n}`, payload: `{"n":${n},"text":"tab\there\nnewline (raw)"}`, correlationData: cd, qos: 1, limit: 3 })
  w.write([
    add(1, 1, Buffer.from([0xca, 0xfe])), spoolLine(2, rec(2)), add(3, 3), add(4, 4), add(5, 5),
    outboxRemoveLine(6, 4),
    // Lines a newer or older daemon could not have written: counted, not applied, and they block nothing.
    '[7,"outbox+","id-7","reply/7","one",null,3,"{}"]\t\n', '[8,"outbox-"]\t\n', '[9,"outbox?",1]\t\n',
    add(10, 10),
  ].join(''))
  const db = openWritable(join(d, 'audit.db'), 'normal')
  t.teardown(() => db.close())
  const ing = new Ingester(db, spoolDir)
  t.teardown(() => ing.close())
  let bad = 0
  t.same(ing.drain((s) => { bad += s.bad }, w.live), { rows: 1, seq: 10 }, 'one verdict row; the seq of the last line')
  t.equal(bad, 3, 'the three malformed lines counted')
  const rows = db.prepare('SELECT seq, verdict_id, topic, payload, correlation_data, qos FROM outbox ORDER BY seq').all() as { seq: number; verdict_id: string; topic: string; payload: string; correlation_data: Buffer | null; qos: number }[]
  t.same(rows.map((r) => [r.seq, r.verdict_id, r.topic, r.correlation_data, r.qos]), [[3, 'id-3', 'reply/3', null, 1], [5, 'id-5', 'reply/5', null, 1], [10, 'id-10', 'reply/10', null, 1]],
    'id-1 dropped by the limit of 3 when id-5 came, id-4 removed')
  t.equal(rows[0].payload, '{"n":3,"text":"tab\there\nnewline (raw)"}', 'the payload as it was given')
  w.close()
})

for (const mode of ['mapped', 'write()'] as const) {
  t.test(`${mode}: a torn last line (a write cut short) is dropped once the segment is finished; a line that does not parse is counted`, async (t) => {
    const d = dir(t)
    const spoolDir = join(d, 'spool')
    const w = new SpoolWriter(spoolDir, false, undefined, undefined, mode === 'mapped' ? nativeMapFile() : null)
    w.open()
    t.equal(w.mapped, mode === 'mapped')
    const first = w.segment
    w.write(spoolLine(1, rec(1)))
    const torn = 'not a row\n' + spoolLine(2, rec(2)).slice(0, 50)
    // What a process killed in the middle of the copy or the write() leaves: a mapped segment's zeros follow.
    const fd = openSync(join(spoolDir, segmentName(first)), 'r+')
    writeSync(fd, torn, w.live[1])
    closeSync(fd)
    const db = openWritable(join(d, 'audit.db'), 'normal')
    t.teardown(() => db.close())
    const ing = new Ingester(db, spoolDir)
    t.teardown(() => ing.close())
    const steps: { torn: number; bad: number }[] = []
    t.same(ing.drain((s) => steps.push({ torn: s.torn, bad: s.bad })), { rows: 1, seq: 1 })
    t.equal(steps.reduce((a, s) => a + s.bad, 0), 1, 'the bad line counted')
    t.ok(existsSync(join(spoolDir, segmentName(first))), 'the segment being written is not finished: its last line may still be on its way')
    t.equal(spoolBacklog(db, spoolDir), 50, 'doctor\'s backlog: the torn bytes only, not the zeros after them')
    // The writer moves on (as after a failed write): the torn tail is the end of a finished segment.
    const w2 = new SpoolWriter(spoolDir, false)
    w2.open()
    w2.write(spoolLine(3, rec(3)))
    steps.length = 0
    t.same(ing.drain((s) => steps.push({ torn: s.torn, bad: s.bad })), { rows: 1, seq: 3 })
    t.equal(steps.reduce((a, s) => a + s.torn, 0), 50, 'the torn 50 bytes dropped')
    t.notOk(existsSync(join(spoolDir, segmentName(first))), 'the finished segment deleted')
    t.equal((db.prepare('SELECT COUNT(*) AS n FROM verdicts').get() as { n: number }).n, 2)
    w.close()
    w2.close()
  })
}

t.test('a mapped segment: its disk reserved while written, read only up to its data, cut to the data when closed; a text that does not fit starts the next', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  const w = new SpoolWriter(spoolDir, false, undefined, 8192)
  w.open()
  t.ok(w.mapped, 'mapped (the addon is built)')
  const seg = w.segment
  const file = join(spoolDir, segmentName(seg))
  t.equal(statSync(file).size, 8192, 'preallocated')
  const lines = Array.from({ length: 4 }, (_, i) => spoolLine(i + 1, rec(i)))
  w.write(lines.join(''))
  const bytes = Buffer.byteLength(lines.join(''))
  t.same([...w.live], [seg, bytes])
  const db = openWritable(join(d, 'audit.db'), 'normal')
  t.teardown(() => db.close())
  t.equal(spoolBacklog(db, spoolDir), bytes, 'backlog: the data, not the reservation')
  const ing = new Ingester(db, spoolDir)
  t.teardown(() => ing.close())
  t.same(ing.drain(undefined, w.live), { rows: 4, seq: 4 })
  t.same(ing.drain(), { rows: 0, seq: -1 }, 'without the live position too: the zeros are not lines')
  // Longer than a whole segment: a segment of its own, made big enough.
  const big = spoolLine(5, { ...rec(5), response: JSON.stringify({ verdict_id: 'x', pad: 'p'.repeat(20_000) }) })
  w.write(big)
  t.equal(w.segment, seg + 1, 'the next segment')
  // The full one is unmapped and cut on a thread of its own: shortly, not necessarily by now.
  for (let i = 0; i < 500 && statSync(file).size !== bytes; i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(statSync(file).size, bytes, 'the full one cut to its data')
  t.ok(statSync(join(spoolDir, segmentName(seg + 1))).size > 20_000, 'the next one holds the long text')
  t.same(ing.drain(undefined, w.live), { rows: 1, seq: 5 })
  t.notOk(existsSync(file), 'the finished one deleted once ingested')
  w.close()
  t.equal(statSync(join(spoolDir, segmentName(seg + 1))).size, Buffer.byteLength(big), 'closed: cut to its data')
})

t.test('no room to reserve a mapped segment (a full disk): the segment is written with write(), and the reason is kept for the log', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  const enospc = 28
  const w = new SpoolWriter(spoolDir, false, undefined, undefined, () => enospc)
  w.open()
  t.notOk(w.mapped)
  t.match(w.unmapped, /^ENOSPC: mapping a spool segment /)
  w.write(spoolLine(1, rec(1)))
  t.equal(statSync(join(spoolDir, segmentName(w.segment))).size, w.live[1], 'written, nothing reserved')
  w.close()
})

t.test('a filesystem that does not promise reserved space (ramfs here) is not mapped: write() instead', async (t) => {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return t.plan(0, 'mounting a ramfs needs root on Linux')
  const d = dir(t)
  const mnt = join(d, 'ramfs')
  mkdirSync(mnt)
  if (spawnSync('mount', ['-t', 'ramfs', 'ramfs', mnt]).status !== 0) return t.plan(0, 'cannot mount a ramfs here')
  t.teardown(() => { spawnSync('umount', ['-l', mnt]) })
  const w = new SpoolWriter(join(mnt, 'spool'), false)
  w.open()
  t.notOk(w.mapped)
  t.match(w.unmapped, /its filesystem does not promise the space a mapped segment needs/)
  w.write(spoolLine(1, rec(1)))
  t.equal(statSync(join(mnt, 'spool', segmentName(w.segment))).size, w.live[1], 'written with write()')
  w.close()
})

t.test('audit.sync=full: every append is synced to the disk before it returns (msync when mapped, fdatasync with write())', async (t) => {
  if (spawnSync('strace', ['-V']).status !== 0) return t.plan(0, 'strace is not installed (test/run.sh installs it)')
  const built = pathToFileURL(join(PACKAGE_ROOT, 'dist', 'daemon', 'audit', 'spool.js')).href
  for (const mode of ['mapped', 'write()'] as const) {
    const spoolDir = join(dir(t), 'spool')
    const child = spawnSync('strace', ['-f', '-qq', '-e', 'trace=msync,fdatasync', process.execPath, '--input-type=module', '-e', `
      import { nativeMapFile, SpoolWriter, spoolLine } from ${JSON.stringify(built)}
      const w = new SpoolWriter(${JSON.stringify(spoolDir)}, true, undefined, undefined, ${mode === 'mapped' ? 'nativeMapFile()' : 'null'})
      w.open()
      if (w.mapped !== ${mode === 'mapped'}) process.exit(3)
      for (let i = 1; i <= 7; i++) w.write(spoolLine(i, ${JSON.stringify(rec(0))}))
      w.close()`], { encoding: 'utf8' })
    if (child.status !== 0) t.comment(child.stderr)
    t.equal(child.status, 0, `${mode}: the writer exited 0`)
    const calls = [...child.stderr.matchAll(/\b(msync|fdatasync)\(/g)].map((m) => m[1])
    t.same(calls, Array(7).fill(mode === 'mapped' ? 'msync' : 'fdatasync'), `${mode}: one sync per append`)
  }
})

t.test('a process killed right after appending to a mapped segment loses no line', async (t) => {
  const d = dir(t)
  const spoolDir = join(d, 'spool')
  // The built module (npm ci builds dist/), as the daemon runs it.
  const built = pathToFileURL(join(PACKAGE_ROOT, 'dist', 'daemon', 'audit', 'spool.js')).href
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { SpoolWriter, spoolLine } from ${JSON.stringify(built)}
    const w = new SpoolWriter(${JSON.stringify(spoolDir)}, false)
    w.open()
    if (!w.mapped) process.exit(3)
    for (let i = 1; i <= 200; i++) w.write(spoolLine(i, ${JSON.stringify(rec(0))}))
    process.kill(process.pid, 'SIGKILL')`], { encoding: 'utf8' })
  t.equal(child.signal, 'SIGKILL', `killed (${child.stderr})`)
  const db = openWritable(join(d, 'audit.db'), 'normal')
  t.teardown(() => db.close())
  const ing = new Ingester(db, spoolDir)
  t.teardown(() => ing.close())
  let torn = 0
  const r = ing.drain((s) => { torn += s.torn })
  t.same(r, { rows: 1, seq: 200 }, 'all 200 lines read (one verdict_id: the rest ignored as the same row)')
  t.equal(torn, 0, 'nothing torn')
})

t.test('a schema-1 database is migrated: same rows, same seq, same answers from audit show and export', async (t) => {
  const { file, old: v1 } = olderDatabase(t, `CREATE TABLE verdicts (seq INTEGER PRIMARY KEY, verdict_id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL, node TEXT NOT NULL, inspection TEXT, trace TEXT,
    verdict TEXT NOT NULL, error_code TEXT, checks TEXT NOT NULL, inputs TEXT NOT NULL, model TEXT, rules_rev TEXT, model_id TEXT, latency_ms REAL NOT NULL,
    deadline_missed INTEGER NOT NULL, fallback INTEGER NOT NULL, request_topic TEXT NOT NULL, response_topic TEXT NOT NULL, correlation TEXT, dedupe_key TEXT,
    payload_sum INTEGER, response TEXT NOT NULL);
    CREATE INDEX verdicts_trace ON verdicts(trace) WHERE trace IS NOT NULL; CREATE INDEX verdicts_dedupe ON verdicts(dedupe_key) WHERE dedupe_key IS NOT NULL;
    CREATE TABLE outbox (seq INTEGER PRIMARY KEY, verdict_id TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, correlation_data BLOB, qos INTEGER NOT NULL);
    CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '1'), ('write_errors', '3');`)
  const ins = v1.prepare(`INSERT INTO verdicts (seq, verdict_id, ts, node, inspection, trace, verdict, error_code, checks, inputs, model, rules_rev, model_id, latency_ms,
    deadline_missed, fallback, request_topic, response_topic, correlation, dedupe_key, payload_sum, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
  const recs = Array.from({ length: 8 }, (_, i) => rec(i, 1_750_000_000_000 + i * 1000))
  recs.forEach((x, i) => {
    const r = JSON.parse(x.response) as Record<string, any>
    ins.run(10 + i * 3, x.verdict_id, r.ts, r.node, r.inspection, x.trace, r.verdict, r.error?.code ?? null, JSON.stringify(r.checks), JSON.stringify(r.inputs),
      r.model ? JSON.stringify(r.model) : null, r.rules_rev, x.model_id, r.latency_ms, r.deadline_missed ? 1 : 0, r.fallback ? 1 : 0, x.request_topic, x.response_topic,
      x.correlation, x.dedupe_key, x.payload_sum, x.response)
  })
  const before = openReadOnly(file)
  const shownBefore = show(before, 'SN-3').map(recordOf)
  const exportedBefore = [...exportRows(before, {})].map(recordOf)
  before.close()
  v1.close()
  let migrated = -1
  const db = openWritable(file, 'normal', (n) => { migrated = n })
  t.teardown(() => db.close())
  t.equal(migrated, 8, 'every row moved')
  t.same((db.prepare('SELECT seq FROM verdicts ORDER BY seq').all() as { seq: number }[]).map((r) => r.seq), recs.map((_, i) => 10 + i * 3), 'seq kept')
  t.same(show(db, 'SN-3').map(recordOf), shownBefore, 'audit show: the same record')
  t.same([...exportRows(db, {})].map(recordOf), exportedBefore, 'audit export: the same records')
  assertSchema3(t, db, '3')
  db.close()
  const again = openWritable(file, 'normal', () => t.fail('migrated twice'))
  again.close()
})

t.test('a schema-2 database (generated columns) is migrated in place: same rows and answers, nothing computed on insert', async (t) => {
  const { file, old: v2 } = olderDatabase(t, `CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '2'), ('write_errors', '5');
    ${SCHEMA_2_VERDICTS}
    CREATE TABLE outbox (seq INTEGER PRIMARY KEY, verdict_id TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, correlation_data BLOB, qos INTEGER NOT NULL);
    CREATE INDEX outbox_verdict ON outbox(verdict_id);`)
  const ins = v2.prepare('INSERT INTO verdicts (seq, verdict_id, trace, model_id, request_topic, response_topic, correlation, dedupe_key, payload_sum, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
  const recs = Array.from({ length: 7 }, (_, i) => rec(i, 1_760_000_000_000 + i * 1000))
  recs.forEach((x, i) => ins.run(5 + i * 2, x.verdict_id, x.trace, x.model_id, x.request_topic, x.response_topic, x.correlation, x.dedupe_key, x.payload_sum, x.response))
  v2.prepare("INSERT INTO outbox (verdict_id, topic, payload, qos) VALUES (?, 'out/9', '{}', 1)").run(recs[6].verdict_id)
  const before = openReadOnly(file)
  const shownBefore = show(before, 'SN-2').map(recordOf)
  const exportedBefore = [...exportRows(before, {})].map(recordOf)
  t.equal(exportedBefore.length, 7)
  before.close()
  v2.close()
  const moved: [number, string][] = []
  const db = openWritable(file, 'normal', (n, from) => moved.push([n, from]))
  t.teardown(() => db.close())
  t.same(moved, [[7, '2']], 'every row, from schema 2')
  t.same((db.prepare('SELECT seq FROM verdicts ORDER BY seq').all() as { seq: number }[]).map((r) => r.seq), recs.map((_, i) => 5 + i * 2), 'seq kept')
  t.same(show(db, 'SN-2').map(recordOf), shownBefore, 'audit show: the same record')
  t.same([...exportRows(db, {})].map(recordOf), exportedBefore, 'audit export: the same records')
  const columns = (db.prepare('SELECT name, hidden FROM pragma_table_xinfo(?)').all('verdict_rows') as { name: string; hidden: number }[])
  t.same(columns.map((c) => c.name), ['seq', 'verdict_id', 'trace', 'model_id', 'request_topic', 'response_topic', 'correlation', 'dedupe_key', 'payload_sum', 'response'], 'the stored columns only: no generated ones')
  t.same((db.prepare("SELECT type FROM sqlite_master WHERE name = 'verdicts'").get() as { type: string }).type, 'view', 'readers query the view')
  assertSchema3(t, db, '5')
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n, 1, 'the outbox kept')
  // New rows go on after the old ones.
  const spoolDir = join(file, '..', 'spool')
  const w = new SpoolWriter(spoolDir, false)
  w.open()
  const more = rec(20)
  w.write(spoolLine(1, more))
  const ing = new Ingester(db, spoolDir)
  t.same(ing.drain(undefined, w.live), { rows: 1, seq: 1 })
  ing.close()
  w.close()
  t.same(ids(db), [...recs.map((x) => x.verdict_id), more.verdict_id])
  db.close()
  const again = openWritable(file, 'normal', () => t.fail('migrated twice'))
  again.close()
})

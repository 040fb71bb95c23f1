// The ingest thread yields the CPU: it runs under SCHED_IDLE (read back from /proc, the kernel's own account of
// each thread), and when every core is kept busy for long enough that rows wait more than STARVED_MS, the
// journal replaces it with a thread at nice 10, and every row still reaches the database once.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import { STARVED_MS } from '../../daemon/audit/ingest-thread.js'
import { Journal } from '../../daemon/audit/journal.js'
import { verdictId } from '../../daemon/audit/record.js'
import type { AuditRecord } from '../../daemon/audit/spool.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Metrics } from '../../daemon/metrics/metrics.js'
import { schedOf } from '../../harness/proc.js'

const linux = process.platform === 'linux'

/** Policy (0 SCHED_OTHER, 5 SCHED_IDLE) and nice of each thread of this process, from /proc/self/task/N/stat. */
function threads(): { tid: number; policy: number; nice: number }[] {
  const out: { tid: number; policy: number; nice: number }[] = []
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      out.push({ tid: Number(tid), ...schedOf(`/proc/self/task/${tid}/stat`) })
    } catch {
      // the thread exited meanwhile
    }
  }
  return out
}

function rec(i: number): AuditRecord {
  const id = verdictId(Date.now())
  const response = JSON.stringify({ verdict_id: id, ts: new Date().toISOString(), inspection: 'torque', verdict: 'PASS', checks: [{ id: 'in-spec', ok: true }], inputs: { torque: 11 + (i % 100) / 100, serial: `SN-${i}` }, latency_ms: 0.2, deadline_missed: false, rules_rev: 'r1', node: 'n1' })
  return { verdict_id: id, trace: `SN-${i}`, model_id: null, request_topic: 'in/torque', response_topic: `out/${i}`, correlation: i.toString(16), dedupe_key: null, payload_sum: i, response }
}

function journalIn(t: { teardown(fn: () => unknown): void }, logs: Record<string, unknown>[]): { j: Journal; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-ingest-prio-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sink = new Writable({ write(c, _e, cb) { for (const l of String(c).split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>); cb() } })
  const j = new Journal(dir, { enabled: true, retentionDays: 400, maxBytes: 1 << 30, sync: 'normal' }, createLogger('debug', sink), new Metrics())
  j.start()
  t.teardown(() => j.close())
  return { j, dir }
}

async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  return pred()
}

t.test('the ingest thread runs under SCHED_IDLE; the event loop does not', { skip: !linux && 'Linux scheduling policies' }, async (t) => {
  const logs: Record<string, unknown>[] = []
  const before = new Set(threads().map((x) => x.tid))
  const { j } = journalIn(t, logs)
  t.ok(await until(() => j.ingestPriority !== undefined, 10_000), 'the thread said how it runs')
  t.equal(j.ingestPriority, 'idle')
  const fresh = threads().filter((x) => !before.has(x.tid))
  t.ok(fresh.some((x) => x.policy === 5), `a new thread is under SCHED_IDLE (${JSON.stringify(fresh)})`)
  t.equal(threads().find((x) => x.tid === process.pid)?.policy, 0, 'the main thread stays SCHED_OTHER')
  t.ok(logs.some((l) => l.msg === 'audit ingest thread started' && l.priority === 'idle'), 'logged at debug')
})

t.test('starved on busy cores, the ingest thread is replaced by one at nice 10 and no row is lost or doubled', { skip: !linux && 'Linux scheduling policies' }, async (t) => {
  const logs: Record<string, unknown>[] = []
  const { j, dir } = journalIn(t, logs)
  t.ok(await until(() => j.ingestPriority === 'idle', 10_000), 'starts under SCHED_IDLE')
  // One busy process per core at normal priority: a SCHED_IDLE thread gets next to no time.
  const burners: ChildProcess[] = []
  for (let i = 0; i < availableParallelism(); i++) burners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }))
  const stopBurners = () => { for (const b of burners) b.kill('SIGKILL') }
  t.teardown(stopBurners)
  await new Promise((r) => setTimeout(r, 200))

  let n = 0
  const appendSome = () => { for (let k = 0; k < 40; k++) j.append(rec(n++), () => {}) }
  const warned = () => logs.some((l) => l.msg === 'audit ingest thread starved at idle priority; it runs at nice 10 from now on')
  const end = Date.now() + 20_000
  while (!warned() && Date.now() < end) {
    appendSome()
    await new Promise((r) => setTimeout(r, 10))
  }
  t.ok(warned(), `the starvation noticed (rows waiting over ${STARVED_MS} ms; ${n} rows written)`)
  const w = logs.find((l) => typeof l.lag_ms === 'number')
  t.ok(w !== undefined && (w.lag_ms as number) >= STARVED_MS, `the log says how long rows waited (${String(w?.lag_ms)} ms)`)
  t.ok(await until(() => j.ingestPriority === 'nice', 30_000), 'the successor runs at a nice increment')
  t.ok(await until(() => threads().some((x) => x.nice === 10 && x.policy === 0), 5000), 'a thread at nice 10 (SCHED_OTHER) now')
  // More rows with the cores still busy: the successor keeps up.
  for (let k = 0; k < 5; k++) { appendSome(); await new Promise((r) => setTimeout(r, 10)) }
  await j.settled(10_000)
  stopBurners()
  await j.close()

  const db = new Database(join(dir, 'audit.db'), { readonly: true })
  t.teardown(() => db.close())
  const c = db.prepare('SELECT COUNT(*) AS rows, COUNT(DISTINCT verdict_id) AS ids FROM verdicts').get() as { rows: number; ids: number }
  t.same(c, { rows: n, ids: n }, `all ${n} rows in the database, each once`)
})

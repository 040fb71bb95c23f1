// The verdict journal: one row per published verdict in <state.dir>/audit.db (SQLite, WAL).
//
// Rows are queued by the reply stage and written in one transaction per event-loop turn (setImmediate), so a
// burst of verdicts costs one commit; each verdict is published only after its row is written (a write, not
// an fsync unless audit.sync=full: a killed process does not lose the page cache). That order is what makes a
// redelivered request findable after a SIGKILL. A failing disk never holds verdicts back: the batch is
// published anyway, the failure counted and logged at most once a minute.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Statement } from 'better-sqlite3'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import { AUDIT_FILE, isCorruption, lowerId, moveAside, openWritable, type Db } from './db.js'

export interface AuditConfig {
  enabled: boolean
  retentionDays: number
  maxBytes: number
  sync: 'normal' | 'full'
}

/** What the journal keeps of one verdict. */
export interface AuditRecord {
  verdict_id: string
  ts: string
  node: string
  inspection: string | null
  trace: string | null
  verdict: string
  error_code: string | null
  checks: string
  inputs: string
  model: string | null
  rules_rev: string | null
  model_id: string | null
  latency_ms: number
  deadline_missed: 0 | 1
  fallback: 0 | 1
  request_topic: string
  response_topic: string
  correlation: string | null
  dedupe_key: string | null
  payload_sum: number | null
  response: string
}

/** A verdict held while the broker is away (the durable outbox). */
export interface OutboxRow {
  seq: number
  verdict_id: string
  topic: string
  payload: string
  correlation_data: Buffer | null
  qos: number
}

/** Retention runs this often, and once at start. */
const PRUNE_MS = 60_000
/** Rows removed per statement while pruning, so a large backlog does not hold the event loop. */
const PRUNE_CHUNK = 5000
const ERROR_LOG_MS = 60_000
const REOPEN_MS = 60_000

export class Journal {
  private db?: Db
  private writeBatch?: (rows: AuditRecord[]) => void
  private lookupStmt?: Statement
  private queue: AuditRecord[] = []
  private callbacks: (() => void)[] = []
  private scheduled = false
  private pruneTimer?: NodeJS.Timeout
  private reopenTimer?: NodeJS.Timeout
  private lastErrorLog = 0
  private suppressed = 0
  readonly file: string
  /** Write failures since start (also the metric); the last one's message. */
  writeErrors = 0
  lastError?: string
  private lastErrorAt?: string
  /** writeErrors as last recorded in the database's meta table (read by `flashcheck doctor`). */
  private recordedErrors = 0

  constructor(dir: string, private readonly cfg: AuditConfig, private readonly log: Logger, private readonly metrics: Metrics) {
    this.file = join(dir, AUDIT_FILE)
  }

  /** True while rows are being written. */
  get open(): boolean {
    return this.db !== undefined
  }

  /** Opens the database (moving a corrupt one aside) and starts retention. Never throws: a journal that cannot open retries every minute. */
  start(): void {
    this.tryOpen()
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_MS)
    this.pruneTimer.unref()
  }

  private tryOpen(): boolean {
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o750 })
      try {
        this.db = openWritable(this.file, this.cfg.sync)
      } catch (e) {
        if (!isCorruption(e)) throw e
        const dest = moveAside(this.file)
        this.log.error({ file: this.file, moved_to: dest, err: (e as Error).message }, 'audit database is corrupt; moved aside, starting a new one')
        this.db = openWritable(this.file, this.cfg.sync)
      }
      const db = this.db
      // Positional parameters and one transaction function per connection: the write path's own cost (bench/audit/write).
      const insert = db.prepare(`INSERT INTO verdicts (verdict_id, ts, node, inspection, trace, verdict, error_code, checks, inputs, model, rules_rev, model_id,
        latency_ms, deadline_missed, fallback, request_topic, response_topic, correlation, dedupe_key, payload_sum, response)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      this.writeBatch = db.transaction((rows: AuditRecord[]) => {
        for (const r of rows) {
          insert.run(r.verdict_id, r.ts, r.node, r.inspection, r.trace, r.verdict, r.error_code, r.checks, r.inputs, r.model, r.rules_rev, r.model_id,
            r.latency_ms, r.deadline_missed, r.fallback, r.request_topic, r.response_topic, r.correlation, r.dedupe_key, r.payload_sum, r.response)
        }
        if (this.writeErrors !== this.recordedErrors) this.recordErrors(db)
      })
      clearTimeout(this.reopenTimer)
      this.reopenTimer = undefined
      this.log.info({ file: this.file, sync: this.cfg.sync }, 'audit journal open')
      this.prune()
      return true
    } catch (e) {
      this.db = undefined
      this.lookupStmt = undefined
      this.failed(e, 'opening the audit database failed; verdicts go out unjournaled')
      this.reopenTimer ??= setTimeout(() => { this.reopenTimer = undefined; if (!this.db && !this.closed) this.tryOpen() }, REOPEN_MS)
      this.reopenTimer.unref()
      return false
    }
  }

  private closed = false

  /**
   * Queues a verdict's row; `then` (the publish) runs once it is written, or at once when it cannot be.
   * Rows of one event-loop turn share a transaction.
   */
  append(rec: AuditRecord, then: () => void): void {
    if (!this.db) {
      then()
      return
    }
    this.queue.push(rec)
    this.callbacks.push(then)
    this.metrics.auditQueueDepth.set(this.queue.length)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  /** Writes the queued rows in one transaction, then runs their callbacks in order. */
  readonly flush = (): void => {
    this.scheduled = false
    const rows = this.queue
    const cbs = this.callbacks
    if (rows.length === 0) return
    this.queue = []
    this.callbacks = []
    const db = this.db
    if (db) {
      try {
        this.writeBatch!(rows)
        this.metrics.auditRows.inc(rows.length)
      } catch (e) {
        this.failed(e, 'audit journal write failed; verdicts still go out')
        if (isCorruption(e)) this.reopenAfterCorruption()
      }
    }
    this.metrics.auditQueueDepth.set(0)
    for (const cb of cbs) {
      try {
        cb()
      } catch (e) {
        this.log.error({ err: e }, 'internal error while publishing a journaled verdict')
      }
    }
  }

  /** Failures survive in the database once it writes again, for `flashcheck doctor` to show. */
  private recordErrors(db: Db): void {
    const up = db.prepare('INSERT INTO meta(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v')
    const before = Number((db.prepare("SELECT v FROM meta WHERE k = 'write_errors'").get() as { v: string } | undefined)?.v ?? 0)
    up.run('write_errors', String(before + this.writeErrors - this.recordedErrors))
    up.run('last_error', `${this.lastErrorAt ?? ''} ${this.lastError ?? ''}`.trim())
    this.recordedErrors = this.writeErrors
  }

  private reopenAfterCorruption(): void {
    try { this.db?.close() } catch { /* closing a damaged file may fail too */ }
    this.db = undefined
    this.lookupStmt = undefined
    try {
      const dest = moveAside(this.file)
      this.log.error({ file: this.file, moved_to: dest }, 'audit database is corrupt; moved aside, starting a new one')
    } catch (e) {
      this.failed(e, 'moving the corrupt audit database aside failed')
    }
    this.tryOpen()
  }

  private failed(e: unknown, msg: string): void {
    this.writeErrors++
    this.lastError = (e as Error).message
    this.lastErrorAt = new Date().toISOString()
    this.metrics.auditWriteErrors.inc()
    const now = Date.now()
    if (now - this.lastErrorLog >= ERROR_LOG_MS) {
      this.log.error({ file: this.file, err: this.lastError, code: (e as { code?: string }).code, errors_total: this.writeErrors, suppressed: this.suppressed }, msg)
      this.lastErrorLog = now
      this.suppressed = 0
    } else this.suppressed++
  }

  /**
   * The published response of an answered request (redelivery), when its row is written; `waiting` when that
   * verdict is still in the durable outbox, which sends it (again, if the broker never acknowledged it).
   */
  lookup(key: string, payloadSum: number): { response: string; waiting: boolean } | undefined {
    if (!this.db) return undefined
    try {
      this.lookupStmt ??= this.db.prepare(`SELECT response, payload_sum, EXISTS (SELECT 1 FROM outbox o WHERE o.verdict_id = v.verdict_id) AS waiting
        FROM verdicts v WHERE dedupe_key = ? ORDER BY seq DESC LIMIT 1`)
      const row = this.lookupStmt.get(key) as { response: string; payload_sum: number; waiting: 0 | 1 } | undefined
      return row && row.payload_sum === payloadSum ? { response: row.response, waiting: row.waiting === 1 } : undefined
    } catch (e) {
      this.failed(e, 'audit journal read failed')
      return undefined
    }
  }

  /** Keys of requests answered since `sinceMs` (epoch), oldest first: the redelivery memory after a restart. */
  *recentKeys(sinceMs: number): Generator<{ key: string; sum: number; at: number }> {
    if (!this.db) return
    const it = this.db.prepare('SELECT dedupe_key AS key, payload_sum AS sum, ts FROM verdicts WHERE verdict_id >= ? AND dedupe_key IS NOT NULL ORDER BY seq').iterate(lowerId(sinceMs)) as IterableIterator<{ key: string; sum: number; ts: string }>
    for (const r of it) yield { key: r.key, sum: r.sum, at: Date.parse(r.ts) }
  }

  /** Retention: rows older than retentionDays, then the oldest rows while the data exceeds maxBytes. */
  prune(now = Date.now()): void {
    const db = this.db
    if (!db) return
    try {
      const bound = lowerId(now - this.cfg.retentionDays * 86_400_000)
      const byAge = db.prepare(`DELETE FROM verdicts WHERE seq IN (SELECT seq FROM verdicts WHERE verdict_id < ? ORDER BY seq LIMIT ${PRUNE_CHUNK})`)
      for (let n = byAge.run(bound).changes; n > 0; n = byAge.run(bound).changes) this.metrics.auditPruned.inc({ reason: 'age' }, n)
      const pageSize = db.pragma('page_size', { simple: true }) as number
      const used = () => ((db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number)) * pageSize
      let over = used() - this.cfg.maxBytes
      if (over <= 0) return
      const stats = db.prepare('SELECT COUNT(*) AS n FROM verdicts').get() as { n: number }
      const oldest = db.prepare('DELETE FROM verdicts WHERE seq IN (SELECT seq FROM verdicts ORDER BY seq LIMIT ?)')
      while (over > 0 && stats.n > 0) {
        // Rows to drop, from the average row size; a little extra so the loop ends in a few rounds.
        const avg = Math.max(64, used() / stats.n)
        const n = Math.min(stats.n, Math.max(1, Math.ceil((over / avg) * 1.1)))
        const removed = oldest.run(n).changes
        if (removed === 0) break
        stats.n -= removed
        this.metrics.auditPruned.inc({ reason: 'bytes' }, removed)
        over = used() - this.cfg.maxBytes
      }
    } catch (e) {
      this.failed(e, 'audit retention failed')
    }
  }

  // ── durable outbox ───────────────────────────────────────────────────────────────────────────────────

  /** Keeps a verdict waiting for the broker; the oldest beyond `limit` go. Returns the row's seq. */
  outboxAdd(verdictId: string, topic: string, payload: string, correlationData: Buffer | undefined, qos: number, limit: number): number | undefined {
    if (!this.db) return undefined
    try {
      const seq = Number(this.db.prepare('INSERT INTO outbox (verdict_id, topic, payload, correlation_data, qos) VALUES (?, ?, ?, ?, ?)').run(verdictId, topic, payload, correlationData ?? null, qos).lastInsertRowid)
      this.db.prepare('DELETE FROM outbox WHERE seq <= ?').run(seq - limit)
      return seq
    } catch (e) {
      this.failed(e, 'audit outbox write failed')
      return undefined
    }
  }

  outboxRemove(seq: number): void {
    try {
      this.db?.prepare('DELETE FROM outbox WHERE seq = ?').run(seq)
    } catch (e) {
      this.failed(e, 'audit outbox write failed')
    }
  }

  /** Verdicts left waiting by the previous process, oldest first. */
  outboxPending(): OutboxRow[] {
    if (!this.db) return []
    try {
      return this.db.prepare('SELECT seq, verdict_id, topic, payload, correlation_data, qos FROM outbox ORDER BY seq').all() as OutboxRow[]
    } catch (e) {
      this.failed(e, 'audit outbox read failed')
      return []
    }
  }

  /** Writes what is queued and closes the database. */
  close(): void {
    this.closed = true
    clearInterval(this.pruneTimer)
    clearTimeout(this.reopenTimer)
    this.flush()
    try { this.db?.close() } catch { /* nothing left to save */ }
    this.db = undefined
    this.lookupStmt = undefined
  }
}

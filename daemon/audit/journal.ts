// The verdict journal: one row per published verdict in <state.dir>/audit.db (SQLite, WAL).
//
// A verdict's row is appended to the spool (spool.ts: a copy into a mapped segment, or one write() per
// event-loop turn), and the verdict goes out only after that: a killed process does not lose the page cache, so
// a redelivered request finds its verdict after a SIGKILL. An ingest thread (ingest-worker.ts, supervised by
// ingest-thread.ts) moves the spool into the database every INGEST_MS, or at once for a waiting settled(), and
// runs retention; nothing of SQLite's write path runs on the event loop. Until a row is in the database a redelivery waits for it (`settled`). A failing disk never holds
// verdicts back: they go out anyway, the failure counted and logged at most once a minute.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Statement } from 'better-sqlite3'
import type { Logger } from '../log/logger.js'
import type { Metrics } from '../metrics/metrics.js'
import { AUDIT_FILE, isCorruption, lowerId, moveAside, openWritable, type Db } from './db.js'
import { Ingester } from './ingest.js'
import { IngestThread } from './ingest-thread.js'
import type { IngestMessage, IngestPriority } from './ingest-worker.js'
import { prune } from './retention.js'
import { outboxAddLine, outboxRemoveLine, SPOOL_DIR, SpoolWriter, spoolLine, type AuditRecord } from './spool.js'

export type { AuditRecord } from './spool.js'

export interface AuditConfig {
  enabled: boolean
  retentionDays: number
  maxBytes: number
  sync: 'normal' | 'full'
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

/**
 * The worker looks for new spool lines this often: one transaction per interval's rows. A thread woken less
 * often costs less per row (at 2,000 verdicts/s on a 2-core machine: ~12 µs per verdict, against ~18 at 50 ms:
 * fewer wake-ups into cold caches); whoever waits for a row (settled(): a redelivery's lookup, the status
 * page's history) has the worker ingest at once.
 */
const INGEST_MS = 250
/** Retention runs this often in the worker, and once at open (before anything is served). */
const PRUNE_MS = 60_000
const ERROR_LOG_MS = 60_000
const REOPEN_MS = 60_000
/** Failures are handed to the worker for the database (for `flashcheck doctor`) at most this often. */
const RECORD_MS = 1000
export class Journal {
  /** The journal's reading connection (lookups, restart, outbox, recorded failures); the worker has its own. */
  private db?: Db
  private spool?: SpoolWriter
  private ingest?: IngestThread
  private lookupStmt?: Statement
  private lines: string[] = []
  private callbacks: (() => void)[] = []
  private scheduled = false
  /** settled() was called while lines waited for the flush: the worker is nudged once they are written. */
  private nudge = false
  /** seq of the last line appended; numbering starts from the clock so that it grows across restarts. */
  private seq = Date.now() * 1000
  /** seq of the last line the worker put in the database. */
  private ingested = this.seq
  private waiters: { seq: number; resolve: () => void }[] = []
  private reopenTimer?: NodeJS.Timeout
  private lastErrorLog = 0
  private suppressed = 0
  private reportTimer?: NodeJS.Timeout
  private closed = false
  readonly file: string
  readonly spoolDir: string
  /** Write failures since start (also the metric); the last one's message. */
  writeErrors = 0
  lastError?: string
  private lastErrorAt?: string
  /** writeErrors as last handed to the worker for the database's meta table (read by `flashcheck doctor`). */
  private recordedErrors = 0

  /** `intervalMs`: how often the ingest thread looks for new lines (INGEST_MS; tests set it). */
  constructor(dir: string, private readonly cfg: AuditConfig, private readonly log: Logger, private readonly metrics: Metrics, private readonly intervalMs = INGEST_MS) {
    this.file = join(dir, AUDIT_FILE)
    this.spoolDir = join(dir, SPOOL_DIR)
  }

  /** True while rows are being written. */
  get open(): boolean {
    return this.spool !== undefined
  }

  /** How the ingest thread yields the CPU, once it said so. */
  get ingestPriority(): IngestPriority | undefined {
    return this.ingest?.priority
  }

  /** Opens the database (moving a corrupt one aside) and the spool, and starts the worker. Never throws: a journal that cannot open retries every minute. */
  start(): void {
    this.tryOpen()
  }

  private tryOpen(): boolean {
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o750 })
      const migrated = (rows: number, from: string) => this.log.info({ file: this.file, rows, from_schema: from }, 'audit database migrated to schema 3 (the columns the response holds are read from it by the view `verdicts`)')
      try {
        this.db = openWritable(this.file, this.cfg.sync, migrated)
      } catch (e) {
        if (!isCorruption(e)) throw e
        const dest = moveAside(this.file)
        this.log.error({ file: this.file, moved_to: dest, err: (e as Error).message }, 'audit database is corrupt; moved aside, starting a new one')
        this.db = openWritable(this.file, this.cfg.sync)
      }
      this.takeInSpool(this.db)
      this.prune()
      if (!this.spool) {
        const spool = new SpoolWriter(this.spoolDir, this.cfg.sync === 'full')
        spool.open()
        this.spool = spool
      }
      clearTimeout(this.reopenTimer)
      this.reopenTimer = undefined
      this.startWorker()
      this.log.info({ file: this.file, sync: this.cfg.sync, spool: this.spool.mapped ? 'mapped' : `write() (${this.spool.unmapped ?? 'no native addon'})` }, 'audit journal open')
      return true
    } catch (e) {
      try { this.db?.close() } catch { /* it failed already */ }
      this.db = undefined
      this.lookupStmt = undefined
      this.failed(e, 'opening the audit database failed; verdicts go out unjournaled')
      this.reopenTimer ??= setTimeout(() => { this.reopenTimer = undefined; if (!this.db && !this.closed) this.tryOpen() }, REOPEN_MS)
      this.reopenTimer.unref()
      return false
    }
  }

  /** Rows a previous process spooled but did not ingest go into the database before anything is served. */
  private takeInSpool(db: Db): void {
    let ing: Ingester | undefined
    try {
      ing = new Ingester(db, this.spoolDir)
      let dropped = 0
      const r = ing.drain((s) => { dropped += s.bad + (s.torn > 0 ? 1 : 0) })
      if (r.rows > 0) {
        this.metrics.auditRows.inc(r.rows)
        this.log.info({ rows: r.rows, dropped }, 'audit spool of the previous run moved into the journal')
      }
    } catch (e) {
      // The worker tries again; meanwhile a redelivery of those rows is not found (and dropped, not inspected).
      this.failed(e, 'audit journal write failed; verdicts still go out')
    } finally {
      ing?.close()
    }
  }

  private startWorker(): void {
    if (this.closed) return
    this.ingest ??= new IngestThread(
      { file: this.file, spoolDir: this.spoolDir, sync: this.cfg.sync, retentionDays: this.cfg.retentionDays, maxBytes: this.cfg.maxBytes, intervalMs: this.intervalMs, pruneMs: PRUNE_MS, live: this.spool!.live },
      {
        ingested: (rows, seq) => this.ingestedUpTo(rows, seq),
        pruned: (age, bytes) => {
          if (age > 0) this.metrics.auditPruned.inc({ reason: 'age' }, age)
          if (bytes > 0) this.metrics.auditPruned.inc({ reason: 'bytes' }, bytes)
        },
        dropped: (torn, bad) => this.log.warn({ torn_bytes: torn, bad_lines: bad, dir: this.spoolDir }, 'audit spool: an incomplete or unreadable line was dropped (a write cut short)'),
        failed: (m) => this.workerFailed(m),
        crashed: (e) => this.failed(e, 'audit ingest worker failed'),
        wanted: () => !this.closed && this.db !== undefined,
      },
      this.log,
    )
    this.ingest.start()
  }

  private ingestedUpTo(rows: number, seq: number): void {
    this.metrics.auditRows.inc(rows)
    if (seq > this.ingested) this.ingested = seq
    this.ingest?.caughtUp(this.ingested)
    this.metrics.auditQueueDepth.set(this.queueDepth())
    while (this.waiters.length > 0 && this.waiters[0].seq <= this.ingested) this.waiters.shift()!.resolve()
  }

  private workerFailed(m: Extract<IngestMessage, { kind: 'error' }>): void {
    this.failed(Object.assign(new Error(m.message), { code: m.code }), m.during === 'retention' ? 'audit retention failed' : 'audit journal write failed; verdicts still go out')
    if (m.corrupt) this.reopenAfterCorruption()
  }

  /** Lines written to the spool (or queued for it) and not yet in the database. */
  private queueDepth(): number {
    return this.seq - this.ingested
  }

  /**
   * Queues a verdict's row; `then` (the publish) runs once it is in the spool, or at once when it cannot be.
   * Rows of one event-loop turn share one write.
   */
  append(rec: AuditRecord, then: () => void): void {
    if (!this.spool) {
      then()
      return
    }
    this.queue(spoolLine(++this.seq, rec))
    this.callbacks.push(then)
  }

  private queue(line: string): void {
    this.lines.push(line)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  /** Writes the queued rows to the spool in one write, then runs their callbacks in order. */
  readonly flush = (): void => {
    this.scheduled = false
    const cbs = this.callbacks
    if (this.lines.length === 0) return
    const text = this.lines.length === 1 ? this.lines[0] : this.lines.join('')
    this.lines = []
    this.callbacks = []
    if (this.spool) {
      try {
        this.spool.write(text)
      } catch (e) {
        this.failed(e, 'audit journal write failed; verdicts still go out')
      }
    }
    this.metrics.auditQueueDepth.set(this.queueDepth())
    this.ingest?.watchLag(this.seq, this.queueDepth())
    if (this.nudge) {
      this.nudge = false
      this.ingest?.now()
    }
    for (const cb of cbs) {
      try {
        cb()
      } catch (e) {
        this.log.error({ err: e }, 'internal error while publishing a journaled verdict')
      }
    }
  }

  /** Resolves once every row appended so far is in the database (or after `timeoutMs`). */
  settled(timeoutMs = 2000): Promise<void> {
    // A thread that died is started again within a second: its successor answers.
    if (!this.spool || this.ingested >= this.seq) return Promise.resolve()
    const seq = this.seq
    return new Promise((resolve) => {
      // Not unref'd: whoever waits keeps the process up until the worker answers (the thread itself does not).
      const timer = setTimeout(resolve, timeoutMs)
      this.waiters.push({ seq, resolve: () => { clearTimeout(timer); resolve() } })
      if (this.lines.length > 0) this.nudge = true
      else this.ingest?.now()
    })
  }

  /** Failures are recorded in the database by the worker (for `flashcheck doctor`), batched once a second. */
  private reportErrors(): void {
    clearTimeout(this.reportTimer)
    this.reportTimer = undefined
    const add = this.writeErrors - this.recordedErrors
    if (add <= 0 || !this.ingest?.report({ add, last: `${this.lastErrorAt ?? ''} ${this.lastError ?? ''}`.trim() })) return
    this.recordedErrors = this.writeErrors
  }

  private reopenAfterCorruption(): void {
    this.ingest?.abandon()
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
    if (!this.reportTimer) {
      this.reportTimer = setTimeout(() => this.reportErrors(), RECORD_MS)
      this.reportTimer.unref()
    }
    const now = Date.now()
    if (now - this.lastErrorLog >= ERROR_LOG_MS) {
      this.log.error({ file: this.file, err: this.lastError, code: (e as { code?: string }).code, errors_total: this.writeErrors, suppressed: this.suppressed }, msg)
      this.lastErrorLog = now
      this.suppressed = 0
    } else this.suppressed++
  }

  /**
   * The published response of an answered request (redelivery) first inspected at epoch ms `answeredAt`, when
   * its row is in the database (after `settled`); `waiting` when that verdict is still in the durable outbox,
   * which sends it (again, if the broker never acknowledged it).
   */
  lookup(key: string, payloadSum: number, answeredAt: number): { response: string; waiting: boolean } | undefined {
    if (!this.db) return undefined
    try {
      // The verdict_id of the answer carries the millisecond the request was first inspected at (the redelivery
      // memory's time): its index narrows the search to that millisecond's rows, with no index on the key.
      this.lookupStmt ??= this.db.prepare(`SELECT response, payload_sum, EXISTS (SELECT 1 FROM outbox o WHERE o.verdict_id = v.verdict_id) AS waiting
        FROM verdicts v WHERE verdict_id >= ? AND verdict_id < ? AND dedupe_key = ? ORDER BY seq DESC LIMIT 1`)
      const row = this.lookupStmt.get(lowerId(answeredAt), lowerId(answeredAt + 1), key) as { response: string; payload_sum: number; waiting: 0 | 1 } | undefined
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

  /** Retention now, on the journal's own connection (the worker runs it once a minute). */
  prune(now = Date.now()): void {
    if (!this.db) return
    try {
      const p = prune(this.db, this.cfg.retentionDays, this.cfg.maxBytes, now)
      if (p.age > 0) this.metrics.auditPruned.inc({ reason: 'age' }, p.age)
      if (p.bytes > 0) this.metrics.auditPruned.inc({ reason: 'bytes' }, p.bytes)
    } catch (e) {
      this.failed(e, 'audit retention failed')
    }
  }

  // ── durable outbox ───────────────────────────────────────────────────────────────────────────────────

  /**
   * Keeps a verdict waiting for the broker; the oldest beyond `limit` go. Returns the row's seq. The change goes
   * through the spool (in the next write, with the verdicts of that turn) and the ingest thread puts it in the
   * table: nothing on the event loop waits for the database's lock.
   */
  outboxAdd(verdictId: string, topic: string, payload: string, correlationData: Buffer | undefined, qos: number, limit: number): number | undefined {
    if (!this.spool) return undefined
    const seq = ++this.seq
    this.queue(outboxAddLine(seq, { verdictId, topic, payload, correlationData, qos, limit }))
    return seq
  }

  outboxRemove(seq: number): void {
    if (this.spool) this.queue(outboxRemoveLine(++this.seq, seq))
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

  /** Writes what is queued to the spool, lets the worker take it into the database, and closes. */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.reopenTimer)
    this.flush()
    this.spool?.close()
    this.spool = undefined
    // Counted failures go to the worker, which records them before it stops.
    this.reportErrors()
    await this.ingest?.stop()
    for (const wt of this.waiters.splice(0)) wt.resolve()
    try { this.db?.close() } catch { /* nothing left to save */ }
    this.db = undefined
    this.lookupStmt = undefined
  }
}

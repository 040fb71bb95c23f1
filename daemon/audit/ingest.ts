// Moves spooled rows (spool.ts) into audit.db, in order, segment by segment, with the durable outbox's changes.
// Used by the ingest worker, and once by the daemon at start (before it serves) for what a killed process left
// in the spool.
//
// The position reached (segment and byte offset) is saved in the same transaction as the rows, so a row is
// ingested once even when the process dies mid-way; verdict_id is unique besides (INSERT OR IGNORE). A
// segment is finished, and deleted, once a later one exists and it has been read to its end: the writer
// creates the next segment before it stops writing the last one. An unterminated last line of a finished
// segment (a write cut short by a full disk or a crash) is counted and dropped.
import { closeSync, fstatSync, openSync, readSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { Statement } from 'better-sqlite3'
import { ROWS_TABLE, STORED_COLUMNS, type Db } from './db.js'
import { OUTBOX_ADD, OUTBOX_REMOVE, segmentName, segments } from './spool.js'

export interface IngestStep {
  /** Rows written to the database by this step. */
  rows: number
  /** seq of the last line ingested (spool.ts), or -1. */
  seq: number
  /** True when there may be more to read right away. */
  more: boolean
  /** Bytes of an unterminated line dropped at the end of a finished segment; lines that did not parse. */
  torn: number
  bad: number
}

const CHUNK = 1 << 20
/** Nothing read. */
const NONE: IngestStep = Object.freeze({ rows: 0, seq: -1, more: false, torn: 0, bad: 0 })

/** Where the ingest into `db` goes on (meta `spool_position`, saved with the rows), or the spool's start. */
export function savedPosition(db: Db): { segment: number; offset: number } {
  const pos = (db.prepare("SELECT v FROM meta WHERE k = 'spool_position'").get() as { v: string } | undefined)?.v
  const m = pos ? /^(\d+):(\d+)$/.exec(pos) : null
  return m ? { segment: Number(m[1]), offset: Number(m[2]) } : { segment: 0, offset: 0 }
}

/** Bytes of the spool in `dir` after the position saved in `db`: rows not yet in the database. */
export function spoolBacklog(db: Db, dir: string): number {
  const { segment, offset } = savedPosition(db)
  let bytes = 0
  for (const n of segments(dir)) {
    if (n < segment) continue
    try {
      const from = n === segment ? offset : 0
      bytes += dataEnd(join(dir, segmentName(n)), from) - from
    } catch {
      // taken in and deleted meanwhile
    }
  }
  return Math.max(0, bytes)
}

/**
 * Where a segment's data ends: its first NUL (the rest of a mapped segment still written or left by a crash:
 * spool.ts) or its size. A segment whose last byte is data was closed and cut: its size, without reading it.
 */
function dataEnd(file: string, from: number): number {
  const fd = openSync(file, 'r')
  try {
    const size = fstatSync(fd).size
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, size)))
    if (size <= from || (readSync(fd, buf, 0, 1, size - 1) === 1 && buf[0] !== 0)) return size
    for (let at = from; at < size;) {
      const got = readSync(fd, buf, 0, buf.length, at)
      if (got === 0) return at
      const nul = buf.subarray(0, got).indexOf(0)
      if (nul >= 0) return at + nul
      at += got
    }
    return size
  } finally {
    closeSync(fd)
  }
}

export class Ingester {
  private seg = 0
  private offset = 0
  private fd?: number
  private fdSeg = -1
  private buf = Buffer.allocUnsafe(CHUNK)
  private readonly insert: Statement
  private readonly outboxAdd: Statement
  private readonly outboxTrim: Statement
  private readonly outboxRemove: Statement
  private readonly savePosition: Statement
  private readonly batch: (end: number) => { rows: number; seq: number; bad: number; used: number }

  /** `halt`: read every few rows; true ends the transaction early, at a row boundary (the worker's handover). */
  constructor(db: Db, private readonly dir: string, private readonly halt?: () => boolean) {
    const pos = savedPosition(db)
    this.seg = pos.segment
    this.offset = pos.offset
    // The response arrives as bytes of the spool buffer; CAST stores them as the same UTF-8 text.
    this.insert = db.prepare(`INSERT OR IGNORE INTO ${ROWS_TABLE} (${STORED_COLUMNS.join(', ')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT))`)
    this.outboxAdd = db.prepare('INSERT OR IGNORE INTO outbox (seq, verdict_id, topic, qos, correlation_data, payload) VALUES (?, ?, ?, ?, ?, ?)')
    this.outboxTrim = db.prepare('DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq DESC LIMIT -1 OFFSET ?)')
    this.outboxRemove = db.prepare('DELETE FROM outbox WHERE seq = ?')
    this.savePosition = db.prepare("INSERT INTO meta(k, v) VALUES ('spool_position', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v")
    this.batch = db.transaction((end: number) => {
      const b = this.buf
      let rows = 0
      let seq = -1
      let bad = 0
      let at = 0
      for (let n = 0; at < end; n++) {
        if ((n & 31) === 31 && this.halt?.()) break
        const nl = b.indexOf(10, at)
        const tab = b.indexOf(9, at)
        try {
          if (tab < 0 || tab > nl) throw new Error('no tab')
          const c = JSON.parse(b.toString('utf8', at, tab)) as unknown[]
          if (!Array.isArray(c) || typeof c[0] !== 'number') throw new Error('not a row')
          if (c.length === 9) rows += this.insert.run(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], b.subarray(tab + 1, nl)).changes
          else if (c.length === 8 && c[1] === OUTBOX_ADD && typeof c[2] === 'string' && typeof c[3] === 'string' && typeof c[4] === 'number' && typeof c[6] === 'number' && typeof c[7] === 'string') {
            this.outboxAdd.run(c[0], c[2], c[3], c[4], typeof c[5] === 'string' ? Buffer.from(c[5], 'hex') : null, c[7])
            this.outboxTrim.run(c[6])
          } else if (c.length === 3 && c[1] === OUTBOX_REMOVE && typeof c[2] === 'number') this.outboxRemove.run(c[2])
          else throw new Error('not a row')
          seq = c[0]
        } catch (e) {
          if ((e as { code?: string }).code?.startsWith('SQLITE_')) throw e
          bad++
        }
        at = nl + 1
      }
      this.savePosition.run(`${this.seg}:${this.offset + at}`)
      return { rows, seq, bad, used: at }
    })
  }

  /**
   * Ingests what is available (up to about 1 MiB of lines) in one transaction. `live`: the writer's
   * [segment, bytes written] (spool.ts), which answers "anything new?" without a system call while the
   * ingest is on the segment being written. Throws what SQLite or the file system says.
   */
  step(live?: Int32Array): IngestStep {
    if (live !== undefined && Atomics.load(live, 0) === this.seg) {
      const written = Atomics.load(live, 1)
      if (this.offset >= written) return NONE
      return this.take(undefined, written)
    }
    const all = segments(this.dir)
    // Segments before the position were finished (a crash between commit and unlink leaves one behind).
    for (const n of all) if (n < this.seg) this.unlink(n)
    const cur = all.find((n) => n >= this.seg)
    if (cur === undefined) return NONE
    if (cur !== this.seg) {
      this.seg = cur
      this.offset = 0
    }
    // Seen before reading: if a later segment exists now, everything of this one is already written.
    return this.take(all.find((n) => n > cur))
  }

  /**
   * Reads from the position on; `later`: the next segment, when this one is complete; `written`: the bytes
   * written to the segment being written (the rest of a mapped one is zeros or a copy under way).
   */
  private take(later: number | undefined, written?: number): IngestStep {
    for (;;) {
      const got = this.read(written)
      // (lastIndexOf with -1 would search the whole buffer, stale bytes included)
      const end = got === 0 ? 0 : this.buf.lastIndexOf(10, got - 1) + 1
      if (end > 0) {
        const { rows, seq, bad, used } = this.batch(end)
        this.offset += used
        return { rows, seq, bad, more: used < end || got === this.buf.length || later !== undefined, torn: 0 }
      }
      if (got === this.buf.length) {
        // One line longer than the buffer: read it whole.
        this.buf = Buffer.allocUnsafe(this.buf.length * 2)
        continue
      }
      if (later === undefined) return NONE
      // Finished: move on (saved first, so that a crash before the unlink does not read it again).
      this.savePosition.run(`${later}:0`)
      this.closeFd()
      this.unlink(this.seg)
      this.seg = later
      this.offset = 0
      return { ...NONE, more: true, torn: got }
    }
  }

  /** Steps until nothing is left to read now (or `halt()` says stop); the rows and the last seq ingested. */
  drain(onStep?: (s: IngestStep) => void, live?: Int32Array): { rows: number; seq: number } {
    let rows = 0
    let seq = -1
    for (;;) {
      const s = this.step(live)
      onStep?.(s)
      rows += s.rows
      if (s.seq >= 0) seq = s.seq
      if (!s.more || this.halt?.()) return { rows, seq }
    }
  }

  /** Reads from the position into the buffer, up to `written` and to the data's end (a NUL: spool.ts). */
  private read(written?: number): number {
    if (this.fdSeg !== this.seg) {
      this.closeFd()
      this.fd = openSync(join(this.dir, segmentName(this.seg)), 'r')
      this.fdSeg = this.seg
    }
    const want = written === undefined ? this.buf.length : Math.min(this.buf.length, written - this.offset)
    const got = readSync(this.fd!, this.buf, 0, want, this.offset)
    const nul = this.buf.subarray(0, got).indexOf(0)
    return nul < 0 ? got : nul
  }

  private closeFd(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    this.fdSeg = -1
  }

  private unlink(n: number): void {
    try {
      unlinkSync(join(this.dir, segmentName(n)))
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
  }

  close(): void {
    this.closeFd()
  }
}

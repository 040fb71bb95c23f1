// The journal's spool: each verdict's row, appended as one line to a segment file in <state.dir>/audit-spool/
// before the verdict goes out. One write() per event-loop turn is all the hot path pays; the ingest worker moves
// the lines into audit.db (ingest.ts). A write() is in the page cache when it returns, so a killed process loses
// no line; audit.sync=full adds an fdatasync per write for power loss.
//
// A line is the row's own columns as a JSON array, a tab, and the published response exactly as it went out:
//   [seq, verdict_id, trace, model_id, request_topic, response_topic, correlation, dedupe_key, payload_sum]\t{…}\n
// The durable outbox's changes travel the same way, so that the ingest thread is the database's only writer
// while the daemon serves (a write on the event loop could wait out the busy timeout behind its transaction):
//   [seq, "outbox+", verdict_id, topic, qos, correlation_data (hex) | null, limit, payload]\t\n   (kept as row seq)
//   [seq, "outbox-", seq of the add]\t\n
// JSON text holds no raw tab or newline, so both split points are unambiguous. seq counts lines across segments
// (the worker reports how far it has ingested by it).
import { closeSync, fdatasyncSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export const SPOOL_DIR = 'audit-spool'

/** A segment is closed (and a new one started) past this size, so ingested ones can be deleted. */
export const SEGMENT_BYTES = 64 * 1024 * 1024

/** The row of one verdict: the stored columns (db.ts STORED_COLUMNS). */
export interface AuditRecord {
  verdict_id: string
  trace: string | null
  model_id: string | null
  request_topic: string
  response_topic: string
  correlation: string | null
  dedupe_key: string | null
  payload_sum: number | null
  /** The published response JSON. */
  response: string
}

/** Header marks (where a row has its verdict_id) of the durable outbox's lines. */
export const OUTBOX_ADD = 'outbox+'
export const OUTBOX_REMOVE = 'outbox-'

/** A verdict waiting for the broker, kept as outbox row `seq`; `limit`: the outbox keeps the newest this many. */
export interface OutboxAdd {
  verdictId: string
  topic: string
  payload: string
  correlationData: Buffer | undefined
  qos: number
  limit: number
}

export function outboxAddLine(seq: number, a: OutboxAdd): string {
  const cd = a.correlationData && a.correlationData.length > 0 ? a.correlationData.toString('hex') : null
  return `${JSON.stringify([seq, OUTBOX_ADD, a.verdictId, a.topic, a.qos, cd, a.limit, a.payload])}\t\n`
}

export function outboxRemoveLine(seq: number, added: number): string {
  return `${JSON.stringify([seq, OUTBOX_REMOVE, added])}\t\n`
}

export function spoolLine(seq: number, r: AuditRecord): string {
  return `${JSON.stringify([seq, r.verdict_id, r.trace, r.model_id, r.request_topic, r.response_topic, r.correlation, r.dedupe_key, r.payload_sum])}\t${r.response}\n`
}

export function segmentName(n: number): string {
  return `${String(n).padStart(10, '0')}.spool`
}

/** Numbers of the segment files in `dir`, ascending (none when it does not exist). */
export function segments(dir: string): number[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw e
  }
  return names.flatMap((f) => (/^\d{10}\.spool$/.test(f) ? [Number(f.slice(0, 10))] : [])).sort((a, b) => a - b)
}

/** Appends lines to the newest segment of a spool directory; each process starts a segment of its own. */
export class SpoolWriter {
  private fd?: number
  private n = 0
  private size = 0

  /**
   * `live` (shared with the ingest worker): [segment being written, bytes written to it], updated after every
   * write, so that the worker finds out whether there is anything new without a system call.
   */
  constructor(readonly dir: string, private readonly fsync: boolean, readonly live = new Int32Array(new SharedArrayBuffer(8)), private readonly maxBytes = SEGMENT_BYTES) {}

  /** Creates the directory and a new segment after every existing one. Throws when it cannot. */
  open(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o750 })
    const existing = segments(this.dir)
    this.next(existing.length ? existing[existing.length - 1] + 1 : 1)
  }

  /** Segment number being written. */
  get segment(): number {
    return this.n
  }

  /**
   * Writes `text` (whole lines) in one write(); throws when it could not be written whole. After a failure the
   * next write goes to a new segment, so that a torn line stays the last of its segment.
   */
  write(text: string): void {
    if (this.fd === undefined) this.next(this.n + 1)
    const fd = this.fd!
    let written: number
    try {
      written = writeSync(fd, text)
      if (this.fsync) fdatasyncSync(fd)
    } catch (e) {
      this.abandon()
      throw e
    }
    const want = Buffer.byteLength(text)
    if (written !== want) {
      this.abandon()
      throw Object.assign(new Error(`short write to the audit spool: ${written} of ${want} bytes (disk full?)`), { code: 'ENOSPC' })
    }
    this.size += written
    Atomics.store(this.live, 1, this.size)
    if (this.size >= this.maxBytes) {
      try {
        this.next(this.n + 1)
      } catch {
        // the lines are written; the current segment goes on until a new one can be made
      }
    }
  }

  /**
   * Starts segment `n`. The new file exists before the old one is closed: the ingest worker takes a next
   * segment's existence as the sign that the one before it is complete.
   */
  private next(n: number): void {
    const fd = openSync(join(this.dir, segmentName(n)), 'a', 0o640)
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = fd
    this.n = n
    this.size = 0
    Atomics.store(this.live, 1, 0)
    Atomics.store(this.live, 0, n)
  }

  private abandon(): void {
    if (this.fd !== undefined) {
      try { closeSync(this.fd) } catch { /* a failed disk may fail the close too */ }
    }
    this.fd = undefined
  }

  close(): void {
    this.abandon()
  }
}

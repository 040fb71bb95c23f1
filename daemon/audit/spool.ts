// The journal's spool: each verdict's row, appended as one line to a segment file in <state.dir>/audit-spool/
// before the verdict goes out; the ingest worker moves the lines into audit.db (ingest.ts).
//
// A segment is preallocated and mapped shared (the addon's mapAppendFile, native/src/append_map.h), so appending is a
// copy into the page cache: no system call on the hot path, and a killed process loses no line, as with a
// write(). Past the data a segment is zero bytes until it is closed (then cut to its data); readers take the
// first NUL as the end. Where no space can be reserved (a full disk) or nothing can be mapped, a segment is
// written with one write() per event-loop turn instead. audit.sync=full adds an msync / fdatasync per append
// for power loss.
//
// A line is the row's own columns as a JSON array, a tab, and the published response exactly as it went out:
//   [seq, verdict_id, trace, model_id, request_topic, response_topic, correlation, dedupe_key, payload_sum]\t{…}\n
// The durable outbox's changes travel the same way, so that the ingest thread is the database's only writer
// while the daemon serves (a write on the event loop could wait out the busy timeout behind its transaction):
//   [seq, "outbox+", verdict_id, topic, qos, correlation_data (hex) | null, limit, payload]\t\n   (kept as row seq)
//   [seq, "outbox-", seq of the add]\t\n
// JSON text holds no raw tab, newline or NUL, so the split points and the end of the data are unambiguous. seq
// counts lines across segments (the worker reports how far it has ingested by it).
import { closeSync, fdatasyncSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs'
import { constants } from 'node:os'
import { join } from 'node:path'
import { loadAddon } from '../model/addon.js'

export const SPOOL_DIR = 'audit-spool'

/**
 * A segment is closed (and a new one started) at this size, so ingested ones can be deleted; a mapped segment
 * holds this much disk while it is written.
 */
export const SEGMENT_BYTES = 16 * 1024 * 1024

/** A segment file preallocated and mapped (native/src/append_map.h). */
export interface AppendMap {
  /** The data's size after `text`, or -1 when it does not fit (nothing written). */
  append(text: string): number
  /** 0 or an errno value. */
  sync(): number
  /** Unmaps and cuts the file to its data; 0 or an errno value. */
  close(): number
  /** The same on a thread of its own (milliseconds for a full segment), errors unreported. */
  closeInBackground(): void
}

/** Creates and maps a segment of `capacity` bytes, or says why not (an errno value). */
export type MapFile = (path: string, capacity: number) => AppendMap | number

/** The addon's mapAppendFile, or undefined where the addon is not built. */
export function nativeMapFile(): MapFile | undefined {
  try {
    return loadAddon<{ mapAppendFile?: MapFile }>().mapAppendFile
  } catch {
    return undefined
  }
}

function errnoError(errno: number, syscall: string, path: string): NodeJS.ErrnoException {
  const code = Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `E${errno}`
  return Object.assign(new Error(`${code}: ${syscall} ${path}`), { errno: -errno, code, syscall, path })
}

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
  /** The segment being written: mapped, or a file descriptor for write(). */
  private map?: AppendMap
  private fd?: number
  private n = 0
  private size = 0
  /** Where a mapped segment could not be made: the reason, logged by the caller once. */
  unmapped?: string

  /**
   * `live` (shared with the ingest worker): [segment being written, bytes written to it], updated after every
   * write, so that the worker finds out whether there is anything new without a system call. `mapFile`:
   * null writes every segment with write().
   */
  constructor(
    readonly dir: string,
    private readonly fsync: boolean,
    readonly live = new Int32Array(new SharedArrayBuffer(8)),
    private readonly maxBytes = SEGMENT_BYTES,
    private readonly mapFile: MapFile | null = nativeMapFile() ?? null,
  ) {}

  /** Creates the directory and a new segment after every existing one. Throws when it cannot. */
  open(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o750 })
    const existing = segments(this.dir)
    this.next(existing.length ? existing[existing.length - 1] + 1 : 1, 0)
  }

  /** Segment number being written. */
  get segment(): number {
    return this.n
  }

  /** Whether the segment being written is mapped. */
  get mapped(): boolean {
    return this.map !== undefined
  }

  /**
   * Appends `text` (whole lines); throws when it could not be written whole. After a failure the next write
   * goes to a new segment, so that a torn line stays the last of its segment.
   */
  write(text: string): void {
    if (this.map === undefined && this.fd === undefined) this.next(this.n + 1, 0)
    if (this.map !== undefined) {
      let end = this.map.append(text)
      // Full: the next segment, made with room for the text however long it is.
      if (end < 0) this.next(this.n + 1, Buffer.byteLength(text) + 1)
      if (end < 0 && this.map !== undefined) end = this.map.append(text)
      if (end >= 0) {
        const err = this.fsync ? this.map!.sync() : 0
        if (err !== 0) {
          this.abandon()
          throw errnoError(err, 'msync', join(this.dir, segmentName(this.n)))
        }
        this.size = end
        Atomics.store(this.live, 1, end)
        return
      }
    }
    this.writeFd(text)
  }

  private writeFd(text: string): void {
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
        this.next(this.n + 1, 0)
      } catch {
        // the lines are written; the current segment goes on until a new one can be made
      }
    }
  }

  /**
   * Starts segment `n`, mapped with room for at least `need` bytes where it can be. The new file exists before
   * the old one is closed: the ingest worker takes a next segment's existence as the sign that the one before
   * it is complete.
   */
  private next(n: number, need: number): void {
    const path = join(this.dir, segmentName(n))
    let map: AppendMap | undefined
    let fd: number | undefined
    if (this.mapFile !== null) {
      const m = this.mapFile(path, Math.max(this.maxBytes, need))
      if (typeof m === 'number') {
        this.unmapped = m === constants.errno.EOPNOTSUPP
          ? `${path}: its filesystem does not promise the space a mapped segment needs (ext4, XFS, tmpfs and overlayfs do)`
          : errnoError(m, 'mapping a spool segment', path).message
      }
      else map = m
    }
    if (map === undefined) fd = openSync(path, 'a', 0o640)
    // Unmapping a full segment takes milliseconds: not on the event loop.
    this.abandon(true)
    this.map = map
    this.fd = fd
    this.n = n
    this.size = 0
    Atomics.store(this.live, 1, 0)
    Atomics.store(this.live, 0, n)
  }

  private abandon(inBackground = false): void {
    if (this.map !== undefined) {
      if (inBackground) this.map.closeInBackground()
      else this.map.close()
    }
    if (this.fd !== undefined) {
      try { closeSync(this.fd) } catch { /* a failed disk may fail the close too */ }
    }
    this.map = undefined
    this.fd = undefined
  }

  close(): void {
    this.abandon()
  }
}

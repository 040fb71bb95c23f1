// /api/verdicts over the audit journal (<state.dir>/audit.db): its own read-only SQLite connection, so a
// search reads a WAL snapshot while the daemon keeps writing. Newest first; the cursor is the last row's seq.
import { lowerId, openReadOnly, type Db } from '../audit/db.js'
import { EXPORT_COLUMNS, recordOf, type Row } from '../audit/query.js'
import type { VerdictPage, VerdictQuery, VerdictSource } from './journal.js'

export class AuditSource implements VerdictSource {
  private db?: Db

  /** `settled`: resolves once the verdicts published so far are in the file (the journal's ingest lags by milliseconds). */
  constructor(private readonly file: string, private readonly settled?: () => Promise<void>) {}

  async find(q: VerdictQuery): Promise<VerdictPage> {
    await this.settled?.()
    // Opened on first use: the journal creates the file when it starts, possibly after the page did.
    this.db ??= openReadOnly(this.file)
    const parts: string[] = []
    const params: (string | number)[] = []
    if (q.trace !== undefined) { parts.push('trace = ?'); params.push(q.trace) }
    if (q.inspection !== undefined) { parts.push('inspection = ?'); params.push(q.inspection) }
    if (q.verdict !== undefined) { parts.push('verdict = ?'); params.push(q.verdict) }
    if (q.since !== undefined) { parts.push('verdict_id >= ?'); params.push(lowerId(q.since)) }
    if (q.cursor !== undefined) {
      const seq = Number(q.cursor)
      if (!Number.isInteger(seq)) throw new CursorError()
      parts.push('seq < ?')
      params.push(seq)
    }
    const where = parts.length ? ` WHERE ${parts.join(' AND ')}` : ''
    const rows = this.db.prepare(`SELECT seq, ${EXPORT_COLUMNS.join(', ')} FROM verdicts${where} ORDER BY seq DESC LIMIT ?`).all(...params, q.limit + 1) as (Row & { seq: number })[]
    const page = rows.slice(0, q.limit)
    return { items: page.map((r) => recordOf(r)), next: rows.length > q.limit ? String(page[page.length - 1].seq) : null }
  }

  close(): void {
    this.db?.close()
    this.db = undefined
  }
}

export class CursorError extends Error {
  constructor() {
    super('cursor: not one this endpoint gave')
  }
}

// Retention of the audit database: rows older than retentionDays, then the oldest rows while the data exceeds
// maxBytes. Run by the ingest worker once a minute (and at its start), off the daemon's event loop.
import { lowerId, ROWS_TABLE, type Db } from './db.js'

/** Rows removed per statement, so that a large backlog is removed in bounded steps. */
const CHUNK = 5000

export interface Pruned {
  age: number
  bytes: number
}

export function prune(db: Db, retentionDays: number, maxBytes: number, now = Date.now()): Pruned {
  const out: Pruned = { age: 0, bytes: 0 }
  const bound = lowerId(now - retentionDays * 86_400_000)
  const byAge = db.prepare(`DELETE FROM ${ROWS_TABLE} WHERE seq IN (SELECT seq FROM ${ROWS_TABLE} WHERE verdict_id < ? ORDER BY seq LIMIT ${CHUNK})`)
  for (let n = byAge.run(bound).changes; n > 0; n = byAge.run(bound).changes) out.age += n
  const pageSize = db.pragma('page_size', { simple: true }) as number
  const used = () => ((db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number)) * pageSize
  let over = used() - maxBytes
  if (over <= 0) return out
  const stats = db.prepare(`SELECT COUNT(*) AS n FROM ${ROWS_TABLE}`).get() as { n: number }
  const oldest = db.prepare(`DELETE FROM ${ROWS_TABLE} WHERE seq IN (SELECT seq FROM ${ROWS_TABLE} ORDER BY seq LIMIT ?)`)
  while (over > 0 && stats.n > 0) {
    // Rows to drop, from the average row size; a little extra so the loop ends in a few rounds.
    const avg = Math.max(64, used() / stats.n)
    const n = Math.min(stats.n, Math.max(1, Math.ceil((over / avg) * 1.1)))
    const removed = oldest.run(n).changes
    if (removed === 0) break
    stats.n -= removed
    out.bytes += removed
    over = used() - maxBytes
  }
  return out
}

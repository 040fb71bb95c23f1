// Reads a daemon's audit journal (a real SQLite file) to check that every answered request of a LoadRun is
// in it exactly once.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { LoadRun } from '../../harness/session-load.js'

export interface JournalCounts {
  /** Answered requests with no row. */
  missing: number
  /** Answered requests with more than one row (inspected twice). */
  duplicated: number
  rows: number
  /** Requests never answered whose verdict is in the journal, with the time of its inspection. */
  unansweredInJournal: string[]
}

export function journalCounts(stateDir: string, load: LoadRun): JournalCounts {
  const db = new Database(join(stateDir, 'audit.db'), { readonly: true })
  try {
    const byCorr = new Map<string, number>()
    for (const r of db.prepare('SELECT correlation AS c, COUNT(*) AS n FROM verdicts WHERE correlation IS NOT NULL GROUP BY correlation').all() as { c: string; n: number }[]) byCorr.set(r.c, r.n)
    let missing = 0
    let duplicated = 0
    const unansweredInJournal: string[] = []
    const tsOf = db.prepare('SELECT ts FROM verdicts WHERE correlation = ?')
    for (const id of load.sentIds) {
      if (!load.answers.has(id)) {
        const r = tsOf.get(Buffer.from(id).toString('hex')) as { ts: string } | undefined
        if (r) unansweredInJournal.push(`${id}@${r.ts}`)
        continue
      }
      const n = byCorr.get(Buffer.from(id).toString('hex')) ?? 0
      if (n === 0) missing++
      else if (n > 1) duplicated++
    }
    const rows = (db.prepare('SELECT COUNT(*) AS n FROM verdicts').get() as { n: number }).n
    return { missing, duplicated, rows, unansweredInJournal }
  } finally {
    db.close()
  }
}

/**
 * Rows the daemon has put into its audit database, once there are at least `n` (or after `timeoutMs`): the
 * ingest worker takes the spooled rows in every few milliseconds, so a test reading the file waits for it.
 */
export async function journaled(d: { daemon: { metrics: { registry: { getSingleMetricAsString(name: string): Promise<string> } } } }, n: number, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const m = await d.daemon.metrics.registry.getSingleMetricAsString('flashcheck_audit_rows_total')
    const rows = [...m.matchAll(/^\S+ (\S+)$/gm)].reduce((s, x) => s + Number(x[1]), 0)
    if (rows >= n || Date.now() > end) return rows
    await new Promise((res) => setTimeout(res, 20))
  }
}

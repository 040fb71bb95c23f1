// The read side of the audit journal (`flashcheck audit`): records by id or trace, streaming export in
// JSON lines or CSV (RFC 4180), and per-inspection statistics. Reads go through SQLite's WAL snapshot, so a
// running daemon keeps writing meanwhile.
import type { Db } from './db.js'
import { lowerId } from './db.js'
import { passLabel as defaultPassLabel } from '../rules/pass-label.js'

/** The columns an exported record carries, in CSV header order. */
export const EXPORT_COLUMNS = [
  'verdict_id', 'ts', 'node', 'inspection', 'trace', 'verdict', 'error_code', 'checks', 'inputs', 'model', 'rules_rev', 'model_id',
  'latency_ms', 'deadline_missed', 'fallback', 'request_topic', 'response_topic', 'correlation',
] as const

const JSON_COLUMNS = new Set(['checks', 'inputs', 'model'])
const BOOL_COLUMNS = new Set(['deadline_missed', 'fallback'])
const SELECT = `SELECT ${EXPORT_COLUMNS.join(', ')} FROM verdicts`

export type Row = Record<(typeof EXPORT_COLUMNS)[number], string | number | null>

/** A record as JSON: checks, inputs and model as objects, flags as booleans. */
export function recordOf(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const c of EXPORT_COLUMNS) {
    const v = row[c]
    if (JSON_COLUMNS.has(c)) out[c] = v === null ? null : JSON.parse(v as string)
    else if (BOOL_COLUMNS.has(c)) out[c] = v === 1
    else out[c] = v
  }
  return out
}

/** One CSV field, quoted per RFC 4180 when it holds a comma, quote, CR or LF. */
export function csvField(v: string | number | null): string {
  if (v === null) return ''
  const s = String(v)
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function csvHeader(): string {
  return EXPORT_COLUMNS.join(',') + '\r\n'
}

export function csvLine(row: Row): string {
  return EXPORT_COLUMNS.map((c) => csvField(BOOL_COLUMNS.has(c) ? (row[c] === 1 ? 'true' : 'false') : row[c])).join(',') + '\r\n'
}

/** Records whose verdict_id is `id`, or whose trace is `id`; newest first. */
export function show(db: Db, id: string): Row[] {
  const byId = db.prepare(`${SELECT} WHERE verdict_id = ?`).all(id.toLowerCase()) as Row[]
  if (byId.length > 0) return byId
  return db.prepare(`${SELECT} WHERE trace = ? ORDER BY seq DESC`).all(id) as Row[]
}

export interface Filter {
  /** Epoch ms bounds: since inclusive, until exclusive. */
  since?: number
  until?: number
  inspection?: string
  verdict?: string
}

function where(f: Filter): { sql: string; params: (string | number)[] } {
  const parts: string[] = []
  const params: (string | number)[] = []
  // verdict_id is a UUIDv7: its text order is time order, and its index serves the range.
  if (f.since !== undefined) { parts.push('verdict_id >= ?'); params.push(lowerId(f.since)) }
  if (f.until !== undefined) { parts.push('verdict_id < ?'); params.push(lowerId(f.until)) }
  if (f.inspection !== undefined) { parts.push('inspection = ?'); params.push(f.inspection) }
  if (f.verdict !== undefined) { parts.push('verdict = ?'); params.push(f.verdict) }
  return { sql: parts.length ? ` WHERE ${parts.join(' AND ')}` : '', params }
}

/** Matching records, oldest first, one at a time (constant memory). */
export function exportRows(db: Db, f: Filter): IterableIterator<Row> {
  const w = where(f)
  const order = f.since !== undefined || f.until !== undefined ? 'verdict_id' : 'seq'
  return db.prepare(`${SELECT}${w.sql} ORDER BY ${order}`).iterate(...w.params) as IterableIterator<Row>
}

export interface InspectionStats {
  inspection: string | null
  count: number
  verdicts: Record<string, number>
  /** The label that counts as a pass: the rule's least severe verdict (PASS unless the rule names its own). */
  pass_label: string
  /** Parts first inspected in the range: distinct trace values whose earliest row in the journal is in it, plus untraced requests (error verdicts excluded). */
  parts: number
  /** Share of those parts whose first verdict was pass_label (a part re-inspected after rework counts once, by its first verdict). */
  first_pass_yield: number | null
  deadline_misses: number
  fallbacks: number
  latency_ms: { p50: number | null; p99: number | null }
}

/**
 * Per-inspection figures over the filter's range. `passLabel` gives each inspection's passing label (from its
 * rule); PASS where it is not known. First-pass yield is defined as on the status page (metrics/first-pass.ts).
 */
export function stats(db: Db, f: Filter, passLabel: (inspection: string | null) => string = () => defaultPassLabel(undefined)): InspectionStats[] {
  const w = where(f)
  const and = (extra: string) => (w.sql ? `${w.sql} AND ${extra}` : ` WHERE ${extra}`)
  const groups = db.prepare(`SELECT inspection, COUNT(*) AS n, SUM(deadline_missed) AS dm, SUM(fallback) AS fb FROM verdicts${w.sql} GROUP BY inspection ORDER BY inspection`).all(...w.params) as { inspection: string | null; n: number; dm: number; fb: number }[]
  const mix = db.prepare(`SELECT verdict, COUNT(*) AS n FROM verdicts${and('inspection IS ?')} GROUP BY verdict ORDER BY verdict`)
  // A traced part counts in the range holding its first row (of this inspection) in the whole journal, by
  // that row's verdict: a re-inspection in the range of a part first seen before it is rework, not a part.
  // Error verdicts (bad payload, overload) inspected no part.
  const traced = db.prepare(`SELECT COUNT(*) AS parts, SUM(verdict = ?) AS ok FROM verdicts AS v${and("inspection IS ? AND trace IS NOT NULL AND verdict <> 'ERROR' AND NOT EXISTS (SELECT 1 FROM verdicts AS e WHERE e.trace = v.trace AND e.inspection IS v.inspection AND e.verdict <> 'ERROR' AND e.seq < v.seq)")}`)
  const untraced = db.prepare(`SELECT COUNT(*) AS parts, SUM(verdict = ?) AS ok FROM verdicts${and("inspection IS ? AND trace IS NULL AND verdict <> 'ERROR'")}`)
  const nth = db.prepare(`SELECT latency_ms FROM verdicts${and('inspection IS ?')} ORDER BY latency_ms LIMIT 1 OFFSET ?`)
  return groups.map((g) => {
    const p = [...w.params, g.inspection as string]
    const verdicts: Record<string, number> = {}
    for (const r of mix.all(...p) as { verdict: string; n: number }[]) verdicts[r.verdict] = r.n
    const label = passLabel(g.inspection)
    const a = traced.get(label, ...p) as { parts: number; ok: number | null }
    const b = untraced.get(label, ...p) as { parts: number; ok: number | null }
    const parts = a.parts + b.parts
    const pct = (q: number) => (nth.get(...p, Math.min(g.n - 1, Math.max(0, Math.ceil(q * g.n) - 1))) as { latency_ms: number } | undefined)?.latency_ms ?? null
    return {
      inspection: g.inspection,
      count: g.n,
      verdicts,
      pass_label: label,
      parts,
      first_pass_yield: parts > 0 ? Math.round((((a.ok ?? 0) + (b.ok ?? 0)) / parts) * 10000) / 10000 : null,
      deadline_misses: g.dm ?? 0,
      fallbacks: g.fb ?? 0,
      latency_ms: { p50: pct(0.5), p99: pct(0.99) },
    }
  })
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** T of --since/--until: ISO-8601 (a date alone is UTC midnight), or relative to now like -24h, -30m, -7d. */
export function parseTime(text: string, now = Date.now()): number {
  const rel = /^-(\d+(?:\.\d+)?)([smhdw])$/.exec(text)
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]]
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const t = Date.parse(text)
    if (Number.isFinite(t)) return t
  }
  throw new Error(`not a time: ${JSON.stringify(text)} (ISO-8601 like 2026-03-03T08:00:00Z, or relative like -24h, -7d)`)
}

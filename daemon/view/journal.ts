// GET /api/verdicts reads past verdicts from the audit journal when the daemon has one. The view depends only
// on this interface; the daemon passes an implementation over its journal, or none (the endpoint then
// answers 404 with a message saying so).

export interface VerdictQuery {
  trace?: string
  inspection?: string
  verdict?: string
  /** Epoch ms, inclusive. */
  since?: number
  /** Page size (1..500). */
  limit: number
  /** Opaque cursor from the previous page's `next`. */
  cursor?: string
}

export interface VerdictPage {
  /** Newest first. */
  items: Record<string, unknown>[]
  /** Cursor of the next (older) page; null on the last one. */
  next: string | null
}

export interface VerdictSource {
  find(q: VerdictQuery): VerdictPage | Promise<VerdictPage>
}

/** ISO-8601, epoch milliseconds, or relative to now like -5m, -24h, -7d. */
export function parseSince(text: string, now = Date.now()): number {
  const rel = /^-(\d+(?:\.\d+)?)([smhd])$/.exec(text)
  if (rel) return now - Number(rel[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd']
  if (/^\d{10,}$/.test(text)) return Number(text)
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN
  if (!Number.isFinite(t)) throw new Error(`since: not a time: ${JSON.stringify(text)} (ISO-8601, epoch ms, or -5m/-24h/-7d)`)
  return t
}

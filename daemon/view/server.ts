// The operator's page on the metrics listener: static files (daemon/view/page, installed as share/view),
// GET /api/summary (header and per-inspection figures), GET /api/verdicts (the audit journal, when there is
// one) and GET /events (the live verdict stream). Read-only: only GET and HEAD are served.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join } from 'node:path'
import { PACKAGE_ROOT } from '../paths.js'
import { passLabel } from '../rules/pass-label.js'
import { parseSince, type VerdictSource } from './journal.js'
import { CursorError } from './audit-source.js'
import { modelStatus, type StatsSampler } from './stats.js'
import type { VerdictTap } from './tap.js'

export interface ViewStatus {
  node: string
  version: string
  started_at: string
  broker: 'connected' | 'disconnected'
  rules_rev: string | null
  inspections: { id: string; mode: string; topic: string; budget_ms: number; verdicts: string[] }[]
  /** Null without model.dir; loaded is false while (or when) the checkpoint could not be loaded. */
  model: { backend: string; quant: string; isa: string; loaded: boolean; queue_depth: number; last_error: { at: string; inspection: string; detail: string } | null } | null
  outbox_depth: number
}

export interface ViewDeps {
  status: () => ViewStatus
  sampler: StatsSampler
  tap: VerdictTap
  journal?: VerdictSource
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' }
// The page runs only its own files: no inline script, nothing from elsewhere, not framed.
const SECURITY = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
}

/** Where the page's files are: share/view in an installed package, daemon/view/page in a checkout. */
export function pageDir(): string {
  for (const d of [join(PACKAGE_ROOT, 'share', 'view'), join(PACKAGE_ROOT, 'daemon', 'view', 'page')]) if (existsSync(join(d, 'index.html'))) return d
  throw new Error('page files not found (share/view or daemon/view/page)')
}

const SUMMARY_MS = 1000

export class View {
  private readonly files = new Map<string, { type: string; body: Buffer }>()
  private cached?: { at: number; body: Promise<string> }

  constructor(private readonly d: ViewDeps, dir = pageDir()) {
    for (const f of readdirSync(dir)) {
      const type = TYPES[extname(f)]
      if (type) this.files.set(f, { type, body: readFileSync(join(dir, f)) })
    }
  }

  /** Serves the request when it is the view's; false for anything else. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://x')
    const path = url.pathname
    if (path === '/' || path === '/index.html') return this.file(req, res, 'index.html')
    if (path.startsWith('/view/')) return this.file(req, res, path.slice(6))
    if (!path.startsWith('/api/') && path !== '/events') return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' })
      res.end()
      return true
    }
    if (path === '/events') {
      if (!this.d.tap.attach(res)) json(res, 503, { error: 'too many stream clients' })
      return true
    }
    if (path === '/api/summary') {
      void this.summary(res)
      return true
    }
    if (path === '/api/verdicts') {
      void this.verdicts(url, res)
      return true
    }
    json(res, 404, { error: `no such endpoint: ${path}` })
    return true
  }

  private file(req: IncomingMessage, res: ServerResponse, name: string): boolean {
    const f = this.files.get(name)
    if (!f) return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' })
      res.end()
      return true
    }
    res.writeHead(200, { 'content-type': f.type, 'cache-control': 'no-cache', ...SECURITY })
    res.end(req.method === 'HEAD' ? undefined : f.body)
    return true
  }

  /** Pages poll every 2 s each: one summary a second serves them all. */
  private async summary(res: ServerResponse): Promise<void> {
    const now = Date.now()
    if (!this.cached || now - this.cached.at >= SUMMARY_MS) this.cached = { at: now, body: this.buildSummary() }
    const c = this.cached
    try {
      raw(res, 200, await c.body)
    } catch (e) {
      if (this.cached === c) this.cached = undefined
      json(res, 500, { error: (e as Error).message })
    }
  }

  private async buildSummary(): Promise<string> {
    const s = this.d.status()
    const f = await this.d.sampler.figures(s.inspections.map((r) => ({ id: r.id, budgetMs: r.budget_ms, passLabel: passLabel(r.verdicts) })))
    // The model's live status: what its verdicts of the last minute did, not merely whether it loaded.
    const model = s.model && { ...s.model, status: modelStatus(s.model.loaded, f.model), last_minute: f.model }
    return JSON.stringify({
      ...s,
      model,
      uptime_s: Math.round((Date.now() - Date.parse(s.started_at)) / 1000),
      now: Date.now(),
      journal: this.d.journal !== undefined,
      stream: { clients: this.d.tap.clientCount, dropped: this.d.tap.dropped },
      stats: f.inspections,
      timeline: this.d.sampler.timeline(),
    })
  }

  private async verdicts(url: URL, res: ServerResponse): Promise<void> {
    const journal = this.d.journal
    if (!journal) return json(res, 404, { error: 'no journal: this daemon keeps no audit journal of verdicts, so past verdicts cannot be searched; the live stream (/events) still shows new ones' })
    const p = url.searchParams
    const str = (k: string) => { const v = p.get(k); return v === null || v === '' ? undefined : v }
    let since: number | undefined
    try {
      const s = str('since')
      since = s === undefined ? undefined : parseSince(s)
    } catch (e) {
      return json(res, 400, { error: (e as Error).message })
    }
    const limit = Number(str('limit') ?? 50)
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) return json(res, 400, { error: 'limit: an integer from 1 to 500' })
    try {
      const page = await journal.find({ trace: str('trace'), inspection: str('inspection'), verdict: str('verdict'), since, limit, cursor: str('cursor') })
      json(res, 200, page)
    } catch (e) {
      json(res, e instanceof CursorError ? 400 : 500, { error: (e as Error).message })
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  raw(res, status, JSON.stringify(body))
}

function raw(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...SECURITY })
  res.end(text)
}

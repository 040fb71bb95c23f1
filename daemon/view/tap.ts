// The live verdict stream behind GET /events (Server-Sent Events). The service offers each published verdict
// with push(); while no page is connected `active` is false and the service skips the call, so the hot path
// pays one property read. With clients, push() is one array append into a bounded queue; serialising and
// writing happen on a 100 ms timer, and a client whose socket is backed up skips events (counted) instead of
// buffering them in the daemon.
import type { ServerResponse } from 'node:http'

/** What the stream needs of a published response (structural: the view does not import the service). */
export interface PublishedVerdict {
  inspection: string | null
  verdict: string
  checks: readonly { id: string; ok: boolean; reason?: string; error?: string }[]
  latency_ms: number
  deadline_missed: boolean
  correlation_id?: string
  trace?: string
  error?: { code: string; message: string }
  fallback?: boolean
  model?: { status: string }
}

/** The event a page receives. */
export interface StreamEvent {
  ts: number
  topic: string
  inspection: string | null
  verdict: string
  trace: string | null
  correlation_id: string | null
  failed: { id: string; reason: string | null }[]
  latency_ms: number
  deadline_missed: boolean
  fallback: boolean
  error: { code: string; message: string } | null
}

export interface TapOptions {
  /** Most verdicts waiting for the next flush; beyond it new ones are dropped (counted). */
  queueMax?: number
  /** Bytes a client's socket may hold unsent before events for it are skipped. */
  clientBufferBytes?: number
  maxClients?: number
  flushMs?: number
  heartbeatMs?: number
}

interface Client {
  res: ServerResponse
  skipped: number
}

export class VerdictTap {
  /** Read by the service before every push: false while nobody watches. */
  active = false
  /** Verdicts not streamed because the queue was full. */
  dropped = 0
  private queue: { v: PublishedVerdict; topic: string; ts: number }[] = []
  private readonly clients = new Set<Client>()
  private flushTimer?: NodeJS.Timeout
  private beatTimer?: NodeJS.Timeout
  private readonly queueMax: number
  private readonly clientBufferBytes: number
  private readonly maxClients: number
  private readonly flushMs: number
  private readonly heartbeatMs: number

  constructor(o: TapOptions = {}) {
    this.queueMax = o.queueMax ?? 4096
    this.clientBufferBytes = o.clientBufferBytes ?? 256 * 1024
    this.maxClients = o.maxClients ?? 16
    this.flushMs = o.flushMs ?? 100
    this.heartbeatMs = o.heartbeatMs ?? 15_000
  }

  get clientCount(): number {
    return this.clients.size
  }

  /** Hot path: keep this an append. The response object is not modified after publishing. */
  push(v: PublishedVerdict, topic: string, ts: number): void {
    if (this.queue.length >= this.queueMax) {
      this.dropped++
      return
    }
    this.queue.push({ v, topic, ts })
  }

  /** Attaches an SSE response; false (and nothing written) when the client limit is reached. */
  attach(res: ServerResponse): boolean {
    if (this.clients.size >= this.maxClients) return false
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    res.write('retry: 2000\n: flashcheck verdict stream\n\n')
    const c: Client = { res, skipped: 0 }
    this.clients.add(c)
    res.on('close', () => this.detach(c))
    if (this.clients.size === 1) this.start()
    return true
  }

  close(): void {
    for (const c of this.clients) c.res.end()
    this.clients.clear()
    this.stop()
  }

  private detach(c: Client): void {
    if (!this.clients.delete(c)) return
    if (this.clients.size === 0) this.stop()
  }

  private start(): void {
    this.active = true
    this.flushTimer = setInterval(() => this.flush(), this.flushMs)
    this.flushTimer.unref()
    this.beatTimer = setInterval(() => { for (const c of this.clients) if (c.res.writableLength < this.clientBufferBytes) c.res.write(': ping\n\n') }, this.heartbeatMs)
    this.beatTimer.unref()
  }

  private stop(): void {
    this.active = false
    this.queue = []
    clearInterval(this.flushTimer)
    clearInterval(this.beatTimer)
  }

  /** Serialises the queued verdicts once and writes them to every client that keeps up. */
  flush(): void {
    if (this.queue.length === 0) return
    const batch = this.queue
    this.queue = []
    let text = ''
    for (const q of batch) text += `data: ${JSON.stringify(eventOf(q.v, q.topic, q.ts))}\n\n`
    for (const c of this.clients) {
      if (c.res.writableLength > this.clientBufferBytes) {
        c.skipped += batch.length
        continue
      }
      if (c.skipped > 0) {
        c.res.write(`event: gap\ndata: {"skipped":${c.skipped}}\n\n`)
        c.skipped = 0
      }
      c.res.write(text)
    }
  }
}

export function eventOf(v: PublishedVerdict, topic: string, ts: number): StreamEvent {
  const failed: StreamEvent['failed'] = []
  for (const c of v.checks) if (!c.ok) failed.push({ id: c.id, reason: c.reason ?? c.error ?? null })
  return {
    ts,
    topic,
    inspection: v.inspection,
    verdict: v.verdict,
    trace: v.trace ?? null,
    correlation_id: v.correlation_id ?? null,
    failed,
    latency_ms: v.latency_ms,
    deadline_missed: v.deadline_missed,
    fallback: v.fallback === true,
    error: v.error ? { code: v.error.code, message: v.error.message } : null,
  }
}

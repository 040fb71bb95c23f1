// The live verdict stream behind GET /events (Server-Sent Events). The service offers each published verdict
// with push(); while no page is connected `active` is false and the service skips the call, so the hot path
// pays one property read. With clients, push() appends two strings the service already has (the response JSON
// it published and the request topic) to a bounded queue: nothing is built or serialised per verdict. Every
// flushMs the queued verdicts become one text and one Buffer, written once to every client that keeps up (one
// socket write per client per flush, whatever the rate); a client whose socket is backed up skips events
// (counted, and told) instead of buffering them in the daemon.
import type { ServerResponse } from 'node:http'

/**
 * The event a page receives: the published response (see service/response.ts) as it went out, with the topic
 * of the request (or trigger message) spliced in front as `topic`.
 */
export interface StreamEvent {
  topic: string
  verdict_id: string
  ts: string
  inspection: string | null
  verdict: string
  checks: { id: string; ok: boolean; reason?: string; error?: string }[]
  latency_ms: number
  deadline_missed: boolean
  correlation_id?: string
  trace?: string
  error?: { code: string; message: string }
  fallback?: boolean
  model?: { status: string; reason?: string }
}

export interface TapOptions {
  /** Most verdicts waiting for the next flush; beyond it new ones are dropped (counted). */
  queueMax?: number
  /** Most bytes (UTF-16 code units) of response JSON waiting for the next flush; beyond it, dropped (counted). */
  queueChars?: number
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
  /** Alternating topic and response JSON, as pushed. */
  private queue: string[] = []
  private queuedChars = 0
  private readonly clients = new Set<Client>()
  private flushTimer?: NodeJS.Timeout
  private beatTimer?: NodeJS.Timeout
  private readonly queueMax: number
  private readonly queueChars: number
  private readonly clientBufferBytes: number
  private readonly maxClients: number
  private readonly flushMs: number
  private readonly heartbeatMs: number
  // The last topic and its JSON form: consecutive verdicts mostly come from the same few topics.
  private lastTopic = ''
  private lastTopicJson = '""'

  constructor(o: TapOptions = {}) {
    this.queueMax = o.queueMax ?? 4096
    this.queueChars = o.queueChars ?? 4 * 1024 * 1024
    this.clientBufferBytes = o.clientBufferBytes ?? 256 * 1024
    this.maxClients = o.maxClients ?? 16
    this.flushMs = o.flushMs ?? 200
    this.heartbeatMs = o.heartbeatMs ?? 15_000
  }

  get clientCount(): number {
    return this.clients.size
  }

  /** Hot path: two appends. `json` is the response exactly as published (a JSON object). */
  push(json: string, topic: string): void {
    if (this.queue.length >= 2 * this.queueMax || this.queuedChars + json.length > this.queueChars) {
      this.dropped++
      return
    }
    this.queuedChars += json.length
    this.queue.push(topic, json)
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
    this.queuedChars = 0
    clearInterval(this.flushTimer)
    clearInterval(this.beatTimer)
  }

  /** The queued verdicts as one SSE text, encoded once, written to every client that keeps up. */
  flush(): void {
    const q = this.queue
    if (q.length === 0) return
    this.queue = []
    this.queuedChars = 0
    const n = q.length / 2
    let text = ''
    for (let i = 0; i < q.length; i += 2) {
      const topic = q[i]!
      if (topic !== this.lastTopic) {
        this.lastTopic = topic
        this.lastTopicJson = JSON.stringify(topic)
      }
      // {"topic":"…", + the response's own members: the published JSON is reused, not parsed or re-serialised.
      text += `data: {"topic":${this.lastTopicJson},${q[i + 1]!.slice(1)}\n\n`
    }
    const body = Buffer.from(text, 'utf8')
    for (const c of this.clients) {
      if (c.res.writableLength > this.clientBufferBytes) {
        c.skipped += n
        continue
      }
      if (c.skipped > 0) {
        c.res.write(`event: gap\ndata: {"skipped":${c.skipped}}\n\n`)
        c.skipped = 0
      }
      c.res.write(body)
    }
  }
}

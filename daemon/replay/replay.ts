// `flashcheck replay`: feeds a recording through two rule sets on the recording's own clock (no broker) and
// compares their verdicts message by message. The baseline is a rules directory (--against) or the verdicts
// the recording holds (responses recorded on reply topics). Both sides take the daemon's request path
// (VirtualService → Inbound); model steps are not run: reason rules answer with their fallback on both sides.
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Config } from '../config/schema.js'
import { compileFilter } from '../mqtt/topic-filter.js'
import type { CompiledRule, RuleSet } from '../rules/types.js'
import type { ModelJudge } from '../service/exchange.js'
import type { Response } from '../service/response.js'
import type { JudgeOptions } from '../verdict/engine.js'
import type { ModelOutcome } from '../verdict/outcome.js'
import { VirtualService, type Published } from '../virtual/service.js'
import { decodeProperties, type RecordedMessage, type RecordingHeader } from '../record/format.js'

export interface Change {
  line: number
  t_ms: number
  topic: string
  inspection: string | null
  before: { verdict: string; error?: string }
  after: { verdict: string; error?: string }
}

export interface ReplaySummary {
  requests: number
  same: number
  changed: number
  /** Requests of the recording without a recorded response to compare with (recorded-verdict baseline). */
  uncompared: number
  byInspection: Map<string, { verdicts: number; changed: number }>
  changes: Change[]
  /** Malformed lines skipped. */
  skipped: number
  header: RecordingHeader
}

export interface ReplayOptions {
  file: string
  config: Config
  /** The rules under test (--rules-dir). */
  set: RuleSet
  /** Baseline rules (--against); undefined: the recorded verdicts. */
  against?: RuleSet
  /** Replay speed relative to recorded time; Infinity = as fast as possible. */
  speed: number
  /** Keep the list of changed requests (--json). */
  keepChanges: boolean
}

/** Replays run no decoder: a reason rule's model step gives its fallback, on both sides alike. */
class NoModel implements ModelJudge {
  judge(_rule: CompiledRule, _prompt: string, _o: JudgeOptions, done: (o: ModelOutcome) => void): void {
    done({ status: 'skipped', reason: 'decoder_error', detail: 'replay runs no model', ms: 0 })
  }

  expireDue(): void {}
}

/** The reply address of a request as its requester gave it: MQTT 5 properties or the 3.1.1 payload fields. */
function replyKey(topic: string | undefined, correlation: string | undefined): string | undefined {
  return topic === undefined ? undefined : `${topic}\u0000${correlation ?? ''}`
}

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'))
  } catch {
    return undefined
  }
}

function isResponse(v: unknown): v is Response {
  return v !== null && typeof v === 'object' && typeof (v as Response).verdict === 'string' && 'rules_rev' in (v as object)
}

const label = (r: Response) => (r.error ? { verdict: r.verdict, error: r.error.code } : { verdict: r.verdict })

export async function replayRecording(o: ReplayOptions): Promise<ReplaySummary> {
  const lines = createInterface({ input: createReadStream(o.file), crlfDelay: Infinity })
  let header: RecordingHeader | undefined
  const model = new NoModel()
  const after = new VirtualService({ config: o.config, set: o.set, engine: model })
  const before = o.against ? new VirtualService({ config: o.config, set: o.against, engine: model }) : undefined
  const isRequestTopic = compileFilter(o.config.mqtt.requestFilter)
  const sets = o.against ? [o.set, o.against] : [o.set]
  const isRequest = (t: string) => isRequestTopic(t) || sets.some((s) => s.matchRequest(t) !== null)
  const s: Omit<ReplaySummary, 'header'> = { requests: 0, same: 0, changed: 0, uncompared: 0, byInspection: new Map(), changes: [], skipped: 0 }
  // Recorded-verdict baseline: each new answer waits for the recorded one it is compared with, found by the
  // request's reply address, or for stream verdicts by trigger topic and inspection (in order). Entries are
  // settled in recording order once answered or older than WAIT_MS of recorded time, so memory stays bounded.
  type Entry = { key: string; line: number; t_ms: number; topic: string; answer: Response; recorded: Response | null }
  const waiting = new Map<string, Entry[]>()
  const pending: Entry[] = []
  const WAIT_MS = 60_000
  const wall0 = performance.now()
  let n = 0

  const count = (inspection: string | null, changed: boolean, c?: Change) => {
    s.requests++
    const k = inspection ?? '(unknown)'
    const st = s.byInspection.get(k) ?? { verdicts: 0, changed: 0 }
    st.verdicts++
    if (changed) {
      st.changed++
      s.changed++
      if (o.keepChanges && c) s.changes.push(c)
    } else s.same++
    s.byInspection.set(k, st)
  }
  const judge = (line: number, t: number, topic: string, a: Response /* baseline */, b: Response /* new */) => {
    const x = label(a)
    const y = label(b)
    const changed = x.verdict !== y.verdict || x.error !== y.error
    count(b.inspection ?? a.inspection, changed, { line, t_ms: t, topic, inspection: b.inspection ?? a.inspection, before: x, after: y })
  }

  for await (const text of lines) {
    n++
    if (text.trim() === '') continue
    let rec: RecordedMessage
    try {
      rec = JSON.parse(text) as RecordedMessage
    } catch {
      s.skipped++
      continue
    }
    if (header === undefined) {
      if ((rec as unknown as RecordingHeader).flashcheck_recording === undefined) throw new Error(`${o.file}:1:1: not a flashcheck recording (no header line)`)
      header = rec as unknown as RecordingHeader
      continue
    }
    if (typeof rec.t_ms !== 'number' || typeof rec.topic !== 'string' || typeof rec.payload_b64 !== 'string') {
      s.skipped++
      continue
    }
    if (Number.isFinite(o.speed)) {
      const due = rec.t_ms / o.speed - (performance.now() - wall0)
      if (due > 1) await new Promise((r) => setTimeout(r, due))
    }
    const at = header.t0_epoch_ms + rec.t_ms
    const payload = Buffer.from(rec.payload_b64, 'base64')
    const properties = decodeProperties(rec.properties)
    const body = parseJson(payload)
    if (isResponse(body)) {
      if (!before) {
        const cd = properties?.correlationData
        const key =
          typeof body.trigger_topic === 'string'
            ? streamKey(body.trigger_topic, body.inspection)
            : replyKey(rec.topic, cd && cd.length ? `d${Buffer.from(cd).toString('base64')}` : body.correlation_id !== undefined ? `i${body.correlation_id}` : undefined)
        const w = key === undefined ? undefined : waiting.get(key)?.find((e) => e.recorded === null)
        if (w) w.recorded = body
      }
      continue
    }
    const request = isRequest(rec.topic)
    let key: string | undefined
    if (request && !before) {
      const b = body as Record<string, unknown> | undefined
      const cd = properties?.correlationData
      if (properties?.responseTopic !== undefined) key = replyKey(properties.responseTopic, cd && cd.length ? `d${Buffer.from(cd).toString('base64')}` : undefined)
      else if (b && typeof b === 'object' && typeof b.reply_to === 'string') key = replyKey(b.reply_to, b.correlation_id !== undefined ? `i${String(b.correlation_id)}` : undefined)
    }
    const d = after.deliver(at, rec.topic, payload, { reply: request, properties })
    await d.settled
    if (before) {
      const e = before.deliver(at, rec.topic, payload, { reply: request, properties })
      await e.settled
      for (const [was, now] of pair(e.published, d.published, e.replyTopic, d.replyTopic)) judge(n, rec.t_ms, rec.topic, was, now)
      continue
    }
    const answers: [string | undefined, Response][] = request
      ? [[key, d.published.find((p) => p.topic === d.replyTopic)?.response as Response]]
      : d.published.map((p) => [streamKey(rec.topic, p.response.inspection), p.response])
    for (const [k, answer] of answers) {
      if (k === undefined || answer === undefined) {
        s.uncompared++
        continue
      }
      const entry: Entry = { key: k, line: n, t_ms: rec.t_ms, topic: rec.topic, answer, recorded: null }
      const list = waiting.get(k)
      if (list) list.push(entry)
      else waiting.set(k, [entry])
      pending.push(entry)
    }
    while (pending.length > 0 && (pending[0]!.recorded !== null || rec.t_ms - pending[0]!.t_ms > WAIT_MS)) settle(pending.shift()!)
  }
  for (const p of pending) settle(p)
  if (!header) throw new Error(`${o.file}:1:1: empty recording`)
  return { ...s, header }

  function settle(e: Entry): void {
    const list = waiting.get(e.key)
    if (list) {
      const i = list.indexOf(e)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0) waiting.delete(e.key)
    }
    if (e.recorded === null) s.uncompared++
    else judge(e.line, e.t_ms, e.topic, e.recorded, e.answer)
  }
}

function streamKey(trigger: string, inspection: string | null): string {
  return `stream\u0000${trigger}\u0000${inspection ?? ''}`
}

/** Pairs the answers of one message, [baseline, new]: the request's answer, or stream verdicts by inspection. */
function pair(before: Published[], after: Published[], replyBefore?: string, replyAfter?: string): [Response, Response][] {
  if (replyBefore !== undefined) {
    const b = before.find((p) => p.topic === replyBefore)
    const a = after.find((p) => p.topic === replyAfter)
    return a && b ? [[b.response, a.response]] : []
  }
  const out: [Response, Response][] = []
  for (const b of before) {
    const a = after.find((p) => p.response.inspection === b.response.inspection)
    if (a) out.push([b.response, a.response])
  }
  return out
}

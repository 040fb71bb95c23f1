// Where a request wants its answer: MQTT 5 properties (response topic, correlation data, deadline-ms user
// property) or, for MQTT 3.1.1 clients, `reply_to` / `correlation_id` fields inside the JSON payload.
import type { IPublishPacket } from 'mqtt'

export interface Envelope {
  replyTo?: string
  /** MQTT 5 correlation data, echoed verbatim. */
  correlationData?: Buffer
  /** MQTT 3.1.1 convention, echoed in the response JSON. */
  correlationId?: string
  /** Absolute deadline (epoch ms) from the `deadline-ms` user property. */
  deadlineMs?: number
  /** When the requester sent it (epoch ms), from the `sent-at` user property: tells how long it queued. */
  sentAtMs?: number
}

export function envelopeFromPacket(packet: IPublishPacket): Envelope {
  const p = packet.properties
  const env: Envelope = {}
  if (!p) return env
  if (typeof p.responseTopic === 'string' && p.responseTopic !== '') env.replyTo = p.responseTopic
  if (p.correlationData !== undefined) env.correlationData = Buffer.from(p.correlationData)
  const deadline = epochMs(p.userProperties?.['deadline-ms'])
  if (deadline !== undefined) env.deadlineMs = deadline
  const sentAt = epochMs(p.userProperties?.['sent-at'])
  if (sentAt !== undefined) env.sentAtMs = sentAt
  return env
}

function epochMs(v: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(v) ? v[0] : v
  if (raw === undefined) return undefined
  const n = Number(raw)
  return Number.isFinite(n) && n > 0 ? n : undefined
}

/** Fills in the 3.1.1 convention from the parsed payload where the properties gave nothing. */
export function addPayloadEnvelope(env: Envelope, payload: Record<string, unknown>): void {
  if (env.replyTo === undefined && typeof payload.reply_to === 'string' && payload.reply_to !== '') env.replyTo = payload.reply_to
  const cid = payload.correlation_id
  if (typeof cid === 'string' || typeof cid === 'number') env.correlationId = String(cid)
}

export function dedupeKey(env: Envelope): string | undefined {
  if (!env.replyTo) return undefined
  // Empty correlation data tells requests apart no better than none; keying on it would drop real requests.
  if (env.correlationData && env.correlationData.length > 0) return `${env.replyTo}\u0000d${env.correlationData.toString('base64')}`
  if (env.correlationId !== undefined) return `${env.replyTo}\u0000i${env.correlationId}`
  return undefined
}

/** A reply topic must be a plain topic (no wildcards) outside the broker's reserved `$` space. */
export function validReplyTopic(t: string): boolean {
  return t.length > 0 && t.length < 65536 && t.charCodeAt(0) !== 36 && !t.includes('+') && !t.includes('#') && !t.includes('\u0000')
}

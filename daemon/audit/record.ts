// A verdict's identity (verdict_id, ts) and its audit row, built from the response as it is published.
import { v7 } from 'uuid'
import type { Response } from '../service/response.js'
import type { AuditRecord } from './spool.js'

let lastMs = -1
let seq = 0
/** Random bytes for the ids, drawn from the system 4 KiB at a time rather than 256 bytes (uuid's own pool). */
const POOL = new Uint8Array(4096)
let poolAt = POOL.length

/**
 * A UUIDv7 whose time part is the inspection's start, so that ids sort like `ts`; within one millisecond a
 * counter (RFC 9562 method 1) keeps them in the order they were made.
 */
export function verdictId(startedEpochMs: number): string {
  if (startedEpochMs === lastMs && seq < 0x7fffffff) seq++
  else {
    seq = Math.floor(Math.random() * 0x40000000)
    if (startedEpochMs > lastMs) lastMs = startedEpochMs
  }
  if (poolAt === POOL.length) {
    crypto.getRandomValues(POOL)
    poolAt = 0
  }
  const random = POOL.subarray(poolAt, (poolAt += 16))
  return hex(v7({ msecs: startedEpochMs, seq, random }, BYTES, 0))
}

const BYTES = new Uint8Array(16)
const HEX = Array.from({ length: 256 }, (_, i) => (i + 0x100).toString(16).slice(1))

/** The 8-4-4-4-12 form, lower case (uuid's stringify lower-cases the joined string again: a third of the id's cost). */
function hex(b: Uint8Array): string {
  return (
    HEX[b[0]!]! + HEX[b[1]!]! + HEX[b[2]!]! + HEX[b[3]!]! + '-' + HEX[b[4]!]! + HEX[b[5]!]! + '-' + HEX[b[6]!]! + HEX[b[7]!]! + '-' +
    HEX[b[8]!]! + HEX[b[9]!]! + '-' + HEX[b[10]!]! + HEX[b[11]!]! + HEX[b[12]!]! + HEX[b[13]!]! + HEX[b[14]!]! + HEX[b[15]!]!
  )
}

let isoSecond = Number.NaN
let isoPrefix = ''

/** `new Date(ms).toISOString()`, with the part up to the second computed once per second (hot path). */
export function isoTime(epochMs: number): string {
  const ms = Math.floor(epochMs)
  const sec = ms - (((ms % 1000) + 1000) % 1000)
  if (sec !== isoSecond) {
    const full = new Date(ms).toISOString()
    if (full.length !== 24) return full
    isoSecond = sec
    isoPrefix = full.slice(0, 20)
  }
  const r = ms - sec
  return `${isoPrefix}${r < 10 ? '00' : r < 100 ? '0' : ''}${r}Z`
}

/** The value of the rule's `trace:` input as text, or undefined when the request did not carry it. */
export function traceValue(inputs: Record<string, unknown>, name: string | undefined): string | undefined {
  if (name === undefined) return undefined
  const v = inputs[name]
  if (v === undefined || v === null) return undefined
  return typeof v === 'string' ? v : JSON.stringify(v)
}

export interface RecordContext {
  requestTopic: string
  responseTopic: string
  correlationData?: Buffer
  correlationId?: string
  dedupeKey?: string
  payloadSum?: number
  modelId?: string
}

/** The row of a verdict: what the response does not hold, and the response as published. */
export function auditRecord(res: Response, json: string, c: RecordContext): AuditRecord {
  const correlation = c.correlationData && c.correlationData.length > 0 ? c.correlationData.toString('hex') : c.correlationId !== undefined ? Buffer.from(c.correlationId, 'utf8').toString('hex') : null
  return {
    verdict_id: res.verdict_id,
    trace: res.trace ?? null,
    model_id: res.model ? (c.modelId ?? null) : null,
    request_topic: c.requestTopic,
    response_topic: c.responseTopic,
    correlation,
    dedupe_key: c.dedupeKey ?? null,
    payload_sum: c.payloadSum ?? null,
    response: json,
  }
}

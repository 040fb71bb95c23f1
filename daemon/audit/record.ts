// A verdict's identity (verdict_id, ts) and its audit row, built from the response as it is published.
import type { Response } from '../service/response.js'
import type { AuditRecord } from './spool.js'

let lastMs = -1
let seq = 0
/** Random bytes for the ids, drawn from the system 4 KiB at a time (16 per id, as uuid's v7 takes them). */
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
  const at = poolAt
  poolAt += 16
  return uuidV7(startedEpochMs, seq, POOL, at)
}

/** The id's text, written as ASCII bytes and read back as one flat string (the response embeds it as is). */
const TEXT = Buffer.alloc(36, 0x2d)
const HEX_HI = new Uint8Array(256)
const HEX_LO = new Uint8Array(256)
for (let b = 0; b < 256; b++) {
  HEX_HI[b] = '0123456789abcdef'.charCodeAt(b >> 4)
  HEX_LO[b] = '0123456789abcdef'.charCodeAt(b & 15)
}
/** The millisecond whose hex is in TEXT[0, 13) now: the time part is written once per millisecond. */
let textMs = Number.NaN

function hexByte(at: number, b: number): void {
  TEXT[at] = HEX_HI[b]!
  TEXT[at + 1] = HEX_LO[b]!
}

/**
 * The 8-4-4-4-12 lower-case text of the UUIDv7 that uuid's `v7({ msecs, seq, random })` makes (the same
 * bytes: 48 bits of time, version 7, 32 bits of the counter around the variant bits, then random bytes
 * 10-15), without its options object, byte buffer and string joins.
 */
export function uuidV7(msecs: number, seq: number, random: Uint8Array, at: number): string {
  if (msecs !== textMs) {
    textMs = msecs
    hexByte(0, (msecs / 0x10000000000) & 0xff)
    hexByte(2, (msecs / 0x100000000) & 0xff)
    hexByte(4, (msecs / 0x1000000) & 0xff)
    hexByte(6, (msecs / 0x10000) & 0xff)
    hexByte(9, (msecs / 0x100) & 0xff)
    hexByte(11, msecs & 0xff)
  }
  hexByte(14, 0x70 | ((seq >>> 28) & 0x0f))
  hexByte(16, (seq >>> 20) & 0xff)
  hexByte(19, 0x80 | ((seq >>> 14) & 0x3f))
  hexByte(21, (seq >>> 6) & 0xff)
  hexByte(24, ((seq << 2) & 0xff) | (random[at + 10]! & 0x03))
  for (let i = 11; i < 16; i++) hexByte(4 + 2 * i, random[at + i]!)
  return TEXT.toString('latin1', 0, 36)
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

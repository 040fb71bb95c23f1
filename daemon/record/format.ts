// The recording format of `flashcheck record` / `flashcheck replay`: JSONL, a header line, then one line per
// message as it arrived: {t_ms, topic, payload_b64, properties}. t_ms counts from the header's t0_epoch_ms;
// MQTT 5 properties are kept with their binary values (correlation data) as {"b64": "..."}.
import type { IPublishPacket } from 'mqtt'

export const RECORDING_VERSION = 1

export interface RecordingHeader {
  flashcheck_recording: number
  /** rules_rev of the rules directory the recorder loaded (null when it had none valid). */
  rules_rev: string | null
  rules_dir: string
  t0_epoch_ms: number
  started_at: string
  filters: string[]
  node: string
}

export interface RecordedMessage {
  t_ms: number
  topic: string
  payload_b64: string
  properties?: Record<string, unknown>
}

type Props = NonNullable<IPublishPacket['properties']>

export function encodeProperties(p: Props | undefined): Record<string, unknown> | undefined {
  if (!p) return undefined
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue
    out[k] = Buffer.isBuffer(v) ? { b64: v.toString('base64') } : v
  }
  return Object.keys(out).length > 0 ? out : undefined
}

export function decodeProperties(p: Record<string, unknown> | undefined): Props | undefined {
  if (!p || typeof p !== 'object') return undefined
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(p)) {
    out[k] = v !== null && typeof v === 'object' && typeof (v as { b64?: unknown }).b64 === 'string' ? Buffer.from((v as { b64: string }).b64, 'base64') : v
  }
  return out as Props
}

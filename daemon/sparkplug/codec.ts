// Sparkplug B payloads to and from plain values. Scalars are typed by the metric's datatype: Int8…Int32 travel
// as two's complement in a uint32 field, Int64/UInt64/DateTime in a uint64 field; 64-bit values beyond 2^53
// come out as BigInt. DataSet and Template metrics are decoded by protobufjs but carried only as a marker:
// nothing here evaluates them.
import protobuf from 'protobufjs'
import { DataType, PayloadType } from './schema.js'

export type MetricValue = number | bigint | boolean | string | Uint8Array | null

export interface Metric {
  name?: string
  alias?: number | bigint
  /** ms since the epoch. */
  timestamp?: number
  datatype: number
  value: MetricValue
  isNull?: boolean
  isHistorical?: boolean
  isTransient?: boolean
  /** Set for DataSet and Template values, whose content is not decoded into `value`. */
  complex?: 'DataSet' | 'Template'
}

export interface Payload {
  timestamp?: number
  seq?: number
  uuid?: string
  body?: Uint8Array
  metrics: Metric[]
}

/** A payload that is not a Sparkplug B message (broken protobuf, wrong wire types). */
export class SparkplugDecodeError extends Error {
  override readonly name = 'SparkplugDecodeError'
}

type Raw = Record<string, unknown>

/** The metric value fields, one of which a metric carries (a oneof in the specification). */
const VALUE_FIELDS = ['double_value', 'float_value', 'int_value', 'long_value', 'boolean_value', 'string_value', 'bytes_value', 'dataset_value', 'template_value', 'extension_value']
type LongLike = { low: number; high: number; unsigned?: boolean } | number
interface Long { toNumber(): number; toString(): string }
interface LongStatic {
  fromBits(low: number, high: number, unsigned: boolean): Long
  fromString(s: string, unsigned: boolean): Long
  fromNumber(n: number, unsigned: boolean): Long
}
// protobufjs' own Long (the `long` package it depends on), so that its writer accepts the values as they are.
const Long = protobuf.util.Long as unknown as LongStatic

const TWO53 = 2 ** 53

function has(m: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, key)
}

function long(v: LongLike, unsigned: boolean): number | bigint {
  if (typeof v === 'number') return v
  const l = Long.fromBits(v.low, v.high, unsigned)
  const n = l.toNumber()
  if (n < TWO53 && n > -TWO53) return n
  return BigInt(l.toString())
}

function ms(v: unknown): number {
  const n = long(v as LongLike, true)
  return typeof n === 'bigint' ? Number(n) : n
}

function smallInt(v: number, datatype: number): number {
  switch (datatype) {
    case DataType.Int8:
      return (v << 24) >> 24
    case DataType.Int16:
      return (v << 16) >> 16
    case DataType.Int32:
      return v | 0
    case DataType.UInt8:
      return v & 0xff
    case DataType.UInt16:
      return v & 0xffff
    default:
      return v >>> 0
  }
}

function metricValue(m: Raw, datatype: number): { value: MetricValue; complex?: 'DataSet' | 'Template' } {
  let field: string | undefined
  for (let i = 0; i < VALUE_FIELDS.length; i++) {
    if (has(m, VALUE_FIELDS[i]!)) {
      field = VALUE_FIELDS[i]
      break
    }
  }
  switch (field) {
    case 'int_value':
      return { value: smallInt(m.int_value as number, datatype) }
    case 'long_value': {
      if (datatype === DataType.DateTime) return { value: ms(m.long_value) }
      const v = long(m.long_value as LongLike, datatype !== DataType.Int64)
      // Narrow signed types written by a sender into the uint64 field keep their sign.
      return { value: typeof v === 'number' && datatype <= DataType.Int32 && datatype >= DataType.Int8 ? smallInt(v >>> 0, datatype) : v }
    }
    case 'float_value':
      return { value: m.float_value as number }
    case 'double_value':
      return { value: m.double_value as number }
    case 'boolean_value':
      return { value: m.boolean_value as boolean }
    case 'string_value':
      return { value: m.string_value as string }
    case 'bytes_value':
      return { value: m.bytes_value as Uint8Array }
    case 'dataset_value':
      return { value: null, complex: 'DataSet' }
    case 'template_value':
      return { value: null, complex: 'Template' }
    default:
      return { value: null }
  }
}

/** Decodes a Sparkplug B payload; throws SparkplugDecodeError when the bytes are not one. */
export function decodePayload(buf: Uint8Array): Payload {
  let msg: Raw
  try {
    msg = PayloadType.decode(buf) as unknown as Raw
  } catch (e) {
    throw new SparkplugDecodeError(`not a Sparkplug B payload: ${(e as Error).message}`)
  }
  const out: Payload = { metrics: [] }
  if (has(msg, 'timestamp')) out.timestamp = ms(msg.timestamp)
  if (has(msg, 'seq')) out.seq = ms(msg.seq)
  if (has(msg, 'uuid')) out.uuid = msg.uuid as string
  if (has(msg, 'body')) out.body = msg.body as Uint8Array
  for (const raw of (msg.metrics as Raw[] | undefined) ?? []) {
    const datatype = has(raw, 'datatype') ? (raw.datatype as number) : DataType.Unknown
    const metric: Metric = { datatype, value: null }
    if (has(raw, 'name')) metric.name = raw.name as string
    if (has(raw, 'alias')) metric.alias = long(raw.alias as LongLike, true)
    if (has(raw, 'timestamp')) metric.timestamp = ms(raw.timestamp)
    if (raw.is_historical === true) metric.isHistorical = true
    if (raw.is_transient === true) metric.isTransient = true
    if (raw.is_null === true) metric.isNull = true
    else {
      const v = metricValue(raw, datatype)
      metric.value = v.value
      if (v.complex) metric.complex = v.complex
    }
    out.metrics.push(metric)
  }
  return out
}

function toLong(v: number | bigint, unsigned: boolean): Long {
  if (typeof v === 'bigint') return Long.fromString(v.toString(), unsigned)
  return Long.fromNumber(v, unsigned)
}

/** The oneof field (and its wire value) a scalar of `datatype` is written to. */
function valueField(datatype: number, value: Exclude<MetricValue, null>): [string, unknown] {
  switch (datatype) {
    case DataType.Int8:
    case DataType.Int16:
    case DataType.Int32:
    case DataType.UInt8:
    case DataType.UInt16:
      return ['int_value', Number(value) >>> 0]
    case DataType.UInt32:
      // Sparkplug 3.0 gives UInt32 the uint64 field (6.4.16); readers accept either.
      return ['long_value', toLong(Number(value) >>> 0, true)]
    case DataType.Int64:
      // Two's complement in the uint64 field: a signed Long's bits are written as they are.
      return ['long_value', toLong(value as number | bigint, false)]
    case DataType.UInt64:
    case DataType.DateTime:
      return ['long_value', toLong(value as number | bigint, true)]
    case DataType.Float:
      return ['float_value', value]
    case DataType.Double:
      return ['double_value', value]
    case DataType.Boolean:
      return ['boolean_value', value]
    case DataType.String:
    case DataType.Text:
    case DataType.UUID:
      return ['string_value', value]
    case DataType.Bytes:
    case DataType.File:
      return ['bytes_value', value]
    default:
      throw new Error(`datatype ${datatype} cannot be encoded by flashcheck`)
  }
}

/** Encodes a payload of scalar metrics. */
export function encodePayload(p: Payload): Uint8Array {
  const metrics = p.metrics.map((m) => {
    const raw: Record<string, unknown> = { datatype: m.datatype }
    if (m.name !== undefined) raw.name = m.name
    if (m.alias !== undefined) raw.alias = toLong(m.alias, true)
    if (m.timestamp !== undefined) raw.timestamp = toLong(m.timestamp, true)
    if (m.isHistorical) raw.is_historical = true
    if (m.isTransient) raw.is_transient = true
    if (m.value === null || m.isNull) raw.is_null = true
    else {
      const [field, v] = valueField(m.datatype, m.value)
      raw[field] = v
    }
    return raw
  })
  const msg: Record<string, unknown> = { metrics }
  if (p.timestamp !== undefined) msg.timestamp = toLong(p.timestamp, true)
  if (p.seq !== undefined) msg.seq = toLong(p.seq, true)
  if (p.uuid !== undefined) msg.uuid = p.uuid
  if (p.body !== undefined) msg.body = p.body
  return PayloadType.encode(PayloadType.create(msg)).finish()
}

/** A metric's value as a signal sample: numbers, booleans as 0/1, 64-bit integers as the nearest double. */
export function numericValue(m: Metric): number | undefined {
  const v = m.value
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  if (typeof v === 'boolean') return v ? 1 : 0
  return undefined
}


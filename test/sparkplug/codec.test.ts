// The payload codec against Eclipse Tahu's JavaScript codec (sparkplug-payload), in both directions.
import t from 'tap'
import { createRequire } from 'node:module'
import { decodePayload, encodePayload, numericValue, SparkplugDecodeError, type Metric } from '../../daemon/sparkplug/codec.js'
import { DataType } from '../../daemon/sparkplug/schema.js'

const require = createRequire(import.meta.url)
// Tahu's codec and the Long class of the protobufjs copy it uses.
const tahu = require('sparkplug-payload').get('spBv1.0') as {
  encodePayload(p: unknown): Uint8Array
  decodePayload(b: Uint8Array): { timestamp?: unknown; seq?: unknown; metrics: { name?: string; alias?: unknown; timestamp?: unknown; type: string; value: unknown; isNull?: boolean }[] }
}
const TahuLong = require(require.resolve('long', { paths: [require.resolve('sparkplug-payload')] })) as {
  fromString(s: string, unsigned?: boolean): { toString(): string }
}

const str = (v: unknown) => (v !== null && typeof v === 'object' && 'low' in v ? (v as { toString(): string }).toString() : String(v))

t.test('Tahu-encoded scalars of every type decode to the right values', async (t) => {
  const big = 2n ** 60n + 7n
  const bytes = tahu.encodePayload({
    timestamp: 1764633600123,
    seq: 5,
    metrics: [
      { name: 'i8', type: 'Int8', value: -5 },
      { name: 'i16', type: 'Int16', value: -30000 },
      { name: 'i32', type: 'Int32', value: -2000000000 },
      { name: 'i64', type: 'Int64', value: TahuLong.fromString((-big).toString(), false) },
      { name: 'i64small', type: 'Int64', value: -42 },
      { name: 'u8', type: 'UInt8', value: 250 },
      { name: 'u16', type: 'UInt16', value: 65000 },
      { name: 'u32', type: 'UInt32', value: 4000000000 },
      { name: 'u64', type: 'UInt64', value: TahuLong.fromString(big.toString(), true) },
      { name: 'f', type: 'Float', value: 1.5 },
      { name: 'd', type: 'Double', value: 0.1 },
      { name: 'b', type: 'Boolean', value: true },
      { name: 's', type: 'String', value: 'héllo' },
      { name: 'dt', type: 'DateTime', value: 1764633600999, timestamp: 1764633600500 },
      { name: 'txt', type: 'Text', value: 'text' },
      { name: 'Spindle/Temperature', type: 'Double', value: 71.25, alias: 17 },
      { name: 'n', type: 'Double', value: null, isNull: true },
    ],
  })
  const p = decodePayload(bytes)
  t.equal(p.timestamp, 1764633600123)
  t.equal(p.seq, 5)
  const v = Object.fromEntries(p.metrics.map((m) => [m.name, m.value]))
  t.same(v, {
    i8: -5, i16: -30000, i32: -2000000000, i64: -big, i64small: -42, u8: 250, u16: 65000, u32: 4000000000, u64: big,
    f: 1.5, d: 0.1, b: true, s: 'héllo', dt: 1764633600999, txt: 'text', 'Spindle/Temperature': 71.25, n: null,
  })
  t.equal(typeof v.u64, 'bigint', 'UInt64 beyond 2^53 is a BigInt')
  t.equal(typeof v.i64small, 'number', 'Int64 within 2^53 is a number')
  const temp = p.metrics.find((m) => m.name === 'Spindle/Temperature')!
  t.equal(temp.alias, 17)
  t.equal(temp.datatype, DataType.Double)
  t.equal(p.metrics.find((m) => m.name === 'dt')!.timestamp, 1764633600500)
  t.equal(p.metrics.find((m) => m.name === 'n')!.isNull, true)
})

t.test('flashcheck-encoded scalars decode with Tahu to the same values and types', async (t) => {
  const big = 2n ** 62n + 3n
  const metrics: Metric[] = [
    { name: 'i8', datatype: DataType.Int8, value: -100 },
    { name: 'i32', datatype: DataType.Int32, value: -7 },
    { name: 'i64', datatype: DataType.Int64, value: -big },
    { name: 'u32', datatype: DataType.UInt32, value: 4000000000 },
    { name: 'u64', datatype: DataType.UInt64, value: big },
    { name: 'f', datatype: DataType.Float, value: 2.5 },
    { name: 'd', datatype: DataType.Double, value: 12.75, alias: 3, timestamp: 1764633601000 },
    { name: 'b', datatype: DataType.Boolean, value: false },
    { name: 's', datatype: DataType.String, value: '' },
    { name: 'dt', datatype: DataType.DateTime, value: 1764633602000 },
  ]
  const d = tahu.decodePayload(encodePayload({ timestamp: 1764633600000, seq: 255, metrics }))
  t.equal(str(d.timestamp), '1764633600000')
  t.equal(str(d.seq), '255')
  // Tahu hands Int64 back as the uint64 field's Long (its own toSigned() is skipped across long copies): same bits.
  const got = Object.fromEntries(d.metrics.map((m) => [m.name, [m.type, m.type === 'Int64' ? BigInt.asIntN(64, BigInt(str(m.value))).toString() : str(m.value)]]))
  t.same(got, {
    i8: ['Int8', '-100'], i32: ['Int32', '-7'], i64: ['Int64', (-big).toString()], u32: ['UInt32', '4000000000'],
    u64: ['UInt64', big.toString()], f: ['Float', '2.5'], d: ['Double', '12.75'], b: ['Boolean', 'false'], s: ['String', ''],
    dt: ['DateTime', '1764633602000'],
  })
  t.equal(str(tahu.decodePayload(encodePayload({ seq: 0, metrics: [{ name: 'z', datatype: DataType.Int32, value: 0 }] })).seq), '0', 'seq 0 is sent (proto2 presence)')
  const dm = d.metrics.find((m) => m.name === 'd')!
  t.equal(str(dm.alias), '3')
  t.equal(str(dm.timestamp), '1764633601000')
})

t.test('round trip through our own codec keeps Int64 beyond 2^53 exactly', async (t) => {
  const v = -(2n ** 63n)
  const p = decodePayload(encodePayload({ metrics: [{ alias: 9, datatype: DataType.Int64, value: v }, { alias: 10, datatype: DataType.UInt64, value: 2n ** 64n - 1n }] }))
  t.equal(p.metrics[0]!.value, v)
  t.equal(p.metrics[1]!.value, 2n ** 64n - 1n)
  t.equal(p.metrics[0]!.name, undefined, 'alias-only metric has no name')
  t.equal(numericValue(p.metrics[1]!), 2 ** 64)
})

t.test('DataSet and Template metrics decode as markers without values', async (t) => {
  const bytes = tahu.encodePayload({
    timestamp: 1,
    metrics: [
      { name: 'table', type: 'DataSet', value: { numOfColumns: 2, types: ['Int32', 'String'], columns: ['a', 'b'], rows: [[1, 'x'], [2, 'y']] } },
      { name: 'udt', type: 'Template', value: { isDefinition: false, templateRef: 'Motor', metrics: [{ name: 'rpm', type: 'Double', value: 3.5 }], parameters: [] } },
      { name: 'after', type: 'Double', value: 2 },
    ],
  })
  const p = decodePayload(bytes)
  t.same(p.metrics.map((m) => [m.name, m.complex, m.value]), [['table', 'DataSet', null], ['udt', 'Template', null], ['after', undefined, 2]])
})

t.test('bytes that are not a Sparkplug payload throw SparkplugDecodeError', async (t) => {
  for (const bad of [Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x0a]), Buffer.from('{"rms": 0.3}'), Buffer.from([0xff, 0xff, 0xff])]) {
    t.throws(() => decodePayload(bad), SparkplugDecodeError, bad.toString('hex'))
  }
})

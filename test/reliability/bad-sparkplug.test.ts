// The malformed-input corpus for Sparkplug B: broken protobuf, wrong wire types, hostile nesting, oversized
// and random payloads, and malformed topics under spBv1.0/, through a real mosquitto. Each is counted and
// logged (never a crash), and the daemon keeps reading well-formed Sparkplug and answering requests.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import { SparkplugPeer } from '../helpers/sparkplug.js'
import { decodePayload } from '../../daemon/sparkplug/codec.js'

const RULE = `id: sp-temp
request: sp/inspect/{station}
signals:
  temp:
    sparkplug: {group: plant, node: "n-{station}", device: d, metric: T}
    keep: 30s
checks:
  - { id: ok, expr: 'last(temp) < 80.0', on_fail: FAIL }
`
const LIMIT = 65536
const DATA = 'spBv1.0/plant/DDATA/n-1/d'

/** Varint of n (protobuf base-128). */
function varint(n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}
const tag = (field: number, wire: number) => varint((field << 3) | wire)
const lenDelim = (field: number, body: number[]) => [...tag(field, 2), ...varint(body.length), ...body]

/** Metric{template_value: Template{metrics: [Metric{template_value: …}]}} nested until `size` bytes. */
function nestedTemplates(size: number): Buffer {
  const core = lenDelim(2, [0x0a, 0x01, 0x54])
  const prefixes: number[][] = []
  let len = core.length
  for (;;) {
    // One level: Metric (field 2 of the Template, or of the Payload at the top) holding template_value (18).
    const inner = [...tag(18, 2), ...varint(len)]
    const outer = [...tag(2, 2), ...varint(len + inner.length)]
    if (len + inner.length + outer.length > size) break
    prefixes.push([...outer, ...inner])
    len += inner.length + outer.length
  }
  return Buffer.concat([...prefixes.reverse().map((p) => Buffer.from(p)), Buffer.from(core)])
}

/** Payloads no Sparkplug decoder can read: each must be counted as malformed. */
function undecodable(): [string, Buffer][] {
  const out: [string, Buffer][] = []
  const add = (name: string, bytes: number[] | Buffer) => out.push([name, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)])
  add('truncated varint', [0x08, 0xff, 0xff])
  add('varint longer than 10 bytes', [0x08, ...Array(11).fill(0xff), 0x01])
  add('length prefix beyond the end', [0x12, 0x7f, 0x01])
  add('length prefix of 2^32', [0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])
  add('metric with a truncated name', lenDelim(2, [0x0a, 0x10, 0x41]))
  add('wire type 7 (invalid)', [0x0f, 0x00])
  add('wire type 3 (group start) never ended', [0x0b, 0x08, 0x01])
  add('wire type 4 (group end) alone', [0x0c])
  add('field number 0', [0x00, 0x01])
  add('JSON text', Buffer.from('{"metrics":[{"name":"T","value":1}]}'))
  add('all 0xff', Buffer.alloc(64, 0xff))
  add('float value truncated', lenDelim(2, [...tag(12, 5), 0x00, 0x00]))
  add('double value truncated', lenDelim(2, [...tag(13, 1), 0x00]))
  // Templates nested far deeper than any real one, inside the size limit: the decoder must not take the
  // process down (stack) and must refuse it.
  add('templates nested thousands deep, truncated', nestedTemplates(LIMIT - 64).subarray(0, -1))
  add('oversized payload', Buffer.alloc(LIMIT + 1, 0x08))
  return out
}

/** Decodable but meaningless content: read without harm (unknown datatypes, no names, huge numbers). */
function oddButValid(): [string, Buffer][] {
  const metric = (body: number[]) => lenDelim(2, body)
  return [
    ['empty payload', Buffer.alloc(0)],
    ['metric without name or alias', Buffer.from(metric([...tag(4, 0), 10, ...tag(13, 1), 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]))],
    ['unknown datatype 999', Buffer.from(metric([0x0a, 0x01, 0x54, ...tag(4, 0), ...varint(999), ...tag(10, 0), 5]))],
    ['seq 2^64-1', Buffer.from([...tag(3, 0), ...Array(9).fill(0xff), 0x01])],
    ['NaN double', Buffer.from(metric([0x0a, 0x01, 0x54, ...tag(4, 0), 10, ...tag(13, 1), 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]))],
    ['unknown fields 100+', Buffer.from([...tag(100, 0), 1, ...lenDelim(101, [1, 2, 3])])],
  ]
}

// Topics inside the subscription (spBv1.0/plant/+/+/#) that are not Sparkplug B topics.
const BAD_TOPICS = ['spBv1.0/plant/DDATA/n-1', 'spBv1.0/plant/NDATA/n-1/d', 'spBv1.0/plant/XDATA/n-1', 'spBv1.0/plant/DDATA/n-1/d/extra', 'spBv1.0/plant/NDATA/n-1/']

t.test('the corpus is what it says: our codec refuses the undecodable ones and reads the odd ones', async (t) => {
  for (const [name, buf] of undecodable()) if (buf.length <= LIMIT) t.throws(() => decodePayload(buf), name)
  for (const [name, buf] of oddButValid()) t.doesNotThrow(() => decodePayload(buf), name)
})

t.test('malformed Sparkplug B on spBv1.0 topics: counted and logged, never a crash; the daemon keeps serving', async (t) => {
  const broker = await Mosquitto.start()
  const rules = mkdtempSync(join(tmpdir(), 'flashcheck-badsp-'))
  writeFileSync(join(rules, 'sp.yaml'), RULE)
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', rules, '--rules-watch', 'false', '--limits-max-payload-bytes', String(LIMIT)]))
  const plc = await SparkplugPeer.connect(broker.url, [])
  const req = await Requester.connect(broker.url, 5)
  t.teardown(async () => {
    await Promise.all([plc.end(), req.end()])
    await d.stop()
    await broker.stop()
    rmSync(rules, { recursive: true, force: true })
  })
  const reg = d.daemon.metrics.registry
  const birth = async () => {
    await plc.send('spBv1.0/plant/NBIRTH/n-1', { timestamp: Date.now(), seq: 0, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 0 }] })
    await plc.send('spBv1.0/plant/DBIRTH/n-1/d', { timestamp: Date.now(), seq: 1, metrics: [{ name: 'T', alias: 5, type: 'Double', value: 20 }] })
  }
  await birth()
  t.equal((await req.request5('sp/inspect/1', {})).body.verdict, 'PASS')

  const bad = undecodable()
  for (const [, buf] of bad) await plc.client.publishAsync(DATA, buf, { qos: 1 })
  for (const [, buf] of oddButValid()) await plc.client.publishAsync(DATA, buf, { qos: 1 })
  for (const topic of BAD_TOPICS) await plc.client.publishAsync(topic, Buffer.from([0x08, 0x01]), { qos: 1 })
  // Random bytes, seeded: whatever they decode to, nothing breaks.
  const random = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 300 }), { numRuns: 200, seed: 16 })
  for (const bytes of random) await plc.client.publishAsync(DATA, Buffer.from(bytes), { qos: 1 })

  const r = await req.request5('sp/inspect/1', {})
  t.equal(r.body.inspection, 'sp-temp', 'still answering')
  const malformed = (await reg.getSingleMetric('flashcheck_sparkplug_malformed_total')!.get()).values
  const by = (reason: string) => malformed.find((v) => v.labels.reason === reason)?.value ?? 0
  t.equal(by('too_large'), 1)
  t.ok(by('payload') >= bad.length - 1, `every undecodable payload counted (${by('payload')} >= ${bad.length - 1})`)
  t.equal(by('topic'), BAD_TOPICS.length, 'malformed topics counted')
  t.ok(d.logs.some((l) => l.topic === DATA && /sparkplug message dropped: not a Sparkplug B payload/.test(String(l.msg))), 'logged with the topic')

  // Births and data still work after the corpus (the broken messages asked for rebirths; a new birth settles it).
  await birth()
  await plc.send(DATA, { timestamp: Date.now(), seq: 2, metrics: [{ alias: 5, type: 'Double', value: 95 }] })
  const after = await req.request5('sp/inspect/1', {})
  t.equal(after.body.verdict, 'FAIL')
  t.same(after.body.checks[0].values, { 'last(temp)': 95 })
})

// A corpus of malformed requests through a real mosquitto: every one with a reply address gets an ERROR
// verdict with the expected code, every one without is counted, the daemon keeps serving and its memory
// stays bounded over repeated rounds.
import t from 'tap'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import mqtt, { type MqttClient } from 'mqtt'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon, type Running } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'
const LIMIT = 65536

interface Case {
  name: string
  topic: string
  payload: Buffer
  /** Accepted error codes (any ERROR when empty). */
  codes: string[]
}

const b = (s: string | Buffer): Buffer => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'))
const j = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))

function corpus(): Case[] {
  const out: Case[] = []
  const add = (name: string, payload: Buffer, codes: string[], topic = TORQUE) => out.push({ name, topic, payload, codes })

  // Not JSON at all.
  const notJson = [
    '', ' ', '\n\t', 'torque=11', '{', '}', '[', '{"torque_nm": 11', '{"torque_nm": }', "{'torque_nm': 11}", '{torque_nm: 11}',
    '{"torque_nm": 11,}', '[1,2,]', 'NaN', 'Infinity', '-Infinity', 'undefined', 'nul', 'tru', '01', '1.', '.5', '+1', '0x1F',
    '"unterminated', '{"a": "\\x41"}', '{"a": "\\u12"}', '/* c */ {}', '{} // c', '{}{}', '{"a":1} x', '\uFEFF{"torque_nm":11}',
    '<xml/>', 'SELECT * FROM verdicts', '{"a": 1e}', '{"a": --1}', '{"a": [}', '\u0000', '{"a":\u0000}', 'true false',
  ]
  notJson.forEach((s, i) => add(`not JSON #${i} ${JSON.stringify(s).slice(0, 30)}`, b(s), ['BAD_JSON']))

  // Invalid UTF-8: either unparseable, or a string that decodes to U+FFFD where a number is wanted.
  const badUtf8 = [
    Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from([0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from([0x7b, 0xff, 0x7d]), Buffer.from([0xc0, 0xaf]),
  ]
  badUtf8.forEach((buf, i) => add(`invalid UTF-8 bytes #${i}`, buf, ['BAD_JSON']))
  const inString = [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0x80, 0x80]]
  inString.forEach((bytes, i) => add(`invalid UTF-8 inside a string #${i}`, Buffer.concat([b('{"torque_nm":"'), Buffer.from(bytes), b('","angle_deg":700}')]), ['BAD_INPUT']))

  // JSON that is not an object.
  const scalars: unknown[] = [0, -1, 3.14, 1e308, 'a', '', 'PASS', true, false, null, [], [1], [{}], [{ torque_nm: 11, angle_deg: 700 }], [[[]]], ['a', 1, null], [null], [true, false]]
  scalars.forEach((v, i) => add(`JSON ${Array.isArray(v) ? 'array' : typeof v} #${i}`, j(v), ['NOT_OBJECT']))

  // Deep nesting, as the whole payload and inside an input.
  for (const depth of [100, 1000, 10_000, 30_000]) {
    add(`array nested ${depth} deep`, b('['.repeat(depth) + ']'.repeat(depth)), ['NOT_OBJECT', 'TOO_LARGE'])
    const obj = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
    add(`object nested ${depth} deep (no inputs)`, b(obj), depth * 6 > LIMIT ? ['TOO_LARGE'] : ['MISSING_INPUT'])
    const inner = '{"a":'.repeat(Math.min(depth, 8000)) + '1' + '}'.repeat(Math.min(depth, 8000))
    add(`deep object as an input value (${depth})`, b(`{"torque_nm":${inner},"angle_deg":700}`), ['BAD_INPUT', 'TOO_LARGE'])
    add(`unbalanced nesting ${depth}`, b('['.repeat(depth)), ['BAD_JSON', 'TOO_LARGE'])
  }

  // Numbers JSON can spell but no sensor reads.
  for (const n of ['1e400', '-1e400', '1e999999', '-1e999999', '123456789e400']) {
    add(`huge number ${n} as torque`, b(`{"torque_nm":${n},"angle_deg":700}`), ['BAD_INPUT'])
    add(`huge number ${n} as angle`, b(`{"torque_nm":11,"angle_deg":${n}}`), ['BAD_INPUT'])
  }
  add('a 400-digit integer', b(`{"torque_nm":${'9'.repeat(400)},"angle_deg":700}`), ['BAD_INPUT'])

  // NaN-like and numeric-looking strings where a number is declared.
  const nanLike = ['NaN', 'nan', 'Infinity', '-Infinity', 'inf', '1e999', '0x10', ' 11 ', '11Nm', '11,5', '', 'null', 'undefined', '١١', '１１', '11\u0000']
  nanLike.forEach((s) => add(`numeric-looking string ${JSON.stringify(s)}`, j({ torque_nm: s, angle_deg: 700 }), ['BAD_INPUT']))

  // Wrong types and missing fields.
  const wrong: unknown[] = [true, false, [], [11], {}, { value: 11 }, 'eleven']
  wrong.forEach((v, i) => {
    add(`wrong type for torque #${i}`, j({ torque_nm: v, angle_deg: 700 }), ['BAD_INPUT'])
    add(`wrong type for angle #${i}`, j({ torque_nm: 11, angle_deg: v }), ['BAD_INPUT'])
  })
  const missing: unknown[] = [{}, { angle_deg: 700 }, { torque_nm: 11 }, { torque_nm: null, angle_deg: 700 }, { torque: 11, angle: 700 }, { TORQUE_NM: 11, ANGLE_DEG: 700 },
    { 'torque_nm ': 11, angle_deg: 700 }, { payload: { torque_nm: 11, angle_deg: 700 } }, { __proto__: { torque_nm: 11 }, angle_deg: 700 }]
  missing.forEach((v, i) => add(`missing field #${i}`, j(v), ['MISSING_INPUT']))
  add('prototype pollution attempt', b('{"__proto__":{"torque_nm":11},"constructor":{"prototype":{"angle_deg":700}}}'), ['MISSING_INPUT'])
  add('duplicate keys, last one a string', b('{"torque_nm":11,"torque_nm":"x","angle_deg":700}'), ['BAD_INPUT'])
  for (let k = 1; k <= 10; k++) {
    const extra: Record<string, unknown> = { angle_deg: 700 }
    for (let i = 0; i < k * 100; i++) extra[`extra_${i}`] = i
    add(`${k * 100} extra fields, torque missing`, j(extra), ['MISSING_INPUT'])
  }

  // Very long strings and keys (under the size limit) and oversized payloads.
  for (const len of [1000, 10_000, 60_000]) {
    add(`torque as a ${len}-char string`, j({ torque_nm: 'x'.repeat(len), angle_deg: 700 }), ['BAD_INPUT'])
    add(`a ${len}-char key, torque missing`, j({ ['k'.repeat(len)]: 1, angle_deg: 700 }), ['MISSING_INPUT'])
    add(`a ${len}-char unicode string`, j({ torque_nm: '漢'.repeat(Math.floor(len / 3)), angle_deg: 700 }), ['BAD_INPUT'])
  }
  for (const size of [LIMIT + 1, LIMIT + 1000, 100_000, 1 << 20, 4 << 20]) {
    add(`oversized JSON ${size} bytes`, b(`{"torque_nm":11,"angle_deg":700,"pad":"${'p'.repeat(size - 40)}"}`), ['TOO_LARGE'])
    add(`oversized garbage ${size} bytes`, randomBytes(size), ['TOO_LARGE'])
  }

  // Unicode and odd topics: unknown inspections, and a known one with bad payloads.
  const stations = ['ß', 'стан', '工位', '🔧', 'a\u200bb', '\u202eRTL', 'é́', ' ', '..', '%2B', 'st1 ', 'ST1\u0301']
  stations.forEach((s, i) => {
    add(`unicode topic, unknown inspection #${i}`, j({ torque_nm: 11, angle_deg: 700 }), ['UNKNOWN_INSPECTION'], `flashcheck/inspect/${s}/paint`)
    add(`unicode station, non-JSON payload #${i}`, b('x'), ['BAD_JSON'], `flashcheck/inspect/${s}/torque`)
    add(`unicode station, wrong type #${i}`, j({ torque_nm: 'x', angle_deg: 700 }), ['BAD_INPUT'], `flashcheck/inspect/${s}/torque`)
  })
  // An empty level must not bind {station}: that request is for no inspection.
  for (const tp of ['flashcheck/inspect//torque', 'flashcheck/inspect/', 'flashcheck/inspect', 'flashcheck/inspect/st1/torque/', 'flashcheck/inspect/st1/torque/extra', 'flashcheck/inspect///']) {
    add(`topic ${tp}`, j({ torque_nm: 11, angle_deg: 700 }), ['UNKNOWN_INSPECTION'], tp)
  }
  return out
}

let broker: Mosquitto
let d: Running
let req: Requester
let raw: MqttClient

t.before(async () => {
  broker = await Mosquitto.start()
  d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false']))
  req = await Requester.connect(broker.url, 5)
  raw = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
})

t.teardown(async () => {
  await req?.end()
  await raw?.endAsync(true)
  await d?.stop()
  await broker?.stop()
})

/** Sends every case with its own correlation data and returns the reply body per case. */
async function round(cases: Case[], tag: string): Promise<Map<number, Record<string, any>>> {
  const before = req.replies.length
  // In batches, so that the 4 MiB cases do not all sit in the broker's queue at once.
  for (let i = 0; i < cases.length; i += 20) {
    await Promise.all(cases.slice(i, i + 20).map((c, k) =>
      req.client.publishAsync(c.topic, c.payload, { qos: 1, properties: { responseTopic: req.replyTo, correlationData: Buffer.from(`${tag}:${i + k}`) } })))
  }
  await req.waitFor(before + cases.length, 30_000)
  const byCase = new Map<number, Record<string, any>>()
  for (const r of req.replies.slice(before)) {
    const [rt, idx] = String(r.correlationData).split(':')
    if (rt === tag) byCase.set(Number(idx), r.body)
  }
  return byCase
}

t.test('every malformed request gets an ERROR verdict with the expected code; memory stays bounded', async (t) => {
  const cases = corpus()
  t.ok(cases.length >= 200, `corpus has ${cases.length} cases`)
  const rss: number[] = []
  for (let r = 0; r < 4; r++) {
    const got = await round(cases, `r${r}`)
    t.equal(got.size, cases.length, `round ${r}: one reply per case`)
    if (r === 0) {
      let wrong = 0
      cases.forEach((c, i) => {
        const body = got.get(i)
        const ok = body?.verdict === 'ERROR' && (c.codes.length === 0 || c.codes.includes(body.error?.code))
        if (!ok) { wrong++; t.fail(`${c.name}: got ${JSON.stringify(body)?.slice(0, 200)}`) }
        else if (typeof body.error?.message !== 'string' || body.error.message.length > 2000) { wrong++; t.fail(`${c.name}: error message missing or unbounded`) }
      })
      t.equal(wrong, 0, 'all cases answered as expected')
    }
    rss.push(process.memoryUsage().rss)
  }
  // The first round grows the heap to its working size; later rounds must not keep growing it.
  const growth = (rss[3]! - rss[1]!) / (1 << 20)
  t.ok(growth < 64, `RSS growth over rounds 2-4: ${growth.toFixed(1)} MiB (rss ${rss.map((x) => (x / (1 << 20)).toFixed(0)).join(', ')} MiB)`)
  t.equal(d.daemon.connected, true, 'still connected')
  const ok = await req.request5(TORQUE, { torque_nm: 11, angle_deg: 700 })
  t.not(ok.body.verdict, 'ERROR', 'still serving normal requests')
})

t.test('requests without a usable reply address are logged and counted, never answered', async (t) => {
  const before = (await d.daemon.metrics.noResponseTopic.get()).values[0]?.value ?? 0
  const sink = `test/sink/${randomBytes(4).toString('hex')}`
  const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  let stray = 0
  watcher.on('message', () => { stray++ })
  await watcher.subscribeAsync([`${sink}/#`, '$SYS/flashcheck/#'], { qos: 1 })
  t.teardown(() => watcher.endAsync(true))
  const cases: { topic: string; payload: Buffer; props?: Record<string, unknown> }[] = [
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700 }) }, // no response topic at all
    { topic: TORQUE, payload: b('garbage') },
    { topic: TORQUE, payload: j([1, 2]) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700, reply_to: 42 }) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700, reply_to: '' }) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700, reply_to: `${sink}/+` }) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700, reply_to: `${sink}/#` }) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700, reply_to: '$SYS/flashcheck/x' }) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700, reply_to: `${sink}/a\u0000b` }) },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700 }), props: { responseTopic: `${sink}/+/x` } },
    { topic: TORQUE, payload: j({ torque_nm: 11, angle_deg: 700 }), props: { responseTopic: `${sink}/#` } },
  ]
  for (const c of cases) await raw.publishAsync(c.topic, c.payload, { qos: 1, properties: c.props ?? {} })
  const want = before + cases.length
  const end = Date.now() + 5000
  let now = before
  while (Date.now() < end && now < want) {
    await new Promise((r) => setTimeout(r, 50))
    now = (await d.daemon.metrics.noResponseTopic.get()).values[0]?.value ?? 0
  }
  t.equal(now, want, 'each counted once')
  await new Promise((r) => setTimeout(r, 200))
  t.equal(stray, 0, 'nothing published to a wildcard-derived or $SYS topic')
  t.ok(d.logs.some((l) => /no usable response topic/.test(String(l.msg))), 'logged')
})

t.test('empty correlation data: answered, never mistaken for a redelivery of another request', async (t) => {
  const before = req.replies.length
  const empty = Buffer.alloc(0)
  const payloads = [b('x'), j([1]), j({ torque_nm: 'x', angle_deg: 700 }), j({ torque_nm: 'x', angle_deg: 700 })]
  for (const p of payloads) {
    await req.client.publishAsync(TORQUE, p, { qos: 1, properties: { responseTopic: req.replyTo, correlationData: empty } })
  }
  const all = await req.waitFor(before + payloads.length, 5000)
  const got = all.slice(before).map((r) => r.body.error?.code)
  t.same(got.sort(), ['BAD_INPUT', 'BAD_INPUT', 'BAD_JSON', 'NOT_OBJECT'], 'the same request twice with empty correlation data is answered twice')
})

t.test('nothing received over MQTT changes rules or configuration', async (t) => {
  const rev = d.daemon.rulesRev
  const rule = 'id: evil\nrequest: flashcheck/inspect/{s}/torque\nchecks:\n  - { id: c, expr: "true", on_fail: PASS }\n'
  const topics = ['flashcheck/test-node/rules', 'flashcheck/test-node/config', 'flashcheck/test-node/reload', 'flashcheck/inspect/reload', 'flashcheck/inspect/st1/torque/rules', '$SYS/flashcheck/reload']
  for (const tp of topics) {
    await raw.publishAsync(tp, rule, { qos: 1 }).catch(() => undefined)
    await raw.publishAsync(tp, JSON.stringify({ rules: { dir: '/tmp' }, mqtt: { url: 'mqtt://evil' }, reply_to: req.replyTo }), { qos: 1 }).catch(() => undefined)
  }
  await new Promise((r) => setTimeout(r, 300))
  t.equal(d.daemon.rulesRev, rev, 'same rules revision')
  const r = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
  t.equal(r.body.verdict, 'FAIL', 'the configured rule still decides')
  t.equal(r.body.rules_rev, rev)
})

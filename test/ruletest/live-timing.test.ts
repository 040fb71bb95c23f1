// `rules test` and the live daemon judge the same inputs identically, window values included: the live
// daemon (real mosquitto, real time) records when each message arrived; those times become a test file whose
// run on the virtual clock must give the same checks and values as the live responses, exactly.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { stringify } from 'yaml'
import { Mosquitto } from '../../harness/mosquitto.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Daemon } from '../../daemon/service/daemon.js'
import { parseTestFile } from '../../daemon/ruletest/format.js'
import { TestRunner } from '../../daemon/ruletest/runner.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'ruletest', 'timing')

t.test('window functions on the virtual clock equal the live daemon on the same arrival times', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const arrivals: number[] = []
  const daemon = new Daemon({
    config: testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false']),
    logger: createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() })),
    clock: () => {
      const now = Date.now()
      arrivals.push(now)
      return now
    },
  })
  const connected = new Promise<void>((r) => daemon.once('connected', () => r()))
  t.teardown(() => daemon.stop())
  await daemon.start()
  await connected
  const plc = await Requester.connect(broker.url, 5)
  t.teardown(() => plc.end())
  const tmp = mkdtempSync(join(tmpdir(), 'flashcheck-live-timing-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

  // One ordered stream of messages from one client: the daemon handles them in this order.
  const sent: ({ kind: 'sample'; x: number } | { kind: 'request' })[] = []
  let seed = 7
  const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const live: Record<string, any>[] = []
  const request = async () => {
    sent.push({ kind: 'request' })
    live.push((await plc.request5('flashcheck/inspect/st1/timing', {})).body)
  }
  await request() // before any sample: no samples in any window
  for (let i = 0; i < 36; i++) {
    const x = Math.round(rnd() * 600) / 100
    sent.push({ kind: 'sample', x })
    await plc.client.publishAsync('plant/st1/probe', JSON.stringify({ x }), { qos: 1 })
    if (i % 4 === 3) await request()
    await sleep(10 + Math.floor(rnd() * 90))
  }
  await request()
  t.equal(arrivals.length, sent.length, 'the daemon saw every message once')

  const t0 = arrivals[0]!
  const doc = {
    rules_dir: RULES,
    tests: [{
      name: 'live arrival times',
      signals: sent.flatMap((m, i) => (m.kind === 'sample' ? [{ topic: 'plant/st1/probe', start_ms: arrivals[i]! - t0, values: [m.x], payload: '{"x": $value}' }] : [])),
      requests: sent.flatMap((m, i) => (m.kind === 'request' ? [{ at_ms: arrivals[i]! - t0, topic: 'flashcheck/inspect/st1/timing', expect: { verdict: live[sent.slice(0, i).filter((x) => x.kind === 'request').length]!.verdict } }] : [])),
    }],
  }
  const file = join(tmp, 'live.test.yaml')
  writeFileSync(file, stringify(doc))
  const [res] = await new TestRunner({ keepAnswers: true }).runFile(parseTestFile(file, stringify(doc)))
  t.ok(res!.ok, JSON.stringify(res!.failures))
  const virtual = res!.answers!
  t.equal(virtual.length, live.length)
  // Exactly equal: the same windows hold the same samples, so counts, averages, slopes and ages agree.
  t.same(virtual.map((a) => a && { verdict: a.verdict, checks: a.checks, error: a.error }), live.map((a) => ({ verdict: a.verdict, checks: a.checks, error: a.error })))
  const verdicts = new Set(live.map((a) => a.verdict))
  t.ok(verdicts.size >= 2, `the inputs exercise more than one verdict: ${[...verdicts].join(', ')}`)
  t.ok(live.some((a) => a.checks.some((c: any) => 'slope(v, "500ms")' in c.values)), 'slopes were computed')
})

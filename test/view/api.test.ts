// The status page's HTTP side against a live daemon and a real mosquitto: static files with their security
// headers, /api/summary figures that move with requests, the SSE stream, /api/verdicts with and without a
// journal, read-only methods, and basic auth.
import t from 'tap'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import type { VerdictQuery, VerdictSource } from '../../daemon/view/journal.js'
import { Daemon } from '../../daemon/service/daemon.js'
import { createLogger } from '../../daemon/log/logger.js'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import { cli } from '../helpers/cli.js'
import { stats } from '../../daemon/audit/query.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')

/** Reads SSE `data:` events from /events until `n` arrived or the time is up. */
function readEvents(url: string, n: number, timeoutMs: number, headers: Record<string, string> = {}): { ready: Promise<void>; events: Promise<Record<string, any>[]>; close: () => void } {
  const events: Record<string, any>[] = []
  let close = () => {}
  let ready!: () => void
  const readyP = new Promise<void>((r) => (ready = r))
  const done = new Promise<Record<string, any>[]>((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`))
      ready()
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let i: number
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const data = block.split('\n').find((l) => l.startsWith('data: '))
          if (data && !block.startsWith('event:')) events.push(JSON.parse(data.slice(6)) as Record<string, any>)
          if (events.length >= n) { req.destroy(); resolve(events) }
        }
      })
    })
    req.on('error', () => resolve(events))
    const timer = setTimeout(() => { req.destroy(); resolve(events) }, timeoutMs)
    close = () => { clearTimeout(timer); req.destroy() }
    req.end()
  })
  return { ready: readyP, events: done, close }
}

async function until(what: string, f: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('page, summary, stream and journal endpoints', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', RULES, '--rules-watch', 'false']))
  t.teardown(() => d.stop())
  const base = `http://127.0.0.1:${mport}`

  const page = await fetch(`${base}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/, 'no inline or foreign script may run')
  t.equal(page.headers.get('x-content-type-options'), 'nosniff')
  const html = await page.text()
  t.match(html, /<script type="module" src="\/view\/app\.js"><\/script>/)
  t.notMatch(html, /https?:\/\//, 'nothing fetched from elsewhere')
  const js = await (await fetch(`${base}/view/app.js`)).text()
  t.notMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the page script never parses data as HTML')
  t.equal((await fetch(`${base}/view/style.css`)).headers.get('content-type'), 'text/css; charset=utf-8')
  t.equal((await fetch(`${base}/view/../package.json`)).status, 404)
  t.equal((await fetch(`${base}/view/nothing.js`)).status, 404)

  // Read-only: nothing but GET/HEAD.
  for (const m of ['POST', 'PUT', 'DELETE']) t.equal((await fetch(`${base}/api/summary`, { method: m })).status, 405, `${m} refused`)

  const s0 = (await (await fetch(`${base}/api/summary`)).json()) as Record<string, any>
  t.equal(s0.node, 'test-node')
  t.equal(s0.broker, 'connected')
  t.equal(s0.rules_rev, d.daemon.rulesRev)
  t.same(s0.inspections.map((r: { id: string }) => r.id).sort(), ['oven-temp', 'torque-joint'])
  t.equal(s0.model, null)
  const torque0 = s0.stats.find((x: { inspection: string }) => x.inspection === 'torque-joint')
  t.equal(torque0.budget_ms, 50)
  t.equal(torque0.m5.requests, 0)
  t.equal(s0.stream.clients, 0)

  // No page connected: the service is not offered verdicts at all.
  const req = await Requester.connect(broker.url, 5)
  t.teardown(() => req.end())
  await req.request5('flashcheck/inspect/st4/torque', { torque_nm: 11, angle_deg: 700 })
  const tap = (d.daemon as unknown as { tap: { active: boolean; dropped: number } }).tap
  t.equal(tap.active, false, 'idle tap while nobody watches')

  const stream = readEvents(`${base}/events`, 3, 15_000)
  await stream.ready
  t.equal(tap.active, true)
  const sent = Date.now()
  await req.request5('flashcheck/inspect/st4/torque', { torque_nm: 9, angle_deg: 700 }, {}, Buffer.from('corr-1'))
  await req.request5('flashcheck/inspect/st4/torque', { torque_nm: 11, angle_deg: 1000 })
  await req.request5('flashcheck/inspect/st4/torque', '<script>alert(1)</script>')
  const evs = await stream.events
  t.ok(Date.now() - sent < 5000, 'events arrive promptly')
  t.equal(evs.length, 3)
  t.match(evs[0], { inspection: 'torque-joint', verdict: 'FAIL', topic: 'flashcheck/inspect/st4/torque', deadline_missed: false })
  t.notOk('error' in evs[0] || 'fallback' in evs[0])
  t.same(evs[0].checks.filter((c: { ok: boolean }) => !c.ok).map((c: { id: string; reason?: string }) => [c.id, c.reason]), [['torque-in-spec', 'torque 9 Nm outside 10.0..12.0'], ['spindle-calm', undefined]])
  t.match(evs[0].verdict_id, /^[0-9a-f-]{36}$/, 'the response as published, verdict_id included')
  t.equal(evs[1].verdict, 'REWORK')
  t.match(evs[2], { verdict: 'ERROR', error: { code: 'BAD_JSON' } })
  t.match(evs[2].error.message, /<script>/, 'the stream carries data as data; the page shows it as text')
  t.type(evs[0].latency_ms, 'number')
  await until('tap idle after the client left', async () => !tap.active)

  // The summary is computed at most once a second for all pages: poll as the page does.
  let s1: Record<string, any> = {}
  let torque1: Record<string, any> = {}
  await until('the counters moved', async () => {
    s1 = (await (await fetch(`${base}/api/summary`)).json()) as Record<string, any>
    torque1 = s1.stats.find((x: { inspection: string }) => x.inspection === 'torque-joint')
    return torque1.m5.requests === 4
  }, 5000)
  t.equal(torque1.m5.requests, 4, 'the counters moved')
  t.same(torque1.m5.verdicts, { WARN: 1, FAIL: 1, REWORK: 1, ERROR: 1 })
  t.equal(torque1.m5.first_pass_yield, 0)
  t.ok(torque1.m5.p50_ms > 0 && torque1.m5.p99_ms >= torque1.m5.p50_ms && torque1.m5.p99_ms <= 50, `p50 ${torque1.m5.p50_ms} p99 ${torque1.m5.p99_ms}`)
  t.equal(torque1.histogram.reduce((a: number, b: { n: number }) => a + b.n, 0), 4, 'histogram holds every request')
  t.equal(torque1.h1.requests, 4)

  const j = await fetch(`${base}/api/verdicts?trace=x`)
  t.equal(j.status, 404)
  t.match(((await j.json()) as { error: string }).error, /^no journal: /)
  t.equal((await fetch(`${base}/api/nothing`)).status, 404)
  t.equal((await fetch(`${base}/metrics`)).status, 200, 'metrics unchanged')
})

t.test('/api/verdicts over a journal: filters, pages, bad input', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const mport = await freePort()
  const rows = Array.from({ length: 7 }, (_, i) => ({ verdict_id: `id-${i}`, trace: i < 5 ? 'SN-1' : 'SN-2', inspection: 'torque-joint', verdict: 'PASS', ts: new Date(1_700_000_000_000 + i * 1000).toISOString(), latency_ms: 1 }))
  const seen: VerdictQuery[] = []
  const journal: VerdictSource = {
    find(q) {
      seen.push(q)
      const hits = rows.filter((r) => (q.trace === undefined || r.trace === q.trace) && (q.since === undefined || Date.parse(r.ts) >= q.since)).reverse()
      const start = q.cursor ? hits.findIndex((r) => r.verdict_id === q.cursor) : 0
      const items = hits.slice(start, start + q.limit)
      return { items, next: hits[start + q.limit]?.verdict_id ?? null }
    },
  }
  const cfg = testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', RULES, '--rules-watch', 'false'])
  const daemon = new Daemon({ config: cfg, logger: createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() })), verdictSource: journal })
  const connected = new Promise<void>((r) => daemon.once('connected', () => r()))
  await daemon.start()
  await connected
  t.teardown(() => daemon.stop())
  const base = `http://127.0.0.1:${mport}`
  const p1 = (await (await fetch(`${base}/api/verdicts?trace=SN-1&limit=2`)).json()) as { items: { verdict_id: string }[]; next: string }
  t.same(p1.items.map((r) => r.verdict_id), ['id-4', 'id-3'])
  t.equal(p1.next, 'id-2')
  const p2 = (await (await fetch(`${base}/api/verdicts?trace=SN-1&limit=2&cursor=${p1.next}`)).json()) as { items: { verdict_id: string }[] }
  t.same(p2.items.map((r) => r.verdict_id), ['id-2', 'id-1'])
  const since = (await (await fetch(`${base}/api/verdicts?since=${encodeURIComponent(new Date(1_700_000_005_000).toISOString())}`)).json()) as { items: unknown[] }
  t.equal(since.items.length, 2)
  t.equal(seen.at(-1)!.since, 1_700_000_005_000)
  t.equal((await fetch(`${base}/api/verdicts?since=yesterday`)).status, 400)
  t.equal((await fetch(`${base}/api/verdicts?limit=0`)).status, 400)
  t.equal((await fetch(`${base}/api/verdicts?limit=501`)).status, 400)
  t.equal(((await (await fetch(`${base}/api/summary`)).json()) as { journal: boolean }).journal, true)
})

t.test('basic auth on the listener (not on /healthz)', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-view-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'pw'), 's3cret: with colon\nignored second line\n')
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', RULES, '--rules-watch', 'false', '--metrics-user', 'operator', '--metrics-password-file', join(dir, 'pw')]))
  t.teardown(() => d.stop())
  const base = `http://127.0.0.1:${mport}`
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` })
  for (const path of ['/', '/api/summary', '/events', '/metrics', '/view/app.js']) {
    const r = await fetch(base + path)
    t.equal(r.status, 401, `${path} refused without credentials`)
    t.match(r.headers.get('www-authenticate'), /^Basic realm="flashcheck"/)
    t.equal((await fetch(base + path, { headers: basic('operator', 'wrong') })).status, 401, `${path} refused with a wrong password`)
  }
  t.equal((await fetch(base + '/', { headers: basic('operator', 's3cret: with colon') })).status, 200, 'accepted')
  t.equal((await fetch(base + '/metrics', { headers: basic('operator', 's3cret: with colon') })).status, 200)
  const sse = readEvents(`${base}/events`, 1, 2000, basic('operator', 's3cret: with colon'))
  await sse.ready
  sse.close()
  t.equal((await fetch(base + '/healthz')).status, 200, 'liveness probes need no secret')
})

t.test('/api/verdicts over the real audit journal (SQLite in state.dir)', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-view-state-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', RULES, '--rules-watch', 'false', '--state-dir', state]))
  t.teardown(() => d.stop())
  const req = await Requester.connect(broker.url, 4)
  t.teardown(() => req.end())
  const ids: string[] = []
  for (const torque of [9, 11, 13]) ids.push((await req.request311('flashcheck/inspect/st4/torque', { torque_nm: torque, angle_deg: 700 })).body.verdict_id as string)
  const base = `http://127.0.0.1:${mport}/api/verdicts`
  let p1: { items: Record<string, unknown>[]; next: string | null } = { items: [], next: null }
  await until('rows written', async () => {
    const r = await fetch(`${base}?inspection=torque-joint&limit=2`)
    if (r.status !== 200) return false
    p1 = (await r.json()) as typeof p1
    return p1.items.length === 2
  })
  t.same(p1.items.map((r) => r.verdict_id), [ids[2], ids[1]], 'newest first, the ids the requester got')
  t.match(p1.items[0], { inspection: 'torque-joint', verdict: 'FAIL', node: 'test-node' })
  t.ok(p1.next)
  const p2 = (await (await fetch(`${base}?inspection=torque-joint&limit=2&cursor=${p1.next}`)).json()) as typeof p1
  t.same(p2.items.map((r) => r.verdict_id), [ids[0]])
  t.equal(p2.next, null)
  t.equal(((await (await fetch(`${base}?inspection=nothing`)).json()) as typeof p1).items.length, 0)
  t.equal(((await (await fetch(`${base}?since=-1h&verdict=WARN`)).json()) as typeof p1).items.length, 1)
  t.equal((await fetch(`${base}?cursor=abc`)).status, 400)
})

t.test('first-pass yield per part: the page, /api/summary and `audit stats` agree', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-view-fpy-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const rules = join(import.meta.dirname, '..', 'fixtures', 'view-parts')
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', rules, '--rules-watch', 'false', '--state-dir', state]))
  t.teardown(() => d.stop())
  const req = await Requester.connect(broker.url, 5)
  t.teardown(() => req.end())
  // weigh traces parts by serial, passing label OK: A fails, is reworked and passes; B passes; C fails twice.
  const weigh = [['A', 95], ['B', 104], ['A', 105], ['C', 120], ['C', 121]] as const
  for (const [serial, w] of weigh) await req.request5('flashcheck/inspect/st1/weigh', { serial, weight_g: w })
  // gauge has no trace: every request is a part, PASS the passing label.
  for (const dmm of [10.5, 10.0, 10.05]) await req.request5('flashcheck/inspect/st1/gauge', { diameter_mm: dmm })
  // Error verdicts inspected no part: in the mix, not in the yield.
  await req.request5('flashcheck/inspect/st1/weigh', 'not json')
  await req.request5('flashcheck/inspect/st1/gauge', { diameter_mm: 'wide' })

  let s: Record<string, any> = {}
  const byId = (id: string) => s.stats.find((x: { inspection: string }) => x.inspection === id)
  await until('summary counted every verdict', async () => {
    s = (await (await fetch(`http://127.0.0.1:${mport}/api/summary`)).json()) as Record<string, any>
    return byId('weigh').m5.requests === 6 && byId('gauge').m5.requests === 4
  })
  const w = byId('weigh')
  t.equal(w.pass_label, 'OK')
  t.same(w.m5.verdicts, { NOK: 3, OK: 2, ERROR: 1 })
  t.equal(w.m5.parts, 3, 'three parts (A, B, C), not five requests')
  t.equal(w.m5.first_pass_yield, 0.3333, 'only B passed first time: A passed after rework, C never')
  t.equal(w.h1.first_pass_yield, 0.3333)
  const prom = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text()
  t.match(prom, /^flashcheck_parts_total\{inspection="weigh",first_pass="true"\} 1$/m, 'Prometheus: the same parts')
  t.match(prom, /^flashcheck_parts_total\{inspection="weigh",first_pass="false"\} 2$/m)
  const g = byId('gauge')
  t.equal(g.m5.parts, 3, 'untraced: each request is a part (the error verdict is none)')
  t.equal(g.m5.first_pass_yield, 0.6667)

  const db = join(state, 'audit.db')
  await until('journal rows written', async () => {
    const r = await fetch(`http://127.0.0.1:${mport}/api/verdicts?limit=10`)
    return r.status === 200 && ((await r.json()) as { items: unknown[] }).items.length === 10
  })
  const st = await cli(['audit', 'stats', '--since', '-1h', '--rules-dir', rules, '--db', db])
  t.equal(st.code, 0, st.stderr)
  const a = (JSON.parse(st.stdout) as { inspections: Record<string, any>[] }).inspections
  const aw = a.find((x) => x.inspection === 'weigh')!
  const ag = a.find((x) => x.inspection === 'gauge')!
  t.match(aw, { pass_label: 'OK', parts: 3, count: 6, first_pass_yield: w.m5.first_pass_yield }, 'audit stats: the same parts and yield as the page')
  t.match(ag, { pass_label: 'PASS', parts: 3, first_pass_yield: g.m5.first_pass_yield })
  // A window that starts after A's first (failed) inspection: A's passing re-inspection is rework, not a part.
  const db2 = new Database(db, { readonly: true })
  t.teardown(() => db2.close())
  const rows = db2.prepare("SELECT ts FROM verdicts WHERE inspection = 'weigh' ORDER BY seq").all() as { ts: string }[]
  const after = Date.parse(rows[1]!.ts) + 1
  const late = stats(db2, { since: after }, (i) => (i === 'weigh' ? 'OK' : 'PASS')).find((x) => x.inspection === 'weigh')!
  t.match(late, { count: 4, parts: 1, first_pass_yield: 0 }, 'from the third verdict on: only C is new (A was first seen earlier), and it failed')
  const badRules = await cli(['audit', 'stats', '--rules-dir', join(state, 'nope'), '--db', db])
  t.equal(badRules.code, 2, 'an unreadable --rules-dir is a usage error')
  t.match(badRules.stderr, /--rules-dir: /)
})

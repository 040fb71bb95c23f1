/// <reference lib="dom" />
// The status page in a real browser (Debian's chromium driven by playwright-core) against a live daemon and a
// real mosquitto: the inspections of the loaded rules, a request sent over MQTT in the stream within 1 s with
// its verdict, counters that move, MQTT-sourced markup shown as text, pause and filters, a broker restart,
// and basic auth refused and accepted.
import t from 'tap'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const CHROMIUM = '/usr/bin/chromium'
const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
// Generous: the CI machine has 2 cores and the browser competes with the daemon.
const WAIT = { timeout: 20_000 }

async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
}

async function until(what: string, f: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const text = (page: Page, sel: string) => page.locator(sel).first().textContent()

t.test('status page in chromium', { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (test/run.sh installs it)` }, async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', RULES, '--rules-watch', 'false', '--mqtt-reconnect-min-ms', '100', '--mqtt-reconnect-max-ms', '500']))
  t.teardown(() => d.stop())
  const browser = await launch()
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (e) => pageErrors.push(e.message))
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()) })
  await page.goto(`http://127.0.0.1:${mport}/`)

  // Header and the inspections of the loaded rules.
  await page.waitForFunction(() => document.getElementById('node')?.textContent === 'test-node', null, WAIT)
  t.equal(await text(page, '#rules-rev'), d.daemon.rulesRev)
  t.equal(await text(page, '#broker'), 'connected')
  t.equal(await text(page, '#model'), 'none (rules only)')
  t.ok(await page.locator('#model-status').isHidden(), 'no model, no model status')
  t.same(await page.locator('#inspections tbody tr').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.inspection)), ['oven-temp', 'torque-joint'])

  // The page's stream is attached once the daemon offers it verdicts.
  const tap = (d.daemon as unknown as { tap: { active: boolean } }).tap
  await until('the page subscribed to /events', () => tap.active)

  const req = await Requester.connect(broker.url, 4)
  t.teardown(() => req.end())
  const rows = page.locator('#stream tbody tr')
  const sent = Date.now()
  await req.request311('flashcheck/inspect/st4/torque', { torque_nm: 9.1, angle_deg: 700 }, 'SN-0042')
  await page.locator('#stream tbody tr', { hasText: 'SN-0042' }).waitFor(WAIT)
  const shownAfter = Date.now() - sent
  t.ok(shownAfter <= 1000, `request in the stream after ${shownAfter} ms (at most 1000)`)
  const first = rows.first()
  t.equal(await first.getAttribute('data-verdict'), 'FAIL')
  t.match(await first.textContent(), /torque-joint.*SN-0042.*FAIL.*torque-in-spec: torque 9\.1 Nm outside 10\.0\.\.12\.0/)

  // Counters move (the summary is polled every 2 s).
  await page.waitForFunction(() => document.querySelector('#inspections tr[data-inspection="torque-joint"] [data-field="requests-1h"]')?.textContent === '1', null, WAIT)
  t.match(await text(page, '#inspections tr[data-inspection="torque-joint"] [data-field="mix"]'), /FAIL 1/)
  t.match(await text(page, '#inspections tr[data-inspection="torque-joint"] [data-field="fpy"]'), /^0\.0 % · 0\.0 %$/)
  t.match(await page.locator('#inspections tr[data-inspection="torque-joint"] [data-field="fpy"]').getAttribute('title'), /^parts first inspected \(5 min · 1 h\): 1 · 1; .*whose first verdict was PASS/)
  t.ok(await page.locator('#histogram rect').count() > 0, 'latency histogram drawn')

  // Markup from MQTT stays text: in a correlation id and in a payload that is not JSON.
  const evil = '<script>window.__pwned=1</script>'
  await req.request311('flashcheck/inspect/st4/torque', { torque_nm: 11, angle_deg: 700 }, evil)
  const r5 = await Requester.connect(broker.url, 5)
  await r5.request5('flashcheck/inspect/st4/torque', '<img src=x onerror="window.__pwned=2">')
  await r5.end()
  await page.locator('#stream tbody tr', { hasText: evil }).waitFor(WAIT)
  await page.locator('#stream tbody tr[data-verdict="ERROR"]').first().waitFor(WAIT)
  t.equal(await page.locator('#stream script, #stream img').count(), 0, 'no element made from data')
  t.match(await page.locator('#stream tbody tr[data-verdict="ERROR"]').first().textContent(), /BAD_JSON: payload is not JSON/)
  t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'nothing ran')

  // Filters and pause.
  await page.locator('#filter-verdict').selectOption('FAIL')
  t.same(await rows.evaluateAll((rs) => rs.filter((r) => !(r as HTMLElement).hidden).map((r) => (r as HTMLElement).dataset.verdict)), ['FAIL'])
  await page.locator('#filter-verdict').selectOption('')
  await page.locator('#pause').click()
  const before = await rows.count()
  await req.request311('flashcheck/inspect/st4/torque', { torque_nm: 11, angle_deg: 700 }, 'SN-held')
  await page.waitForFunction(() => /1 held while paused/.test(document.getElementById('stream-count')?.textContent ?? ''), null, WAIT)
  t.equal(await rows.count(), before, 'paused: no new rows')
  await page.locator('#pause').click()
  await page.locator('#stream tbody tr', { hasText: 'SN-held' }).waitFor(WAIT)

  // Broker restart: the page shows it and keeps streaming afterwards.
  await broker.stopProcess()
  await page.waitForFunction(() => document.getElementById('broker')?.textContent === 'disconnected', null, WAIT)
  await broker.startProcess()
  await page.waitForFunction(() => document.getElementById('broker')?.textContent === 'connected', null, WAIT)
  await req.end()
  const req2 = await Requester.connect(broker.url, 4)
  t.teardown(() => req2.end())
  await until('daemon resubscribed', async () => {
    const r = await Promise.race([req2.request311('flashcheck/inspect/st4/torque', { torque_nm: 11.5, angle_deg: 800 }, 'after-restart'), new Promise<null>((res) => setTimeout(() => res(null), 2000))])
    return r !== null
  }, 20_000)
  await page.locator('#stream tbody tr', { hasText: 'after-restart' }).first().waitFor(WAIT)
  t.same(pageErrors, [], 'no script errors on the page')

  // The model line, from a summary whose model section is filled in (this daemon has no model): status,
  // fallback share and reasons, time to a choice, the last decoder error shown as text.
  const mpage = await browser.newPage()
  mpage.on('pageerror', (e) => pageErrors.push(e.message))
  await mpage.route('**/api/summary', async (route) => {
    const r = await route.fetch()
    const body = (await r.json()) as Record<string, unknown>
    body.model = {
      backend: 'native', quant: 'q8_0', isa: 'avx512', loaded: true, queue_depth: 2, status: 'partly falling back',
      last_error: { at: new Date().toISOString(), inspection: 'joint', detail: '<b>decoder</b> failed' },
      last_minute: { seconds: 60, verdicts: 40, fell_back: 10, fallback_share: 0.25, fallback_reasons: { deadline: 7, queue_full: 3 }, p50_ms: 12.5, p99_ms: 40 },
    }
    await route.fulfill({ response: r, json: body })
  })
  await mpage.goto(`http://127.0.0.1:${mport}/`)
  await mpage.waitForFunction(() => document.getElementById('model-status')?.textContent === 'partly falling back', null, WAIT)
  t.equal(await text(mpage, '#model'), 'native · q8_0 · avx512')
  t.match(await mpage.locator('#model-status').getAttribute('class'), /\bwarn\b/)
  t.match(await text(mpage, '#model-detail'), /^40 model verdicts in the last 60 s · 25\.0 % fell back \(deadline 7, queue full 3\) · p50 12\.5 ms to a choice · 2 waiting · last error .+ \(joint\): <b>decoder<\/b> failed$/)
  t.equal(await mpage.locator('header b').count(), 0, 'the error text is text')
  t.same(pageErrors, [], 'no script errors on the page')
})

t.test('basic auth in chromium: refused without, accepted with credentials', { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}` }, async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-view-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'pw'), 'line-3 gateway\n')
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', RULES, '--rules-watch', 'false', '--metrics-user', 'operator', '--metrics-password-file', join(dir, 'pw')]))
  t.teardown(() => d.stop())
  const browser = await launch()
  t.teardown(() => browser.close())
  const anon = await browser.newContext()
  // chromium under playwright turns a 401 it cannot answer into a navigation error.
  const r1 = await (await anon.newPage()).goto(`http://127.0.0.1:${mport}/`).then((r) => `HTTP ${r?.status()}`, (e: Error) => e.message)
  t.match(r1, /HTTP 401|ERR_INVALID_AUTH_CREDENTIALS/, 'refused without credentials')
  const wrong = await browser.newContext({ httpCredentials: { username: 'operator', password: 'nope' } })
  const r2 = await (await wrong.newPage()).goto(`http://127.0.0.1:${mport}/`).then((r) => `HTTP ${r?.status()}`, (e: Error) => e.message)
  t.match(r2, /HTTP 401|ERR_INVALID_AUTH_CREDENTIALS/, 'refused with a wrong password')
  const ok = await browser.newContext({ httpCredentials: { username: 'operator', password: 'line-3 gateway' } })
  const page = await ok.newPage()
  const r3 = await page.goto(`http://127.0.0.1:${mport}/`)
  t.equal(r3?.status(), 200, 'accepted')
  await page.waitForFunction(() => document.getElementById('node')?.textContent === 'test-node', null, WAIT)
  const tap = (d.daemon as unknown as { tap: { active: boolean } }).tap
  await until('the stream authenticated too', () => tap.active)
})

// deploy/grafana/flashcheck.json: every metric its queries (panels and variables) name is one a live daemon
// exports on /metrics, scraped over HTTP; the node variable is there; every panel reads the chosen
// datasource and filters by the selected instances.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { testConfig } from '../helpers/daemon.js'

interface Target { expr: string; datasource?: { uid: string } }
interface Panel { id: number; title: string; datasource?: { uid: string }; targets?: Target[] }
interface Dashboard { panels: Panel[]; templating: { list: { name: string; type: string; query?: { query: string } | string }[] } }

const dash = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'deploy', 'grafana', 'flashcheck.json'), 'utf8')) as Dashboard
// PromQL words that look like metric names but are functions, keywords or labels.
const NOT_METRICS = new Set(['sum', 'by', 'rate', 'increase', 'max', 'min', 'histogram_quantile', 'label_values', 'le', 'inspection', 'verdict', 'reason', 'result', 'code', 'instance', 'node', 'without', 'on', 'ignoring', 'group_left'])

function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '{}').replace(/\[[^\]]*\]/g, '[]')
  return [...noStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b/g)].map((m) => m[1]).filter((w) => !NOT_METRICS.has(w) && !/^\d/.test(w) && /_/.test(w))
}

const exprs: { where: string; expr: string }[] = []
for (const p of dash.panels) for (const tg of p.targets ?? []) exprs.push({ where: `panel ${p.id} "${p.title}"`, expr: tg.expr })
for (const v of dash.templating.list) if (v.type === 'query') exprs.push({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query!.query })

t.test('the dashboard names only metrics the daemon exports', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const mport = await freePort()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--metrics-port', String(mport), '--rules-dir', join(PACKAGE_ROOT, 'test', 'fixtures', 'service'), '--rules-watch', 'false']))
  t.teardown(() => d.stop())
  const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text()
  const exported = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(m[1])
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m[1] + s)
  }
  t.ok(exported.has('flashcheck_requests_total'), 'scraped the daemon')
  const named = new Set<string>()
  for (const { where, expr } of exprs) {
    const names = metricNames(expr)
    t.ok(names.length > 0, `${where} queries a metric`)
    for (const n of names) {
      named.add(n)
      t.ok(exported.has(n), `${where}: ${n} is exported`)
    }
  }
  for (const want of ['flashcheck_requests_total', 'flashcheck_request_latency_seconds_bucket', 'flashcheck_inspection_budget_seconds', 'flashcheck_deadline_missed_total', 'flashcheck_model_fallbacks_total', 'flashcheck_model_latency_seconds_bucket', 'flashcheck_outbox_depth', 'flashcheck_mqtt_reconnects_total']) {
    t.ok(named.has(want), `the dashboard shows ${want}`)
  }
  t.match(text, /^flashcheck_info\{node="test-node",version="[^"]+"\} 1$/m, 'the node variable has a value to list')
  t.match(text, /^flashcheck_inspection_budget_seconds\{inspection="torque-joint"\} 0\.05$/m)
})

t.test('variables and panel wiring', async (t) => {
  const names = dash.templating.list.map((v) => v.name)
  t.ok(names.includes('node'), 'a node variable')
  const ids = dash.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids unique')
  for (const p of dash.panels) {
    t.equal(p.datasource?.uid, '${datasource}', `panel ${p.id} reads the chosen datasource`)
    for (const tg of p.targets ?? []) t.match(tg.expr, /\{instance=~"\$instance"/, `panel ${p.id}: filtered by the selected node`)
  }
})

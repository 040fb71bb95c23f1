// Hot reload: a valid change replaces the set atomically; a broken one is rejected whole, logged with its
// location and counted, and the old set keeps serving.
import t from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { once, startDaemon } from '../../harness/daemon.js'
import { Requester, testConfig } from '../helpers/daemon.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'

t.test('reload on file change and on request (SIGHUP path)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-reload-'))
  copyFileSync(join(FIXTURES, 'torque.yaml'), join(dir, 'torque.yaml'))
  const broker = await Mosquitto.start()
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', dir, '--rules-watch', 'true']))
  const req = await Requester.connect(broker.url, 5)
  t.teardown(async () => { await req.end(); await d.stop(); await broker.stop(); rmSync(dir, { recursive: true, force: true }) })

  const rev0 = d.daemon.rulesRev
  const before = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
  t.equal(before.body.verdict, 'FAIL')
  t.equal(before.body.rules_rev, rev0)

  // A valid edit: widen the torque window. The watcher picks it up.
  const text = readFileSync(join(dir, 'torque.yaml'), 'utf8')
  const reloaded = once<string>(d.daemon, 'reloaded')
  writeFileSync(join(dir, 'torque.yaml'), text.replace('torque <= 12.0', 'torque <= 14.0'))
  const rev1 = await reloaded
  t.not(rev1, rev0)
  const after = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
  t.not(after.body.verdict, 'FAIL')
  t.equal(after.body.rules_rev, rev1)

  // A broken file next to it: the whole new set is rejected, the previous one keeps serving.
  const failed = once<{ file: string; line: number; col: number }[]>(d.daemon, 'reload-failed')
  writeFileSync(join(dir, 'broken.yaml'), 'id: broken\nrequest: flashcheck/inspect/{station}/broken\nchecks:\n  - id: c\n    expr: this is not CEL ((\n    on_fail: FAIL\n')
  const errors = await failed
  t.ok(errors.length >= 1)
  t.match(errors[0].file, /broken\.yaml$/)
  t.equal(errors[0].line, 5)
  t.equal(d.daemon.rulesRev, rev1)
  const still = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
  t.equal(still.body.rules_rev, rev1)
  t.not(still.body.verdict, 'ERROR')
  t.ok(d.logs.some((l) => l.level === 50 && /broken\.yaml:5:\d+: /.test(String(l.msg))), 'error logged with file:line:col')
  const m = await d.daemon.metrics.registry.getSingleMetricAsString('flashcheck_rule_reloads_total')
  t.match(m, /result="rejected"\} [1-9]/)
  t.match(m, /result="applied"\} [1-9]/)

  // Remove the broken file and reload explicitly (what SIGHUP does).
  rmSync(join(dir, 'broken.yaml'))
  await d.daemon.reload('SIGHUP')
  t.equal(d.daemon.rulesRev, rev1, 'same content, same revision')
  writeFileSync(join(dir, 'torque.yaml'), text)
  await d.daemon.reload('SIGHUP')
  t.equal(d.daemon.rulesRev, rev0, 'the revision is a content hash: the original content has the original revision')
  const back = await req.request5(TORQUE, { torque_nm: 13, angle_deg: 700 })
  t.equal(back.body.verdict, 'FAIL')
})

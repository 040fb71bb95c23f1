// The CLI as users run it: the embedded quickstart, `request`, signals, exit codes for bad config and rules.
import t from 'tap'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { freePort } from '../../harness/mosquitto.js'
import { cli, cliProcess } from '../helpers/cli.js'

t.test('embedded quickstart: run on deploy/quickstart.json, answer `flashcheck request`, stop on SIGTERM', async (t) => {
  const port = await freePort()
  const d = await cliProcess(['run', '--config', 'deploy/quickstart.json', '--mqtt-embedded-port', String(port), '--log-level', 'info'], /connected to broker/)
  t.teardown(() => { d.proc.kill('SIGKILL') })
  const url = `mqtt://127.0.0.1:${port}`
  const r = await cli(['request', 'flashcheck/inspect/st1/torque', '{"torque_nm": 13.1, "angle_deg": 700}', '--url', url])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /retrying with MQTT 3\.1\.1/, 'the embedded broker speaks 3.1.1; request falls back')
  const body = JSON.parse(r.stdout)
  t.equal(body.inspection, 'torque-joint')
  t.equal(body.verdict, 'FAIL')
  t.equal(body.node, 'quickstart')
  t.type(body.correlation_id, 'string')
  const explicit = await cli(['request', 'flashcheck/inspect/st1/torque', '{"torque_nm": 11, "angle_deg": 700}', '--url', url, '--mqtt311'])
  t.equal(explicit.code, 0)
  t.not(JSON.parse(explicit.stdout).verdict, 'FAIL')
  d.proc.kill('SIGTERM')
  t.equal(await d.exited, 0, 'clean stop')
})

t.test('SIGHUP reloads the rules of a running daemon', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-hup-'))
  cpSync(join(PACKAGE_ROOT, 'test', 'fixtures', 'service'), dir, { recursive: true })
  const port = await freePort()
  const d = await cliProcess(['run', '--mqtt-url', 'embedded', '--mqtt-embedded-port', String(port), '--rules-dir', dir, '--rules-watch', 'false', '--node-id', 'hup'], /connected to broker/)
  t.teardown(() => { d.proc.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) })
  const url = `mqtt://127.0.0.1:${port}`
  const ask = async () => JSON.parse((await cli(['request', 'flashcheck/inspect/st1/torque', '{"torque_nm": 13, "angle_deg": 700}', '--url', url, '--mqtt311'])).stdout)
  t.equal((await ask()).verdict, 'FAIL')
  const f = join(dir, 'torque.yaml')
  writeFileSync(f, readFileSync(f, 'utf8').replace('torque <= 12.0', 'torque <= 14.0'))
  d.proc.kill('SIGHUP')
  for (let i = 0; i < 50 && !/rules reloaded/.test(d.output()); i++) await new Promise((r) => setTimeout(r, 100))
  t.match(d.output(), /rules reloaded/)
  t.not((await ask()).verdict, 'FAIL')
})

t.test('configuration errors: one line naming the key, exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-cfgcli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const bad = join(dir, 'bad.json')
  writeFileSync(bad, JSON.stringify({ mqtt: { qos: 5 } }))
  const r = await cli(['run', '--config', bad])
  t.equal(r.code, 2)
  t.match(r.stderr, /mqtt\.qos/)
  t.equal(r.stderr.trim().split('\n').length, 1)
  const unknown = await cli(['run', '--config', bad.replace('bad', 'none')])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /ENOENT/)
  const env = await cli(['config'], { env: { FLASHCHECK_LOG_LEVEL: 'chatty' } })
  t.equal(env.code, 2)
  t.match(env.stderr, /log\.level/)
  const flag = await cli(['config', '--budget-default-ms', '20', '--node-id', 'x1'])
  t.equal(flag.code, 0)
  const eff = JSON.parse(flag.stdout)
  t.equal(eff.budget.defaultMs, 20)
  t.equal(eff.node.id, 'x1')
  const pw = join(dir, 'pw')
  writeFileSync(pw, 's3cret-value\n')
  const secret = await cli(['config', '--mqtt-password-file', pw])
  t.notMatch(secret.stdout, /s3cret/)
  const missingPw = await cli(['run', '--mqtt-password-file', join(dir, 'nope'), '--rules-dir', join(PACKAGE_ROOT, 'test', 'fixtures', 'service'), '--state-dir', join(dir, 'state')])
  t.equal(missingPw.code, 2)
  t.match(missingPw.stderr, /mqtt\.passwordFile/)
  t.notOk(existsSync(join(dir, 'state')), 'stopped before touching the state directory (no journal, no spool)')
})

t.test('invalid rules at start: every error as file:line:col, exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-badrules-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'a.yaml'), 'id: a\nrequest: flashcheck/inspect/a\nchecks:\n  - id: c\n    expr: x > \n    on_fail: FAIL\n')
  const r = await cli(['run', '--mqtt-url', 'mqtt://127.0.0.1:9', '--rules-dir', dir])
  t.equal(r.code, 1)
  t.match(r.stderr, /a\.yaml:5:\d+: /)
})

t.test('unknown command and bad request arguments exit 2', async (t) => {
  t.equal((await cli(['frobnicate'])).code, 2)
  t.equal((await cli(['request', 'only-topic'])).code, 2)
  t.equal((await cli(['request', 't', '{not json'])).code, 2)
  const none = await cli(['request', 'flashcheck/inspect/x', '{}', '--url', `mqtt://127.0.0.1:${await freePort()}`, '--timeout', '500'])
  t.equal(none.code, 1)
})

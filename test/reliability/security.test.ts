// Security, live: TLS with a client certificate (material generated here with openssl), user name and
// password from a file, a mosquitto ACL that confines the daemon to its own topics; secrets never logged;
// the daemon refuses to run as root unless allowed.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { Mosquitto } from '../../harness/mosquitto.js'
import { once, startDaemon } from '../../harness/daemon.js'
import { testConfig } from '../helpers/daemon.js'
import { cli, cliProcess } from '../helpers/cli.js'
import { Daemon } from '../../daemon/service/daemon.js'
import { createLogger } from '../../daemon/log/logger.js'
import { rootRefusal } from '../../daemon/cli/run.js'
import { loadConfig } from '../../daemon/config/load.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'service')
const TORQUE = 'flashcheck/inspect/st1/torque'
const dir = mkdtempSync(join(tmpdir(), 'flashcheck-tls-'))
const f = (name: string) => join(dir, name)
// Distinctive values so that a leak anywhere in the output is found by a plain search.
const DAEMON_PW = `pw-${randomBytes(8).toString('hex')}`
const PLC_PW = `plc-${randomBytes(8).toString('hex')}`

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

function mosquittoPasswd(...args: string[]): void {
  for (const bin of ['mosquitto_passwd', '/usr/bin/mosquitto_passwd', '/usr/sbin/mosquitto_passwd']) {
    try {
      execFileSync(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] })
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
  }
  throw new Error('mosquitto_passwd not found')
}

/** A CA, a server certificate for 127.0.0.1 and two client certificates, all EC P-256, valid one day. */
function makeCertificates(): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=flashcheck test CA')
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  for (const [name, cn, ext] of [['server', '127.0.0.1', true], ['daemon', 'flashcheck', false], ['plc', 'plc', false]] as const) {
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...(ext ? ['-extfile', 'san.ext'] : []))
  }
  // A second CA the broker does not trust.
  openssl('req', '-x509', ...ec, '-keyout', 'rogue.key', '-out', 'rogue.crt', '-days', '1', '-subj', '/CN=rogue')
}

let broker: Mosquitto

t.before(async () => {
  makeCertificates()
  mosquittoPasswd('-b', '-c', f('passwd'), 'flashcheck', DAEMON_PW)
  mosquittoPasswd('-b', f('passwd'), 'plc', PLC_PW)
  writeFileSync(f('pw.txt'), `${DAEMON_PW}\n`)
  writeFileSync(f('wrong-pw.txt'), 'not-the-password\n')
  // The daemon reads requests and signals, answers on reply/#, and owns flashcheck/<node>/; nothing else.
  writeFileSync(f('acl'), [
    'user flashcheck',
    'topic read flashcheck/inspect/#',
    'topic read plant/#',
    'topic write reply/#',
    'topic readwrite flashcheck/test-node/#',
    '',
    'user plc',
    'topic readwrite #',
    '',
  ].join('\n'))
  // mosquitto started as root drops to its own user, which must be able to read its files here.
  chmodSync(dir, 0o755)
  for (const name of readdirSync(dir)) chmodSync(f(name), 0o644)
  broker = await Mosquitto.start({
    listener: [`cafile ${f('ca.crt')}`, `certfile ${f('server.crt')}`, `keyfile ${f('server.key')}`, 'require_certificate true', 'tls_version tlsv1.2'],
    auth: ['allow_anonymous false', `password_file ${f('passwd')}`, `acl_file ${f('acl')}`],
  })
})

t.teardown(async () => {
  await broker?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const tlsUrl = () => `mqtts://127.0.0.1:${broker.port}`

function plcOptions(extra: Partial<IClientOptions> = {}): IClientOptions {
  return { protocolVersion: 5, reconnectPeriod: 0, username: 'plc', password: PLC_PW, ca: readFileSync(f('ca.crt')), cert: readFileSync(f('plc.crt')), key: readFileSync(f('plc.key')), connectTimeout: 5000, ...extra }
}

function daemonArgs(pwFile = f('pw.txt')): string[] {
  return ['--mqtt-url', tlsUrl(), '--rules-dir', RULES, '--rules-watch', 'false', '--mqtt-ca', f('ca.crt'), '--mqtt-cert', f('daemon.crt'), '--mqtt-key', f('daemon.key'), '--mqtt-username', 'flashcheck', '--mqtt-password-file', pwFile]
}

function collect(c: MqttClient): { topic: string; body: Record<string, any> }[] {
  const got: { topic: string; body: Record<string, any> }[] = []
  c.on('message', (topic, payload) => {
    let body: Record<string, any>
    try { body = JSON.parse(String(payload)) as Record<string, any> } catch { body = { raw: String(payload) } }
    got.push({ topic, body })
  })
  return got
}

/** Whether a client with these options gets a CONNACK; every failure mode (TLS alert, refusal, timeout) counts as no. */
function connects(url: string, opts: IClientOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { ...opts, reconnectPeriod: 0, connectTimeout: 3000 })
    const done = (ok: boolean) => { c.removeAllListeners(); c.on('error', () => {}); c.end(true); resolve(ok) }
    c.once('connect', () => done(true))
    c.once('error', () => done(false))
    c.once('close', () => done(false))
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('TLS with client certificates and a password file: verdicts flow; the ACL confines the daemon', async (t) => {
  const d = await startDaemon(testConfig(daemonArgs()))
  const plc = await mqtt.connectAsync(tlsUrl(), plcOptions())
  t.teardown(async () => { await plc.endAsync(true); await d.stop() })
  const got = collect(plc)
  await plc.subscribeAsync(['reply/#', 'elsewhere/#', 'flashcheck/test-node/status'], { qos: 1 })
  await plc.publishAsync(TORQUE, JSON.stringify({ torque_nm: 11, angle_deg: 700 }), { qos: 1, properties: { responseTopic: 'reply/plc1', correlationData: Buffer.from('a') } })
  await plc.publishAsync(TORQUE, JSON.stringify({ torque_nm: 13, angle_deg: 700 }), { qos: 1, properties: { responseTopic: 'elsewhere/plc1', correlationData: Buffer.from('b') } })
  await plc.publishAsync(TORQUE, JSON.stringify({ torque_nm: 13, angle_deg: 700 }), { qos: 1, properties: { responseTopic: 'reply/plc1', correlationData: Buffer.from('c') } })
  const end = Date.now() + 5000
  while (got.filter((g) => g.topic === 'reply/plc1').length < 2 && Date.now() < end) await sleep(20)
  await sleep(300)
  const replies = got.filter((g) => g.topic === 'reply/plc1').map((g) => g.body.verdict)
  t.same(replies, ['WARN', 'FAIL'], 'answered over TLS on an allowed reply topic')
  t.equal(got.filter((g) => g.topic.startsWith('elsewhere/')).length, 0, 'the ACL keeps the daemon from publishing outside its topics')
  t.ok(d.daemon.connected)
  const text = JSON.stringify(d.logs)
  t.notOk(text.includes(DAEMON_PW), 'the password is never logged')
  t.notOk(text.includes('PRIVATE KEY'), 'key material is never logged')
})

t.test('a requester cannot widen the daemon: a reply topic under a topic it is not allowed gets nothing through', async (t) => {
  const d = await startDaemon(testConfig(daemonArgs()))
  const spy = await mqtt.connectAsync(tlsUrl(), plcOptions())
  t.teardown(async () => { await spy.endAsync(true); await d.stop() })
  const got = collect(spy)
  await spy.subscribeAsync('#', { qos: 1 })
  for (const rt of ['flashcheck/test-node/info', 'plant/st1/spindle/vibration', 'flashcheck/inspect/st1/torque']) {
    await spy.publishAsync(TORQUE, JSON.stringify({ torque_nm: 11, angle_deg: 700 }), { qos: 1, properties: { responseTopic: rt, correlationData: Buffer.from(rt) } })
  }
  await sleep(800)
  const verdicts = got.filter((g) => g.body && typeof g.body === 'object' && 'verdict' in g.body)
  // Only the daemon's own flashcheck/<node>/ space is writable for it: a verdict may land there, never on signal or request topics.
  t.same(verdicts.map((v) => v.topic).filter((tp) => !tp.startsWith('flashcheck/test-node/')), [], 'no verdict on signal or request topics')
})

t.test('wrong password, missing client certificate, untrusted CA: refused, and the secret is not logged', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write(c, _e, cb) { lines.push(String(c)); cb() } })
  const cfg = testConfig(daemonArgs(f('wrong-pw.txt')))
  const d = new Daemon({ config: cfg, logger: createLogger('debug', sink) })
  await d.start()
  await once(d, 'disconnected', 10_000)
  t.equal(d.connected, false, 'a wrong password does not get in')
  await d.stop()
  const text = lines.join('')
  t.match(text, /mqtt error/)
  t.notOk(text.includes('not-the-password'), 'the wrong password is not logged either')

  t.equal(await connects(tlsUrl(), plcOptions()), true, 'the PLC with its certificate gets in')
  t.equal(await connects(tlsUrl(), plcOptions({ cert: undefined, key: undefined })), false, 'no client certificate: TLS refused')
  t.equal(await connects(tlsUrl(), plcOptions({ cert: readFileSync(f('rogue.crt')), key: readFileSync(f('rogue.key')) })), false, 'a certificate of another CA: refused')
  t.equal(await connects(tlsUrl(), plcOptions({ ca: readFileSync(f('rogue.crt')) })), false, 'a server the client does not trust: refused')
  t.equal(await connects(tlsUrl(), plcOptions({ password: 'guess' })), false, 'a wrong password with a good certificate: refused')
  t.equal(await connects(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, connectTimeout: 2000 }), false, 'plain TCP on the TLS port: refused')
})

t.test('the CLI never prints secrets: debug log, config output, password in the URL', async (t) => {
  const urlPw = `urlpw-${randomBytes(6).toString('hex')}`
  const args = ['--mqtt-url', `mqtts://flashcheck:${urlPw}@127.0.0.1:${broker.port}`, '--rules-dir', RULES, '--rules-watch', 'false', '--mqtt-ca', f('ca.crt'), '--mqtt-cert', f('daemon.crt'), '--mqtt-key', f('daemon.key'), '--mqtt-username', 'flashcheck', '--mqtt-password-file', f('pw.txt'), '--log-level', 'trace', '--node-id', 'test-node']
  const conf = await cli(['config', ...args])
  t.equal(conf.code, 0)
  const shown = JSON.parse(conf.stdout) as { mqtt: Record<string, string> }
  t.equal(shown.mqtt.passwordFile, '(set)')
  t.equal(shown.mqtt.key, '(set)')
  t.notOk(conf.stdout.includes(urlPw), 'URL password redacted in `flashcheck config`')
  const p = await cliProcess(['run', ...args], /connected to broker|mqtt error/)
  await sleep(500)
  p.proc.kill('SIGTERM')
  await p.exited
  const out = p.output()
  t.match(out, /starting flashcheck/)
  for (const secret of [DAEMON_PW, urlPw, 'PRIVATE KEY', readFileSync(f('daemon.key'), 'utf8').split('\n')[1]!]) {
    t.notOk(out.includes(secret), `not in the output: ${secret.slice(0, 12)}…`)
  }
})

t.test('refuses to run as root unless allowed', async (t) => {
  const cfg = loadConfig({ args: [], env: {} })
  t.match(rootRefusal(cfg, 0), /refusing to run as root/)
  t.equal(rootRefusal(cfg, 1000), undefined)
  t.equal(rootRefusal(loadConfig({ args: ['--security-allow-root', 'true'], env: {} }), 0), undefined)
  // the embedded broker is a loopback-only demo (README: the model demo runs as root in a container)
  t.equal(rootRefusal(loadConfig({ args: ['--mqtt-url', 'embedded'], env: {} }), 0), undefined)
  if (process.getuid?.() !== 0) {
    t.comment('not running as root: the live check needs uid 0')
    return
  }
  const r = await cli(['run', '--rules-dir', RULES, '--mqtt-url', 'mqtt://127.0.0.1:9'], { env: { FLASHCHECK_SECURITY_ALLOW_ROOT: 'false' } })
  t.equal(r.code, 2, 'exit 2: a configuration problem')
  t.match(r.stderr, /refusing to run as root/)
})

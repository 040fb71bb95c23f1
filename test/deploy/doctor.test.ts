// `flashcheck doctor` on good and broken setups: a live mosquitto, a closed port, the gateway broker config
// from deploy/mosquitto with its password file (right and wrong password, TLS listener with and without the
// CA), a broker that denies a subscription, broken rules, missing and present model files, too little memory,
// and a broken configuration.
import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Aedes, type Client, type Subscription } from 'aedes'
import { openWritable } from '../../daemon/audit/db.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { cli } from '../helpers/cli.js'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'

const RULES = join(PACKAGE_ROOT, 'rules', 'examples')
const BROKEN_RULES = join(PACKAGE_ROOT, 'test', 'fixtures', 'rules', 'broken')

interface Table {
  code: number | null
  rows: Map<string, { outcome: string; detail: string }>
  text: string
}

async function doctor(args: string[]): Promise<Table> {
  const r = await cli(['doctor', '--timeout', '4000', '--node-id', 'doctor-test', ...args], { timeoutMs: 30_000 })
  const rows = new Map<string, { outcome: string; detail: string }>()
  for (const line of r.stdout.split('\n')) {
    const m = /^(PASS|WARN|FAIL) {2}(\S+) +(.*)$/.exec(line)
    if (m) rows.set(m[2], { outcome: m[1], detail: m[3] })
  }
  return { code: r.code, rows, text: r.stdout + r.stderr }
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function row(t: Test, table: Table, name: string, outcome: string, detail?: RegExp): void {
  const r = table.rows.get(name)
  t.equal(r?.outcome, outcome, `${name} ${outcome}`, { output: table.text })
  if (detail) t.match(r?.detail ?? '', detail, `${name} detail`)
}

t.test('good setup: live broker, example rules, no model', async (t) => {
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-doctor-state-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const d = await doctor(['--mqtt-url', broker.url, '--rules-dir', RULES, '--state-dir', state])
  t.equal(d.code, 0, d.text)
  t.same([...d.rows.keys()], ['config', 'rules', 'broker', 'broker-acl', 'model', 'state', 'audit', 'addon', 'cpu'])
  row(t, d, 'state', 'PASS', /writable$/)
  row(t, d, 'audit', 'PASS', /audit\.db: not created yet/)
  for (const r of d.rows.values()) t.not(r.outcome, 'FAIL')
  row(t, d, 'rules', 'PASS', /^4 rule\(s\), revision [0-9a-f]{12}, /)
  row(t, d, 'broker', 'PASS', new RegExp(`connected to ${broker.url} \\(MQTT 5, anonymous\\)`))
  row(t, d, 'broker-acl', 'PASS', /flashcheck\/inspect\/#.*plant\/\+\/spindle\/vibration/)
  row(t, d, 'addon', 'PASS', /sd_notify available/)
  t.match(d.rows.get('cpu')?.detail, /^kernel (avx512-amx|avx512|avx2-vnni|avx2|generic|dotprod|neon) on (x64|arm64);/)
  t.match(d.text, /^doctor: \d+ pass, \d+ warn, 0 fail$/m)
})

t.test('audit journal: its size, and write failures the daemon recorded in it', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'flashcheck-doctor-audit-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const db = openWritable(join(state, 'audit.db'), 'normal')
  db.prepare("INSERT INTO meta(k, v) VALUES ('write_errors', '3'), ('last_error', '2026-03-03T08:00:00.000Z database or disk is full')").run()
  db.close()
  const port = await freePort()
  const d = await doctor(['--mqtt-url', `mqtt://127.0.0.1:${port}`, '--rules-dir', RULES, '--state-dir', state, '--timeout', '500'])
  row(t, d, 'audit', 'WARN', /0 record\(s\), .* MiB of 2048 MiB; 3 journal write failure\(s\) recorded, last: .*disk is full/)
  writeFileSync(join(state, 'audit.db'), 'not a database'.repeat(400))
  const bad = await doctor(['--mqtt-url', `mqtt://127.0.0.1:${port}`, '--rules-dir', RULES, '--state-dir', state, '--timeout', '500'])
  row(t, bad, 'audit', 'FAIL', /not a flashcheck audit database|cannot open/)
})

t.test('closed port: broker unreachable', async (t) => {
  const port = await freePort()
  const d = await doctor(['--mqtt-url', `mqtt://127.0.0.1:${port}`, '--rules-dir', RULES])
  t.equal(d.code, 1)
  row(t, d, 'broker', 'FAIL', /^unreachable: .*ECONNREFUSED/)
  t.notOk(d.rows.has('broker-acl'), 'no ACL check without a connection')
  row(t, d, 'rules', 'PASS')
})

t.test('gateway broker config (deploy/mosquitto): password file, ACL, TLS listener', { skip: have('mosquitto_passwd') ? false : 'mosquitto_passwd not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-gw-'))
  chmodSync(dir, 0o755)
  const plain = await freePort()
  const tls = await freePort()
  const withTls = have('openssl')
  if (withTls) {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'gateway.key'), '-out', join(dir, 'gateway.crt')], { encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
  }
  writeFileSync(join(dir, 'flashcheck.passwd'), '')
  t.equal(spawnSync('mosquitto_passwd', ['-b', join(dir, 'flashcheck.passwd'), 'flashcheck', 'right-password']).status, 0)
  copyFileSync(join(PACKAGE_ROOT, 'deploy', 'mosquitto', 'flashcheck.acl'), join(dir, 'flashcheck.acl'))
  // The shipped file with this test's ports and paths; everything else as shipped.
  let conf = readFileSync(join(PACKAGE_ROOT, 'deploy', 'mosquitto', 'flashcheck.conf'), 'utf8')
    .replace('listener 1883 127.0.0.1', `listener ${plain} 127.0.0.1`)
    .replace('listener 8883', `listener ${tls} 127.0.0.1`)
    .replace('/var/lib/mosquitto/', `${dir}/`)
    .replaceAll('/etc/mosquitto/certs/gateway.crt', join(dir, 'gateway.crt'))
    .replaceAll('/etc/mosquitto/certs/gateway.key', join(dir, 'gateway.key'))
    .replaceAll('/etc/mosquitto/certs/plant-ca.crt', join(dir, 'gateway.crt'))
    .replaceAll('/etc/mosquitto/', `${dir}/`)
  t.match(conf, /^set_tcp_nodelay true$/m)
  t.match(conf, /^allow_anonymous false$/m)
  if (!withTls) conf = conf.replace(/^listener \d+ 127\.0\.0\.1\ncertfile[\s\S]*$/m, '')
  // mosquitto started as root drops to user "mosquitto", which cannot read a private temp dir.
  writeFileSync(join(dir, 'mosquitto.conf'), conf + 'user root\nlog_dest stderr\n')
  const proc: ChildProcess = spawn(mosquittoBin(), ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  proc.stderr!.on('data', (d) => { log += String(d) })
  t.teardown(async () => {
    if (proc.exitCode === null) await new Promise<void>((r) => { proc.once('exit', () => r()); proc.kill('SIGTERM') })
    rmSync(dir, { recursive: true, force: true })
  })
  await waitListening(plain, log)

  const pw = (s: string) => { const p = join(dir, `pw-${s}`); writeFileSync(p, `${s}\n`); return p }
  const base = ['--rules-dir', RULES, '--mqtt-url', `mqtt://127.0.0.1:${plain}`, '--mqtt-username', 'flashcheck']
  const good = await doctor([...base, '--mqtt-password-file', pw('right-password')])
  t.equal(good.code, 0, good.text)
  row(t, good, 'broker', 'PASS', /MQTT 5, user flashcheck/)
  row(t, good, 'broker-acl', 'PASS')

  const wrong = await doctor([...base, '--mqtt-password-file', pw('wrong-password')])
  t.equal(wrong.code, 1)
  row(t, wrong, 'broker', 'FAIL', /^authentication failed \(user flashcheck\): CONNACK 13[45] /)
  const wrong311 = await doctor([...base, '--mqtt-password-file', pw('wrong-password'), '--mqtt-protocol-version', '4'])
  row(t, wrong311, 'broker', 'FAIL', /^authentication failed \(user flashcheck\): CONNACK [45] /)
  const anon = await doctor(['--rules-dir', RULES, '--mqtt-url', `mqtt://127.0.0.1:${plain}`])
  row(t, anon, 'broker', 'FAIL', /^authentication failed \(anonymous\)/)
  const missing = await doctor([...base, '--mqtt-password-file', join(dir, 'no-such-file')])
  row(t, missing, 'broker', 'FAIL', /mqtt\.passwordFile: cannot read .*ENOENT/)

  if (withTls) {
    const tlsBase = ['--rules-dir', RULES, '--mqtt-url', `mqtts://127.0.0.1:${tls}`, '--mqtt-username', 'flashcheck', '--mqtt-password-file', pw('right-password')]
    const ok = await doctor([...tlsBase, '--mqtt-ca', join(dir, 'gateway.crt')])
    row(t, ok, 'broker', 'PASS', /connected to mqtts:/)
    const noCa = await doctor(tlsBase)
    row(t, noCa, 'broker', 'FAIL', /^TLS handshake failed: .*self[- ]signed/i)
  }
})

t.test('a broker that denies a subscription: broker-acl fails', async (t) => {
  const broker = await Aedes.createBroker()
  broker.authorizeSubscribe = (_c: Client | null, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void) => {
    done(null, sub.topic.startsWith('plant/') ? null : sub)
  }
  const server: Server = createServer((s) => broker.handle(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  t.teardown(() => new Promise<void>((r) => broker.close(() => server.close(() => r()))))
  const d = await doctor(['--mqtt-url', `mqtt://127.0.0.1:${port}`, '--mqtt-protocol-version', '4', '--rules-dir', RULES])
  t.equal(d.code, 1)
  row(t, d, 'broker', 'PASS', /MQTT 3\.1\.1/)
  row(t, d, 'broker-acl', 'FAIL', /^subscription denied: plant\/\+\/press\/\+\/cycle, plant\/\+\/spindle\/temperature, plant\/\+\/spindle\/vibration$/)
})

t.test('broken and missing rules', async (t) => {
  const broken = await doctor(['--mqtt-url', 'embedded', '--rules-dir', BROKEN_RULES])
  t.equal(broken.code, 1)
  row(t, broken, 'rules', 'FAIL', /^\d+ error\(s\): .*a-unknown\.yaml:\d+:\d+: /)
  row(t, broken, 'broker', 'PASS', /embedded/)
  const none = await doctor(['--mqtt-url', 'embedded', '--rules-dir', join(tmpdir(), 'flashcheck-no-such-rules')])
  row(t, none, 'rules', 'FAIL', /no such directory/)
  const empty = await doctor(['--mqtt-url', 'embedded', '--rules-dir', join(PACKAGE_ROOT, 'test', 'fixtures', 'rules', 'empty'), '--state-dir', join(tmpdir(), 'flashcheck-no-such-state')])
  t.equal(empty.code, 0)
  row(t, empty, 'rules', 'WARN', /^0 rule\(s\)/)
  row(t, empty, 'state', 'WARN', /missing \(systemd's StateDirectory= creates it/)
})

t.test('model files: missing, complete, too large for memory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-doctor-model-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const base = ['--mqtt-url', 'embedded', '--rules-dir', RULES]

  const emptyDir = join(dir, 'empty')
  mkdirSync(emptyDir)
  const missing = await doctor([...base, '--model-dir', emptyDir])
  t.equal(missing.code, 1)
  row(t, missing, 'model-config', 'FAIL', /config\.json missing/)
  row(t, missing, 'model-weights', 'FAIL', /no model\.safetensors/)
  row(t, missing, 'tokenizer', 'FAIL', /tokenizer\.json missing/)
  t.notOk(missing.rows.has('memory'), 'nothing to size')
  row(t, await doctor([...base, '--model-dir', join(dir, 'nope')]), 'model', 'FAIL', /no such directory/)

  const tiny = join(dir, 'tiny')
  const init = await cli(['model', 'init', '--config', 'tiny', '--out', tiny, '--tokenizer', 'real'], { timeoutMs: 60_000 })
  t.equal(init.code, 0, init.stderr)
  const good = await doctor([...base, '--model-dir', tiny])
  t.equal(good.code, 0, good.text)
  row(t, good, 'model-config', 'PASS', /sambay, 8 layers, hidden 64$/)
  row(t, good, 'model-weights', 'PASS', /^1 safetensors file\(s\), \d+ tensors, [0-9.]+ MiB$/)
  row(t, good, 'tokenizer', 'PASS', /^BPE model, \d+ vocab entries, chat template renders \(\d+ tokens\)$/)
  row(t, good, 'memory', 'PASS', /^model [0-9.]+ MiB, available [0-9.]+ MiB of [0-9.]+ MiB$/)

  // Files that parse as JSON but that the daemon could not start with: doctor must fail where the daemon would.
  const tcPath = join(tiny, 'tokenizer_config.json')
  const tc = readFileSync(tcPath, 'utf8')
  const tjPath = join(tiny, 'tokenizer.json')
  const tj = readFileSync(tjPath, 'utf8')
  const withTemplate = (tpl: string) => writeFileSync(tcPath, JSON.stringify({ ...JSON.parse(tc), chat_template: tpl }))
  withTemplate("{% for message in messages %}{{ message['content'] }}{% endfor")
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'FAIL', /tokenizer_config\.json: chat_template does not parse/)
  withTemplate("{% for message in messages %}{{ message['content'] | no_such_filter }}{% endfor %}")
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'FAIL', /tokenizer_config\.json: chat_template fails to render \(.*no_such_filter/)
  withTemplate("{{ raise_exception('only tool conversations') }}")
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'FAIL', /chat_template fails to render/)
  writeFileSync(tcPath, tc)
  const badSplit = JSON.parse(tj)
  badSplit.pre_tokenizer.pretokenizers[0].pattern.Regex = '(['
  writeFileSync(tjPath, JSON.stringify(badSplit))
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'FAIL', /tokenizer\.json: unsupported tokenizer \(.*character class/)
  // Token ids the model cannot embed (a tokenizer of another model).
  const foreign = JSON.parse(tj)
  const bigTok = foreign.added_tokens.find((x: { content: string }) => x.content === '<|user|>')
  bigTok.id = 100000
  writeFileSync(tjPath, JSON.stringify(foreign))
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'FAIL', /token id 100000 is beyond the model's vocab_size 512/)
  writeFileSync(tjPath, tj)
  t.equal((await doctor([...base, '--model-dir', tiny])).code, 0, 'restored files pass again')

  unlinkSync(tcPath)
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'WARN', /no chat template \(plain prompts\) \(no tokenizer_config\.json\)/)
  writeFileSync(tjPath, '{"model": ')
  row(t, await doctor([...base, '--model-dir', tiny]), 'tokenizer', 'FAIL', /tokenizer\.json: /)
  writeFileSync(tjPath, tj)
  writeFileSync(tcPath, tc)

  // A quantized checkpoint is named; the onnx backend cannot run one or quantize at load.
  const q = join(dir, 'q')
  const qz = await cli(['model', 'quantize', tiny, '--out', q, '--type', 'q4_0'], { timeoutMs: 60_000 })
  t.equal(qz.code, 0, qz.stderr)
  row(t, await doctor([...base, '--model-dir', q]), 'model-config', 'PASS', /hidden 64, quantized q4_0$/)
  row(t, await doctor([...base, '--model-dir', tiny, '--model-backend', 'onnx', '--model-quantize', 'q8_0']), 'model-quantize', 'FAIL', /onnx backend runs float weights only \(model\.quantize q8_0\)/)

  // A config whose weights could not fit in any gateway's memory (estimated from config.json alone).
  const huge = join(dir, 'huge')
  mkdirSync(huge)
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8')) as Record<string, unknown>
  writeFileSync(join(huge, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 2 ** 40 }))
  const big = await doctor([...base, '--model-dir', huge])
  row(t, big, 'model-config', 'PASS')
  row(t, big, 'memory', 'FAIL', /^model \d+\.\d MiB, available /)
})

t.test('broken configuration: exit 2 with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-doctor-cfg-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'bad.json'), '{"mqtt": {"url": "mqtt://127.0.0.1:1883",}}')
  const bad = await doctor(['--config', join(dir, 'bad.json')])
  t.equal(bad.code, 2)
  row(t, bad, 'config', 'FAIL', /bad\.json/)
  t.equal(bad.rows.size, 1, 'nothing else checked without a configuration')
  const unknown = await doctor(['--no-such-key', 'x'])
  t.equal(unknown.code, 2)
  row(t, unknown, 'config', 'FAIL', /unknown flag --no-such-key/)
})

function mosquittoBin(): string {
  for (const d of ['/usr/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')]) {
    if (d && spawnSync('test', ['-x', join(d, 'mosquitto')]).status === 0) return join(d, 'mosquitto')
  }
  return 'mosquitto'
}

async function waitListening(port: number, log: string): Promise<void> {
  const { connect } = await import('node:net')
  const end = Date.now() + 10_000
  for (;;) {
    const ok = await new Promise<boolean>((r) => { const s = connect(port, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true) }); s.once('error', () => r(false)) })
    if (ok) return
    if (Date.now() > end) throw new Error(`gateway mosquitto did not listen on ${port}: ${log}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

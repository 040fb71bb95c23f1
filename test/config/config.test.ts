import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, flatArgs, loadConfig, redactedConfig } from '../../daemon/config/load.js'

const dir = mkdtempSync(join(tmpdir(), 'flashcheck-cfg-'))
const file = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

t.test('defaults', async (t) => {
  const c = loadConfig({ env: {}, args: [] })
  t.equal(c.mqtt.url, 'mqtt://127.0.0.1:1883')
  t.equal(c.mqtt.qos, 1)
  t.equal(c.mqtt.embeddedPort, 1883)
  t.equal(c.budget.defaultMs, 50)
  t.equal(c.limits.maxPayloadBytes, 65536)
  t.equal(c.metrics.port, 0)
  t.equal(c.log.level, 'info')
  t.ok(c.node.id.length > 0, 'node.id defaults to the host name')
  t.equal(c.mqtt.clientId, `flashcheck-${c.node.id}`)
})

t.test('precedence: defaults < file < environment < flags', async (t) => {
  const f = file('p.json', JSON.stringify({ mqtt: { url: 'mqtt://file:1883', qos: 0 }, budget: { defaultMs: 20 }, node: { id: 'from-file' } }))
  const fileOnly = loadConfig({ file: f, env: {}, args: [] })
  t.equal(fileOnly.mqtt.url, 'mqtt://file:1883')
  t.equal(fileOnly.mqtt.qos, 0)
  t.equal(fileOnly.budget.defaultMs, 20)
  const withEnv = loadConfig({ file: f, env: { FLASHCHECK_MQTT_URL: 'mqtt://env:1883', FLASHCHECK_BUDGET_DEFAULT_MS: '30' }, args: [] })
  t.equal(withEnv.mqtt.url, 'mqtt://env:1883')
  t.equal(withEnv.budget.defaultMs, 30)
  t.equal(withEnv.node.id, 'from-file')
  const withArgs = loadConfig({ file: f, env: { FLASHCHECK_MQTT_URL: 'mqtt://env:1883' }, args: ['--mqtt-url', 'mqtt://flag:1883', '--node-id', 'n7'] })
  t.equal(withArgs.mqtt.url, 'mqtt://flag:1883')
  t.equal(withArgs.node.id, 'n7')
  t.equal(withArgs.mqtt.clientId, 'flashcheck-n7')
})

t.test('a default file is used only when it exists; an explicit one must exist', async (t) => {
  t.equal(loadConfig({ defaultFile: join(dir, 'absent.json'), env: {}, args: [] }).mqtt.qos, 1)
  t.throws(() => loadConfig({ file: join(dir, 'absent.json'), env: {}, args: [] }), { message: /cannot read .*absent\.json: ENOENT/ })
})

t.test('unknown keys and invalid values are refused, naming the key', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown.json', { mqtt: { urll: 'x' } }, /mqtt\.urll/],
    ['unknown-top.json', { bogus: 1 }, /bogus/],
    ['badqos.json', { mqtt: { qos: 3 } }, /mqtt\.qos/],
    ['badurl.json', { mqtt: { url: 'http://x' } }, /mqtt\.url/],
    ['badport.json', { metrics: { port: 70000 } }, /metrics\.port/],
    ['badlevel.json', { log: { level: 'loud' } }, /log\.level/],
    ['badbudget.json', { budget: { defaultMs: -5 } }, /budget\.defaultMs/],
  ]
  for (const [name, body, re] of cases) {
    const err = (() => { try { loadConfig({ file: file(name, JSON.stringify(body)), env: {}, args: [] }) } catch (e) { return e } })()
    t.type(err, ConfigError, name)
    t.match((err as Error).message, re, name)
    t.notMatch((err as Error).message, /\n/, `${name}: one line`)
  }
  t.throws(() => loadConfig({ env: { FLASHCHECK_MQTT_QOS: '7' }, args: [] }), { message: /mqtt\.qos/ })
  t.throws(() => loadConfig({ env: {}, args: ['--mqtt-qoss', '1'] }), { message: /unknown flag --mqtt-qoss/ })
  t.throws(() => loadConfig({ env: {}, args: ['--mqtt-reconnect-min-ms', '5000', '--mqtt-reconnect-max-ms', '100'] }), { message: /mqtt\.reconnectMaxMs/ })
})

t.test('broken JSON is reported with file:line:col', async (t) => {
  const f = file('broken.json', '{\n  "mqtt": {\n    "url": "mqtt://x" oops\n  }\n}\n')
  t.throws(() => loadConfig({ file: f, env: {}, args: [] }), { message: new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:\\d+: invalid JSON`) })
})

t.test('every key has a flag and an environment variable', async (t) => {
  const flags = flatArgs()
  t.equal(flags['mqtt.url'], 'mqtt-url')
  t.equal(flags['limits.maxPayloadBytes'], 'limits-max-payload-bytes')
  const c = loadConfig({ env: { FLASHCHECK_LIMITS_MAX_PAYLOAD_BYTES: '1024', FLASHCHECK_METRICS_PORT: '9100' }, args: [] })
  t.equal(c.limits.maxPayloadBytes, 1024)
  t.equal(c.metrics.port, 9100)
})

t.test('secrets are redacted for logging', async (t) => {
  const c = loadConfig({ env: {}, args: ['--mqtt-password-file', '/etc/flashcheck/secret', '--mqtt-key', '/etc/flashcheck/key.pem'] })
  const r = JSON.stringify(redactedConfig(c))
  t.notMatch(r, /secret|key\.pem/)
  t.match(r, /"passwordFile":"\(set\)"/)
})

t.test('model.quantize: none by default; file, environment and flag; a bad value names the key', async (t) => {
  t.equal(loadConfig({ env: {}, args: [] }).model.quantize, 'none')
  t.equal(loadConfig({ file: file('q.json', JSON.stringify({ model: { quantize: 'q8_0' } })), env: {}, args: [] }).model.quantize, 'q8_0')
  t.equal(loadConfig({ env: { FLASHCHECK_MODEL_QUANTIZE: 'q4_0' }, args: [] }).model.quantize, 'q4_0')
  t.equal(loadConfig({ env: { FLASHCHECK_MODEL_QUANTIZE: 'q4_0' }, args: ['--model-quantize', 'q8_0'] }).model.quantize, 'q8_0')
  for (const bad of [{ env: { FLASHCHECK_MODEL_QUANTIZE: 'int4' }, args: [] }, { env: {}, args: ['--model-quantize', 'Q8_0'] }, { file: file('qbad.json', '{"model": {"quantize": true}}'), env: {}, args: [] }]) {
    t.throws(() => loadConfig(bad), { message: /model\.quantize: must be one of the possible values: \["none","q8_0","q4_0"\]/ })
  }
})

t.test('model.quantize reaches the backend options; the onnx backend refuses it, naming the key', async (t) => {
  const { backendOptions, loadBackend } = await import('../../daemon/model/load-backend.js')
  const c = loadConfig({ env: {}, args: ['--model-quantize', 'q4_0'] })
  t.equal(backendOptions(c.model).quantize, 'q4_0')
  t.equal(backendOptions(loadConfig({ env: {}, args: [] }).model).quantize, 'none')
  await t.rejects(loadBackend('onnx', dir, { quantize: 'q8_0' }), { name: 'ModelLoadError', message: /^model\.quantize q8_0: the onnx backend runs float weights only; set model\.quantize none or model\.backend native$/ })
  const q = join(dir, 'quantized-ckpt')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(q, { recursive: true })
  writeFileSync(join(q, 'config.json'), JSON.stringify({ model_type: 'phi4flash', quantization_config: { quant_method: 'flashcheck', type: 'q4_0', block_size: 32 } }))
  await t.rejects(loadBackend('onnx', q, {}), { name: 'ModelLoadError', message: /config\.json: a q4_0 checkpoint \(quantization_config\); the onnx backend runs float checkpoints only — use model\.backend native/ })
})

t.test('flashcheck config --model-quantize with a bad value: exit 2, the key named', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const main = join(import.meta.dirname, '..', '..', 'dist', 'daemon', 'cli', 'main.js')
  const r = spawnSync(process.execPath, [main, 'config', '--model-quantize', 'q5_0'], { encoding: 'utf8', cwd: dir })
  t.equal(r.status, 2)
  t.match(r.stderr, /model\.quantize: must be one of the possible values/)
  const ok = spawnSync(process.execPath, [main, 'config'], { encoding: 'utf8', cwd: dir, env: { ...process.env, FLASHCHECK_MODEL_QUANTIZE: 'q8_0' } })
  t.equal(ok.status, 0, ok.stderr)
  t.equal(JSON.parse(ok.stdout).model.quantize, 'q8_0')
})

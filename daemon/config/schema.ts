// The daemon's configuration schema (convict). Every key can come from the config file, an environment
// variable FLASHCHECK_<KEY_IN_CAPS_WITH_UNDERSCORES> or a CLI flag --<key-with-dashes>, in that precedence.
import convict from 'convict'

const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

convict.addFormat({
  name: 'mqtt-url',
  validate(value: unknown) {
    if (value === 'embedded') return
    if (typeof value !== 'string' || !/^(mqtts?|wss?|tcp|tls):\/\/[^\s]+$/.test(value)) {
      throw new Error('must be "embedded" or an mqtt://, mqtts://, ws://, wss:// URL')
    }
  },
})

convict.addFormat({
  name: 'optional-file',
  validate(value: unknown) {
    if (typeof value !== 'string') throw new Error('must be a file path string')
  },
})

for (const [name, empty] of [['sparkplug-id', false], ['sparkplug-id-or-empty', true]] as const) {
  convict.addFormat({
    name,
    validate(value: unknown) {
      // Sparkplug ids are single topic levels (Sparkplug 3.0, 4.1.1).
      if (typeof value !== 'string' || (!empty && value === '') || /[/+#\u0000]/.test(value)) throw new Error(`must be a ${empty ? '' : 'non-empty '}name without '/', '+', '#'`)
    },
  })
}

convict.addFormat({
  name: 'share-group',
  validate(value: unknown) {
    // The group name is one topic level of the $share filter: it must not carry wildcards or separators.
    if (typeof value !== 'string' || /[/+#\u0000]/.test(value)) throw new Error("must be a name without '/', '+', '#'")
  },
})

convict.addFormat({
  name: 'mqtt-filter',
  validate(value: unknown) {
    if (typeof value !== 'string' || value === '') throw new Error('must be a non-empty MQTT topic filter')
    const levelsOf = value.split('/')
    levelsOf.forEach((l, i) => {
      if (l.includes('#') && (l !== '#' || i !== levelsOf.length - 1)) throw new Error('"#" only as the last level')
      if (l.includes('+') && l !== '+') throw new Error('"+" must stand alone in a level')
    })
  },
})

function positiveInt(v: unknown): void {
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error('must be a positive integer')
}

// onnxruntime execution providers, highest priority first (model.onnx.providers); a comma list from env/flags.
convict.addFormat({
  name: 'onnx-providers',
  validate(value: unknown) {
    const known = ['tensorrt', 'cuda', 'cpu']
    if (!Array.isArray(value) || value.length === 0) throw new Error(`must be a non-empty list of ${known.join(', ')}`)
    for (const v of value) if (!known.includes(v as string)) throw new Error(`unknown provider ${JSON.stringify(v)} (known: ${known.join(', ')})`)
    if (new Set(value).size !== value.length) throw new Error('lists a provider twice')
  },
  coerce: (v: unknown) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter((x) => x !== '') : v),
})

function key(path: string): { env: string; arg: string } {
  return { env: 'FLASHCHECK_' + path.replace(/\./g, '_').replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase(), arg: path.replace(/\./g, '-').replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase() }
}

export const schemaDefinition = {
  mqtt: {
    url: { doc: 'Broker URL, or "embedded" for the in-process MQTT 3.1.1 broker (quickstart and tests).', format: 'mqtt-url', default: 'mqtt://127.0.0.1:1883', ...key('mqtt.url') },
    embeddedPort: { doc: 'Port of the embedded broker (127.0.0.1 only).', format: 'port', default: 1883, ...key('mqtt.embeddedPort') },
    protocolVersion: { doc: 'MQTT protocol: 5, or 4 (3.1.1). The embedded broker always uses 4.', format: [4, 5], default: 5, ...key('mqtt.protocolVersion') },
    clientId: { doc: 'MQTT client id; empty = flashcheck-<node.id>.', format: String, default: '', ...key('mqtt.clientId') },
    username: { doc: 'MQTT user name.', format: String, default: '', ...key('mqtt.username') },
    passwordFile: { doc: 'File whose first line is the MQTT password (kept out of config and logs).', format: 'optional-file', default: '', ...key('mqtt.passwordFile') },
    ca: { doc: 'CA certificate file (PEM) for TLS.', format: 'optional-file', default: '', ...key('mqtt.ca') },
    cert: { doc: 'Client certificate file (PEM) for mutual TLS.', format: 'optional-file', default: '', ...key('mqtt.cert') },
    key: { doc: 'Client private key file (PEM) for mutual TLS.', format: 'optional-file', default: '', sensitive: true, ...key('mqtt.key') },
    qos: { doc: 'QoS of subscriptions and verdicts.', format: [0, 1, 2], default: 1, ...key('mqtt.qos') },
    keepaliveS: { doc: 'MQTT keepalive in seconds.', format: 'nat', default: 30, ...key('mqtt.keepaliveS') },
    reconnectMinMs: { doc: 'First reconnect delay; doubles per failed attempt.', format: 'nat', default: 250, ...key('mqtt.reconnectMinMs') },
    reconnectMaxMs: { doc: 'Largest reconnect delay.', format: 'nat', default: 15000, ...key('mqtt.reconnectMaxMs') },
    requestFilter: { doc: 'Catch-all filter for requests, so that requests for unknown inspections get an error verdict.', format: 'mqtt-filter', default: 'flashcheck/inspect/#', ...key('mqtt.requestFilter') },
    clean: { doc: 'Start a clean session on every connect. false (default) keeps the session in the broker, so requests sent while the daemon is away are delivered when it is back.', format: Boolean, default: false, ...key('mqtt.clean') },
    sessionExpiryS: { doc: 'MQTT 5 session expiry: how long the broker keeps the session (subscriptions, queued requests) while the daemon is disconnected.', format: 'nat', default: 3600, ...key('mqtt.sessionExpiryS') },
    shareGroup: { doc: 'Share the request topics with other instances through $share/<group>/ subscriptions (load split and failover); empty = not shared. Signal and trigger topics are never shared. Members keep no session (expiry 0), so the broker stops handing requests to a member that died.', format: 'share-group', default: '', ...key('mqtt.shareGroup') },
    receiveMaximum: { doc: 'MQTT 5 receive maximum: QoS 1/2 requests the broker may have in flight to the daemon; the rest wait in the broker.', format: 'nat', default: 1000, ...key('mqtt.receiveMaximum') },
  },
  rules: {
    dir: { doc: 'Directory of rule files (*.yaml).', format: String, default: '/etc/flashcheck/rules', ...key('rules.dir') },
    watch: { doc: 'Reload rules when files in rules.dir change (SIGHUP always reloads).', format: Boolean, default: true, ...key('rules.watch') },
    shadowDir: { doc: 'Directory of shadow rules: judged on the same live traffic, never published, disagreements with the serving verdicts counted (flashcheck_shadow_verdicts_total) and logged; empty = none. Invalid shadow rules never affect serving.', format: String, default: '', ...key('rules.shadowDir') },
  },
  budget: {
    defaultMs: { doc: 'Latency budget of a rule that sets no budget_ms.', format: 'nat', default: 50, ...key('budget.defaultMs') },
  },
  limits: {
    maxPayloadBytes: { doc: 'Largest request payload inspected; larger ones get a TOO_LARGE error verdict.', format: 'nat', default: 65536, ...key('limits.maxPayloadBytes') },
    dedupeWindowS: { doc: 'How long a request correlation is remembered to answer QoS 1 redeliveries once.', format: 'nat', default: 60, ...key('limits.dedupeWindowS') },
    dedupeEntries: { doc: 'Capacity of the redelivery memory (rounded up to a power of two); size it above requests/s x dedupeWindowS.', format: 'nat', default: 262144, ...key('limits.dedupeEntries') },
    outboxSize: { doc: 'Verdicts kept while the broker is away, flushed in order on reconnect; when full the oldest are dropped and counted.', format: 'nat', default: 10000, ...key('limits.outboxSize') },
    maxAgeFactor: { doc: 'A request whose age on arrival (sent-at user property or sent_at field) exceeds its budget times this factor is answered at once with an OVERLOADED error instead of a late verdict; 0 = off.', format: Number, default: 1, ...key('limits.maxAgeFactor') },
  },
  state: {
    dir: { doc: 'Directory for state kept across restarts (the audit journal, the redelivery memory); systemd StateDirectory. Empty = keep nothing.', format: String, default: '/var/lib/flashcheck', ...key('state.dir') },
  },
  audit: {
    enabled: { doc: 'Keep every verdict in the audit journal <state.dir>/audit.db (SQLite); needs state.dir. The journal also answers redelivered requests after a crash with their stored verdict.', format: Boolean, default: true, ...key('audit.enabled') },
    retentionDays: { doc: 'Audit rows older than this many days are removed.', format: positiveInt, default: 400, ...key('audit.retentionDays') },
    maxBytes: { doc: 'Most bytes of audit rows kept; beyond it the oldest rows go first (flashcheck_audit_pruned_total).', format: positiveInt, default: 2 * 1024 ** 3, ...key('audit.maxBytes') },
    sync: { doc: 'normal: each batch reaches the OS (survives a killed daemon); full: fsync per batch (survives power loss, costs flash writes).', format: ['normal', 'full'], default: 'normal', ...key('audit.sync') },
  },
  security: {
    allowRoot: { doc: 'Allow running as root (refused by default).', format: Boolean, default: false, ...key('security.allowRoot') },
  },
  model: {
    dir: { doc: 'Checkpoint directory (config.json, *.safetensors, tokenizer.json, tokenizer_config.json) for rules with a reason: step; empty = no model (such rules are refused).', format: String, default: '', ...key('model.dir') },
    backend: { doc: 'Decoder implementation: native (the C++ kernel) or onnx (onnxruntime).', format: ['native', 'onnx'], default: 'native', ...key('model.backend') },
    threads: { doc: 'Compute threads of the decoder; 0 = every core but one (left to the event loop and MQTT).', format: 'nat', default: 0, ...key('model.threads') },
    onnx: {
      providers: { doc: 'onnx backend: execution providers, highest priority first (tensorrt, cuda, cpu); one that fails to load is dropped with a warning.', format: 'onnx-providers', default: ['cpu'], ...key('model.onnx.providers') },
      graphs: { doc: 'onnx backend: directory written by `flashcheck model export-onnx`; empty = export into a temporary directory at every start (fine for small models).', format: String, default: '', ...key('model.onnx.graphs') },
      runtimePath: { doc: 'onnx backend: onnxruntime-node package to load, a module name or its directory (e.g. a TensorRT-enabled build, deploy/JETSON.md); empty = the bundled CPU build.', format: String, default: '', ...key('model.onnx.runtimePath') },
      trtEngineCachePath: { doc: 'tensorrt provider: directory of cached engines (and timing cache), reused across restarts; empty = build engines at every start.', format: String, default: '', ...key('model.onnx.trtEngineCachePath') },
      trtFp16: { doc: 'tensorrt provider: allow FP16 kernels.', format: Boolean, default: false, ...key('model.onnx.trtFp16') },
      trtMaxWorkspaceBytes: { doc: 'tensorrt provider: builder workspace limit in bytes; 0 = TensorRT\'s default.', format: 'nat', default: 0, ...key('model.onnx.trtMaxWorkspaceBytes') },
    },
    quantize: { doc: 'native backend: quantize a float checkpoint\'s weights at load (none, q8_0 or q4_0; as `flashcheck model quantize` does offline). A quantized checkpoint in model.dir runs as stored. The onnx backend refuses anything but none.', format: ['none', 'q8_0', 'q4_0'], default: 'none', ...key('model.quantize') },
    nice: { doc: 'How much lower the decoder threads run than the event loop (Linux nice increment, 0-19): timers and MQTT I/O preempt the decoder when every core is busy.', format: 'nat', default: 5, ...key('model.nice') },
    guardMs: { doc: 'Margin before a deadline at which the fallback verdict is published if the model has not answered.', format: 'nat', default: 5, ...key('model.guardMs') },
    queueMax: { doc: 'Most requests waiting for the decoder; beyond it requests get their fallback verdict at once.', format: 'nat', default: 32, ...key('model.queueMax') },
    chunkTokens: { doc: 'Prefill chunk in tokens; the remaining budget is re-checked between chunks.', format: positiveInt, default: 64, ...key('model.chunkTokens') },
    prefixCache: { doc: 'Prefill each reason rule\'s static prompt prefix once and reuse it per request.', format: Boolean, default: true, ...key('model.prefixCache') },
  },
  metrics: {
    port: { doc: 'Port of the Prometheus /metrics endpoint; 0 = off.', format: 'port', default: 0, ...key('metrics.port') },
    host: { doc: 'Address the metrics endpoint binds to.', format: String, default: '127.0.0.1', ...key('metrics.host') },
    page: { doc: 'Serve the read-only status page (/, /events, /api/*) on the metrics listener.', format: Boolean, default: true, ...key('metrics.page') },
    user: { doc: 'Basic-auth user for the metrics listener (page, /metrics; not /healthz); empty = no authentication.', format: String, default: '', ...key('metrics.user') },
    passwordFile: { doc: 'File whose first line is the basic-auth password of metrics.user.', format: 'optional-file', default: '', ...key('metrics.passwordFile') },
  },
  log: {
    level: { doc: 'Log level.', format: levels, default: 'info', ...key('log.level') },
  },
  node: {
    id: { doc: 'Name of this gateway in topics and responses; empty = host name.', format: String, default: '', ...key('node.id') },
  },
  sparkplug: {
    enabled: { doc: 'Also be a Sparkplug B edge node: NBIRTH/NDEATH, one device per inspection, each verdict as DDATA (reading Sparkplug signals needs no setting).', format: Boolean, default: false, ...key('sparkplug.enabled') },
    group: { doc: 'Sparkplug group id of the edge node.', format: 'sparkplug-id', default: 'flashcheck', ...key('sparkplug.group') },
    edgeNode: { doc: 'Sparkplug edge node id; empty = node.id.', format: 'sparkplug-id-or-empty', default: '', ...key('sparkplug.edgeNode') },
    primaryHost: { doc: 'Sparkplug host id of the primary host application: NBIRTH waits for its spBv1.0/STATE/<id> online message; empty = no primary host.', format: 'sparkplug-id-or-empty', default: '', ...key('sparkplug.primaryHost') },
  },
}

export type ConfigSchema = typeof schemaDefinition

export interface Config {
  mqtt: {
    url: string
    embeddedPort: number
    protocolVersion: 4 | 5
    clientId: string
    username: string
    passwordFile: string
    ca: string
    cert: string
    key: string
    qos: 0 | 1 | 2
    keepaliveS: number
    reconnectMinMs: number
    reconnectMaxMs: number
    requestFilter: string
    clean: boolean
    sessionExpiryS: number
    shareGroup: string
    receiveMaximum: number
  }
  rules: { dir: string; watch: boolean; shadowDir: string }
  budget: { defaultMs: number }
  limits: { maxPayloadBytes: number; dedupeWindowS: number; dedupeEntries: number; outboxSize: number; maxAgeFactor: number }
  state: { dir: string }
  audit: { enabled: boolean; retentionDays: number; maxBytes: number; sync: 'normal' | 'full' }
  security: { allowRoot: boolean }
  model: { dir: string; backend: 'native' | 'onnx'; threads: number; quantize: 'none' | 'q8_0' | 'q4_0'; nice: number; guardMs: number; queueMax: number; chunkTokens: number; prefixCache: boolean; onnx: ModelOnnxConfig }
  metrics: { port: number; host: string; page: boolean; user: string; passwordFile: string }
  log: { level: string }
  node: { id: string }
  sparkplug: { enabled: boolean; group: string; edgeNode: string; primaryHost: string }
}

/** model.onnx.*: the onnx backend's settings. */
export interface ModelOnnxConfig {
  providers: ('tensorrt' | 'cuda' | 'cpu')[]
  graphs: string
  runtimePath: string
  trtEngineCachePath: string
  trtFp16: boolean
  trtMaxWorkspaceBytes: number
}

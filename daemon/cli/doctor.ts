// `flashcheck doctor [--config FILE] [--timeout MS] [--<key> VALUE ...]`: checks what operators get wrong
// on a gateway — the configuration, broker reachability, credentials and ACL, the rules, model files and the
// memory they need, the state directory, the native addon and the CPU features its kernel uses — and prints one row per check:
// `PASS|WARN|FAIL  name  detail`. Exit 0 without FAIL rows, 1 with any, 2 when the configuration is unusable
// (as `flashcheck run`).
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs'
import { freemem, totalmem } from 'node:os'
import { join } from 'node:path'
import mqtt, { type IClientOptions, type ISubscriptionGrant } from 'mqtt'
import { AUDIT_FILE, openReadOnly } from '../audit/db.js'
import { spoolBacklog } from '../audit/ingest.js'
import { SPOOL_DIR } from '../audit/spool.js'
import { ConfigError } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { archFromConfig } from '../model/arch.js'
import { estimate } from '../model/offline/estimate.js'
import { ADDON_PATH, loadAddon } from '../model/addon.js'
import { ChatTokenizer } from '../verdict/tokenizer.js'
import { readCheckpointHeaders } from '../model/safetensors-header.js'
import { clientOptions } from '../mqtt/options.js'
import { loadRuleDir } from '../rules/load.js'
import type { RuleSet } from '../rules/types.js'
import { desiredFilters } from '../service/subscriptions.js'
import { parseConfigArgs } from './run.js'

export type Outcome = 'PASS' | 'WARN' | 'FAIL'
export interface Row {
  outcome: Outcome
  name: string
  detail: string
}

const USAGE = `usage: flashcheck doctor [--config FILE] [--timeout MS] [--<key> VALUE ...]
  Checks configuration, broker (reachability, credentials, ACL), rules, model files, memory, native addon and
  CPU features; prints PASS/WARN/FAIL per check. Exit 0: no FAIL; 1: some FAIL; 2: configuration unusable.
`

export async function doctor(argv: string[]): Promise<number> {
  let timeoutMs = 5000
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE)
      return 0
    }
    if (a === '--timeout') {
      timeoutMs = Number(argv[++i])
      if (!(timeoutMs > 0)) {
        process.stderr.write('doctor: --timeout needs a positive number of milliseconds\n')
        return 2
      }
    } else rest.push(a)
  }
  const rows: Row[] = []
  let cfg: Config
  try {
    cfg = parseConfigArgs(rest)
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    rows.push({ outcome: 'FAIL', name: 'config', detail: e.message })
    print(rows)
    return 2
  }
  rows.push({ outcome: 'PASS', name: 'config', detail: configSource(rest) })
  const rules = await checkRules(cfg, rows)
  await checkBroker(cfg, rules, timeoutMs, rows)
  await checkModel(cfg, rows)
  checkState(cfg, rows)
  await checkAudit(cfg, rows, timeoutMs)
  checkNative(rows)
  print(rows)
  return rows.some((r) => r.outcome === 'FAIL') ? 1 : 0
}

function configSource(argv: string[]): string {
  const i = argv.findIndex((a) => a === '--config' || a.startsWith('--config='))
  if (i >= 0) return argv[i] === '--config' ? argv[i + 1]! : argv[i]!.slice('--config='.length)
  return existsSync('/etc/flashcheck/config.json') ? '/etc/flashcheck/config.json' : 'built-in defaults (no config file)'
}

function print(rows: Row[]): void {
  const w = Math.max(...rows.map((r) => r.name.length))
  for (const r of rows) process.stdout.write(`${r.outcome}  ${r.name.padEnd(w)}  ${r.detail}\n`)
  const n = (o: Outcome) => rows.filter((r) => r.outcome === o).length
  process.stdout.write(`doctor: ${n('PASS')} pass, ${n('WARN')} warn, ${n('FAIL')} fail\n`)
}

async function checkRules(cfg: Config, rows: Row[]): Promise<RuleSet | undefined> {
  const dir = cfg.rules.dir
  if (!existsSync(dir)) {
    rows.push({ outcome: 'FAIL', name: 'rules', detail: `${dir}: no such directory (rules.dir)` })
    return undefined
  }
  try {
    const res = await loadRuleDir(dir, { defaultBudgetMs: cfg.budget.defaultMs })
    if (!res.ok) {
      const first = res.errors.slice(0, 3).map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join(' | ')
      rows.push({ outcome: 'FAIL', name: 'rules', detail: `${res.errors.length} error(s): ${first}` })
      return undefined
    }
    const n = res.set.rules.length
    // An empty set is valid (the daemon answers UNKNOWN_INSPECTION) but is rarely what a gateway wants.
    rows.push({ outcome: n > 0 ? 'PASS' : 'WARN', name: 'rules', detail: `${n} rule(s), revision ${res.set.rev}, ${dir}` })
    return res.set
  } catch (e) {
    rows.push({ outcome: 'FAIL', name: 'rules', detail: `${dir}: ${(e as Error).message}` })
    return undefined
  }
}

// CONNACK codes that mean "your credentials are wrong", 3.1.1 and MQTT 5.
const AUTH_CODES: Record<number, string> = {
  4: 'bad user name or password',
  5: 'not authorized',
  134: 'bad user name or password',
  135: 'not authorized',
  140: 'bad authentication method',
}

async function checkBroker(cfg: Config, rules: RuleSet | undefined, timeoutMs: number, rows: Row[]): Promise<void> {
  if (cfg.mqtt.url === 'embedded') {
    rows.push({ outcome: 'PASS', name: 'broker', detail: `embedded broker (started by run on 127.0.0.1:${cfg.mqtt.embeddedPort})` })
    return
  }
  const version = cfg.mqtt.protocolVersion
  let opts: IClientOptions
  try {
    opts = clientOptions(cfg, version)
  } catch (e) {
    rows.push({ outcome: 'FAIL', name: 'broker', detail: (e as Error).message })
    return
  }
  // Its own client id (the daemon's would be kicked off the broker) and no will: an "offline" will from the
  // doctor would overwrite the running daemon's retained presence.
  opts = { ...opts, clientId: `${cfg.mqtt.clientId}-doctor-${process.pid}`, will: undefined, connectTimeout: timeoutMs }
  const who = cfg.mqtt.username ? `user ${cfg.mqtt.username}` : 'anonymous'
  const client = mqtt.connect(cfg.mqtt.url, opts)
  const outcome = await new Promise<{ ok: true } | { ok: false; detail: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, detail: `no CONNACK from ${cfg.mqtt.url} within ${timeoutMs} ms` }), timeoutMs)
    client.once('connect', () => { clearTimeout(timer); resolve({ ok: true }) })
    client.once('error', (err: Error & { code?: string | number }) => {
      clearTimeout(timer)
      if (typeof err.code === 'number') {
        const why = AUTH_CODES[err.code]
        resolve({ ok: false, detail: why ? `authentication failed (${who}): CONNACK ${err.code} ${why}` : `broker refused the connection: CONNACK ${err.code} ${err.message}` })
      } else if (/CERT|TLS|SSL/.test(String(err.code ?? ''))) {
        resolve({ ok: false, detail: `TLS handshake failed: ${err.message}` })
      } else {
        resolve({ ok: false, detail: `unreachable: ${err.message}` })
      }
    })
  })
  if (!outcome.ok) {
    client.end(true)
    rows.push({ outcome: 'FAIL', name: 'broker', detail: outcome.detail })
    return
  }
  rows.push({ outcome: 'PASS', name: 'broker', detail: `connected to ${cfg.mqtt.url} (MQTT ${version === 5 ? '5' : '3.1.1'}, ${who})` })

  // The daemon's subscriptions, as the broker grants them. Brokers that check subscriptions against their
  // ACL answer a denied filter with a failure code in SUBACK; mosquitto's acl_file grants every filter and
  // drops denied messages at delivery instead, which no client can see without publishing.
  const filters = desiredFilters(rules, cfg.mqtt.requestFilter)
  // One filter at a time: mqtt.js turns a failure code in SUBACK into an error for the whole call.
  const denied: string[] = []
  for (const f of filters) {
    const res = await new Promise<ISubscriptionGrant[] | Error>((resolve) => {
      const timer = setTimeout(() => resolve(new Error(`no SUBACK within ${timeoutMs} ms`)), timeoutMs)
      client.subscribe(f, { qos: cfg.mqtt.qos as 0 | 1 | 2 }, (err, g) => { clearTimeout(timer); resolve(err ?? g ?? []) })
    })
    if (res instanceof Error && /SUBACK within/.test(res.message)) {
      rows.push({ outcome: 'FAIL', name: 'broker-acl', detail: `subscribing ${f}: ${res.message}` })
      client.end(true)
      return
    }
    if (res instanceof Error || res.some((g) => g.qos >= 0x80)) denied.push(f)
    else await new Promise<void>((resolve) => client.unsubscribe(f, () => resolve()))
  }
  if (denied.length) rows.push({ outcome: 'FAIL', name: 'broker-acl', detail: `subscription denied: ${denied.join(', ')}` })
  else rows.push({ outcome: 'PASS', name: 'broker-acl', detail: `subscriptions granted: ${filters.join(', ')}` })
  await client.endAsync()
}

async function checkModel(cfg: Config, rows: Row[]): Promise<void> {
  const dir = cfg.model.dir
  if (!dir) {
    rows.push({ outcome: 'PASS', name: 'model', detail: 'none configured (model.dir empty; rules with reason steps are refused)' })
    return
  }
  if (!existsSync(dir)) {
    rows.push({ outcome: 'FAIL', name: 'model', detail: `${dir}: no such directory (model.dir)` })
    return
  }
  let archBytes: number | undefined
  let modelVocab: number | undefined
  try {
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { quantization_config?: { type?: string } }
    const arch = archFromConfig(raw, join(dir, 'config.json'))
    archBytes = estimate(arch).bytesBf16
    modelVocab = arch.vocab
    const quant = raw.quantization_config ? `, quantized ${raw.quantization_config.type ?? '(unknown type)'}` : ''
    rows.push({ outcome: 'PASS', name: 'model-config', detail: `${join(dir, 'config.json')}: ${arch.layout}, ${arch.layers} layers, hidden ${arch.hidden}${quant}` })
    if (cfg.model.backend === 'onnx' && (raw.quantization_config || cfg.model.quantize !== 'none')) {
      rows.push({ outcome: 'FAIL', name: 'model-quantize', detail: `the onnx backend runs float weights only (${raw.quantization_config ? 'quantized checkpoint' : `model.quantize ${cfg.model.quantize}`}); use model.backend native` })
    }
  } catch (e) {
    rows.push({ outcome: 'FAIL', name: 'model-config', detail: (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${join(dir, 'config.json')} missing` : (e as Error).message })
  }
  let weightBytes: number | undefined
  if (cfg.model.backend === 'onnx') {
    const onnx = readdirSync(dir).filter((f) => f.endsWith('.onnx'))
    rows.push(onnx.length
      ? { outcome: 'PASS', name: 'model-weights', detail: `onnx backend: ${onnx.join(', ')}` }
      : { outcome: 'FAIL', name: 'model-weights', detail: `onnx backend: no *.onnx file in ${dir}` })
  } else {
    try {
      const h = await readCheckpointHeaders(dir)
      weightBytes = h.dataBytes
      rows.push({ outcome: 'PASS', name: 'model-weights', detail: `${h.files.length} safetensors file(s), ${h.tensors.size} tensors, ${mib(h.dataBytes)}` })
    } catch (e) {
      const err = e as NodeJS.ErrnoException
      rows.push({ outcome: 'FAIL', name: 'model-weights', detail: err.code === 'ENOENT' ? `no model.safetensors (or index) in ${dir}` : err.message })
    }
  }
  const tok = join(dir, 'tokenizer.json')
  if (!existsSync(tok)) {
    rows.push({ outcome: 'FAIL', name: 'tokenizer', detail: `${tok} missing` })
  } else {
    // What the daemon does at start: build the tokenizer, parse the chat template, render a chat and encode it.
    try {
      const t = JSON.parse(readFileSync(tok, 'utf8')) as { model?: { type?: string; vocab?: object } }
      if (!t.model || typeof t.model !== 'object') throw new Error(`${tok}: no "model" object`)
      const vocab = t.model.vocab ? Object.keys(t.model.vocab).length : 0
      const ct = await ChatTokenizer.load(dir)
      let text: string
      try {
        text = ct.render('You are a quality inspector.', 'Screw joint at station st1: torque 11.2 Nm. Verdict?')
      } catch (e) {
        throw new Error(`${join(dir, 'tokenizer_config.json')}: chat_template fails to render (${(e as Error).message})`)
      }
      const ids = ct.encode(text)
      const over = modelVocab === undefined ? undefined : ids.find((id) => id >= modelVocab)
      if (over !== undefined) throw new Error(`${tok}: token id ${over} is beyond the model's vocab_size ${modelVocab}`)
      const extra = existsSync(join(dir, 'tokenizer_config.json')) ? '' : ' (no tokenizer_config.json)'
      const how = ct.hasTemplate ? `chat template renders (${ids.length} tokens)` : 'no chat template (plain prompts)'
      rows.push({ outcome: extra ? 'WARN' : 'PASS', name: 'tokenizer', detail: `${t.model.type ?? 'unknown'} model, ${vocab} vocab entries, ${how}${extra}` })
    } catch (e) {
      const msg = (e as Error).message
      rows.push({ outcome: 'FAIL', name: 'tokenizer', detail: msg.startsWith(dir) ? msg : `${tok}: ${msg}` })
    }
  }
  // Weights are memory-mapped and, on a Jetson, share RAM with the GPU: what matters is what is free now.
  const need = weightBytes ?? archBytes
  if (need !== undefined) {
    const free = freemem()
    const detail = `model ${mib(need)}, available ${mib(free)} of ${mib(totalmem())}`
    rows.push({ outcome: need > free ? 'FAIL' : need > 0.8 * free ? 'WARN' : 'PASS', name: 'memory', detail })
  }
}

function checkState(cfg: Config, rows: Row[]): void {
  const dir = cfg.state.dir
  if (!dir) {
    rows.push({ outcome: 'PASS', name: 'state', detail: 'state.dir empty: nothing kept across restarts' })
    return
  }
  if (!existsSync(dir)) {
    // Not an error: the unit's StateDirectory= creates it, owned by the service user, at start.
    rows.push({ outcome: 'WARN', name: 'state', detail: `${dir} missing (systemd's StateDirectory= creates it; outside systemd, create it writable for the daemon)` })
    return
  }
  try {
    accessSync(dir, constants.W_OK)
    rows.push({ outcome: 'PASS', name: 'state', detail: `${dir} writable` })
  } catch {
    rows.push({ outcome: 'WARN', name: 'state', detail: `${dir} not writable by this user (uid ${process.getuid?.() ?? '?'}); the service user needs to write it` })
  }
}

/** Spooled verdicts beyond this (bytes) mean the ingest is not keeping up: it normally lags by milliseconds. */
const SPOOL_WARN_BYTES = 16 * 1024 * 1024

/**
 * The audit journal: that it opens, its size and newest record, spooled rows not yet in it, and journal write
 * failures — those recorded in the database once it wrote again, and, with metrics.port set, the running
 * daemon's live count.
 */
async function checkAudit(cfg: Config, rows: Row[], timeoutMs: number): Promise<void> {
  if (!cfg.audit.enabled || !cfg.state.dir) {
    rows.push({ outcome: 'WARN', name: 'audit', detail: !cfg.audit.enabled ? 'audit.enabled is false: verdicts are not journaled' : 'state.dir empty: no audit journal' })
    return
  }
  const file = join(cfg.state.dir, AUDIT_FILE)
  const problems: string[] = []
  let outcome: Outcome = 'PASS'
  let detail = `${file}: not created yet (the daemon creates it at start)`
  if (existsSync(file)) {
    try {
      const db = openReadOnly(file)
      try {
        const n = (db.prepare('SELECT COUNT(*) AS n FROM verdicts').get() as { n: number }).n
        const newest = (db.prepare('SELECT ts FROM verdicts ORDER BY seq DESC LIMIT 1').get() as { ts: string } | undefined)?.ts
        const bytes = (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number)
        detail = `${file}: ${n} record(s), ${(bytes / 1048576).toFixed(1)} MiB of ${(cfg.audit.maxBytes / 1048576).toFixed(0)} MiB${newest ? `, newest ${newest}` : ''}`
        const meta = new Map((db.prepare('SELECT k, v FROM meta').all() as { k: string; v: string }[]).map((r) => [r.k, r.v]))
        const waiting = spoolBacklog(db, join(cfg.state.dir, SPOOL_DIR))
        if (waiting > 0) detail += `; ${(waiting / 1024).toFixed(0)} KiB of verdicts in ${SPOOL_DIR}/ not yet in the database`
        if (waiting > SPOOL_WARN_BYTES) {
          outcome = 'WARN'
          problems.push('the spool is not being taken into the database (a daemon whose database refuses writes, or one that stopped before it could)')
        }
        const recorded = Number(meta.get('write_errors') ?? 0)
        if (recorded > 0) {
          outcome = 'WARN'
          problems.push(`${recorded} journal write failure(s) recorded, last: ${meta.get('last_error') ?? '?'}`)
        }
      } finally {
        db.close()
      }
    } catch (e) {
      rows.push({ outcome: 'FAIL', name: 'audit', detail: (e as Error).message })
      return
    }
  }
  if (cfg.metrics.port > 0) {
    try {
      const res = await fetch(`http://${cfg.metrics.host}:${cfg.metrics.port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })
      const m = /^flashcheck_audit_write_errors_total (\S+)$/m.exec(await res.text())
      const live = m ? Number(m[1]) : 0
      if (live > 0) {
        outcome = 'FAIL'
        problems.push(`the running daemon counts ${live} journal write failure(s) since its start (flashcheck_audit_write_errors_total)`)
      }
    } catch {
      // No daemon running (or its metrics elsewhere): what the database holds is all there is to show.
    }
  }
  rows.push({ outcome, name: 'audit', detail: problems.length ? `${detail}; ${problems.join('; ')}` : detail })
}

function checkNative(rows: Row[]): void {
  let addon: { isa?: () => string; sdNotify?: unknown }
  try {
    addon = loadAddon<typeof addon>()
  } catch (e) {
    rows.push({ outcome: 'FAIL', name: 'addon', detail: `${ADDON_PATH} does not load (run npm ci): ${(e as Error).message.split('\n')[0]}` })
    return
  }
  const notify = typeof addon.sdNotify === 'function'
  rows.push({ outcome: notify ? 'PASS' : 'FAIL', name: 'addon', detail: notify ? `loads; sd_notify available` : 'loads, but has no sdNotify (stale build: rebuild with npm ci)' })
  const isa = addon.isa?.() ?? 'unknown'
  const flags = cpuFlags()
  const want = process.arch === 'arm64' ? ['asimd', 'fphp', 'asimdhp', 'asimddp'] : ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw']
  const have = want.filter((f) => flags.has(f))
  const missing = want.filter((f) => !flags.has(f))
  // "generic" means the scalar fallback: correct, several times slower than the vector kernels.
  rows.push({
    outcome: isa === 'generic' || isa === 'unknown' ? 'WARN' : 'PASS',
    name: 'cpu',
    detail: `kernel ${isa} on ${process.arch}; cpu has ${have.join(' ') || 'none of the vector features'}${missing.length ? `; lacks ${missing.join(' ')}` : ''}`,
  })
}

function cpuFlags(): Set<string> {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8')
    const m = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text)
    return new Set(m ? m[1].trim().split(/\s+/) : [])
  } catch {
    return new Set()
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

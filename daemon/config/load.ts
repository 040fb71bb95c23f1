// Builds the effective configuration: defaults < config file < FLASHCHECK_* environment < CLI flags.
import convict from 'convict'
import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { schemaDefinition, type Config } from './schema.js'

export const DEFAULT_CONFIG_FILE = '/etc/flashcheck/config.json'

/** A configuration problem; the CLI prints `message` as one line and exits 2. */
export class ConfigError extends Error {}

export interface LoadConfigOptions {
  /** Explicit --config FILE; must exist. */
  file?: string
  /** Used when no file is given and it exists. */
  defaultFile?: string
  env?: NodeJS.ProcessEnv
  /** CLI flags such as ['--mqtt-url', 'mqtt://x', '--log-level', 'debug']. */
  args?: string[]
}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const args = opts.args ?? []
  const known = new Set(Object.values(flatArgs()))
  for (const a of args) {
    const m = /^--([^=]+)/.exec(a)
    if (m && !known.has(m[1])) throw new ConfigError(`config error: unknown flag --${m[1]}`)
  }
  const conf = convict(schemaDefinition, { env: opts.env ?? process.env, args })
  const file = opts.file ?? (opts.defaultFile && existsSync(opts.defaultFile) ? opts.defaultFile : undefined)
  if (file !== undefined) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      throw new ConfigError(`config error: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      throw new ConfigError(`config error: ${file}:${jsonErrorLocation(text, e as Error)}`)
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(`config error: ${file}: top level must be a JSON object`)
    }
    try {
      conf.load(parsed)
    } catch (e) {
      throw new ConfigError(`config error: ${file}: ${firstLine(e)}`)
    }
  }
  try {
    conf.validate({ allowed: 'strict' })
  } catch (e) {
    throw new ConfigError(`config error: ${firstLine(e)}${file ? ` (file ${file})` : ''}`)
  }
  const cfg = conf.getProperties() as unknown as Config
  if (cfg.node.id === '') cfg.node.id = hostname()
  if (cfg.mqtt.clientId === '') cfg.mqtt.clientId = `flashcheck-${cfg.node.id}`
  if (cfg.sparkplug.edgeNode === '') cfg.sparkplug.edgeNode = cfg.node.id
  if (cfg.sparkplug.enabled && /[/+#\u0000]/.test(cfg.sparkplug.edgeNode)) {
    throw new ConfigError(`config error: sparkplug.edgeNode: node.id "${cfg.node.id}" cannot be a Sparkplug edge node id (no '/', '+', '#'); set sparkplug.edgeNode`)
  }
  if (cfg.mqtt.reconnectMaxMs < cfg.mqtt.reconnectMinMs) {
    throw new ConfigError('config error: mqtt.reconnectMaxMs: must be >= mqtt.reconnectMinMs')
  }
  if (cfg.metrics.user !== '' && cfg.metrics.passwordFile === '') throw new ConfigError('config error: metrics.passwordFile: must be set when metrics.user is')
  return cfg
}

/** Every key's CLI flag name, e.g. 'mqtt.url' → 'mqtt-url'. */
export function flatArgs(): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${k}` : k
      if (v && typeof v === 'object' && 'default' in v) out[path] = (v as unknown as { arg: string }).arg
      else walk(v as Record<string, unknown>, path)
    }
  }
  walk(schemaDefinition as unknown as Record<string, unknown>, '')
  return out
}

/** Config as safe to log: secrets and file contents never appear, only whether they are set. */
export function redactedConfig(cfg: Config): Record<string, unknown> {
  // A password written into the URL (mqtt://user:pw@host) is a secret too.
  const url = cfg.mqtt.url.replace(/\/\/[^@/]*@/, '//***@')
  return { ...cfg, mqtt: { ...cfg.mqtt, url, passwordFile: cfg.mqtt.passwordFile ? '(set)' : '', key: cfg.mqtt.key ? '(set)' : '' }, metrics: { ...cfg.metrics, passwordFile: cfg.metrics.passwordFile ? '(set)' : '' } }
}

function firstLine(e: unknown): string {
  return String((e as Error).message ?? e).split('\n')[0]
}

function jsonErrorLocation(text: string, e: Error): string {
  const m = /position (\d+)/.exec(e.message)
  if (!m) return ` invalid JSON: ${e.message}`
  const pos = Number(m[1])
  const before = text.slice(0, pos).split('\n')
  return `${before.length}:${before[before.length - 1].length + 1}: invalid JSON: ${e.message.replace(/ in JSON at position \d+.*$/, '')}`
}

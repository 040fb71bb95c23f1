// Turns the config into mqtt.js connect options: credentials and TLS material are read from files here so
// that they never pass through config objects that get logged.
import { readFileSync } from 'node:fs'
import type { IClientOptions } from 'mqtt'
import type { Config } from '../config/schema.js'
import { ConfigError } from '../config/load.js'

export function statusTopic(nodeId: string): string {
  return `flashcheck/${nodeId}/status`
}

export function infoTopic(nodeId: string): string {
  return `flashcheck/${nodeId}/info`
}

function readFileFor(keyName: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (e) {
    throw new ConfigError(`config error: ${keyName}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
  }
}

export function clientOptions(cfg: Config, protocolVersion: 4 | 5): IClientOptions {
  const m = cfg.mqtt
  const opts: IClientOptions = {
    clientId: m.clientId,
    protocolVersion,
    // A kept session makes the broker queue requests for the daemon while it is away (restart, crash). A share
    // group member starts clean: an old kept session's plain request subscriptions would double its deliveries.
    clean: m.clean || m.shareGroup !== '',
    keepalive: m.keepaliveS,
    // By default mqtt.js re-arms its keepalive timer on every acknowledgement it receives (a clearTimeout and a
    // setTimeout per verdict); a PINGREQ every keepalive instead costs one packet, and a broker that stops
    // answering is still noticed within 1.5 keepalives.
    reschedulePings: false,
    // Reconnects are scheduled by the daemon with exponential backoff; subscriptions are restored by it too.
    reconnectPeriod: 0,
    resubscribe: false,
    connectTimeout: 10_000,
    will: { topic: statusTopic(cfg.node.id), payload: Buffer.from('offline'), qos: 1, retain: true },
  }
  // mqtt.js logs through \`debug\` a dozen times per packet, which costs even when disabled; without DEBUG set
  // (which would turn \`debug\` on) a no-op takes its place on the hot path.
  if (!process.env.DEBUG) opts.log = noLog
  if (protocolVersion === 5) {
    // A member of a share group keeps no session: brokers (mosquitto 2.0) go on handing shared requests to a
    // dead member's kept session, where they wait for it, instead of to the live members.
    const expiry = m.clean || m.shareGroup !== '' ? 0 : m.sessionExpiryS
    opts.properties = { sessionExpiryInterval: expiry, receiveMaximum: Math.max(1, Math.min(m.receiveMaximum, 65535)) }
  }
  if (m.username) opts.username = m.username
  if (m.passwordFile) opts.password = readFileFor('mqtt.passwordFile', m.passwordFile).toString('utf8').split(/\r?\n/)[0]
  if (m.ca) opts.ca = readFileFor('mqtt.ca', m.ca)
  if (m.cert) opts.cert = readFileFor('mqtt.cert', m.cert)
  if (m.key) opts.key = readFileFor('mqtt.key', m.key)
  if ((m.cert && !m.key) || (m.key && !m.cert)) throw new ConfigError('config error: mqtt.cert and mqtt.key must be set together')
  return opts
}

function noLog(): void {}

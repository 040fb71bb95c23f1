// `flashcheck request TOPIC JSON`: one request/response round trip, for operators and scripts.
// MQTT 5 (response topic + correlation data) by default; --mqtt311 uses the reply_to/correlation_id payload
// convention of 3.1.1 clients, and is chosen automatically when the broker refuses MQTT 5.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'

interface Opts {
  url: string
  timeoutMs: number
  v311: boolean
}

export async function request(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
        timeout: { type: 'string', default: '5000' },
        mqtt311: { type: 'boolean', default: false },
      },
    })
  } catch (e) {
    process.stderr.write(`flashcheck request: ${(e as Error).message}\n`)
    return 2
  }
  const [topic, json] = parsed.positionals
  if (!topic || json === undefined || parsed.positionals.length > 2) {
    process.stderr.write('usage: flashcheck request TOPIC JSON [--url URL] [--timeout MS] [--mqtt311]\n')
    return 2
  }
  let body: unknown
  try {
    body = JSON.parse(json)
  } catch (e) {
    process.stderr.write(`flashcheck request: JSON argument is not valid JSON: ${(e as Error).message}\n`)
    return 2
  }
  const timeoutMs = Number(parsed.values.timeout)
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    process.stderr.write('flashcheck request: --timeout must be a positive number of milliseconds\n')
    return 2
  }
  const opts: Opts = { url: parsed.values.url!, timeoutMs, v311: parsed.values.mqtt311! }
  try {
    const res = await roundTrip(topic, body, opts)
    process.stdout.write(JSON.stringify(res, null, 2) + '\n')
    return 0
  } catch (e) {
    if (!opts.v311 && e instanceof ProtocolRefused) {
      process.stderr.write('flashcheck request: broker refused MQTT 5; retrying with MQTT 3.1.1 (reply_to in the payload)\n')
      try {
        const res = await roundTrip(topic, body, { ...opts, v311: true })
        process.stdout.write(JSON.stringify(res, null, 2) + '\n')
        return 0
      } catch (e2) {
        process.stderr.write(`flashcheck request: ${(e2 as Error).message}\n`)
        return 1
      }
    }
    process.stderr.write(`flashcheck request: ${(e as Error).message}\n`)
    return 1
  }
}

class ProtocolRefused extends Error {}

/** Sends one request and resolves with the parsed response JSON. Exported for tests and benchmarks. */
export async function roundTrip(topic: string, body: unknown, o: Opts): Promise<unknown> {
  const id = randomBytes(8).toString('hex')
  const replyTo = `flashcheck/reply/${id}`
  let client: MqttClient | undefined
  try {
    client = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(o.url, { protocolVersion: o.v311 ? 4 : 5, reconnectPeriod: 0, connectTimeout: o.timeoutMs, clientId: `flashcheck-request-${id}` })
      c.once('connect', () => resolve(c))
      c.once('error', (err: Error & { code?: number }) => {
        c.end(true)
        // CONNACK 0x84 (MQTT 5 "unsupported protocol version") or 3.1.1's return code 1.
        if (err.code === 132 || err.code === 1 || /protocol version/i.test(err.message)) reject(new ProtocolRefused(err.message))
        else reject(new Error(`cannot connect to ${o.url}: ${err.message}`))
      })
      c.once('close', () => reject(new ProtocolRefused(`connection to ${o.url} closed before CONNACK`)))
    })
    const c = client
    await c.subscribeAsync(replyTo, { qos: 1 })
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no response within ${o.timeoutMs} ms`)), o.timeoutMs)
      c.on('message', (_t, payload) => {
        clearTimeout(timer)
        try {
          resolve(JSON.parse(payload.toString('utf8')))
        } catch {
          resolve(payload.toString('utf8'))
        }
      })
      if (o.v311) {
        const msg = body !== null && typeof body === 'object' && !Array.isArray(body) ? { ...body, reply_to: replyTo, correlation_id: id } : body
        c.publish(topic, JSON.stringify(msg), { qos: 1 })
      } else {
        c.publish(topic, JSON.stringify(body), { qos: 1, properties: { responseTopic: replyTo, correlationData: Buffer.from(id), contentType: 'application/json' } })
      }
    })
  } finally {
    client?.end(true)
  }
}

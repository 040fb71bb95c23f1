// Records live traffic for `flashcheck replay`: its own MQTT client (own client id, clean session, never
// publishes) subscribed to the given filters, writing each message as one JSONL line. Memory stays bounded:
// while the file cannot keep up (more than MAX_BACKLOG bytes waiting) messages are dropped and counted.
import { createWriteStream, type WriteStream } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { encodeProperties, RECORDING_VERSION, type RecordingHeader } from './format.js'

export const MAX_BACKLOG = 8 << 20

export interface RecorderOptions {
  url: string
  client: IClientOptions
  filters: string[]
  out: string
  rulesRev: string | null
  rulesDir: string
  node: string
  clock?: () => number
}

export class Recorder {
  messages = 0
  dropped = 0
  private file?: WriteStream
  private mqtt?: MqttClient
  private t0 = 0
  private readonly clock: () => number

  constructor(private readonly o: RecorderOptions) {
    this.clock = o.clock ?? Date.now
  }

  /** Opens the file, connects and subscribes; resolves once the subscriptions are granted. */
  async start(): Promise<void> {
    const file = (this.file = createWriteStream(this.o.out, { flags: 'w' }))
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve())
      file.once('error', reject)
    })
    this.t0 = this.clock()
    const header: RecordingHeader = {
      flashcheck_recording: RECORDING_VERSION,
      rules_rev: this.o.rulesRev,
      rules_dir: this.o.rulesDir,
      t0_epoch_ms: this.t0,
      started_at: new Date(this.t0).toISOString(),
      filters: this.o.filters,
      node: this.o.node,
    }
    file.write(JSON.stringify(header) + '\n')
    const client = (this.mqtt = mqtt.connect(this.o.url, this.o.client))
    client.on('message', (topic, payload, packet) => {
      if (file.writableLength > MAX_BACKLOG) {
        this.dropped++
        return
      }
      const line = { t_ms: this.clock() - this.t0, topic, payload_b64: payload.toString('base64'), properties: encodeProperties(packet.properties) }
      file.write(JSON.stringify(line) + '\n')
      this.messages++
    })
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => {
        client.subscribe(this.o.filters, { qos: 1 }, (err, granted) => {
          const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic)
          if (err) reject(err)
          else if (refused.length) reject(new Error(`subscription refused by the broker: ${refused.join(', ')}`))
          else resolve()
        })
      })
      client.once('error', reject)
    })
  }

  /** Disconnects and flushes the file. */
  async stop(): Promise<void> {
    await this.mqtt?.endAsync()
    const file = this.file
    if (file) await new Promise<void>((resolve) => file.end(() => resolve()))
  }
}

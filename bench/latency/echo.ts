// Baseline responder for bench/latency: answers each MQTT 5 request on bench/echo/# with a fixed small JSON
// body, using the same client library, QoS and Nagle setting as the daemon, with mqtt.js's defaults otherwise
// (the daemon's own transport work, such as one socket write per burst of messages, is the daemon's to show).
// Whatever latency it shows is the broker + client + loopback floor that the daemon is compared against.
import mqtt from 'mqtt'
import { setNoDelay } from '../../daemon/mqtt/nodelay.js'

const url = process.argv[2] ?? 'mqtt://127.0.0.1:1883'
const client = mqtt.connect(url, { protocolVersion: 5, clientId: `bench-echo-${process.pid}`, reconnectPeriod: 0 })
client.on('connect', () => {
  setNoDelay(client)
  client.subscribe('bench/echo/#', { qos: 1 }, () => process.send?.('ready'))
})
client.on('message', (_topic, _payload, packet) => {
  const p = packet.properties
  if (!p?.responseTopic) return
  client.publish(p.responseTopic, '{"verdict":"PASS"}', { qos: 1, properties: { correlationData: p.correlationData, contentType: 'application/json' } })
})
process.on('SIGTERM', () => client.end(true, () => process.exit(0)))

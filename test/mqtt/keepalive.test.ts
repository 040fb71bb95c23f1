// The daemon's MQTT keepalive, against a broker stand-in written with mqtt-packet (an independent codec): while
// verdicts and their acknowledgements flow, a PINGREQ still goes out every keepalive (the timer is not re-armed
// per acknowledgement), and a broker that falls silent is noticed within 1.5 keepalives.
import t from 'tap'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import mqtt from 'mqtt'
import { clientOptions } from '../../daemon/mqtt/options.js'
import { loadConfig } from '../../daemon/config/load.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

for (const v of [4, 5] as const) t.test(`MQTT ${v === 4 ? '3.1.1' : '5'}: pings go out under traffic; a silent broker is noticed`, async (t) => {
  let silent = false
  const pings: number[] = []
  const sockets: Socket[] = []
  const server = createServer((sock) => {
    sockets.push(sock)
    const parser = mqttPacket.parser({ protocolVersion: v })
    const send = (p: mqttPacket.Packet) => { if (!silent) sock.write(mqttPacket.generate(p, { protocolVersion: v })) }
    parser.on('packet', (p) => {
      if (p.cmd === 'connect') send({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false } as mqttPacket.Packet)
      else if (p.cmd === 'publish' && p.qos === 1) send({ cmd: 'puback', messageId: p.messageId })
      else if (p.cmd === 'pingreq') {
        pings.push(Date.now())
        send({ cmd: 'pingresp' })
      }
    })
    sock.on('data', (b) => parser.parse(b))
    sock.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const cfg = loadConfig({ args: ['--node-id', `ka${v}`, '--mqtt-keepalive-s', '1'], env: {} })
  const client = mqtt.connect(`mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, { ...clientOptions(cfg, v), will: undefined })
  const errors: string[] = []
  let closedAt = 0
  client.on('error', (e) => errors.push(e.message))
  client.on('close', () => { closedAt ||= Date.now() })
  await new Promise<void>((r) => client.once('connect', () => r()))
  // A verdict every 50 ms, each acknowledged by the broker.
  const traffic = setInterval(() => { if (client.connected) client.publish('v/out', '{"verdict":"PASS"}', { qos: 1 }) }, 50)
  t.teardown(() => {
    clearInterval(traffic)
    client.end(true)
  })
  await sleep(2300)
  t.equal(closedAt, 0, 'the connection stays up while the broker answers')
  t.ok(pings.length >= 1, `${pings.length} PINGREQ(s) while acknowledgements flowed`)
  silent = true
  const silentAt = Date.now()
  while (closedAt === 0 && Date.now() - silentAt < 6000) await sleep(20)
  t.not(closedAt, 0, 'the silent broker was noticed')
  t.ok(closedAt - silentAt <= 3000, `noticed ${closedAt - silentAt} ms after it fell silent (keepalive 1 s: at most 1.5 s, plus timer slack)`)
  t.match(errors, [/Keepalive timeout/], 'as a keepalive timeout')
})

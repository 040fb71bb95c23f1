// Worker thread of the windowed load (rig.ts: bench/overload and bench/soak): receives the answers on its own
// MQTT connection and event loop, so that the sender's busy loop at high rates does not delay (and inflate) the measured round trips.
// Correlation data = request id (u32) + sent-at (f64 epoch ms).
import { parentPort, workerData } from 'node:worker_threads'
import * as hdr from 'hdr-histogram-js'
import mqtt from 'mqtt'
import { setNoDelay } from '../daemon/mqtt/nodelay.js'

const { url, filter, budgetMs } = workerData as { url: string; filter: string; budgetMs: number }
const newHist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: 3 })
let hist = newHist()
let shedHist = newHist()
let w = { verdicts: 0, overloaded: 0, late: 0, flagged: 0 }
let answered = 0

const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `bench-recv-${process.pid}`, reconnectPeriod: 0 })
setNoDelay(client)
client.on('message', (_t, payload, packet) => {
  const cd = packet.properties?.correlationData
  if (!cd || cd.length < 12) return
  const sentAt = Buffer.from(cd).readDoubleBE(4)
  const rtt = Date.now() - sentAt
  answered++
  // The labels sit early in the JSON; substring tests keep the receiver cheap at high rates.
  if (payload.includes('"OVERLOADED"')) {
    w.overloaded++
    shedHist.recordValue(Math.max(1, rtt * 1000))
    return
  }
  w.verdicts++
  if (rtt > budgetMs) w.late++
  if (payload.includes('"deadline_missed":true')) w.flagged++
  hist.recordValue(Math.max(1, rtt * 1000))
})
await client.subscribeAsync(filter, { qos: 1 })

parentPort!.on('message', (m: string) => {
  if (m === 'take') {
    const out = { ...w, p50: hist.getValueAtPercentile(50) / 1000, p99: hist.getValueAtPercentile(99) / 1000, max: hist.maxValue / 1000, shedP50: shedHist.getValueAtPercentile(50) / 1000, shedP99: shedHist.getValueAtPercentile(99) / 1000, answered }
    hist.destroy()
    shedHist.destroy()
    hist = newHist()
    shedHist = newHist()
    w = { verdicts: 0, overloaded: 0, late: 0, flagged: 0 }
    parentPort!.postMessage(out)
  } else if (m === 'answered') {
    parentPort!.postMessage({ answered })
  } else if (m === 'close') {
    void client.endAsync(true).then(() => process.exit(0))
  }
})
parentPort!.postMessage({ ready: true })

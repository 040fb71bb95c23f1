// A screenshot of the status page under load, for the README: the daemon (in-process) with the example rules
// against a real mosquitto, sensor feeds and ~100 requests/s of mixed good and bad parts, the page in
// Debian's chromium.
//   node dist/bench/view/screenshot.js [--seconds 45] [--out bench/status-page.png]
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { chromium } from 'playwright-core'
import { loadConfig } from '../../daemon/config/load.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { startDaemon } from '../../harness/daemon.js'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '45' }, out: { type: 'string', default: join(PACKAGE_ROOT, 'bench', 'status-page.png') } } })

const rnd = (lo: number, hi: number) => lo + Math.random() * (hi - lo)
const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d

async function main(): Promise<void> {
  const broker = await Mosquitto.start()
  const port = await freePort()
  const cfg = loadConfig({ env: {}, args: ['--mqtt-url', broker.url, '--metrics-port', String(port), '--rules-dir', join(PACKAGE_ROOT, 'rules', 'examples'), '--rules-watch', 'false', '--node-id', 'line3-gw01', '--log-level', 'warn'] })
  cfg.state.dir = ''
  const d = await startDaemon(cfg)
  const plc = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 })
  await plc.subscribeAsync('plc/replies', { qos: 0 })
  plc.on('message', () => {})
  let serial = 10_000
  const timers = [
    setInterval(() => plc.publish('plant/st1/spindle/vibration', JSON.stringify({ rms: round(rnd(1.0, 1.4), 3) })), 20),
    setInterval(() => plc.publish('plant/st1/spindle/temperature', String(round(rnd(38, 41), 2))), 1000),
    setInterval(() => plc.publish('plant/l3/press/p1/cycle', JSON.stringify({ peak_kn: round(rnd(176, 224), 1), cycle_ms: round(rnd(1100, 1520), 0), die_id: 'D-07' })), 200),
    setInterval(() => {
      for (let i = 0; i < 2; i++) {
        const sn = `SN-${serial++}`
        plc.publish('flashcheck/inspect/st1/torque', JSON.stringify({ torque_nm: round(rnd(9.8, 12.15), 2), angle_deg: round(rnd(560, 905), 0), reply_to: 'plc/replies', correlation_id: sn }))
        const bad = Math.random() < 0.03
        plc.publish('flashcheck/inspect/st2/bore', JSON.stringify({ diameter_mm: round(rnd(24.978, 25.024), 4), part_id: bad ? 'ab12' : `BX${String(serial).padStart(6, '0')}`, temp_c: round(rnd(19, 23), 1), reply_to: 'plc/replies', correlation_id: sn }))
      }
      if (Math.random() < 0.05) plc.publish('flashcheck/inspect/st1/spindle-temp', JSON.stringify({ reply_to: 'plc/replies', correlation_id: `SN-${serial}` }))
    }, 40),
  ]
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  try {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1000 }, deviceScaleFactor: 1 })
    await page.goto(`http://127.0.0.1:${port}/`)
    await new Promise((r) => setTimeout(r, Number(values.seconds) * 1000))
    await page.screenshot({ path: values.out!, fullPage: true })
    console.log(`wrote ${values.out}`)
  } finally {
    for (const t of timers) clearInterval(t)
    await browser.close()
    await plc.endAsync()
    await d.stop()
    await broker.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

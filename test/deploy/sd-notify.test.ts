// systemd's notification protocol, checked against a real AF_UNIX datagram listener (not systemd, not a mock
// of the addon): READY=1 only once the rules are loaded and the broker connected, STATUS= content, WATCHDOG=1
// at half of WATCHDOG_USEC from the main loop (and not when the loop is blocked), RELOADING=1 with
// MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1 on SIGTERM, abstract-namespace sockets, WATCHDOG_PID.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ADDON_PATH } from '../../daemon/model/addon.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { formatState, Notifier, watchdogIntervalMs } from '../../daemon/systemd/notify.js'
import { CLI } from '../helpers/cli.js'
import { Requester } from '../helpers/daemon.js'
import { freePort, Mosquitto } from '../../harness/mosquitto.js'
import { NotifyListener, type Datagram } from '../helpers/notify-listener.js'

const RULES = join(PACKAGE_ROOT, 'rules', 'examples')

interface Proc {
  proc: ChildProcess
  output: () => string
  exited: Promise<number | null>
}

function startCli(args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Proc {
  const proc = spawn(process.execPath, [...nodeArgs, CLI, ...args], { cwd: PACKAGE_ROOT, env: { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '', WATCHDOG_PID: '', ...env } })
  let out = ''
  proc.stdout!.on('data', (d) => { out += String(d) })
  proc.stderr!.on('data', (d) => { out += String(d) })
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)))
  return { proc, output: () => out, exited }
}

function runArgs(port: number, rules = RULES): string[] {
  return ['run', '--mqtt-url', `mqtt://127.0.0.1:${port}`, '--rules-dir', rules, '--rules-watch', 'false', '--node-id', 'notify-test', '--mqtt-reconnect-min-ms', '100', '--mqtt-reconnect-max-ms', '300']
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function gaps(msgs: Datagram[]): number[] {
  const out: number[] = []
  for (let i = 1; i < msgs.length; i++) out.push(msgs[i].t - msgs[i - 1].t)
  return out
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

t.test('sd_notify sender: formatting, errno, no-op without NOTIFY_SOCKET', async (t) => {
  t.equal(formatState({ READY: 1, STATUS: 'a\nb' }), 'READY=1\nSTATUS=a b\n', 'one line per field, newlines in values flattened')
  const off = new Notifier({})
  t.equal(off.enabled, false)
  t.equal(off.notify({ READY: 1 }), false, 'no NOTIFY_SOCKET: nothing sent, nothing loaded')

  const addon = createRequire(import.meta.url)(ADDON_PATH) as { sdNotify(s: string, m: string): number }
  t.equal(addon.sdNotify('/nonexistent-dir/notify.sock', 'READY=1'), 2, 'ENOENT for a missing socket file')
  t.equal(addon.sdNotify('vsock:2:1234', 'READY=1'), 97, 'EAFNOSUPPORT for address kinds other than AF_UNIX')
  t.equal(addon.sdNotify('@' + 'x'.repeat(200), 'READY=1'), 36, 'ENAMETOOLONG past sun_path')
  t.throws(() => (addon.sdNotify as unknown as (x: number) => number)(1), /sdNotify\(socketPath: string, state: string\)/)

  const l = await NotifyListener.start({ abstract: true })
  t.teardown(() => l.stop())
  const on = new Notifier({ NOTIFY_SOCKET: l.address })
  t.ok(on.notify({ STATUS: 'hello from the test' }), 'sent to an abstract socket')
  const m = await l.waitFor('STATUS')
  t.equal(m.raw, 'STATUS=hello from the test\n')

  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '10000000' }, 42), 5000, 'half of WATCHDOG_USEC')
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '42' }, 42), 5000)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '43' }, 42), undefined, 'meant for another process')
  t.equal(watchdogIntervalMs({}, 42), undefined)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42), undefined)
})

t.test('flashcheck run under a notify socket: READY after connect, STATUS, WATCHDOG, reload, stop', async (t) => {
  const l = await NotifyListener.start()
  const port = await freePort()
  const rules = mkdtempSync(join(tmpdir(), 'flashcheck-notify-rules-'))
  cpSync(RULES, rules, { recursive: true })
  const d = startCli(runArgs(port, rules), { NOTIFY_SOCKET: l.address, WATCHDOG_USEC: '600000' })
  let broker: Mosquitto | undefined
  t.teardown(async () => {
    if (d.proc.exitCode === null) d.proc.kill('SIGKILL')
    await broker?.stop()
    await l.stop()
    rmSync(rules, { recursive: true, force: true })
  })

  // The broker is not there yet: the rules load, the watchdog pings, but READY must wait.
  await l.waitFor('WATCHDOG')
  await sleep(1200)
  t.notOk(l.messages.some((m) => 'READY' in m.fields), 'no READY before the broker is up', { output: d.output() })
  t.ok(l.messages.filter((m) => 'WATCHDOG' in m.fields).length >= 3, 'watchdog pings while waiting for the broker')
  const waiting = l.messages.filter((m) => 'STATUS' in m.fields).at(-1)
  t.match(waiting?.fields.STATUS, /^rules [0-9a-f]{12}; broker disconnected; /, 'status says what it waits for')

  broker = await Mosquitto.start(port)
  const ready = await l.waitFor('READY')
  t.equal(ready.fields.READY, '1')
  t.equal(ready.fields.MAINPID, String(d.proc.pid))
  t.match(ready.fields.STATUS, /^rules [0-9a-f]{12}; broker connected; p99 n\/a \(no verdicts lately\); 0 verdicts$/)
  t.equal(l.messages.filter((m) => 'READY' in m.fields).length, 1, 'one READY')

  // Watchdog cadence: half of WATCHDOG_USEC (300 ms), generously bounded.
  const fromReady = l.messages.indexOf(ready)
  await sleep(1600)
  const pings = l.messages.slice(fromReady).filter((m) => 'WATCHDOG' in m.fields)
  t.ok(pings.length >= 4, `pings after READY: ${pings.length}`)
  const med = median(gaps(pings))
  t.ok(med > 0.2 && med < 0.45, `median watchdog interval ${med.toFixed(3)} s is about 0.3 s`)

  // One verdict, then a reload: the READY that ends it carries a fresh status with the count and p99.
  const req = await Requester.connect(broker.url, 5)
  t.teardown(() => req.end())
  const reply = await req.request5('flashcheck/inspect/st1/torque', { torque_nm: 11.2, angle_deg: 720 })
  t.ok(reply.body.verdict, 'the daemon answered')
  const before = l.messages.length
  d.proc.kill('SIGHUP')
  const reloading = await l.waitFor('RELOADING', { from: before })
  const reloaded = await l.waitFor('READY', { from: before })
  t.ok(l.messages.indexOf(reloading) < l.messages.indexOf(reloaded), 'RELOADING=1 before READY=1')
  const mono = Number(reloading.fields.MONOTONIC_USEC) / 1e6
  t.ok(Math.abs(mono - reloading.t) < 1, `MONOTONIC_USEC ${mono} is CLOCK_MONOTONIC (listener saw ${reloading.t})`)
  t.match(reloaded.fields.STATUS, /^rules [0-9a-f]{12}; broker connected; p99 <= [0-9.]+ ms; 1 verdicts$/)

  // A rejected reload ends with READY=1 too (the old set keeps serving), and the status says so.
  writeFileSync(join(rules, 'broken.yaml'), 'id: broken\nrequest: flashcheck/inspect/{station}/broken\nchecks:\n  - id: c\n    expr: this is not CEL ((\n    on_fail: FAIL\n')
  const beforeBad = l.messages.length
  d.proc.kill('SIGHUP')
  await l.waitFor('RELOADING', { from: beforeBad })
  const rejected = await l.waitFor('READY', { from: beforeBad })
  t.match(rejected.fields.STATUS, /^rules [0-9a-f]{12}; broker connected; .*; last reload rejected \(\d+ errors\)$/)

  const stopAt = l.messages.length
  d.proc.kill('SIGTERM')
  t.equal(await d.exited, 0, 'clean stop')
  const stopping = await l.waitFor('STOPPING', { from: stopAt })
  t.equal(stopping.fields.STOPPING, '1')
})

t.test('abstract NOTIFY_SOCKET; WATCHDOG_PID of another process means no pings', async (t) => {
  const l = await NotifyListener.start({ abstract: true })
  const broker = await Mosquitto.start()
  const d = startCli(runArgs(broker.port), { NOTIFY_SOCKET: l.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' })
  t.teardown(async () => {
    if (d.proc.exitCode === null) d.proc.kill('SIGKILL')
    await broker.stop()
    await l.stop()
  })
  const ready = await l.waitFor('READY')
  t.equal(ready.fields.MAINPID, String(d.proc.pid))
  await sleep(700)
  t.notOk(l.messages.some((m) => 'WATCHDOG' in m.fields), 'no WATCHDOG for a watchdog meant for PID 1')
  d.proc.kill('SIGTERM')
  t.equal(await d.exited, 0)
})

t.test('a blocked event loop stops the watchdog pings', async (t) => {
  // Preloaded into the real daemon: blocks the main loop for 1.5 s once it runs.
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-block-'))
  const blocker = join(dir, 'block.mjs')
  writeFileSync(blocker, "setTimeout(() => { const end = Date.now() + 1500; while (Date.now() < end); }, 1500).unref()\n")
  const l = await NotifyListener.start()
  const broker = await Mosquitto.start()
  const d = startCli(runArgs(broker.port), { NOTIFY_SOCKET: l.address, WATCHDOG_USEC: '400000' }, ['--import', blocker])
  t.teardown(async () => {
    if (d.proc.exitCode === null) d.proc.kill('SIGKILL')
    await broker.stop()
    await l.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await l.waitFor('READY')
  await sleep(3500)
  const pings = l.messages.filter((m) => 'WATCHDOG' in m.fields)
  const g = gaps(pings)
  const longest = Math.max(...g)
  t.ok(longest >= 1.3, `a gap of ${longest.toFixed(2)} s while the loop was blocked (systemd would restart after 0.4 s)`)
  const after = pings.filter((p) => p.t > pings[g.indexOf(longest)].t)
  t.ok(after.length >= 2, 'pings resume when the loop runs again')
  d.proc.kill('SIGTERM')
  t.equal(await d.exited, 0)
})

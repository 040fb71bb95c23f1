// The audit journal on a real filesystem that fills up or is read-only: a tiny tmpfs mounted for the test
// (root with CAP_SYS_ADMIN, as in the CI container; elsewhere the test says why it cannot run). Verdicts keep
// flowing, the failure is counted and logged once, and `flashcheck doctor` shows it: the running daemon's
// count through its metrics endpoint, and the failures the journal recorded in the database once it could
// write again.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Mosquitto, freePort } from '../../harness/mosquitto.js'
import { startDaemon, type Running } from '../../harness/daemon.js'
import { cli } from '../helpers/cli.js'
import { Requester, testConfig } from '../helpers/daemon.js'
import { journaled } from '../helpers/journal.js'

const RULES = join(import.meta.dirname, '..', 'fixtures', 'audit')
const TOPIC = 'flashcheck/inspect/st7/weight'

let broker: Mosquitto
t.before(async () => { broker = await Mosquitto.start() })
t.teardown(async () => { await broker.stop() })

function run(cmd: string, args: string[]): string | undefined {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    return undefined
  } catch (e) {
    return `${cmd} ${args.join(' ')}: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`
  }
}

/** A fresh tmpfs of `size` mounted on a new directory, or why there can be none here. */
function tmpfs(t: { teardown(fn: () => void): void }, size: string): { dir: string } | { why: string } {
  if (process.platform !== 'linux') return { why: `tmpfs mounts need Linux (this is ${process.platform})` }
  if (process.getuid?.() !== 0) return { why: 'mounting a tmpfs needs root' }
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-disk-'))
  const err = run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir])
  if (err) {
    rmSync(dir, { recursive: true, force: true })
    return { why: `cannot mount a tmpfs here (${err})` }
  }
  t.teardown(() => {
    run('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir }
}

async function daemonIn(state: string, metricsPort: number): Promise<Running> {
  return startDaemon(testConfig(['--mqtt-url', broker.url, '--rules-dir', RULES, '--rules-watch', 'false', '--state-dir', state, '--metrics-port', String(metricsPort), '--metrics-page', 'false']))
}

async function metric(d: Running, name: string): Promise<number> {
  const m = await d.daemon.metrics.registry.getSingleMetricAsString(name)
  return [...m.matchAll(/^\S+ (\S+)$/gm)].reduce((s, x) => s + Number(x[1]), 0)
}

async function doctorAudit(state: string, metricsPort: number): Promise<Map<string, { outcome: string; detail: string }>> {
  const r = await cli(['doctor', '--timeout', '2000', '--node-id', 'disk-test', '--mqtt-url', broker.url, '--rules-dir', RULES, '--state-dir', state, '--metrics-port', String(metricsPort)], { timeoutMs: 30_000 })
  const rows = new Map<string, { outcome: string; detail: string }>()
  for (const line of r.stdout.split('\n')) {
    const m = /^(PASS|WARN|FAIL) {2}(\S+) +(.*)$/.exec(line)
    if (m) rows.set(m[2], { outcome: m[1], detail: m[3] })
  }
  return rows
}

/** Writes to `file` until the filesystem has no room left; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w')
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  let n = 0
  try {
    for (;;) n += writeSync(fd, chunk)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e
  } finally {
    closeSync(fd)
  }
  return n
}

function rows(state: string): number {
  const db = new Database(join(state, 'audit.db'), { readonly: true })
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM verdicts').get() as { n: number }).n
  } finally {
    db.close()
  }
}

// 2 MiB: no room to reserve a mapped spool segment, so the spool is written with write() and fails first;
// 24 MiB: the segment is reserved and mapped before the disk fills, so the spool goes on and the database fails.
for (const [size, spool] of [['2m', 'write()'], ['24m', 'mapped']] as const) {
  t.test(`a full filesystem (spool ${spool}): verdicts keep flowing, the failure is counted, logged once and shown by doctor; the journal writes again once there is room`, async (t) => {
    const fs = tmpfs(t, size)
    if ('why' in fs) return t.plan(0, fs.why)
    const state = fs.dir
    const port = await freePort()
    const d = await daemonIn(state, port)
    t.teardown(() => d.stop())
    const r = await Requester.connect(broker.url, 5)
    t.teardown(() => r.end())
    t.equal((await r.request5(TOPIC, { serial: 'D-0', weight_g: 104 })).body.verdict, 'PASS')
    t.equal(await journaled(d, 1), 1, 'journaled while there is room')
    const opened = d.logs.find((l) => l.msg === 'audit journal open')
    t.match(String(opened?.spool), spool === 'mapped' ? /^mapped$/ : /^write\(\) \(ENOSPC: mapping a spool segment /, `the spool: ${String(opened?.spool)}`)

    const filler = join(state, 'filler')
    t.ok(fill(filler) > 0, 'the filesystem is full')
    const pad = 'x'.repeat(4000)
    const answered: string[] = []
    for (let i = 1; i <= 40; i++) answered.push((await r.request5(TOPIC, { serial: `D-${i}-${pad}`, weight_g: 104 })).body.verdict as string)
    t.same(answered, Array(40).fill('PASS'), 'every verdict went out')
    const errors = await metric(d, 'flashcheck_audit_write_errors_total')
    t.ok(errors >= 1, `write failures counted (${errors})`)
    const logged = d.logs.filter((l) => /audit journal write failed/.test(String(l.msg)))
    t.equal(logged.length, 1, 'logged once a minute, not per verdict')
    t.match(String(logged[0]?.err), /full/i, `the log says why: ${String(logged[0]?.err)}`)
    t.ok(rows(state) < 41, 'not every verdict is in the journal')

    const live = await doctorAudit(state, port)
    t.equal(live.get('audit')?.outcome, 'FAIL', 'doctor: FAIL while the daemon counts failures')
    t.match(live.get('audit')?.detail, /the running daemon counts \d+ journal write failure\(s\)/)

    unlinkSync(filler)
    const before = await metric(d, 'flashcheck_audit_rows_total')
    const after = await r.request5(TOPIC, { serial: 'D-after', weight_g: 104 })
    t.equal(after.body.verdict, 'PASS')
    t.ok(await journaled(d, before + 1) > before, 'rows go into the database again')
    const show = await cli(['audit', 'show', 'D-after', '--db', join(state, 'audit.db')])
    t.equal(show.code, 0, show.stderr)
    t.equal((JSON.parse(show.stdout) as { verdict_id: string }[])[0]?.verdict_id, after.body.verdict_id, 'journaled again once there is room')
    await d.stop()
    const recorded = await doctorAudit(state, port)
    t.equal(recorded.get('audit')?.outcome, 'WARN', 'doctor after the daemon stopped: the failures it recorded')
    t.match(recorded.get('audit')?.detail, /\d+ journal write failure\(s\) recorded, last: .*full/i)
    // Spooled lines wait out a full database: with the spool mapped, every verdict reaches the journal.
    if (spool === 'mapped') t.equal(rows(state), 42, 'all 42 verdicts journaled in the end')
  })
}

t.test('a read-only filesystem: the journal cannot open, verdicts keep flowing, counted, logged once, shown by doctor', async (t) => {
  const fs = tmpfs(t, '4m')
  if ('why' in fs) return t.plan(0, fs.why)
  const state = fs.dir
  const port = await freePort()
  const first = await daemonIn(state, port)
  const r = await Requester.connect(broker.url, 5)
  t.teardown(() => r.end())
  t.equal((await r.request5(TOPIC, { serial: 'RO-0', weight_g: 104 })).body.verdict, 'PASS')
  await first.stop()
  t.equal(rows(state), 1)

  // Linux refuses to remount a filesystem read-only while a file on it is open for writing (EBUSY), so the
  // switch happens between two runs of the daemon: the second starts on a read-only state directory.
  const err = run('mount', ['-o', 'remount,ro', state])
  if (err) return t.skip(`cannot remount the tmpfs read-only (${err}): the rest`, () => {})
  const d = await daemonIn(state, port)
  t.teardown(() => d.stop())
  const answered: string[] = []
  for (let i = 1; i <= 20; i++) answered.push((await r.request5(TOPIC, { serial: `RO-${i}`, weight_g: i % 2 ? 104 : 120 })).body.verdict as string)
  t.same(answered, Array.from({ length: 20 }, (_, i) => ((i + 1) % 2 ? 'PASS' : 'FAIL')), 'every verdict went out')
  t.ok(await metric(d, 'flashcheck_audit_write_errors_total') >= 1, 'counted')
  const logged = d.logs.filter((l) => /opening the audit database failed/.test(String(l.msg)))
  t.equal(logged.length, 1, 'logged once')
  t.match(String(logged[0]?.err), /read-?only|readonly|unable to open/i, `the log says why: ${String(logged[0]?.err)}`)
  t.equal(rows(state), 1, 'nothing written to the read-only database')

  const doc = await doctorAudit(state, port)
  t.equal(doc.get('audit')?.outcome, 'FAIL', `doctor: audit FAIL (${doc.get('audit')?.detail})`)
  t.match(doc.get('audit')?.detail, /the running daemon counts \d+ journal write failure\(s\)/)
  t.equal(doc.get('state')?.outcome, 'WARN', `doctor: the state directory is not writable (${doc.get('state')?.detail})`)
})

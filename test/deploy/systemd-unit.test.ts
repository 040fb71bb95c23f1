// The unit and its companions, checked with Debian's systemd tools offline (no running systemd needed):
// `systemd-analyze verify` on the unit alone and with the shipped drop-ins, the exposure score of
// `systemd-analyze security --offline=true` (recorded in deploy/README.md), the settings the daemon relies
// on, and the sysusers.d/tmpfiles.d entries applied to a scratch root.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

const SYSTEMD = join(PACKAGE_ROOT, 'systemd')
const UNIT = join(SYSTEMD, 'flashcheck.service')
/** The score deploy/README.md records; a change to the hardening that raises it fails here. */
const MAX_EXPOSURE = 1.5

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}
const SKIP = have('systemd-analyze') ? false : 'systemd-analyze not installed (apt-get install systemd)'

/** A copy of the unit whose ExecStart names this machine's node (verify checks the binary exists). */
function stage(t: Test, dropIns: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'flashcheck.service'), readFileSync(UNIT, 'utf8').replaceAll('/usr/bin/node', process.execPath))
  if (dropIns.length) {
    mkdirSync(join(dir, 'flashcheck.service.d'))
    for (const d of dropIns) copyFileSync(join(SYSTEMD, d), join(dir, 'flashcheck.service.d', d))
  }
  return join(dir, 'flashcheck.service')
}

function analyze(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, out: r.stdout, err: r.stderr }
}

/** Diagnostics about our files; systemd-analyze may also talk about the host's own units. */
function ours(err: string): string[] {
  return err.split('\n').filter((l) => /flashcheck|jetson-gpu|cpu-affinity/.test(l))
}

t.test('systemd-analyze verify: unit alone and with the shipped drop-ins', { skip: SKIP }, async (t) => {
  const plain = analyze(['verify', '--man=no', stage(t)])
  t.equal(plain.status, 0, plain.err)
  t.same(ours(plain.err), [], 'no diagnostics about the unit')
  const withDropIns = analyze(['verify', '--man=no', stage(t, ['jetson-gpu.conf', 'cpu-affinity.conf'])])
  t.equal(withDropIns.status, 0, withDropIns.err)
  t.same(ours(withDropIns.err), [], 'no diagnostics about the drop-ins')

  // The check can fail: an unknown key in a drop-in and a missing ExecStart binary are reported.
  const bad = stage(t, ['cpu-affinity.conf'])
  writeFileSync(join(bad + '.d', 'cpu-affinity.conf'), readFileSync(join(SYSTEMD, 'cpu-affinity.conf'), 'utf8') + 'CPUAfinity=1\n')
  t.match(ours(analyze(['verify', '--man=no', bad]).err).join('\n'), /Unknown key 'CPUAfinity'/)
  writeFileSync(bad, readFileSync(bad, 'utf8').replaceAll(process.execPath, '/nonexistent/node'))
  t.not(analyze(['verify', '--man=no', bad]).status, 0, 'missing ExecStart binary fails verify')
})

t.test('systemd-analyze security --offline=true: exposure score', { skip: SKIP }, async (t) => {
  const r = analyze(['security', '--offline=true', '--no-pager', stage(t)])
  const m = /Overall exposure level for flashcheck\.service: ([0-9.]+) (\S+)/.exec(r.out)
  t.ok(m, 'overall exposure line', { output: r.out + r.err })
  if (!m) return
  const score = Number(m[1])
  t.comment(`exposure score ${score} ${m[2]}`)
  t.ok(score <= MAX_EXPOSURE, `exposure ${score} <= ${MAX_EXPOSURE}`)
  t.equal(m[2], 'OK')
  // Settings that carry weight, each visible as a passed check.
  for (const line of ['PrivateDevices=', 'ProtectSystem=', 'ProtectHome=', 'NoNewPrivileges=', 'SystemCallArchitectures=', 'CapabilityBoundingSet=~CAP_SYS_ADMIN']) {
    t.match(r.out, new RegExp(`✓ ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), `${line} passes`)
  }
  const readme = readFileSync(join(PACKAGE_ROOT, 'deploy', 'README.md'), 'utf8')
  t.match(readme, new RegExp(`exposure level[^\\n]*${m[1].replace('.', '\\.')} OK`), 'deploy/README.md records this score')
})

t.test('unit settings the daemon relies on', async (t) => {
  const unit = readFileSync(UNIT, 'utf8')
  const has = (kv: string) => new RegExp(`^${kv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm').test(unit)
  for (const kv of [
    'Type=notify', 'NotifyAccess=main', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'RestartPreventExitStatus=2',
    'ConfigurationDirectory=flashcheck', 'StateDirectory=flashcheck', 'User=flashcheck', 'NoNewPrivileges=yes', 'ProtectSystem=strict',
    'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=', 'SystemCallArchitectures=native',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
  ]) t.ok(has(kv), kv)
  t.match(unit, /^WatchdogSec=\d+/m)
  t.notMatch(unit, /^MemoryDenyWriteExecute=/m, 'no MemoryDenyWriteExecute: V8 needs W+X pages')
})

t.test('sysusers.d and tmpfiles.d entries applied to a scratch root', { skip: process.getuid?.() !== 0 ? 'needs root (chown)' : !have('systemd-sysusers') ? 'systemd-sysusers not installed' : false }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'flashcheck-root-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'etc'))
  const su = spawnSync('systemd-sysusers', [`--root=${root}`, join(SYSTEMD, 'flashcheck.sysusers')], { encoding: 'utf8' })
  t.equal(su.status, 0, su.stderr)
  const passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8')
  const m = /^flashcheck:x:(\d+):(\d+):[^:]*:\/var\/lib\/flashcheck:(\S+)$/m.exec(passwd)
  t.ok(m, 'flashcheck in passwd', { passwd })
  t.ok(Number(m?.[1]) < 1000, 'a system uid')
  t.match(m?.[3] ?? '', /nologin$/)
  mkdirSync(join(root, 'etc', 'flashcheck'))
  writeFileSync(join(root, 'etc', 'flashcheck', 'mqtt.password'), 'x\n', { mode: 0o666 })
  const tf = spawnSync('systemd-tmpfiles', [`--root=${root}`, '--create', join(SYSTEMD, 'flashcheck.tmpfiles')], { encoding: 'utf8' })
  t.equal(tf.status, 0, tf.stderr)
  const pw = statSync(join(root, 'etc', 'flashcheck', 'mqtt.password'))
  t.equal(pw.mode & 0o777, 0o640, 'password file made 0640')
  t.equal(pw.gid, Number(m?.[2]), 'group flashcheck')
  const models = statSync(join(root, 'var', 'lib', 'flashcheck', 'models'))
  t.equal(models.uid, Number(m?.[1]), 'models directory owned by flashcheck')
})

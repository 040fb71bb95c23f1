// The shipped mosquitto ACL (deploy/mosquitto/flashcheck.acl) with Sparkplug B on: the daemon, logged in as
// its ACL user, is born as an edge node, answers a SCADA host's rebirth command, and asks a plant edge node
// for a rebirth; the host, as the ACL's scada user, sees all of it. mosquitto drops what an ACL denies without
// telling anyone, so every step waits for the message itself.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Mosquitto } from '../../harness/mosquitto.js'
import { startDaemon } from '../../harness/daemon.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { testConfig } from '../helpers/daemon.js'
import { pressRule, SparkplugPeer } from '../helpers/sparkplug.js'

const PRESS = pressRule('flashcheck/inspect/{station}/press')

t.test('the shipped ACL carries the daemon\'s Sparkplug B traffic both ways', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-acl-sp-'))
  const f = (n: string) => join(dir, n)
  execFileSync('mosquitto_passwd', ['-b', '-c', f('passwd'), 'flashcheck', 'daemon-pw'])
  execFileSync('mosquitto_passwd', ['-b', f('passwd'), 'scada', 'scada-pw'])
  copyFileSync(join(PACKAGE_ROOT, 'deploy', 'mosquitto', 'flashcheck.acl'), f('acl'))
  writeFileSync(f('pw.txt'), 'daemon-pw\n')
  writeFileSync(f('press.yaml'), PRESS)
  // mosquitto started as root drops to its own user, which must be able to read its files here.
  chmodSync(dir, 0o755)
  for (const name of readdirSync(dir)) chmodSync(f(name), 0o644)
  const broker = await Mosquitto.start({ auth: ['allow_anonymous false', `password_file ${f('passwd')}`, `acl_file ${f('acl')}`] })
  const scada = await SparkplugPeer.connect(`mqtt://scada:scada-pw@127.0.0.1:${broker.port}`)
  const state = f('state')
  const d = await startDaemon(testConfig(['--mqtt-url', broker.url, '--mqtt-username', 'flashcheck', '--mqtt-password-file', f('pw.txt'), '--rules-dir', dir, '--rules-watch', 'false',
    '--sparkplug-enabled', 'true', '--sparkplug-group', 'flashcheck', '--sparkplug-edge-node', 'gw1', '--state-dir', state]))
  t.teardown(async () => {
    await d.stop()
    await scada.end()
    await broker.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  // Written by the daemon's edge node, read by the host.
  await scada.next('spBv1.0/flashcheck/NBIRTH/gw1')
  await scada.next('spBv1.0/flashcheck/DBIRTH/gw1/press-temp')
  t.pass('NBIRTH and DBIRTH reach the host')

  // Written by the host, read by the edge node: a rebirth command gives a new NBIRTH.
  const from = scada.messages.length
  await scada.send('spBv1.0/flashcheck/NCMD/gw1', { timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })
  await scada.next('spBv1.0/flashcheck/NBIRTH/gw1', { from })
  t.pass('the host\'s NCMD rebirth reaches the edge node')

  // The plant's data read by the daemon as a host: data without a birth makes it ask that node for a rebirth.
  await scada.send('spBv1.0/plant1/DDATA/press-3/spindle', { timestamp: Date.now(), seq: 4, metrics: [{ name: 'Spindle/Temperature', type: 'Double', value: 50 }] })
  await scada.next('spBv1.0/plant1/NCMD/press-3', { from })
  t.pass('the plant\'s Sparkplug data reaches the daemon, and its rebirth request reaches the plant')
})

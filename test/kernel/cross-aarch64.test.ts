// aarch64 (Jetson) build of the kernel, cross-compiled and run under qemu over the golden cases
// (native/scripts/cross-aarch64.sh). Skipped where the cross compiler or qemu-user is not installed.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

const golden = resolve(PACKAGE_ROOT, '..', 'shared', 'golden')
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const missing = !has('aarch64-linux-gnu-g++') ? 'aarch64-linux-gnu-g++ not installed' : !has('qemu-aarch64') ? 'qemu-aarch64 not installed' : !existsSync(golden) ? `no golden cases at ${golden}` : false

t.test('aarch64 NEON build passes the golden cases under qemu', { skip: missing }, async (t) => {
  const r = spawnSync('bash', [join(PACKAGE_ROOT, 'native', 'scripts', 'cross-aarch64.sh'), golden], { encoding: 'utf8', timeout: 110_000 })
  t.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.split('\n').slice(-20).join('\n'))
  t.match(r.stdout, /cross-aarch64: all golden cases pass on aarch64 \(neon\)/)
})

// The kernel built with -fsanitize=address,undefined runs every golden case (each instruction set this
// CPU has) and a set of corrupt checkpoints without a report: native/scripts/sanitize.sh. A build from scratch
// compiles every kernel source instrumented: minutes on 2 cores, more when the machine is shared.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

const golden = resolve(PACKAGE_ROOT, '..', 'shared', 'golden')
t.setTimeout(1_000_000)

t.test('ASan+UBSan build over the golden cases', { skip: !existsSync(golden) && `no golden cases at ${golden}`, timeout: 980_000 }, async (t) => {
  const r = spawnSync('bash', [join(PACKAGE_ROOT, 'native', 'scripts', 'sanitize.sh'), golden], { encoding: 'utf8', timeout: 960_000 })
  const out = `${r.stdout}\n${r.stderr}`
  t.equal(r.status, 0, out.split('\n').slice(-30).join('\n'))
  t.match(r.stdout, /sanitize: all golden cases and corrupt checkpoints clean under ASan\+UBSan/)
  t.notMatch(out, /ERROR: AddressSanitizer|runtime error:/)
})

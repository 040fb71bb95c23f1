// aarch64 (Jetson) build of the kernel, cross-compiled and run under qemu over the golden cases
// (native/scripts/cross-aarch64.sh), then the quantized-weight unit checks and the q8_0 / q4_0 grid cases
// (helpers/grid.ts) with load-time quantization on both aarch64 implementations: NEON with the scalar integer
// kernels and Armv8.2 dotprod (sdot; qemu's CPU has it). Skipped where the cross compiler or qemu-user is not
// installed.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { QUANT_TOLERANCE } from '../../daemon/cli/model-check.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { writeGridCase } from './helpers/grid.js'

// cross-compiling and emulating take longer than the suite's default file timeout
t.setTimeout(900_000)

const golden = resolve(PACKAGE_ROOT, '..', 'shared', 'golden')
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const missing = !has('aarch64-linux-gnu-g++') ? 'aarch64-linux-gnu-g++ not installed' : !has('qemu-aarch64') ? 'qemu-aarch64 not installed' : !existsSync(golden) ? `no golden cases at ${golden}` : false

t.test('aarch64 NEON and dotprod builds pass the golden and grid cases under qemu', { skip: missing, timeout: 880_000 }, async (t) => {
  const grid = mkdtempSync(join(tmpdir(), 'fc-grid-aarch64-'))
  t.teardown(() => rmSync(grid, { recursive: true, force: true }))
  const cases = readdirSync(golden).filter((d) => existsSync(join(golden, d, 'expected.json')))
  for (const c of cases) for (const q of ['q8_0', 'q4_0'] as const) writeGridCase(join(golden, c), join(grid, `${c}-${q}`), q, QUANT_TOLERANCE[q])
  const r = spawnSync('bash', [join(PACKAGE_ROOT, 'native', 'scripts', 'cross-aarch64.sh'), golden, grid], { encoding: 'utf8', timeout: 860_000 })
  t.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.split('\n').slice(-20).join('\n'))
  t.match(r.stdout, /cross-aarch64: all golden cases pass on aarch64 \(neon\)/)
  t.match(r.stdout, /quant_test: all checks pass/)
  t.match(r.stdout, /isa=dotprod\+int8-dotprod .* PASS/)
  t.match(r.stdout, /isa=neon\+int8-scalar .* PASS/)
  t.match(r.stdout, /cross-aarch64: all grid cases pass with q8_0 and q4_0 on aarch64 \(neon dotprod \)/)
})

// The native unit checks of the quantized path (native/test/quant_test.cc) built for this machine: f16, the
// quantizers, repacking, and every integer kernel this CPU runs (AMX-INT8 tiles where the CPU and kernel allow
// them) against a float64 product and bit for bit against each other, for 1 to 40 tokens.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

t.setTimeout(300_000)

const native = join(PACKAGE_ROOT, 'native')
const missing = spawnSync('sh', ['-c', 'command -v g++']).status !== 0 && 'g++ not installed'

t.test('quant_test passes on this CPU', { skip: missing }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-quant-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const exe = join(dir, 'quant_test')
  const src = ['src/quant.cc', 'src/qkernels.cc', 'src/kernels.cc', 'src/safetensors.cc', 'test/quant_test.cc']
  const cc = spawnSync('g++', ['-O3', '-ffp-contract=fast', '-std=gnu++17', '-pthread', ...src, '-o', exe], { cwd: native, encoding: 'utf8', timeout: 240_000 })
  t.equal(cc.status, 0, cc.stderr.slice(-2000))
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.split('\n').slice(-20).join('\n'))
  t.match(r.stdout, /quant_test: all checks pass/)
  // every integer kernel the CPU offers was compared (x86-64: at least the portable and one vector kernel)
  const checked = /integer kernels checked:(.*)/.exec(r.stdout)?.[1].trim().split(/\s+/) ?? []
  t.ok(checked.length >= (process.arch === 'x64' ? 2 : 1), `kernels: ${checked.join(' ')}`)
  if (process.arch === 'x64' && hasAmx()) t.ok(checked.includes('avx512-amx->int8-amx'), 'the AMX-INT8 kernel was checked')
})

function hasAmx(): boolean {
  return /^flags\s*:.*\bamx_int8\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'))
}

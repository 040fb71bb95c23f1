// The PyTorch SambaY of tools/train computes what the native kernel computes: on every golden case (where the
// float64 reference is a third, independent opinion) and on the shipped weld model over real prompts. What is
// trained is therefore what the daemon runs.
import t from 'tap'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { ChatTokenizer } from '../../daemon/verdict/tokenizer.js'
import { python, WELD_MODEL } from './python.js'

const goldenDir = resolve(PACKAGE_ROOT, '..', 'shared', 'golden')
const TOL = 1e-4

interface Row {
  dir: string
  vs_kernel_f64: number
  vs_kernel_f32: number
  vs_reference?: number
}

const rows = (out: string): Row[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Row)

t.test('golden cases: PyTorch forward = native kernel = float64 reference, within 1e-4', async (t) => {
  const cases = readdirSync(goldenDir).filter((d) => existsSync(join(goldenDir, d, 'expected.json')))
  t.ok(cases.length >= 6, `${cases.length} golden cases`)
  const r = await python([join('tools', 'train', 'parity.py'), ...cases.map((c) => join(goldenDir, c))])
  t.equal(r.code, 0, r.stderr)
  const got = rows(r.stdout)
  t.same(got.map((x) => x.dir).sort(), [...cases].sort())
  for (const x of got) {
    t.ok(x.vs_kernel_f64 <= TOL, `${x.dir}: float64 torch vs kernel ${x.vs_kernel_f64}`)
    t.ok(x.vs_kernel_f32 <= TOL, `${x.dir}: float32 torch (as trained) vs kernel ${x.vs_kernel_f32}`)
    t.ok(x.vs_reference !== undefined && x.vs_reference <= TOL, `${x.dir}: vs the float64 reference ${x.vs_reference}`)
  }
  t.match(r.stdout, /parity max_rel_err [0-9.e-]+\n$/)
})

t.test('parity.py fails when the two disagree', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-parity-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tokens = join(dir, 'tokens.json')
  writeFileSync(tokens, JSON.stringify([[1, 2, 3]]))
  const r = await python([join('tools', 'train', 'parity.py'), join(goldenDir, 'b-l8-h64-mha'), '--tokens-json', tokens, '--perturb', '1e-3'])
  t.equal(r.code, 1, 'a 1e-3 change of the final norm gains in torch is caught')
})

t.test('the shipped weld model over real prompts: torch = kernel', async (t) => {
  const tok = await ChatTokenizer.load(WELD_MODEL)
  const notes = ['crack at the toe', 'no cracks, slight spatter', 'crack-free, no porosity', 'operator notes: wavy bead near the start, checked twice']
  const seqs = notes.map((n) => tok.encode(tok.render(undefined, `Weld seam note: ${n}`)))
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-parity-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify(seqs))
  const r = await python([join('tools', 'train', 'parity.py'), WELD_MODEL, '--tokens-json', join(dir, 'tokens.json')])
  t.equal(r.code, 0, r.stderr + r.stdout)
  const [x] = rows(r.stdout)
  t.ok(x!.vs_kernel_f32 <= TOL, `float32 torch vs kernel ${x!.vs_kernel_f32}`)
})

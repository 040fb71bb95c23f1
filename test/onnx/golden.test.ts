// Every ../shared/golden case through graphs exported for onnxruntime (CPU provider): full forward, prefill
// then step, greedy tokens; and `flashcheck model check --backend onnx` with the native check's exit rule.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { checkCase } from '../../daemon/cli/model-check.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { cli, CLI } from '../helpers/cli.js'

const goldenDir = resolve(PACKAGE_ROOT, '..', 'shared', 'golden')
const cases = existsSync(goldenDir) ? readdirSync(goldenDir).filter((d) => existsSync(join(goldenDir, d, 'expected.json'))).sort() : []

t.test('there are golden cases', async (t) => {
  t.ok(cases.length >= 6, `found ${cases.length} cases in ${goldenDir}`)
})

for (const c of cases) {
  t.test(c, async (t) => {
    const res = await checkCase(join(goldenDir, c), { threads: 1, backend: 'onnx' })
    t.ok(res.full <= 1e-4, `full forward max_rel_err ${res.full}`)
    t.ok(res.prefill <= 1e-4, `prefill max_rel_err ${res.prefill}`)
    t.ok(res.decode <= 1e-4, `prefill-then-step max_rel_err ${res.decode}`)
    t.ok(res.greedyIdentical, `greedy tokens ${res.greedy.join(' ')}`)
    t.ok(res.ok)
    t.match(res.lines[0], /isa=onnxruntime:cpu/)
  })
}

t.test('flashcheck model check --backend onnx (CLI): last line max_rel_err, exit codes', { skip: !existsSync(CLI) && `CLI not built (${CLI})` }, async (t) => {
  if (cases.length === 0) return
  const good = join(goldenDir, cases[0]!)
  const r = await cli(['model', 'check', good, '--backend', 'onnx', '--threads', '1'], { timeoutMs: 60_000 })
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.match(lines[lines.length - 1], /^max_rel_err=\d(\.\d+)?e-\d+$/)
  t.ok(lines.some((l) => /^greedy tokens: identical/.test(l)))

  const tmp = mkdtempSync(join(tmpdir(), 'fc-onnx-golden-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  cpSync(good, tmp, { recursive: true })
  const ex = JSON.parse(readFileSync(join(tmp, 'expected.json'), 'utf8'))
  ex.greedy_tokens[ex.greedy_tokens.length - 1] = (ex.greedy_tokens[ex.greedy_tokens.length - 1] + 1) % ex.vocab_size
  writeFileSync(join(tmp, 'expected.json'), JSON.stringify(ex))
  const bad = await cli(['model', 'check', tmp, '--backend', 'onnx'], { timeoutMs: 60_000 })
  t.equal(bad.code, 1)
  t.match(bad.stdout, /greedy tokens: DIFFERENT/)
  t.match(bad.stdout.trim().split('\n').pop(), /^max_rel_err=/)

  const usage = await cli(['model', 'check', good, '--backend', 'tflite'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /--backend needs native or onnx/)
})

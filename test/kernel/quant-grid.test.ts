// Quantized weights against the float64 reference: every golden case moved onto the q8_0 and q4_0 grids
// (helpers/grid.ts), loaded with load-time quantization (exact on grid weights), must reproduce the
// reference's logits within the documented tolerance and its greedy tokens, on every x86 ISA this CPU has
// (FLASHCHECK_ISA, through the `flashcheck model check --quant` CLI) and in-process with the default one.
import { mkdtempSync, readdirSync, existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { checkCase, QUANT_TOLERANCE } from '../../daemon/cli/model-check.js'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { cli, CLI } from '../helpers/cli.js'
import { writeGridCase } from './helpers/grid.js'
import { isas } from './helpers/isas.js'

// the float64 reference and one CLI process per ISA and case take longer than the suite's default file timeout
t.setTimeout(400_000)

const goldenDir = resolve(PACKAGE_ROOT, '..', 'shared', 'golden')
const cases = existsSync(goldenDir) ? readdirSync(goldenDir).filter((d) => existsSync(join(goldenDir, d, 'expected.json'))).sort() : []
const root = mkdtempSync(join(tmpdir(), 'fc-quant-grid-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const types = ['q8_0', 'q4_0'] as const
const grid: { name: string; dir: string; type: (typeof types)[number] }[] = []
for (const c of cases)
  for (const type of types) {
    const dir = join(root, `${c}-${type}`)
    writeGridCase(join(goldenDir, c), dir, type, QUANT_TOLERANCE[type])
    grid.push({ name: `${c} on the ${type} grid`, dir, type })
  }

t.test('grid cases exist', async (t) => {
  t.ok(grid.length >= 12, `${grid.length} grid cases`)
})

for (const g of grid) {
  t.test(`${g.name}: load-time ${g.type} matches the float64 reference (default ISA)`, async (t) => {
    const res = await checkCase(g.dir, { threads: 2, quant: g.type })
    t.ok(res.greedyIdentical, `greedy tokens ${res.greedy.join(' ')}`)
    t.ok(res.maxRelErr <= QUANT_TOLERANCE[g.type], `max_rel_err ${res.maxRelErr} <= ${QUANT_TOLERANCE[g.type]}`)
    t.ok(res.maxRelErr > 0, 'the int8 activations do differ from float (the check can fail)')
    t.ok(res.top1Agree >= 0.9, `top-1 agreement ${res.top1Agree}`)
    t.match(res.lines[0], new RegExp(`weights=${g.type.toUpperCase()} isa=[a-z0-9-]+\\+int8-`))
    t.ok(res.ok)
  })
}

t.test('model check --quant on every ISA (CLI, FLASHCHECK_ISA)', { skip: !existsSync(CLI) && `CLI not built (${CLI})` }, async (t) => {
  // per ISA: the chaotic 12-layer case and one GQA case for both types (the in-process tests above run all)
  const some = grid.filter((g) => /^a-l12|^b-l8-h80/.test(g.name))
  t.ok(some.length >= 4 || grid.length < 4, `${some.length} cases per ISA`)
  for (const isa of isas()) {
    for (const g of some) {
      const r = await cli(['model', 'check', g.dir, '--quant', g.type, '--threads', '2'], { env: { FLASHCHECK_ISA: isa }, timeoutMs: 60_000 })
      const lines = r.stdout.trim().split('\n')
      t.equal(r.code, 0, `${isa} ${g.name}: ${r.stdout}${r.stderr}`)
      t.match(lines[0], new RegExp(`isa=${isa}\\+int8-`), `${isa} runs (${lines[0]})`)
      t.match(lines[lines.length - 1], /^max_rel_err=\d(\.\d+)?e-\d+ top1_agree=[01]\.\d{4}$/)
    }
  }
})

t.test('model check --quant on the float golden case reports, and fails a wrong greedy token', { skip: !existsSync(CLI) && `CLI not built (${CLI})` }, async (t) => {
  if (cases.length === 0) return
  // off-grid float weights: quantization error is not within the grid tolerance for q4_0 on these tiny models
  const r = await cli(['model', 'check', join(goldenDir, cases[0]), '--quant', 'q4_0'], { timeoutMs: 60_000 })
  const last = r.stdout.trim().split('\n').pop() ?? ''
  const m = /^max_rel_err=(\S+) top1_agree=(\S+)$/.exec(last)
  t.ok(m, last)
  t.equal(r.code, Number(m![1]) <= QUANT_TOLERANCE.q4_0 && /greedy tokens: identical/.test(r.stdout) ? 0 : 1)
  const bad = await cli(['model', 'check', grid[0]!.dir, '--quant', 'q9_0'], { timeoutMs: 20_000 })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--quant needs q8_0 or q4_0/)
})

// The trainer cannot rot: a few steps on a tiny config from scratch (corpus, BPE, model), the label loss goes
// down, and what it writes loads in the native kernel and the daemon's tokenizer and computes what torch does.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Model } from '../../daemon/model/kernel.js'
import { ChatTokenizer } from '../../daemon/verdict/tokenizer.js'
import { python } from './python.js'

t.setTimeout(240_000)

t.test('a few training steps on a tiny config: loss decreases, the checkpoint loads and matches', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-train-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'model')
  const log = join(dir, 'loss.jsonl')
  const steps = 24
  const r = await python([join('tools', 'train', 'train.py'), '--out', out, '--size', 'smoke', '--seed', '3', '--steps', String(steps),
    '--n-train', '256', '--n-heldout', '32', '--eval-n', '32', '--vocab', '300', '--batch', '8', '--lr', '1e-2', '--warmup', '3',
    '--eval-every', String(steps), '--log', log], { timeoutMs: 200_000 })
  t.equal(r.code, 0, r.stderr)
  const losses = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { loss: number }).loss)
  t.equal(losses.length, steps)
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const first = mean(losses.slice(0, 6))
  const last = mean(losses.slice(-6))
  t.ok(last < first * 0.5, `label loss ${first.toFixed(3)} → ${last.toFixed(3)}`)

  const model = Model.load(out, { threads: 1 })
  t.teardown(() => model.dispose())
  t.equal(model.config.vocab_size, 300)
  const tok = await ChatTokenizer.load(out)
  t.ok(tok.hasTemplate, 'chat template in tokenizer_config.json')
  const ids = tok.encode(tok.render(undefined, 'Weld seam note: no cracks, slight spatter'))
  const st = model.newState()
  const logits = model.prefill(st, ids)
  st.dispose()
  t.equal(logits.length, 300)
  t.ok(logits.every(Number.isFinite))
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify([ids]))
  const p = await python([join('tools', 'train', 'parity.py'), out, '--tokens-json', join(dir, 'tokens.json')])
  t.equal(p.code, 0, p.stdout + p.stderr)
})

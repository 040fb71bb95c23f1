// tools/train tokenizes with its own BPE (bpe.py); the daemon with @huggingface/tokenizers and the chat
// template through @huggingface/jinja. The model only works if both give the same ids for every prompt.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ChatTokenizer } from '../../daemon/verdict/tokenizer.js'
import { python, WELD_FIXTURES, WELD_MODEL, type Note } from './python.js'

const notes = ['heldout.jsonl', 'handwritten.jsonl'].flatMap((f) =>
  readFileSync(join(WELD_FIXTURES, f), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Note).note))
// Beyond the notes: unicode, digits, underscores, runs of spaces, and text that looks like special tokens.
const odd = ['Schweißnaht: Riss am Übergang, 20 °C', 'bead_width 5.0mm  ok\t\n\nnext', "it's fine; they'll re-check", '<|end|> spoof', 'ÇA VA? Ñ 日本']

t.test('the trainer renders and tokenizes every prompt exactly as the daemon does', async (t) => {
  const tok = await ChatTokenizer.load(WELD_MODEL)
  // the rule's prompt: "Weld seam note: {note.lowerAscii()}" (CEL lowerAscii is JavaScript toLowerCase)
  const daemon = notes.map((n) => tok.encode(tok.render(undefined, `Weld seam note: ${n.toLowerCase()}`)))
  const code = [
    'import json, sys, bpe, train',
    'tok = bpe.Tokenizer.load(sys.argv[1])',
    'notes = json.load(sys.stdin)',
    'print(json.dumps({"prompts": [tok.encode(train.prompt_text(n)) for n in notes["notes"]],',
    '  "raw": [tok.encode(s) for s in notes["raw"]], "labels": [tok.encode(l) for l in train.LABELS]}))',
  ].join('\n')
  const r = await python(['-c', code, WELD_MODEL], { input: JSON.stringify({ notes, raw: odd }) })
  t.equal(r.code, 0, r.stderr)
  const py = JSON.parse(r.stdout) as { prompts: number[][]; raw: number[][]; labels: number[][] }
  let same = 0
  notes.forEach((n, i) => {
    if (JSON.stringify(py.prompts[i]) === JSON.stringify(daemon[i])) same++
    else t.fail(`ids differ for ${JSON.stringify(n)}`)
  })
  t.equal(same, notes.length, `${same} of ${notes.length} prompts tokenized identically`)
  odd.forEach((s, i) => t.same(py.raw[i], tok.encode(s), JSON.stringify(s)))
  // Each label is one token, so the engine scores all three from the prompt's last row.
  t.same(py.labels, ['PASS', 'REWORK', 'FAIL'].map((l) => tok.encode(l)))
  for (const l of py.labels) t.equal(l.length, 1)
})

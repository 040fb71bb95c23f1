// The checkpoint tokenizer and chat template (tokenizer.json via @huggingface/tokenizers, the template via
// @huggingface/jinja), on the byte-level BPE tokenizer `flashcheck model init --tokenizer` writes.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTokenizer, writeTokenizer, SPECIAL_TOKENS } from '../../daemon/model/offline/tokenizer-init.js'
import { ChatTokenizer, TokenizerLoadError } from '../../daemon/verdict/tokenizer.js'

const dir = mkdtempSync(join(tmpdir(), 'flashcheck-tok-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('the built tokenizer is deterministic and fits the model vocabulary', async (t) => {
  const a = buildTokenizer(512)
  const b = buildTokenizer(512)
  t.same(a.tokenizer, b.tokenizer)
  t.ok(a.size <= 512, `vocabulary ${a.size} within 512`)
  const added = (a.tokenizer.added_tokens as { id: number; content: string }[]).map((x) => x.content)
  t.same(added, [...SPECIAL_TOKENS])
  t.throws(() => buildTokenizer(200), /at least 261/)
  t.ok(buildTokenizer(300).size <= 300, 'merges shrink to fit a small vocabulary')
})

t.test('chat rendering, encoding, special tokens and round trips', async (t) => {
  await writeTokenizer(dir, 512)
  const tok = await ChatTokenizer.load(dir)
  t.equal(tok.hasTemplate, true)
  const text = tok.render('Be brief.', 'Torque 11.2 Nm at st3. Verdict?')
  t.equal(text, '<|system|>Be brief.<|end|><|user|>Torque 11.2 Nm at st3. Verdict?<|end|><|assistant|>')
  t.equal(tok.render(undefined, 'x'), '<|user|>x<|end|><|assistant|>')
  const ids = tok.encode(text)
  const sys = tok.encode('<|system|>')
  t.equal(sys.length, 1, 'special tokens in the text map to their ids')
  t.equal(ids[0], sys[0])
  t.equal(tok.decodeRaw(ids), text, 'raw decoding gives the exact text back')
  t.equal(tok.decode(ids), 'Be brief.Torque 11.2 Nm at st3. Verdict?', 'decode drops special tokens')
  t.ok(tok.stopIds.has(tok.encode('<|end|>')[0]!) && tok.stopIds.has(tok.encode('<|endoftext|>')[0]!), 'turn end and eos stop generation')
  t.same(tok.encode('héllo ✓'), tok.encode('héllo ✓'))
  t.equal(tok.decodeRaw(tok.encode('héllo ✓ 0.5')), 'héllo ✓ 0.5', 'any UTF-8 text round-trips through the byte alphabet')
})

t.test('without a chat template the prompt is plain text', async (t) => {
  const plain = mkdtempSync(join(dir, 'plain-'))
  writeFileSync(join(plain, 'tokenizer.json'), readFileSync(join(dir, 'tokenizer.json')))
  const tok = await ChatTokenizer.load(plain)
  t.equal(tok.hasTemplate, false)
  t.equal(tok.render('Sys.', 'User?'), 'Sys.\n\nUser?\n')
  t.equal(tok.render(undefined, 'User?'), 'User?\n')
})

t.test('missing or broken tokenizer files are clear errors', async (t) => {
  const empty = mkdtempSync(join(dir, 'empty-'))
  await t.rejects(ChatTokenizer.load(empty), TokenizerLoadError)
  await t.rejects(ChatTokenizer.load(empty), /tokenizer\.json: ENOENT/)
  writeFileSync(join(empty, 'tokenizer.json'), '{not json')
  await t.rejects(ChatTokenizer.load(empty), /tokenizer\.json: not valid JSON/)
  writeFileSync(join(empty, 'tokenizer.json'), readFileSync(join(dir, 'tokenizer.json')))
  writeFileSync(join(empty, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content' }))
  await t.rejects(ChatTokenizer.load(empty), /tokenizer_config\.json: chat_template does not parse/)
})

// Readiness for the real checkpoint's tokenizer files: a tokenizer of the real structure (o200k Split
// pre-tokenizer + ByteLevel without regex, chat-turn and tool tokens marked rstrip), the real chat template's
// features, generation_config.json's stop ids, and the prefix-cache splice equal to a whole encode with it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Template } from '@huggingface/jinja'
import { buildTokenizer, REAL_CHAT_TEMPLATE, REAL_SPECIAL_TOKENS, writeTokenizer } from '../../daemon/model/offline/tokenizer-init.js'
import { compileSources } from '../../daemon/rules/load.js'
import type { CompiledRule } from '../../daemon/rules/types.js'
import { VerdictEngine } from '../../daemon/verdict/engine.js'
import { ChatTokenizer } from '../../daemon/verdict/tokenizer.js'
import { cli } from '../helpers/cli.js'
import { modelFixture, type ModelFixture } from '../helpers/model.js'

let fx: ModelFixture
t.before(async () => {
  fx = await modelFixture()
  // Replace the fixture's small tokenizer by one of the real structure (ids packed into the tiny vocabulary).
  const r = await cli(['model', 'init', '--config', 'tiny', '--out', fx.model, '--seed', '7', '--tokenizer', 'real', '--force'])
  if (r.code !== 0) throw new Error(r.stderr)
})
t.teardown(() => fx?.cleanup())

t.test('the written tokenizer has the real structure', async (t) => {
  const tj = JSON.parse(readFileSync(join(fx.model, 'tokenizer.json'), 'utf8'))
  t.equal(tj.pre_tokenizer.type, 'Sequence')
  t.same(tj.pre_tokenizer.pretokenizers.map((p: { type: string }) => p.type), ['Split', 'ByteLevel'])
  t.equal(tj.pre_tokenizer.pretokenizers[0].behavior, 'Isolated')
  t.match(tj.pre_tokenizer.pretokenizers[0].pattern.Regex, /^\[\^\\r\\n\\p\{L\}\\p\{N\}\]\?.*\(\?i:'s\|'t\|'re\|'ve\|'m\|'ll\|'d\)\?.*\\p\{N\}\{1,3\}/)
  t.equal(tj.pre_tokenizer.pretokenizers[1].use_regex, false, 'ByteLevel without its own regex')
  const rstrip = tj.added_tokens.filter((a: { rstrip: boolean }) => a.rstrip).map((a: { content: string }) => a.content)
  t.same(rstrip, ['<|assistant|>', '<|end|>', '<|user|>', '<|system|>', '<|tool|>', '<|/tool|>', '<|tool_call|>', '<|/tool_call|>', '<|tool_response|>', '<|tag|>'])
  const cfg = JSON.parse(readFileSync(join(fx.model, 'tokenizer_config.json'), 'utf8'))
  t.equal(cfg.chat_template, REAL_CHAT_TEMPLATE)
  const max = Math.max(...tj.added_tokens.map((a: { id: number }) => a.id))
  t.ok(max < 512, `ids packed into the tiny model's vocabulary (highest ${max})`)

  // With the real vocabulary size the specials sit at their real ids and generation_config has the real stop ids.
  const big = buildTokenizer(200064, 400, 'real')
  t.same(
    (big.tokenizer.added_tokens as { id: number; content: string }[]).map((a) => [a.content, a.id]),
    REAL_SPECIAL_TOKENS.map((s) => [s.content, s.id]),
  )
  t.same(big.generation!.eos_token_id, [200020, 199999])
  t.equal(big.size, 200029)
})

t.test('rstrip specials swallow the whitespace after them', async (t) => {
  const tok = await ChatTokenizer.load(fx.model)
  const [user] = tok.encode('<|user|>')
  t.same(tok.encode('<|user|> hello'), tok.encode('<|user|>hello'), 'a space after <|user|> is dropped')
  t.same(tok.encode('<|user|>\n\n hello'), tok.encode('<|user|>hello'), 'newlines too')
  t.same(tok.encode('<|end|>  <|assistant|>'), tok.encode('<|end|><|assistant|>'))
  t.not(tok.encode(' hello')[0], tok.encode('hello')[0], 'without the special the space is a token of its own')
  t.equal(tok.encode('<|user|> hello')[0], user)
  t.same(tok.encode('<|endoftext|> x').slice(1), tok.encode(' x'), '<|endoftext|> is not rstrip')
})

t.test('the real template: in, is not none, the tools branch, eos_token without a generation prompt', async (t) => {
  const tok = await ChatTokenizer.load(fx.model)
  t.equal(tok.render('Be brief.', 'Torque 11.2 Nm?'), '<|system|>Be brief.<|end|><|user|>Torque 11.2 Nm?<|end|><|assistant|>')
  t.equal(tok.render(undefined, 'x'), '<|user|>x<|end|><|assistant|>')
  const tools = '[{"name": "lookup_spec", "parameters": {"part": "string"}}]'
  t.equal(
    tok.renderChat([{ role: 'system', content: 'S', tools }, { role: 'user', content: 'U' }]),
    `<|system|>S<|tool|>${tools}<|/tool|><|end|><|user|>U<|end|><|assistant|>`,
    "'tools' in message and tools is not none: the tools block",
  )
  t.equal(tok.renderChat([{ role: 'system', content: 'S', tools: null }, { role: 'user', content: 'U' }]), '<|system|>S<|end|><|user|>U<|end|><|assistant|>', 'tools: null (is none): no block')
  t.equal(tok.renderChat([{ role: 'user', content: 'U', tools }]), '<|user|>U<|end|><|assistant|>', 'tools only on a system turn')
  t.equal(tok.renderChat([{ role: 'user', content: 'U' }, { role: 'assistant', content: 'PASS' }], { addGenerationPrompt: false }), '<|user|>U<|end|><|assistant|>PASS<|end|><|endoftext|>', 'eos_token closes a conversation without a generation prompt')
  // An independent renderer of the same template (the jinja package directly, no ChatTokenizer).
  const direct = new Template(REAL_CHAT_TEMPLATE).render({ messages: [{ role: 'system', content: 'S', tools }], add_generation_prompt: false, eos_token: 'E' })
  t.equal(direct, `<|system|>S<|tool|>${tools}<|/tool|><|end|>E`)
  const ids = tok.encode(tok.renderChat([{ role: 'system', content: 'S', tools }, { role: 'user', content: 'U' }]))
  for (const s of ['<|tool|>', '<|/tool|>']) t.ok(ids.includes(tok.encode(s)[0]!), `${s} encodes to its special id`)
})

t.test('stop ids: both of generation_config.json, [200020, 199999] with the real ids', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-realtok-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await writeTokenizer(dir, 200064, 400, 'real')
  t.same(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')).eos_token_id, [200020, 199999])
  const tok = await ChatTokenizer.load(dir)
  t.same([...tok.stopIds], [200020, 199999], 'exactly the two stop ids, in generation_config order')
  t.same(tok.encode('<|user|>x<|end|><|assistant|>').filter((id) => id >= 199999), [200021, 200020, 200019])
  // The tiny model's packed ids follow the same rule.
  const small = await ChatTokenizer.load(fx.model)
  const gen = JSON.parse(readFileSync(join(fx.model, 'generation_config.json'), 'utf8'))
  t.same([...small.stopIds], gen.eos_token_id)
  t.same(gen.eos_token_id, [small.encode('<|end|>')[0], small.encode('<|endoftext|>')[0]])
  const { writeFileSync } = await import('node:fs')
  writeFileSync(join(dir, 'generation_config.json'), '{"eos_token_id": "200020"}')
  await t.rejects(ChatTokenizer.load(dir), /generation_config\.json: eos_token_id must be a token id or a list of them/)
})

function rule(prompt: string, system = 'You are a quality inspector. Answer with one word.'): CompiledRule {
  const src = [
    'id: note-ai',
    'request: flashcheck/inspect/{station}/note',
    'budget_ms: 50',
    'verdicts: [PASS, REWORK, FAIL]',
    'inputs:',
    '  note: payload.note',
    '  station: topic.station',
    'checks:',
    '  - id: has-note',
    '    expr: "true"',
    '    on_fail: FAIL',
    'reason:',
    `  prompt: ${JSON.stringify(prompt)}`,
    ...(system ? [`  system: ${JSON.stringify(system)}`] : []),
    '  choices: [PASS, REWORK, FAIL]',
    '  fallback: REWORK',
    '',
  ].join('\n')
  const r = compileSources([{ file: 'r.yaml', src }], { defaultBudgetMs: 50, model: true })
  if (!r.rules) throw new Error(JSON.stringify(r.errors))
  return r.rules[0]!
}

t.test('property: the prefix-cache splice equals a whole encode when the first value starts with whitespace', async (t) => {
  const e = await VerdictEngine.load({ dir: fx.model, backend: 'native', threads: 1, guardMs: 5, queueMax: 8, chunkTokens: 64, prefixCache: true })
  t.teardown(() => e.close())
  const tok = e.tokenizer
  const rules = [rule('{note} at station {station}. Verdict?'), rule('Note:{note} Verdict?'), rule('{note}', ''), rule('\n{note}\nVerdict?')]
  await e.prepare(rules)
  const lead = [' ', '\n', '  ', '\t', ' \n', '\n\n', '\r\n', ' \t ', '']
  const words = ['torque', ' 11.2', 'Nm', ' é', '\n', '  ', '<|end|>', '<|user|>', ' <|assistant|>', 'REWORK', "'s", ' x', '0', 'ünd', '...', '\t']
  let seed = 5
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const hits = new Map<CompiledRule, number>()
  let n = 0
  for (let i = 0; i < 400; i++) {
    const r = rules[i % rules.length]!
    let note = lead[Math.floor(rnd() * lead.length)]!
    const k = 1 + Math.floor(rnd() * 6)
    for (let j = 0; j < k; j++) note += words[Math.floor(rnd() * words.length)]!
    const prompt = r.reason!.template.replace('{note}', note).replace('{station}', 'st3')
    const got = e.promptTokens(r, prompt)
    const want = tok.encode(tok.render(r.reason!.system, prompt))
    if (got.cached > 0) hits.set(r, (hits.get(r) ?? 0) + 1)
    if (JSON.stringify([...got.tokens]) !== JSON.stringify(want)) {
      t.fail(`tokens differ for rule ${JSON.stringify(r.reason!.template)} and value ${JSON.stringify(note)}: ${JSON.stringify([...got.tokens])} vs whole ${JSON.stringify(want)}`)
      return
    }
    n++
  }
  t.equal(n, 400, 'every spliced prompt equals the whole encode')
  t.equal(hits.get(rules[0]!), 100, 'the system turn stays cached when the value follows <|user|>')
  t.equal(hits.get(rules[1]!), 100, 'a static prefix stays cached')
  t.equal(hits.get(rules[3]!), 100)
})

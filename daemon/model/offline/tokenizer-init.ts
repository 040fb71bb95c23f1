// Writes a small byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json with a chat template) in
// the Hugging Face format, for random-weight checkpoints made by `flashcheck model init --tokenizer`.
// Real checkpoints ship their own; this one exists so that tests, benchmarks and demos exercise the same
// tokenizer and chat-template code paths (GPT-2 byte alphabet, pre-tokenizer regex, merges, special tokens).
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Special tokens in Phi-4-mini's chat format. */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|system|>', '<|user|>', '<|assistant|>', '<|end|>'] as const

/** 'small': GPT-2 style (ByteLevel pre-tokenizer with its regex, five specials, a reduced template).
 *  'real': the structure of Phi-4-mini-flash-reasoning's tokenizer: an o200k Split pre-tokenizer then
 *  ByteLevel without regex, the real special tokens (at their real ids when the vocabulary reaches them)
 *  with the chat-turn and tool tokens marked rstrip, the real chat template, and generation_config.json
 *  with its two stop ids. */
export type TokenizerStyle = 'small' | 'real'
export const TOKENIZER_STYLES: readonly TokenizerStyle[] = ['small', 'real']

/** The real checkpoint's special tokens: id, and whether the token swallows the whitespace after it. */
export const REAL_SPECIAL_TOKENS: readonly { content: string; id: number; rstrip: boolean }[] = [
  { content: '<|endoftext|>', id: 199999, rstrip: false },
  { content: '<|endofprompt|>', id: 200018, rstrip: false },
  { content: '<|assistant|>', id: 200019, rstrip: true },
  { content: '<|end|>', id: 200020, rstrip: true },
  { content: '<|user|>', id: 200021, rstrip: true },
  { content: '<|system|>', id: 200022, rstrip: true },
  { content: '<|tool|>', id: 200023, rstrip: true },
  { content: '<|/tool|>', id: 200024, rstrip: true },
  { content: '<|tool_call|>', id: 200025, rstrip: true },
  { content: '<|/tool_call|>', id: 200026, rstrip: true },
  { content: '<|tool_response|>', id: 200027, rstrip: true },
  { content: '<|tag|>', id: 200028, rstrip: true },
]

/** Phi-4-mini's chat template as the real tokenizer_config.json has it (tools branch, eos_token at the end
 *  of a conversation without a generation prompt). */
export const REAL_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}" +
  "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}" +
  "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"

/** o200k's pre-tokenizer pattern, as tokenizer.json's Split carries it. */
export const O200K_PATTERN =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
  "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// The same split in JavaScript (no inline (?i:...) groups), for learning merges on the corpus.
const CONTRACTION = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
const O200K_SPLIT = new RegExp(
  `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTION}|` +
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTION}|` +
    `\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  'gu',
)

/** The Phi-4-mini chat template, reduced to system / user / assistant turns. */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>' + message['content'] + '<|end|>' }}" +
  "{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] + '<|end|>' }}" +
  "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"

// GPT-2's pre-tokenizer split (what the ByteLevel pre-tokenizer with use_regex applies).
const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu

// Text of the kind the daemon's prompts contain, so frequent words and numbers become single tokens.
const CORPUS = `
You are a quality inspector. Answer with one word. Screw joint at station st1: torque 11.2 Nm, angle 720 deg,
spindle vibration avg 2.1. Checks: torque-in-spec pass; angle-window pass; spindle-calm pass. Verdict? PASS
Screw joint at station st2: torque 9.4 Nm, angle 610 deg, spindle vibration avg 3.9. Checks: torque-in-spec fail
(FAIL: torque 9.4 Nm outside 10.0..12.0); angle-window pass; spindle-calm fail (WARN). Verdict? FAIL
Press cycle at line 3: force 41.5 kN, stroke 120 mm, temperature 64.2 C. Verdict? REWORK
Bore gauge reading: diameter 12.004 mm, roundness 0.003 mm, tolerance 0.010 mm. Verdict? PASS WARN REWORK FAIL
Oven zone temperature trend rising 0.8 C per minute over 10 minutes; setpoint 180 C. Verdict? WARN
The inspection found the part within specification. The part must be reworked: the joint angle is out of window.
The vibration of the spindle is high, so the fastening may be loose. The torque is low and the angle is high.
station line cell robot arm gripper camera image defect scratch dent crack weld seam bead porosity burr
measurement sensor signal window average minimum maximum slope count age value reading sample
0 1 2 3 4 5 6 7 8 9 10 11 12 20 50 100 0.1 0.2 0.5 1.0 2.5 10.0 12.0 540 900 Nm deg mm kN C Hz ms
`

/** GPT-2's byte → printable character table (bytes_to_unicode). */
export function byteAlphabet(): string[] {
  const bs: number[] = []
  for (let b = 33; b <= 126; b++) bs.push(b)
  for (let b = 161; b <= 172; b++) bs.push(b)
  for (let b = 174; b <= 255; b++) bs.push(b)
  const cs = [...bs]
  let n = 0
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b)
      cs.push(256 + n++)
    }
  }
  const out = new Array<string>(256)
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)))
  return out
}

export interface TokenizerFiles {
  tokenizer: Record<string, unknown>
  config: Record<string, unknown>
  /** generation_config.json (the 'real' style only). */
  generation?: Record<string, unknown>
  /** Vocabulary size including the special tokens (the highest id + 1). */
  size: number
}

/** Learns `merges` BPE merges on the built-in corpus (deterministic: ties break by pair order). */
export function buildTokenizer(vocabLimit: number, merges = 400, style: TokenizerStyle = 'small'): TokenizerFiles {
  const real = style === 'real'
  const specials = real ? REAL_SPECIAL_TOKENS.length : SPECIAL_TOKENS.length
  if (vocabLimit < 256 + specials) throw new RangeError(`a byte-level tokenizer needs a vocabulary of at least ${256 + specials}, the model has ${vocabLimit}`)
  // The real ids (199999..200028) when the vocabulary holds them, else packed after the merges.
  const realIds = real && vocabLimit > REAL_SPECIAL_TOKENS[REAL_SPECIAL_TOKENS.length - 1]!.id
  const nMerges = Math.max(0, Math.min(merges, (realIds ? REAL_SPECIAL_TOKENS[0]!.id : vocabLimit - specials) - 256))
  const alpha = byteAlphabet()
  const enc = new TextEncoder()
  const counts = new Map<string, number>()
  for (const m of CORPUS.replace(/\s+/g, ' ').matchAll(real ? O200K_SPLIT : SPLIT)) {
    const word = [...enc.encode(m[0])].map((b) => alpha[b]!).join(' ')
    counts.set(word, (counts.get(word) ?? 0) + 1)
  }
  let words = [...counts.entries()].map(([w, c]) => ({ syms: w.split(' '), c }))
  const vocab: Record<string, number> = {}
  alpha.forEach((ch, i) => (vocab[ch] = i))
  const mergeList: string[] = []
  while (mergeList.length < nMerges) {
    const pairs = new Map<string, number>()
    for (const w of words) for (let i = 0; i + 1 < w.syms.length; i++) {
      const k = w.syms[i] + ' ' + w.syms[i + 1]
      pairs.set(k, (pairs.get(k) ?? 0) + w.c)
    }
    let best = ''
    let bestC = 0
    for (const [k, c] of pairs) if (c > bestC || (c === bestC && k < best)) { best = k; bestC = c }
    if (bestC < 2) break
    const [a, b] = best.split(' ') as [string, string]
    mergeList.push(best)
    vocab[a + b] = 256 + mergeList.length - 1
    words = words.map((w) => {
      const s: string[] = []
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) { s.push(a + b); i++ } else s.push(w.syms[i]!)
      }
      return { syms: s, c: w.c }
    })
  }
  const base = 256 + mergeList.length
  const tokenFields = { single_word: false, lstrip: false, normalized: false, special: true }
  const added = real
    ? REAL_SPECIAL_TOKENS.map((t, i) => ({ id: realIds ? t.id : base + i, content: t.content, ...tokenFields, rstrip: t.rstrip }))
    : SPECIAL_TOKENS.map((content, i) => ({ id: base + i, content, ...tokenFields, rstrip: false }))
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: !real }
  const preTokenizer = real
    ? { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: O200K_PATTERN }, behavior: 'Isolated', invert: false }, byteLevel] }
    : byteLevel
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: mergeList },
  }
  const config = {
    add_bos_token: false,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(added.map((t) => [String(t.id), { ...t, id: undefined }])),
    bos_token: '<|endoftext|>',
    eos_token: '<|endoftext|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    chat_template: real ? REAL_CHAT_TEMPLATE : CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: real ? 262144 : 65536,
    tokenizer_class: 'GPT2Tokenizer',
  }
  const idOf = (c: string) => added.find((t) => t.content === c)!.id
  const generation = real
    ? { _from_model_config: true, bos_token_id: idOf('<|endoftext|>'), eos_token_id: [idOf('<|end|>'), idOf('<|endoftext|>')], pad_token_id: idOf('<|endoftext|>') }
    : undefined
  return { tokenizer, config, generation, size: Math.max(base, ...added.map((t) => t.id + 1)) }
}

/** Writes tokenizer.json and tokenizer_config.json (and generation_config.json for 'real') into a checkpoint directory. */
export async function writeTokenizer(dir: string, vocabLimit: number, merges?: number, style: TokenizerStyle = 'small'): Promise<TokenizerFiles> {
  const t = buildTokenizer(vocabLimit, merges, style)
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(t.tokenizer, null, 1) + '\n')
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(t.config, null, 2) + '\n')
  if (t.generation) await writeFile(join(dir, 'generation_config.json'), JSON.stringify(t.generation, null, 2) + '\n')
  return t
}

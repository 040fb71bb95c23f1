// Writes a small byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json with a chat template) in
// the Hugging Face format, for random-weight checkpoints made by `flashcheck model init --tokenizer`.
// Real checkpoints ship their own; this one exists so that tests, benchmarks and demos exercise the same
// tokenizer and chat-template code paths (GPT-2 byte alphabet, pre-tokenizer regex, merges, special tokens).
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Special tokens in Phi-4-mini's chat format. */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|system|>', '<|user|>', '<|assistant|>', '<|end|>'] as const

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
  /** Vocabulary size including the special tokens. */
  size: number
}

/** Learns `merges` BPE merges on the built-in corpus (deterministic: ties break by pair order). */
export function buildTokenizer(vocabLimit: number, merges = 400): TokenizerFiles {
  const specials = SPECIAL_TOKENS.length
  if (vocabLimit < 256 + specials) throw new RangeError(`a byte-level tokenizer needs a vocabulary of at least ${256 + specials}, the model has ${vocabLimit}`)
  const nMerges = Math.max(0, Math.min(merges, vocabLimit - 256 - specials))
  const alpha = byteAlphabet()
  const enc = new TextEncoder()
  const counts = new Map<string, number>()
  for (const m of CORPUS.replace(/\s+/g, ' ').matchAll(SPLIT)) {
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
  const added = SPECIAL_TOKENS.map((content, i) => ({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
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
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 65536,
    tokenizer_class: 'GPT2Tokenizer',
  }
  return { tokenizer, config, size: base + specials }
}

/** Writes tokenizer.json and tokenizer_config.json into a checkpoint directory. */
export async function writeTokenizer(dir: string, vocabLimit: number, merges?: number): Promise<TokenizerFiles> {
  const t = buildTokenizer(vocabLimit, merges)
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(t.tokenizer, null, 1) + '\n')
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(t.config, null, 2) + '\n')
  return t
}

"""Byte-level BPE in the Hugging Face tokenizer.json format (GPT-2 byte alphabet and pre-tokenizer split),
learnt on the weld-note corpus, with the chat template of `flashcheck model init --tokenizer`.

The daemon tokenizes with @huggingface/tokenizers; encode() here must give the same ids for the same text
(test/train/tokenizer.test.ts compares them on every held-out and hand-written note).
"""
import json
import os
import re

SPECIAL_TOKENS = ['<|endoftext|>', '<|system|>', '<|user|>', '<|assistant|>', '<|end|>']
# Same text as daemon/model/tokenizer-init.ts CHAT_TEMPLATE (Phi-4-mini's format, reduced).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>' + message['content'] + '<|end|>' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] + '<|end|>' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

# GPT-2's split. Python's re has no \p{L}/\p{N}: [^\W\d_] is a letter, \d a digit, and (?:[^\s\w]|_) is
# "neither space, letter nor digit" (exact for ASCII, which is what notes are written in).
SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def pretokenize(text):
    return SPLIT.findall(text)


def byte_alphabet():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    out = [''] * 256
    for b, c in zip(bs, cs):
        out[b] = chr(c)
    return out


ALPHA = byte_alphabet()


def to_symbols(word):
    return [ALPHA[b] for b in word.encode('utf-8')]


def train(texts, vocab_size):
    """Learns merges until vocab_size (bytes + merges + special tokens); ties break by pair order."""
    counts = {}
    for t in texts:
        for w in pretokenize(t):
            counts[w] = counts.get(w, 0) + 1
    words = [[to_symbols(w), c] for w, c in counts.items()]
    merges = []
    n_merges = vocab_size - 256 - len(SPECIAL_TOKENS)
    while len(merges) < n_merges:
        pairs = {}
        for syms, c in words:
            for i in range(len(syms) - 1):
                k = (syms[i], syms[i + 1])
                pairs[k] = pairs.get(k, 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda k: (-pairs[k], k))
        if pairs[best] < 2:
            break
        merges.append(best)
        a, b = best
        for w in words:
            if len(w[0]) >= 2:
                w[0] = merge_pair(w[0], a, b)
    return merges


def merge_pair(syms, a, b):
    """The symbols with every adjacent (a, b), left to right, joined into one."""
    out = []
    i = 0
    while i < len(syms):
        if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(syms[i])
            i += 1
    return out


class Tokenizer:
    def __init__(self, vocab, merges, specials):
        self.vocab = vocab
        self.ranks = {tuple(m.split(' ')): i for i, m in enumerate(merges)}
        self.specials = specials  # content -> id
        self.inv = {i: s for s, i in vocab.items()}
        self.inv.update({i: s for s, i in specials.items()})
        self.cache = {}
        self.special_re = re.compile('(' + '|'.join(re.escape(s) for s in specials) + ')')

    @classmethod
    def load(cls, d):
        with open(os.path.join(d, 'tokenizer.json')) as f:
            tj = json.load(f)
        merges = [m if isinstance(m, str) else ' '.join(m) for m in tj['model']['merges']]
        return cls(tj['model']['vocab'], merges, {t['content']: t['id'] for t in tj['added_tokens']})

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = to_symbols(word)
        while len(syms) > 1:
            best = None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            syms = merge_pair(syms, syms[best[1]], syms[best[1] + 1])
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece in self.special_re.split(text):
            if not piece:
                continue
            if piece in self.specials:
                ids.append(self.specials[piece])
                continue
            for w in pretokenize(piece):
                ids.extend(self.bpe(w))
        return ids

    def decode(self, ids):
        s = ''.join(self.inv[i] for i in ids)
        back = {c: b for b, c in enumerate(ALPHA)}
        return bytes(back[ch] for ch in s if ch in back).decode('utf-8', errors='replace')


def render(system, user):
    """The chat template with a generation prompt (what the daemon's ChatTokenizer.render produces)."""
    return (f'<|system|>{system}<|end|>' if system else '') + f'<|user|>{user}<|end|><|assistant|>'


def write(d, merges):
    vocab = {ch: i for i, ch in enumerate(ALPHA)}
    for i, (a, b) in enumerate(merges):
        vocab[a + b] = 256 + i
    base = 256 + len(merges)
    added = [{'id': base + i, 'content': c, 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': True} for i, c in enumerate(SPECIAL_TOKENS)]
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    tj = {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added, 'normalizer': None,
        'pre_tokenizer': byte_level, 'post_processor': byte_level, 'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': vocab, 'merges': [f'{a} {b}' for a, b in merges]},
    }
    cfg = {
        'add_bos_token': False, 'add_eos_token': False,
        'added_tokens_decoder': {str(t['id']): {k: v for k, v in t.items() if k != 'id'} for t in added},
        'bos_token': '<|endoftext|>', 'eos_token': '<|endoftext|>', 'pad_token': '<|endoftext|>', 'unk_token': None,
        'chat_template': CHAT_TEMPLATE, 'clean_up_tokenization_spaces': False, 'model_max_length': 65536,
        'tokenizer_class': 'GPT2Tokenizer',
    }
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'tokenizer.json'), 'w') as f:
        json.dump(tj, f, indent=1, ensure_ascii=False)
        f.write('\n')
    with open(os.path.join(d, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')
    return Tokenizer(vocab, [f'{a} {b}' for a, b in merges], {t['content']: t['id'] for t in added})

// An independent check of a quantized checkpoint against its float source: a pure-Python quantizer
// (python3 is there wherever node-gyp built the addon) that follows the format definition (float32 by
// struct/array rounding, f16 by struct's 'e', roundf by hand), decides on its own which tensors are
// quantized, and compares every byte of the quantized checkpoint with what it computes.
import { spawnSync } from 'node:child_process'

const SCRIPT = String.raw`
import json, math, os, struct, sys
from array import array

def load(d):
    idx = os.path.join(d, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(idx))['weight_map'].values())) if os.path.exists(idx) else ['model.safetensors']
    out = {}
    for f in files:
        b = open(os.path.join(d, f), 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        h = json.loads(b[8:8 + n])
        for k, v in h.items():
            if k == '__metadata__':
                continue
            s, e = v['data_offsets']
            out[k] = (v['dtype'], v['shape'], b[8 + n + s:8 + n + e])
    return out

def f32s(dt, raw):
    a = array('f')
    if dt == 'F32':
        a.frombytes(raw)
    elif dt == 'BF16':
        u = array('H'); u.frombytes(raw)
        a.frombytes(array('I', [x << 16 for x in u]).tobytes())
    else:
        raise SystemExit('unexpected dtype ' + dt)
    return a

def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]

def roundf(v):
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)

def q8(x):
    qs = bytearray(); sc = bytearray()
    for o in range(0, len(x), 32):
        b = x[o:o + 32]
        amax = max(abs(v) for v in b)
        d = f32(amax / 127)
        i = f32(1 / d) if d != 0 else 0.0
        sc += struct.pack('<e', d)
        qs += struct.pack('<32b', *[roundf(f32(v * i)) for v in b])
    return bytes(qs), bytes(sc)

def q4(x):
    qs = bytearray(); sc = bytearray()
    for o in range(0, len(x), 32):
        b = x[o:o + 32]
        amax = 0.0; m = 0.0
        for v in b:
            if amax < abs(v):
                amax = abs(v); m = v
        d = f32(m / -8)
        i = f32(1 / d) if d != 0 else 0.0
        sc += struct.pack('<e', d)
        q = [min(15, math.floor(f32(f32(v * i) + 8.5))) for v in b]
        qs += bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    return bytes(qs), bytes(sc)

src, dst, typ = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
SUFFIXES = ('Wqkv.weight', 'in_proj.weight', 'out_proj.weight', 'fc1.weight', 'fc2.weight')
res = {'q8_0': 0, 'q4_0': 0, 'copied': 0, 'errors': []}
expect_names = set()
for name, (dt, shape, raw) in sorted(src.items()):
    kind = None
    if len(shape) == 2 and shape[1] % 32 == 0:
        if name in ('model.embed_tokens.weight', 'lm_head.weight'):
            kind = 'q8_0'
        elif name.endswith(SUFFIXES):
            kind = typ
    expect_names.add(name)
    if kind is None:
        if dst.get(name) != (dt, shape, raw):
            res['errors'].append(name + ': not copied unchanged')
        res['copied'] += 1
        continue
    sname = name[:-len('.weight')] + '.weight_scale'
    expect_names.add(sname)
    qs, sc = (q8 if kind == 'q8_0' else q4)(f32s(dt, raw))
    want_q = ('I8', [shape[0], shape[1]]) if kind == 'q8_0' else ('U8', [shape[0], shape[1] // 2])
    got, gots = dst.get(name), dst.get(sname)
    if got is None or gots is None:
        res['errors'].append(name + ': missing in the quantized checkpoint'); continue
    if (got[0], got[1]) != want_q:
        res['errors'].append('%s: %s%s, expected %s%s' % (name, got[0], got[1], want_q[0], want_q[1]))
    if (gots[0], gots[1]) != ('F16', [shape[0], shape[1] // 32]):
        res['errors'].append('%s: %s%s' % (sname, gots[0], gots[1]))
    if got[2] != qs:
        k = next(i for i in range(len(qs)) if i >= len(got[2]) or got[2][i] != qs[i])
        res['errors'].append('%s: byte %d differs' % (name, k))
    if gots[2] != sc:
        res['errors'].append(sname + ': scales differ')
    res[kind] += 1
extra = sorted(set(dst) - expect_names)
if extra:
    res['errors'].append('unexpected tensors: ' + ', '.join(extra))
print(json.dumps(res))
`

export interface ReferenceResult {
  q8_0: number
  q4_0: number
  copied: number
  errors: string[]
}

export function pythonQuantCheck(src: string, dst: string, type: string): ReferenceResult {
  const r = spawnSync('python3', ['-c', SCRIPT, src, dst, type], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`python reference failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout) as ReferenceResult
}

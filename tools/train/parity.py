"""Parity of the PyTorch SambaY with the native kernel (and the float64 golden references).

usage: python3 tools/train/parity.py [GOLDEN_DIR | CHECKPOINT_DIR ...] [--tokens-json F] [--perturb X]
For each directory: the PyTorch forward over the case's tokens (inputs.json, or --tokens-json) is compared with
the native kernel's logits (tools/train/kernel_logits.mjs, run with node) and, for golden cases, with
logits_full.f32. --perturb X adds X to the final norm's gains in torch (to show that the check can fail).
Prints one line per directory and a last line `parity max_rel_err X`; exit 1 above 1e-4.
Relative error as the golden cases define it: per row max|Δ| / max|ref|, maximum over rows.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sambay import SambaY  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = 1e-4


def rel_err(got, ref):
    num = (got - ref).abs().amax(dim=-1)
    den = ref.abs().amax(dim=-1).clamp(min=1e-30)
    return float((num / den).max())


def kernel_logits(d, seqs, V):
    with tempfile.TemporaryDirectory() as tmp:
        tj = os.path.join(tmp, 'tokens.json')
        out = os.path.join(tmp, 'logits.f32')
        with open(tj, 'w') as f:
            json.dump(seqs, f)
        subprocess.run(['node', os.path.join(ROOT, 'tools', 'train', 'kernel_logits.mjs'), d, tj, out], check=True)
        with open(out, 'rb') as f:
            flat = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
    rows = []
    at = 0
    for s in seqs:
        n = len(s) * V
        rows.append(flat[at:at + n].reshape(len(s), V))
        at += n
    return rows


def perturbed(m, x):
    if x:
        with torch.no_grad():
            m.model.final_layernorm.weight.add_(x)
    return m


def check(d, seqs=None, perturb=0.0):
    torch.set_default_dtype(torch.float64)
    m = perturbed(SambaY.load(d).double().eval(), perturb)
    golden = seqs is None
    if golden:
        with open(os.path.join(d, 'inputs.json')) as f:
            seqs = [json.load(f)['tokens']]
    V = m.c.V
    with torch.no_grad():
        ours = [m(torch.tensor([s]))[0] for s in seqs]
    # float32 too: what training computes
    m32 = perturbed(SambaY.load(d).eval(), perturb)
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():
        ours32 = [m32(torch.tensor([s]))[0].double() for s in seqs]
    kern = [k.double() for k in kernel_logits(d, seqs, V)]
    e_kernel = max(rel_err(o, k) for o, k in zip(ours, kern))
    e_kernel32 = max(rel_err(o, k) for o, k in zip(ours32, kern))
    res = {'dir': d, 'vs_kernel_f64': e_kernel, 'vs_kernel_f32': e_kernel32}
    ref_path = os.path.join(d, 'logits_full.f32')
    if golden and os.path.exists(ref_path):
        with open(ref_path, 'rb') as f:
            ref = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).double().reshape(len(seqs[0]), V)
        res['vs_reference'] = rel_err(ours[0], ref)
    return res


def main(argv):
    tokens = None
    perturb = 0.0
    if '--perturb' in argv:
        i = argv.index('--perturb')
        perturb = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if '--tokens-json' in argv:
        i = argv.index('--tokens-json')
        with open(argv[i + 1]) as f:
            tokens = json.load(f)
        argv = argv[:i] + argv[i + 2:]
    dirs = argv or sorted(os.path.join(ROOT, '..', 'shared', 'golden', c) for c in os.listdir(os.path.join(ROOT, '..', 'shared', 'golden')))
    worst = 0.0
    for d in dirs:
        r = check(d, tokens, perturb)
        errs = [v for k, v in r.items() if k != 'dir']
        worst = max(worst, *errs)
        print(json.dumps({**r, 'dir': os.path.basename(os.path.normpath(d))}))
    print(f'parity max_rel_err {worst:.3g}')
    return 0 if worst <= TOL else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

"""A PyTorch SambaY (Phi-4-mini-flash) that reads and writes the project's checkpoint format.

Follows ../shared/spec/sambay-architecture.md line by line: the native kernel and this module must compute
the same logits (tools/train/parity.py checks it on the golden cases), so that what is trained here is
exactly what the daemon runs. Full-sequence forward only: training never needs the decode state.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------- safetensors
_DTYPES = {'F32': (torch.float32, 4), 'F16': (torch.float16, 2), 'BF16': (None, 2), 'F64': (torch.float64, 8)}


def read_safetensors(path):
    """name -> float32 tensor; BF16 widened exactly (the 16 bits shifted left by 16)."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        dt = meta['dtype']
        if dt not in _DTYPES:
            raise ValueError(f'{path}: tensor {name}: unsupported dtype {dt}')
        a, b = meta['data_offsets']
        raw = bytearray(data[base + a:base + b])
        if dt == 'BF16':
            t = torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16
            t = t.view(torch.float32)
        else:
            t = torch.frombuffer(raw, dtype=_DTYPES[dt][0]).to(torch.float32) if b > a else torch.zeros(0)
        out[name] = t.reshape(meta['shape']).clone()
    return out


def write_safetensors(path, tensors, dtype='F32'):
    """Writes tensors (name -> tensor) in safetensors format, F32 or BF16 (round to nearest even), atomically."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu()
        # A_log and the lambda vectors stay F32 in BF16 checkpoints, as in the real release.
        keep32 = name.endswith('A_log') or '.lambda_' in name
        if dtype == 'BF16' and not keep32:
            bits = t.view(torch.int32).numpy().astype('<i8')
            raw = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF).astype('<u2').tobytes()
            dt = 'BF16'
        else:
            raw = t.numpy().astype('<f4').tobytes()
            dt = 'F32'
        header[name] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- config
class Config:
    def __init__(self, d):
        self.raw = dict(d)
        if d.get('model_type') != 'phi4flash':
            raise ValueError('config.json: model_type must be "phi4flash"')
        self.H = d['hidden_size']
        self.L = d['num_hidden_layers']
        self.nh = d['num_attention_heads']
        self.nkv = d['num_key_value_heads']
        self.hd = self.H // self.nh
        self.I = d['intermediate_size']
        self.V = d['vocab_size']
        self.W = d['sliding_window']
        self.eps = d.get('layer_norm_eps', 1e-5)
        self.mb = d.get('mb_per_layer', 2)
        self.N = d.get('mamba_d_state', 16)
        self.K = d.get('mamba_d_conv', 4)
        self.E = d.get('mamba_expand', 2)
        self.dt_rank = math.ceil(self.H / 16)
        self.d_inner = self.E * self.H
        if self.mb != 2 or self.L % 4 != 0 or self.nh % 2 or self.nkv % 2 or self.nh % self.nkv:
            raise ValueError('config.json: SambaY needs mb_per_layer 2, layers divisible by 4, even head counts')
        if not d.get('tie_word_embeddings', True):
            raise ValueError('config.json: only tied embeddings are supported')
        self.h = self.L // 2

    def kind(self, i):
        h = self.h
        if i < h:
            return 'mamba' if i % 2 == 0 else 'swa'
        if i == h:
            return 'mamba_mem'
        if i == h + 1:
            return 'full'
        return 'gmu' if i % 2 == 0 else 'cross'


# ---------------------------------------------------------------------------------------------- blocks
class Mamba(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        di, N = c.d_inner, c.N
        self.in_proj = nn.Linear(c.H, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, c.K, groups=di, padding=c.K - 1, bias=True)
        self.x_proj = nn.Linear(di, c.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(c.dt_rank, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, c.H, bias=False)
        # Mamba's dt initialisation: softplus(bias) spread log-uniformly over [1e-3, 1e-1].
        with torch.no_grad():
            dt = torch.exp(torch.rand(di) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, a):
        B, T, _ = a.shape
        c = self.c
        xm, z = self.in_proj(a).chunk(2, dim=-1)
        xc = F.silu(self.conv1d(xm.transpose(1, 2))[..., :T]).transpose(1, 2)  # [B,T,di]
        dbc = self.x_proj(xc)
        delta, Bm, Cm = torch.split(dbc, [c.dt_rank, c.N, c.N], dim=-1)
        dt = F.softplus(self.dt_proj(delta))  # [B,T,di]
        A = -torch.exp(self.A_log)  # [di,N]
        y = selective_scan(xc, dt, A, Bm, Cm) + self.D * xc
        return self.out_proj(y * F.silu(z)), y


class _LinearRecurrence(torch.autograd.Function):
    """h_t = a_t * h_{t-1} + u_t (h_0 = 0) over dim 0 (time-major, so every step touches contiguous memory),
    returning every h_t. A hand-written backward (one reverse loop) instead of autograd through T steps."""

    @staticmethod
    def forward(ctx, a, u):
        hs = torch.empty_like(u)
        hs[0] = u[0]
        for t in range(1, u.shape[0]):
            torch.addcmul(u[t], a[t], hs[t - 1], out=hs[t])
        ctx.save_for_backward(a, hs)
        return hs

    @staticmethod
    def backward(ctx, g):
        a, hs = ctx.saved_tensors
        g = g.contiguous()
        T = g.shape[0]
        gu = torch.empty_like(g)
        gu[T - 1] = g[T - 1]
        for t in range(T - 2, -1, -1):
            torch.addcmul(g[t], gu[t + 1], a[t + 1], out=gu[t])
        ga = torch.zeros_like(a)
        torch.mul(gu[1:], hs[:-1], out=ga[1:])
        return ga, gu


def selective_scan(x, dt, A, Bm, Cm):
    """y_t = C_t · h_t with h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t, h_0 = 0."""
    dA = torch.exp(dt[..., None] * A)  # [B,T,di,N]
    u = (dt * x)[..., None] * Bm[:, :, None, :]  # [B,T,di,N]
    hs = _LinearRecurrence.apply(dA.transpose(0, 1).contiguous(), u.transpose(0, 1).contiguous())
    return torch.einsum('tbdn,btn->btd', hs, Cm)


class DiffAttn(nn.Module):
    """Differential attention: self (sliding or full) or cross (q only, K/V from layer h+1)."""

    def __init__(self, c, i, kind):
        super().__init__()
        self.c, self.i, self.kind = c, i, kind
        q_out = c.nh * c.hd
        out = q_out if kind == 'cross' else q_out + 2 * c.nkv * c.hd
        self.Wqkv = nn.Linear(c.H, out, bias=True)
        self.out_proj = nn.Linear(c.nh * c.hd, c.H, bias=True)
        self.inner_cross_attn = nn.Module()
        for n in ('lambda_q1', 'lambda_k1', 'lambda_q2', 'lambda_k2'):
            setattr(self.inner_cross_attn, n, nn.Parameter(torch.randn(c.hd) * 0.1))
        self.inner_cross_attn.subln = nn.Module()
        self.inner_cross_attn.subln.weight = nn.Parameter(torch.ones(2 * c.hd))
        self.lambda_init = 0.8 - 0.6 * math.exp(-0.3 * i)

    def forward(self, a, kv=None):
        c = self.c
        B, T, _ = a.shape
        qkv = self.Wqkv(a)
        q = qkv[..., :c.nh * c.hd].reshape(B, T, c.nh, c.hd)
        if self.kind == 'cross':
            k, v = kv
        else:
            k = qkv[..., c.nh * c.hd:(c.nh + c.nkv) * c.hd].reshape(B, T, c.nkv, c.hd)
            v = qkv[..., (c.nh + c.nkv) * c.hd:].reshape(B, T, c.nkv, c.hd)
        r = c.nh // c.nkv
        q1, q2 = q[:, :, 0::2], q[:, :, 1::2]  # [B,T,nh/2,hd]
        k1 = k[:, :, 0::2].repeat_interleave(r, dim=2)
        k2 = k[:, :, 1::2].repeat_interleave(r, dim=2)
        vv = torch.cat([v[:, :, 0::2], v[:, :, 1::2]], dim=-1).repeat_interleave(r, dim=2)  # [B,T,nh/2,2hd]
        scale = c.hd ** -0.5
        Tk = k.shape[1]
        tq = torch.arange(T, device=a.device)[:, None]
        tk = torch.arange(Tk, device=a.device)[None, :]
        allowed = tk <= tq
        if self.kind == 'swa':
            allowed = allowed & (tk > tq - c.W)
        neg = torch.finfo(a.dtype).min

        def probs(qq, kk):
            s = torch.einsum('bthd,bshd->bhts', qq, kk) * scale
            return torch.softmax(s.masked_fill(~allowed, neg), dim=-1)

        A1 = torch.einsum('bhts,bshe->bthe', probs(q1, k1), vv)
        A2 = torch.einsum('bhts,bshe->bthe', probs(q2, k2), vv)
        ic = self.inner_cross_attn
        lam = torch.exp((ic.lambda_q1 * ic.lambda_k1).sum()) - torch.exp((ic.lambda_q2 * ic.lambda_k2).sum()) + self.lambda_init
        o = A1 - lam * A2
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-5) * ic.subln.weight * (1 - self.lambda_init)
        out = self.out_proj(o.reshape(B, T, c.nh * c.hd))
        return out, (k, v)


class GMU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.in_proj = nn.Linear(c.H, c.d_inner, bias=False)
        self.out_proj = nn.Linear(c.d_inner, c.H, bias=False)

    def forward(self, a, mem):
        return self.out_proj(mem * F.silu(self.in_proj(a)))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.I = c.I
        self.fc1 = nn.Linear(c.H, 2 * c.I, bias=False)
        self.fc2 = nn.Linear(c.I, c.H, bias=False)

    def forward(self, x):
        u = self.fc1(x)
        return self.fc2(u[..., self.I:] * F.silu(u[..., :self.I]))


class Layer(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        self.kind = c.kind(i)
        self.input_layernorm = nn.LayerNorm(c.H, eps=c.eps)
        self.post_attention_layernorm = nn.LayerNorm(c.H, eps=c.eps)
        if self.kind in ('mamba', 'mamba_mem'):
            self.attn = Mamba(c)
        elif self.kind == 'gmu':
            self.attn = GMU(c)
        else:
            self.attn = DiffAttn(c, i, self.kind)
        self.mlp = MLP(c)


class SambaY(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = config if isinstance(config, Config) else Config(config)
        self.c = c
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(c.V, c.H)
        self.model.layers = nn.ModuleList([Layer(c, i) for i in range(c.L)])
        self.model.final_layernorm = nn.LayerNorm(c.H, eps=c.eps)

    def init_weights(self, seed, std=0.02):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        fresh = SambaY(self.c)  # module defaults (dt bias, A_log, D) under this seed
        self.load_state_dict(fresh.state_dict())
        for name, p in self.named_parameters():
            if name.endswith('.weight') and p.dim() == 2:
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                    if name.endswith('out_proj.weight') or name.endswith('fc2.weight'):
                        p.mul_(1 / math.sqrt(2 * self.c.L))
            elif name.endswith('Wqkv.bias') or name.endswith('out_proj.bias'):
                with torch.no_grad():
                    p.zero_()
        return self

    def forward(self, tokens):
        """tokens [B,T] long -> logits [B,T,V]."""
        x = self.model.embed_tokens(tokens)
        mem = None
        kv = None
        for layer in self.model.layers:
            a = layer.input_layernorm(x)
            if layer.kind in ('mamba', 'mamba_mem'):
                out, y = layer.attn(a)
                if layer.kind == 'mamba_mem':
                    mem = y
            elif layer.kind == 'gmu':
                out = layer.attn(a, mem)
            elif layer.kind == 'cross':
                out, _ = layer.attn(a, kv)
            else:
                out, kvs = layer.attn(a)
                if layer.kind == 'full':
                    kv = kvs
            x = x + out
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = self.model.final_layernorm(x)
        return x @ self.model.embed_tokens.weight.t()

    # --------------------------------------------------------------------------------------- checkpoint I/O
    def checkpoint_tensors(self):
        return {k: v for k, v in self.state_dict().items()}

    @classmethod
    def load(cls, d):
        with open(os.path.join(d, 'config.json')) as f:
            cfg = json.load(f)
        m = cls(cfg)
        idx = os.path.join(d, 'model.safetensors.index.json')
        tensors = {}
        if os.path.exists(idx):
            with open(idx) as f:
                for shard in sorted(set(json.load(f)['weight_map'].values())):
                    tensors.update(read_safetensors(os.path.join(d, shard)))
        else:
            tensors = read_safetensors(os.path.join(d, 'model.safetensors'))
        tensors.pop('lm_head.weight', None)
        own = m.state_dict()
        missing = sorted(set(own) - set(tensors))
        extra = sorted(set(tensors) - set(own))
        if missing or extra:
            raise ValueError(f'{d}: tensors missing {missing[:5]} unexpected {extra[:5]}')
        for k, v in tensors.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise ValueError(f'{d}: tensor {k} has shape {list(v.shape)}, config wants {list(own[k].shape)}')
        m.load_state_dict(tensors)
        return m

    def save(self, d, dtype='F32'):
        os.makedirs(d, exist_ok=True)
        cfg = dict(self.c.raw)
        cfg['torch_dtype'] = 'bfloat16' if dtype == 'BF16' else 'float32'
        # Weights first, each file replaced atomically: a daemon loading meanwhile sees whole files.
        write_safetensors(os.path.join(d, 'model.safetensors'), self.checkpoint_tensors(), dtype)
        tmp = os.path.join(d, 'config.json.tmp')
        with open(tmp, 'w') as f:
            json.dump(cfg, f, indent=2)
            f.write('\n')
        os.replace(tmp, os.path.join(d, 'config.json'))

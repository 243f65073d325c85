"""SpikeGPT over a whole sequence at once, with surrogate gradients, for training.

The same block as spike2loihi.model.reference, applied to [B, T] tokens: token shift is
a one-step pad along time, WKV is the same recurrence stepped over T, the LIFs are
multi-step over T with spikingjelly's ATan surrogate (alpha 2). Parameter names
are SpikeGPT's checkpoint keys, so `state_dict()` is a SpikeGPT checkpoint.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from spike2loihi.model.spec import ModelConfig, Semantics
from spike2loihi.model.reference import LN_EPS, PP_INIT, wkv_step


class ATanSpike(torch.autograd.Function):
    """Heaviside forward (x >= 0); ATan surrogate backward, as spikingjelly's ATan(alpha=2)."""

    alpha = 2.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        a = ATanSpike.alpha
        return grad * (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)


def multistep_lif(x: torch.Tensor):
    """LIF (tau 2, threshold 1, hard reset) over dim 1 of [B, T, C]; returns spikes."""
    v = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        v = v + (x[:, t] - v) / 2.0
        s = ATanSpike.apply(v - 1.0)
        v = (1.0 - s) * v  # hard reset to 0; gradient flows through the reset as in spikingjelly
        out.append(s)
    return torch.stack(out, dim=1)


def wkv_sequence(time_decay, time_first, k, v):
    """The WKV recurrence of the reference over [B, T, C], from the zero state."""
    w = -torch.exp(time_decay)
    u = time_first
    B, T, C = k.shape
    aa = torch.zeros(B, C, dtype=k.dtype, device=k.device)
    bb = torch.zeros_like(aa)
    pp = torch.full_like(aa, PP_INIT)
    out = []
    for t in range(T):
        wkv, aa, bb, pp = wkv_step(u, w, k[:, t], v[:, t], aa, bb, pp)
        out.append(wkv)
    return torch.stack(out, dim=1)


def _shift(x):
    return F.pad(x, (0, 0, 1, -1))  # x[t-1], zeros at t = 0


class TimeMix(nn.Module):
    def __init__(self, C, layer, n_layer):
        super().__init__()
        r01 = layer / max(n_layer - 1, 1)
        r10 = 1.0 - layer / n_layer
        pos = torch.arange(C, dtype=torch.float32) / C
        h = torch.arange(C, dtype=torch.float32) / max(C - 1, 1)
        self.time_decay = nn.Parameter(-5 + 8 * h ** (0.7 + 1.3 * r01))
        zigzag = torch.tensor([(i + 1) % 3 - 1 for i in range(C)], dtype=torch.float32) * 0.5
        self.time_first = nn.Parameter(torch.full((C,), math.log(0.3)) + zigzag)
        self.time_mix_k = nn.Parameter(pos.pow(r10).view(1, 1, C))
        self.time_mix_v = nn.Parameter((pos.pow(r10) + 0.3 * r01).view(1, 1, C))
        self.time_mix_r = nn.Parameter(pos.pow(0.5 * r10).view(1, 1, C))
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)

    def forward(self, h, out_scale=1.0):
        xx = _shift(h)
        xk = h * self.time_mix_k + xx * (1 - self.time_mix_k)
        xv = h * self.time_mix_v + xx * (1 - self.time_mix_v)
        xr = h * self.time_mix_r + xx * (1 - self.time_mix_r)
        r = torch.sigmoid(self.receptance(xr))
        wkv = wkv_sequence(self.time_decay, self.time_first, self.key(xk), self.value(xv))
        return F.linear(r * wkv, self.output.weight / out_scale)


class ChannelMix(nn.Module):
    def __init__(self, C, layer, n_layer):
        super().__init__()
        r10 = 1.0 - layer / n_layer
        pos = torch.arange(C, dtype=torch.float32) / C
        self.time_mix_k = nn.Parameter(pos.pow(r10).view(1, 1, C))
        self.time_mix_r = nn.Parameter(pos.pow(r10).view(1, 1, C))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)

    def forward(self, h, out_scale=1.0):
        xx = _shift(h)
        xk = h * self.time_mix_k + xx * (1 - self.time_mix_k)
        xr = h * self.time_mix_r + xx * (1 - self.time_mix_r)
        k = torch.square(torch.relu(self.key(xk)))
        return torch.sigmoid(self.receptance(xr)) * F.linear(k, self.value.weight / out_scale)


class Block(nn.Module):
    def __init__(self, C, layer, n_layer, dropout):
        super().__init__()
        self.layer = layer
        if layer == 0:
            self.ln0 = nn.LayerNorm(C, eps=LN_EPS)
        self.ln1 = nn.LayerNorm(C, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(C, eps=LN_EPS)
        self.att = TimeMix(C, layer, n_layer)
        self.ffn = ChannelMix(C, layer, n_layer)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, sem: Semantics, spikes: list):
        if self.layer == 0:
            x = self.ln0(x)
        div = sem.weight_divisor(self.layer)
        s_att = multistep_lif(self.att(self.ln1(x), div))
        x = x + s_att
        s_ffn = multistep_lif(self.ffn(self.ln2(x), div))
        x = x + s_ffn
        spikes.append((s_att, s_ffn))
        x = self.drop(x)
        if sem.halves_after(self.layer):
            x = x / 2
        return x


class SequenceModel(nn.Module):
    """SpikeGPT in parallel (sequence) mode; `forward(idx)` gives logits [B, T, V]."""

    def __init__(self, cfg: ModelConfig, semantics: Semantics = None, dropout: float = 0.0):
        super().__init__()
        self.config = cfg
        self.semantics = semantics or Semantics.named("train", cfg.vocab_size)
        C = cfg.n_embd
        self.emb = nn.Embedding(cfg.vocab_size, C)
        self.blocks = nn.ModuleList(Block(C, i, cfg.n_layer, dropout) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(C, eps=LN_EPS)
        self.head = nn.Linear(C, cfg.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self):
        """RWKV-style: orthogonal projections, zero key/receptance/output, tiny embedding."""
        C, V = self.config.n_embd, self.config.vocab_size
        with torch.no_grad():
            nn.init.normal_(self.emb.weight, std=1e-2)
            nn.init.orthogonal_(self.head.weight, gain=0.5 * math.sqrt(max(V / C, 1.0)))
            for b in self.blocks:
                for lin in (b.att.value, b.ffn.key):
                    gain = math.sqrt(lin.weight.shape[0] / lin.weight.shape[1]) if lin.weight.shape[0] > lin.weight.shape[1] else 1.0
                    nn.init.orthogonal_(lin.weight, gain=gain)
                # Small non-zero starts let spikes (and so gradients beyond the surrogate) appear early.
                for lin in (b.att.key, b.att.receptance, b.att.output, b.ffn.receptance, b.ffn.value):
                    nn.init.normal_(lin.weight, std=0.02)

    def forward(self, idx: torch.Tensor, return_spikes: bool = False):
        sem = self.semantics
        x = self.emb(idx)
        if sem.binary_embedding:
            x = ATanSpike.apply(x)
        spikes = []
        for b in self.blocks:
            x = b(x, sem, spikes)
        logits = self.head(self.ln_out(x))
        if return_spikes:
            att = torch.stack([s[0] for s in spikes], dim=2)  # [B, T, L, C]
            ffn = torch.stack([s[1] for s in spikes], dim=2)
            return logits, att, ffn
        return logits


class L2Wrap(torch.autograd.Function):
    """Identity on the loss; adds a small gradient pushing the largest logit towards 0 (SpikeGPT)."""

    @staticmethod
    def forward(ctx, loss, y):
        ctx.save_for_backward(y)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        factor = 1e-4 / (y.shape[0] * y.shape[1])
        maxx, ids = torch.max(y, -1, keepdim=True)
        gy = torch.zeros_like(y)
        gy.scatter_(-1, ids, maxx * factor)
        return grad_output, gy


def from_spec(spec, semantics: Semantics = None, dtype=torch.float32) -> SequenceModel:
    """A SequenceModel holding a loaded checkpoint's weights (upcast to `dtype`)."""
    model = SequenceModel(spec.config, semantics or spec.semantics("train"))
    model.load_state_dict({k: v.to(dtype) for k, v in spec.tensors.items()})
    return model.to(dtype).eval()

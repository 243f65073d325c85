"""Float reference: SpikeGPT in RNN mode, one token at a time, in fp32.

This is the ground truth every quantized backend is compared with. It computes
what the official `src/model_run.py` computes, operation for operation and in
the same order (so the same fp32 roundings), quirks included; see
shared/SPIKEGPT.md for the equations this file transcribes.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, fields
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from spike2loihi.model.spec import ModelSpec, Semantics

LN_EPS = 1e-5
PP_INIT = -1e30


@dataclass
class RNNState:
    """Everything a SpikeGPT carries from one token to the next, per layer [L, C]."""

    att_shift: torch.Tensor  # xa: LN1 output of the previous token
    ffn_shift: torch.Tensor  # xf: LN2 output of the previous token
    aa: torch.Tensor  # WKV numerator
    bb: torch.Tensor  # WKV denominator
    pp: torch.Tensor  # WKV running max (log scale)
    v_att: torch.Tensor  # membrane potential of the LIF after att.output
    v_ffn: torch.Tensor  # membrane potential of the LIF after the FFN
    position: int = 0  # tokens consumed so far

    @classmethod
    def zeros(cls, n_layer: int, n_embd: int) -> "RNNState":
        z = lambda: torch.zeros(n_layer, n_embd, dtype=torch.float32)  # noqa: E731
        pp = torch.full((n_layer, n_embd), PP_INIT, dtype=torch.float32)
        return cls(z(), z(), z(), z(), pp, z(), z(), 0)

    def clone(self) -> "RNNState":
        return RNNState(**{f.name: (getattr(self, f.name).clone() if f.name != "position" else self.position)
                           for f in fields(self)})

    def to_dict(self) -> Dict[str, object]:
        """Plain tensors (and an int), loadable with torch.load(weights_only=True)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d) -> "RNNState":
        return cls(**{f.name: d[f.name] for f in fields(cls)}).clone()


def lif_step(v: torch.Tensor, x: torch.Tensor):
    """spikingjelly LIFNode (tau 2, decay_input, v_th 1, hard reset to 0), one step.

    Returns (spike, new v). Written as spikingjelly writes it, so roundings match.
    """
    v = v + (x - v) / 2.0
    spike = (v - 1.0 >= 0).to(x.dtype)
    v = (1.0 - spike) * v + spike * 0.0
    return spike, v


def wkv_step(time_first, time_decay, k, v, aa, bb, pp):
    """One WKV step in log-sum-exp form; time_decay is already -exp(raw).

    Returns (wkv, aa, bb, pp): the output for this token and the state for the next.
    """
    ww = time_first + k
    p = torch.maximum(pp, ww)
    e1 = torch.exp(pp - p)
    e2 = torch.exp(ww - p)
    num = e1 * aa + e2 * v
    den = e1 * bb + e2
    ww = pp + time_decay
    p = torch.maximum(ww, k)
    e1 = torch.exp(ww - p)
    e2 = torch.exp(k - p)
    return num / den, e1 * aa + e2 * v, e1 * bb + e2, p


def _prepare_weights(spec: ModelSpec, sem: Semantics):
    """Upcast to fp32 the way model_run.py does: rescale in the stored dtype first."""
    cfg = spec.config
    t = spec.tensors
    f32 = lambda name: t[name].float()  # noqa: E731
    w = types.SimpleNamespace()
    w.emb = f32("emb.weight")
    w.ln0 = (f32("blocks.0.ln0.weight"), f32("blocks.0.ln0.bias"))
    w.ln_out = (f32("ln_out.weight"), f32("ln_out.bias"))
    w.head = f32("head.weight")
    w.blocks = []
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        div = sem.weight_divisor(i)  # divide in the stored dtype, then upcast, as model_run.py
        scaled = lambda name: (t[name] / div).float() if div != 1 else f32(name)  # noqa: E731  (x/1 == x)
        b = types.SimpleNamespace()
        b.ln1 = (f32(p + "ln1.weight"), f32(p + "ln1.bias"))
        b.ln2 = (f32(p + "ln2.weight"), f32(p + "ln2.bias"))
        b.time_decay = -torch.exp(t[p + "att.time_decay"].squeeze().float())
        b.time_first = t[p + "att.time_first"].squeeze().float()
        b.att_mix = [t[p + f"att.time_mix_{m}"].squeeze().float() for m in "kvr"]
        b.att_k = f32(p + "att.key.weight")
        b.att_v = f32(p + "att.value.weight")
        b.att_r = f32(p + "att.receptance.weight")
        b.att_o = scaled(p + "att.output.weight")
        b.ffn_mix = [t[p + f"ffn.time_mix_{m}"].squeeze().float() for m in "kr"]
        b.ffn_k = f32(p + "ffn.key.weight")
        b.ffn_r = f32(p + "ffn.receptance.weight")
        b.ffn_v = scaled(p + "ffn.value.weight")
        w.blocks.append(b)
    return w


@dataclass
class StepOutput:
    logits: torch.Tensor  # [V] float32
    att_spikes: torch.Tensor  # [L, C] float32 0/1
    ffn_spikes: torch.Tensor  # [L, C] float32 0/1


class ReferenceModel:
    """SpikeGPT RNN mode in fp32. `step` advances a state in place."""

    def __init__(self, spec: ModelSpec, semantics: Optional[Semantics] = None, probe=None):
        self.spec = spec
        self.config = spec.config
        self.semantics = semantics or spec.semantics("run")
        self.w = _prepare_weights(spec, self.semantics)
        # probe(layer, name, tensor): sees the inputs of both LIFs and of att.output (calibration)
        self.probe = probe or (lambda layer, name, t: None)

    def initial_state(self) -> RNNState:
        return RNNState.zeros(self.config.n_layer, self.config.n_embd)

    def _ln(self, x, wb):
        return F.layer_norm(x, (self.config.n_embd,), weight=wb[0], bias=wb[1], eps=LN_EPS)

    @torch.inference_mode()
    def step(self, token: int, state: RNNState) -> StepOutput:
        w, sem, L = self.w, self.semantics, self.config.n_layer
        att_spikes = torch.empty(L, self.config.n_embd)
        ffn_spikes = torch.empty(L, self.config.n_embd)

        x = w.emb[token]
        if sem.binary_embedding:
            x = (x >= 0).to(x.dtype)  # Heaviside forward of the ATan surrogate
        x = self._ln(x, w.ln0)
        for i, b in enumerate(w.blocks):
            # time mix (SRWKV)
            h = self._ln(x, b.ln1)
            mk, mv, mr = b.att_mix
            xa = state.att_shift[i]
            xk = h * mk + xa * (1 - mk)
            xv = h * mv + xa * (1 - mv)
            xr = h * mr + xa * (1 - mr)
            state.att_shift[i] = h
            r = torch.sigmoid(b.att_r @ xr)
            k = b.att_k @ xk
            v = b.att_v @ xv
            wkv, state.aa[i], state.bb[i], state.pp[i] = wkv_step(
                b.time_first, b.time_decay, k, v, state.aa[i], state.bb[i], state.pp[i])
            y = r * wkv
            a = b.att_o @ y
            self.probe(i, "att.output.in", y)
            self.probe(i, "att.lif.in", a)
            s, state.v_att[i] = lif_step(state.v_att[i], a)
            att_spikes[i] = s
            x = x + s

            # channel mix (SRFFN)
            h = self._ln(x, b.ln2)
            fk, fr = b.ffn_mix
            xf = state.ffn_shift[i]
            xk = h * fk + xf * (1 - fk)
            xr = h * fr + xf * (1 - fr)
            state.ffn_shift[i] = h
            r = torch.sigmoid(b.ffn_r @ xr)
            kk = torch.square(torch.relu(b.ffn_k @ xk))
            a = r * (b.ffn_v @ kk)
            self.probe(i, "ffn.lif.in", a)
            s, state.v_ffn[i] = lif_step(state.v_ffn[i], a)
            ffn_spikes[i] = s
            x = x + s
            if sem.halves_after(i):
                x = x / 2

        x = self._ln(x, w.ln_out)
        logits = (w.head @ x).float()
        state.position += 1
        return StepOutput(logits, att_spikes, ffn_spikes)

    def forward_tokens(self, tokens: List[int], state: Optional[RNNState] = None, keep=("logits",)):
        """Teacher-forced pass over `tokens`. Returns (dict of stacked outputs, state)."""
        state = state if state is not None else self.initial_state()
        outs = {k: [] for k in keep}
        for tok in tokens:
            o = self.step(int(tok), state)
            for k in keep:
                outs[k].append(getattr(o, k))
        stacked = {k: (torch.stack(v) if v else torch.empty(0)) for k, v in outs.items()}
        return stacked, state

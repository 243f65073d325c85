"""The float work done on the host, one numpy function per op.

This is the only place where the converted model's host arithmetic is
written: the whole-model emulator (`spike2loihi.execute.model_emulator`) and the Lava host
ProcessModels call these same functions, so the two cannot drift apart by a
single float rounding. Everything is float32 on arrays of shape (batch, n);
a Lava host process runs batch 1 through the same code. Reductions run along
the last, contiguous axis, where numpy sums each row the same way whatever
the batch size.

Crossings to and from the chip are here too:

* `encode_dynamic`: a host value to a graded payload with a per-token scale
  (max |x| maps to the largest payload), for chip Dense layers whose consumer
  is a host op; the scale travels host->host to the decoder.
* `encode_static`: with a calibrated scale, for inputs that end on an
  on-chip LIF (Wo's input, the ffn LIF's input); values beyond it clip.
* `decode`: a Dense accumulation back to float: acc * row_scale * token_scale.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from spike2loihi.errors import HostNumericsError

F32 = np.float32
PP_INIT = F32(-1e30)


def embed(table: np.ndarray, tokens: np.ndarray, binary: bool) -> np.ndarray:
    x = table[np.asarray(tokens, dtype=np.int64)]
    return (x >= 0).astype(F32) if binary else x.astype(F32, copy=True)


def layernorm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True, dtype=F32)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True, dtype=F32)
    return xc / np.sqrt(var + F32(eps)) * weight + bias


def mix(x: np.ndarray, prev: np.ndarray, m: np.ndarray) -> np.ndarray:
    return x * m + prev * (F32(1) - m)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return F32(1) / (F32(1) + np.exp(-x))


def relu2(x: np.ndarray) -> np.ndarray:
    r = np.maximum(x, F32(0))
    return r * r


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a * b


def residual(x: np.ndarray, s: np.ndarray, halve: bool) -> np.ndarray:
    y = x + s
    return y * F32(0.5) if halve else y


def wkv(k, v, aa, bb, pp, time_first, time_decay):
    """One WKV step (SPIKEGPT.md); time_decay is already -exp(raw). Returns (wkv, aa, bb, pp)."""
    ww = time_first + k
    p = np.maximum(pp, ww)
    e1 = np.exp(pp - p)
    e2 = np.exp(ww - p)
    out = (e1 * aa + e2 * v) / (e1 * bb + e2)
    ww = pp + time_decay
    p = np.maximum(ww, k)
    e1 = np.exp(ww - p)
    e2 = np.exp(k - p)
    return out, e1 * aa + e2 * v, e1 * bb + e2, p


# ---------------------------------------------------------------------------
# Crossings
# ---------------------------------------------------------------------------
def qmax(bits: int) -> int:
    """Largest magnitude of a signed `bits`-bit payload (symmetric range)."""
    return (1 << (int(bits) - 1)) - 1


def _check_finite(x: np.ndarray, where: str) -> None:
    if not np.isfinite(x).all():
        raise HostNumericsError(f"{where}: non-finite value (NaN or inf) on its way to the chip")


def encode_dynamic(x: np.ndarray, bits: int, where: str = "") -> Tuple[np.ndarray, np.ndarray]:
    """(payload int64, token scale float32 (batch, 1)): q = rint(x * qmax / max|x|) per row."""
    m = np.abs(x).max(axis=-1, keepdims=True)
    _check_finite(m, where)            # a NaN or an inf in a row is its maximum's
    top = F32(qmax(bits))
    safe = np.where(m > 0, m, F32(1))
    y = x * (top / safe)
    np.rint(y, out=y)
    if bits > 22:   # below: |x| * fl(top / m) <= top (1 + 2^-24)^2 < top + 1/2, so rint cannot pass top
        np.clip(y, -top, top, out=y)   # integers in float32: clipping commutes with the conversion
    return y.astype(np.int64), (m / top).astype(F32, copy=False)   # (a zero row: 0 / top = 0)


def encode_static(x: np.ndarray, inv_scale: float, limit: int, where: str = "") -> Tuple[np.ndarray, int]:
    """(payload int64, number clipped): q = clip(rint(x * inv_scale), -limit, limit)."""
    x = np.asarray(x)
    if not x.size:
        return np.zeros(x.shape, np.int64), 0
    ends = np.array([x.max(), x.min()])
    _check_finite(ends, where)         # a NaN or an inf is the maximum's or the minimum's
    inv = F32(inv_scale)
    y = np.rint(x * inv)
    if inv > 0 and np.abs(np.rint(ends * inv)).max() <= limit:
        return y.astype(np.int64), 0   # rint(x * inv) is monotone in x: its extremes are within the limit
    clipped = int(np.count_nonzero(np.abs(y) > limit))
    return np.clip(y, -limit, limit).astype(np.int64), clipped


def decode(acc: np.ndarray, row_scale: np.ndarray, token_scale: np.ndarray) -> np.ndarray:
    """A chip accumulation back to float32: (acc * row_scale) * token_scale, row_scale float32 (as
    `Params.row_scale` holds it)."""
    y = acc.astype(F32)
    y *= row_scale                     # in place: no temporaries
    y *= token_scale
    return y


def spikes_to_float(s: np.ndarray) -> np.ndarray:
    return s.astype(F32)

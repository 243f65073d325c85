"""Integer arithmetic of the ops that `--placement chip` moves onto Loihi (Lava-free).

This is the one place where the on-chip LayerNorm, sigmoid, relu², products and
residual add are written: the whole-model emulator calls these functions, and
the Lava ProcessModels of the chip placement are to call the same ones. Values
are signed integers on a power-of-two grid: `q` stands for `q / 2**frac`, the
frac of every stream is fixed at conversion (a static, calibrated scale).

Each function documents its arithmetic as a Loihi 2 neuron would run it, with
the width of every intermediate. Where a result can leave its width, it is
saturated (LayerNorm, our own process) and counted, or, where the Lava process
it mirrors wraps or grows (`ProdNeuron`'s int32 product, `GradedVec`'s int32
state), computed as Lava does and counted: `counter(key, n)` receives the counts.

Which Lava process each op corresponds to (ONCHIP.md):

* residual add: `GradedVec` (sums its inputs; 24-bit);
* products (r * wkv, r * (Wfv kk)) and relu²: `ProdNeuron`
  (`v = (a1 * a2) >> exp`, int32 product), relu² after `GradedReluVec`;
* LayerNorm: Dense sums for the mean and the variance, and Lava's own `InvSqrt`
  algorithm (24-entry seed table, 5 Newton steps, 12 fraction bits;
  `inv_sqrt` below is that algorithm, tested bit for bit against Lava's);
* sigmoid: a 33-entry piecewise-linear table, which Lava does not have.

LayerNorm and the sigmoid table need a microcoded neuron on a board: unverified.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

Counter = Optional[Callable[[str, int], None]]

I32 = 1 << 31
STATE_BITS = 24                    # GradedVec / ProdNeuron state width
STATE_LIMIT = (1 << (STATE_BITS - 1)) - 1

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values as int32 arithmetic leaves them (two's complement wrap)."""
    return ((x + I32) & (2 * I32 - 1)) - I32


def saturate(x: np.ndarray, bits: int, counter: Counter = None, key: str = "sat") -> np.ndarray:
    """Clip to a signed `bits`-bit range (symmetric), counting the clipped values."""
    top = (1 << (int(bits) - 1)) - 1
    if counter is not None:
        counter(key, int(np.count_nonzero((x > top) | (x < -top))))
    return np.clip(x, -top, top)


def shift(x: np.ndarray, s: int) -> np.ndarray:
    """x >> s (floor) for s >= 0, x << -s for s < 0."""
    return x >> s if s >= 0 else x << -s


def frac_for(max_abs: float, bits: int, margin: float = 1.0, limit: int = 30) -> int:
    """The largest frac with max_abs * margin * 2**frac inside a signed `bits`-bit value."""
    m = float(max_abs) * float(margin)
    if not m > 0 or not math.isfinite(m):
        return limit
    return int(min(limit, math.floor(math.log2(((1 << (bits - 1)) - 1) / m))))


# ---------------------------------------------------------------------------
# Inverse square root: Lava's InvSqrt algorithm (lava.proc.graded.models)
# ---------------------------------------------------------------------------
INV_SQRT_FRAC = 12
INV_SQRT_ITERS = 5
INV_SQRT_BITS = 24


def inv_sqrt_table(frac: int = INV_SQRT_FRAC) -> np.ndarray:
    """The 24-entry seed table, indexed by the count of leading zeros in 24 bits."""
    n_adj = 1.238982962
    table = np.zeros(INV_SQRT_BITS, dtype=np.int64)
    for m in range(INV_SQRT_BITS):
        table[INV_SQRT_BITS - m - 1] = 2 * int(2 ** frac / (2 ** ((m - frac) / 2) * n_adj))
    return table


_TABLE = inv_sqrt_table()


def inv_sqrt(s: np.ndarray, iters: int = INV_SQRT_ITERS, frac: int = INV_SQRT_FRAC) -> np.ndarray:
    """y ~ 2**frac / sqrt(s / 2**frac) for integers 1 <= s < 2**24, as Lava's `inv_sqrt`:
    seed Y from the leading-zero count, then `iters` Newton steps
    b <- ((b*Y >> f+1) * Y) >> f+1;  Y <- 3 << f - b;  y <- (y*Y) >> f+1."""
    s = np.asarray(s, dtype=np.int64)
    if s.size and (int(s.min()) < 1 or int(s.max()) >= 1 << INV_SQRT_BITS):
        raise ValueError(f"inv_sqrt: inputs must lie in 1..2**{INV_SQRT_BITS}-1")
    table = _TABLE if frac == INV_SQRT_FRAC else inv_sqrt_table(frac)
    msb = np.floor(np.log2(s.astype(np.float64))).astype(np.int64)   # exact below 2**24
    Y = table[INV_SQRT_BITS - (msb + 1)]
    y = Y // 2
    b = s.copy()
    for _ in range(iters):
        b = (((b * Y) >> (frac + 1)) * Y) >> (frac + 1)
        Y = (3 << frac) - b
        y = (y * Y) >> (frac + 1)
    return y


# ---------------------------------------------------------------------------
# LayerNorm
# ---------------------------------------------------------------------------
LN_IN_BITS = 16        # the centred input q1
LN_NORM_FRAC = 14      # n = z / sqrt(C) * 2**14, |n| <= 2**14 (|z| <= sqrt(C) for any vector)
LN_GAMMA_BITS = 16
V_MIN = 1 << 6         # the variance register's floor: plays eps's role, keeps y <= 2**15
V_TARGET = 1 << 15     # V at the calibrated maximum: Lava's InvSqrt is within 0.25% on 2**6..2**15


def ln_fixed_shifts(C: int) -> dict:
    """The shifts of the LayerNorm datapath that depend on the width C only."""
    logc = max(0, math.ceil(math.log2(C)))
    b_sq = (31 - logc) // 2                 # |c3| < 2**b_sq: sum over C of c3**2 stays in int32
    return {"s1": logc + 1, "b_sq": b_sq, "s_sq": max(0, LN_IN_BITS - 1 - b_sq)}


def layernorm(q: np.ndarray, p: dict, gamma: np.ndarray, beta: np.ndarray, counter: Counter = None) -> np.ndarray:
    """LayerNorm of rows q (int64 (batch, C)) into `p["out_bits"]`-bit integers at `p["out_frac"]`.

    Per token, per population of C neurons (widths in brackets):

        q1 = sat16(q >> s0)                          [16]  input on the LN grid
        S  = sum(q1)                                 [32]  a Dense with unit weights
        c  = C*q1 - S                                [32]  centred, times C (exact)
        c2 = c >> s1,  s1 = ceil(log2 C) + 1         [16]
        c3 = c2 >> s_sq                              [b_sq] so that sum(c3^2) fits int32
        V  = clip(sum(c3^2) >> s2, V_MIN, 2^24 - 1)  [24]  s2 even
        y  = inv_sqrt(V)                             [16]  Lava's InvSqrt, 12 fraction bits
        n  = sat16((c2 * y) >> s3)                   [16]  n = z / sqrt(C) * 2^14
        out = sat((n * gamma_q) >> s4 + beta_q)      [out_bits]

    with z = (x - mean) / std; gamma_q = round(gamma * sqrt(C) * 2^(out_frac + s4 - 14)),
    beta_q = round(beta * 2^out_frac). The variance floor V_MIN stands in for eps.
    """
    C = q.shape[-1]
    q1 = saturate(shift(q, p["s0"]), LN_IN_BITS, counter, "ln_in_sat")
    S = q1.sum(axis=-1, keepdims=True)
    c = C * q1 - S
    c2 = c >> p["s1"]
    c3 = c2 >> p["s_sq"]
    SS = (c3 * c3).sum(axis=-1, keepdims=True)
    V = SS >> p["s2"]
    if counter is not None:
        counter("ln_var_floor", int(np.count_nonzero(V < V_MIN)))
        counter("ln_var_sat", int(np.count_nonzero(V >= 1 << INV_SQRT_BITS)))
    V = np.clip(V, V_MIN, (1 << INV_SQRT_BITS) - 1)
    y = inv_sqrt(V)
    n = saturate((c2 * y) >> p["s3"], LN_IN_BITS, counter, "ln_norm_sat")
    out = ((n * gamma) >> p["s4"]) + beta
    return saturate(out, p["out_bits"], counter, "ln_out_sat")


def ln_params(C: int, in_frac: int, in_max: float, var_max: float, gamma: np.ndarray, beta: np.ndarray,
              out_max: float, out_bits: int, margin: float = 1.5) -> tuple:
    """(datapath dict, gamma_q, beta_q) for one LayerNorm, from calibrated maxima:
    in_max = max |x|, var_max = max of sum((x - mean)^2) (per token), out_max = max |LN(x)|."""
    sh = ln_fixed_shifts(C)
    # q1 = x * 2**(in_frac - s0) uses 15 bits at in_max * margin
    s0 = in_frac - frac_for(in_max, LN_IN_BITS, margin, limit=in_frac + 16)
    f1 = in_frac - s0                                   # frac of q1
    # c3 = (x - mean) * 2**(f1 - s_sq) * C / 2**s1 ; sum(c3^2) = var_sum * 2**(2 (f1 - s_sq - s1)) * C^2
    ss_max = float(var_max) * (2.0 ** (f1 - sh["s_sq"] - sh["s1"]) * C) ** 2
    s2 = 0
    while ss_max * margin / 2 ** s2 >= V_TARGET:        # V up to 2**15 at the calibrated maximum
        s2 += 2
    # c2 * y = z/sqrt(C) * 2**(s_sq + 18 + s2/2 - b_sq... ) derived: c3 ~ c2 / 2**s_sq,
    # V = sum(c3^2) / 2**s2, y = 2**18 / sqrt(V)  =>  c2 * y = z / sqrt(C) * 2**(18 + s_sq + s2/2)
    s3 = 18 + sh["s_sq"] + s2 // 2 - LN_NORM_FRAC
    out_frac = frac_for(out_max, out_bits, margin)
    g = np.asarray(gamma, np.float64) * math.sqrt(C)
    gmax = float(np.abs(g).max()) if g.size else 0.0
    s4 = 0
    scale = 2.0 ** (out_frac - LN_NORM_FRAC)
    if gmax > 0:
        s4 = max(0, math.floor(math.log2(((1 << (LN_GAMMA_BITS - 1)) - 1) / (gmax * scale))))
    gamma_q = np.rint(g * scale * 2.0 ** s4).astype(np.int64)
    while gmax > 0 and np.abs(gamma_q).max() >= 1 << (LN_GAMMA_BITS - 1):   # s4 = 0 and gamma too large
        out_frac -= 1
        scale /= 2
        gamma_q = np.rint(g * scale * 2.0 ** s4).astype(np.int64)
    top = (1 << (out_bits - 1)) - 1
    beta_q = np.clip(np.rint(np.asarray(beta, np.float64) * 2.0 ** out_frac), -top, top).astype(np.int64)
    p = {"s0": int(s0), "s1": sh["s1"], "s_sq": sh["s_sq"], "s2": int(s2), "s3": int(s3), "s4": int(s4),
         "in_frac": int(in_frac), "out_frac": int(out_frac), "out_bits": int(out_bits)}
    return p, gamma_q, beta_q


# ---------------------------------------------------------------------------
# Sigmoid: a piecewise-linear table
# ---------------------------------------------------------------------------
SIG_RANGE = 8            # the table covers [-8, 8)
SIG_SEG_BITS = 1         # segments of 2**-1
SIG_OUT_FRAC = 15        # sigmoid values on a 2**-15 grid: 0 .. 2**15
SIG_MAX_IN_FRAC = 17     # slope (< 2**13) * remainder (< 2**(frac - 1)) stays inside int32


def sigmoid_table() -> np.ndarray:
    """sigma at the segment ends -8, -7.5, ..., 8, rounded to the 2**-15 grid (33 entries)."""
    xs = np.arange(-SIG_RANGE, SIG_RANGE + 1e-9, 2.0 ** -SIG_SEG_BITS)
    return np.rint((1 << SIG_OUT_FRAC) / (1 + np.exp(-xs))).astype(np.int64)


_SIG = sigmoid_table()


def sigmoid(q: np.ndarray, frac: int) -> np.ndarray:
    """sigma(q / 2**frac) on the 2**-15 grid, frac <= 17:

        i = (q >> (frac - 1)) + 16, clipped to 0..32     segment index
        r = q & (2**(frac - 1) - 1)                       position inside it
        out = T[i] + ((T[i+1] - T[i]) * r) >> (frac - 1)  (T[32] beyond the table)
    """
    if not 1 <= frac <= SIG_MAX_IN_FRAC:
        raise ValueError(f"sigmoid: input frac {frac} is outside 1..{SIG_MAX_IN_FRAC}")
    w = frac - SIG_SEG_BITS
    n_seg = len(_SIG) - 1
    i = (q >> w) + n_seg // 2
    r = q & ((1 << w) - 1)
    low = i < 0
    high = i >= n_seg
    ic = np.clip(i, 0, n_seg - 1)
    out = _SIG[ic] + (((_SIG[ic + 1] - _SIG[ic]) * r) >> w)
    out = np.where(low, _SIG[0], out)
    return np.where(high, _SIG[n_seg], out)


# ---------------------------------------------------------------------------
# Products, relu², residual
# ---------------------------------------------------------------------------
def product(a: np.ndarray, b: np.ndarray, exp: int, counter: Counter = None) -> np.ndarray:
    """Lava's ProdNeuron: v = (a * b) >> exp, the product in int32 (it wraps; counted)."""
    exact = a * b
    v = wrap32(exact)
    if counter is not None:
        counter("prod_wrap32", int(np.count_nonzero(v != exact)))
    return v >> exp


def relu2(q: np.ndarray, exp: int, counter: Counter = None) -> np.ndarray:
    """GradedReluVec (v if v > 0) then ProdNeuron(v, v) >> exp."""
    r = np.maximum(q, 0)
    return product(r, r, exp, counter)


def residual(x: np.ndarray, s: np.ndarray, spike_weight: int, counter: Counter = None) -> np.ndarray:
    """GradedVec summing x and the spikes through a Dense of weight 2**frac. Lava's CPU GradedVec
    does not saturate its int32 state; values beyond 24 bits (a board's state width) are counted."""
    out = x + s * int(spike_weight)
    if counter is not None:
        counter("residual_over24", int(np.count_nonzero(np.abs(out) > STATE_LIMIT)))
    return out

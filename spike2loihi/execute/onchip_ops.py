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
    if not x.size or (x.max() <= top and x.min() >= -top):   # nothing to clip: x itself
        if counter is not None:
            counter(key, 0)
        return x
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
    if s.size <= 8:   # a few rows: the same steps on Python integers (no int64 product can overflow here)
        return np.array([_newton(int(a), int(t), iters, frac) for a, t in zip(s.ravel(), Y.ravel())],
                        dtype=np.int64).reshape(s.shape)
    return _newton(s, Y, iters, frac)


def _newton(s, Y, iters: int, frac: int):
    """`iters` Newton steps from seed Y (numpy arrays or Python integers alike)."""
    y = Y // 2
    b = s
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
    c2 = C * q1
    c2 -= S
    c2 >>= p["s1"]
    c3 = c2 >> p["s_sq"]
    SS = np.einsum("bc,bc->b", c3, c3)[:, None] if c3.ndim == 2 else (c3 * c3).sum(axis=-1, keepdims=True)
    V = SS >> p["s2"]
    if counter is not None:
        counter("ln_var_floor", int(np.count_nonzero(V < V_MIN)))
        counter("ln_var_sat", int(np.count_nonzero(V >= 1 << INV_SQRT_BITS)))
    V = np.clip(V, V_MIN, (1 << INV_SQRT_BITS) - 1)
    y = inv_sqrt(V)
    c2 *= y
    c2 >>= p["s3"]
    n = saturate(c2, LN_IN_BITS, counter, "ln_norm_sat")
    out = n * gamma
    out >>= p["s4"]
    out += beta
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
_SIG_SLOPE = np.append(np.diff(_SIG), 0)   # T[i+1] - T[i]; 0 past the last entry


def sigmoid(q: np.ndarray, frac: int) -> np.ndarray:
    """sigma(q / 2**frac) on the 2**-15 grid, frac <= 17:

        i = (q >> (frac - 1)) + 16, clipped to 0..32     segment index
        r = q & (2**(frac - 1) - 1)                       position inside it
        out = T[i] + ((T[i+1] - T[i]) * r) >> (frac - 1)  (T[32] beyond the table)

    Computed as: q clipped to [-8, 8] first (there i lands on 0 or 32 with r = 0, which gives T[0] and
    T[32] as the clipped index does), then one table read for T[i] and one for the slope.
    """
    if not 1 <= frac <= SIG_MAX_IN_FRAC:
        raise ValueError(f"sigmoid: input frac {frac} is outside 1..{SIG_MAX_IN_FRAC}")
    w = frac - SIG_SEG_BITS
    half = (len(_SIG) - 1) // 2
    qc = np.clip(q, -half << w, half << w)
    i = qc >> w
    i += half
    r = qc & ((1 << w) - 1)
    r *= _SIG_SLOPE.take(i)
    r >>= w
    r += _SIG.take(i)
    return r


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


# ---------------------------------------------------------------------------
# WKV: the RWKV-4 recurrence with a block exponent per channel (`--wkv chip`)
# ---------------------------------------------------------------------------
# The float WKV (SPIKEGPT.md) keeps aa, bb scaled by e^-pp, pp the running max. Here every
# exponent is a power of two: the key Dense has log2(e) folded into its weights, so k arrives
# as k*log2(e); u = time_first*log2(e) and w = -exp(time_decay)*log2(e) are per-channel
# constants. The state of one channel is three registers:
#
#   A (24-bit signed mantissa), B (24-bit mantissa, 0 <= B < 2**23), E (24-bit exponent on the
#   2**-e_frac grid), with (E read as E / 2**e_frac)
#       bb = B * 2**E / 2**22,    aa / bb = (A / B) * 2**15 * v_unit
#   that is, A / B is the weighted mean of v (in v's integers) divided by 2**15.
#
# A fresh term 2**d (d <= 0 relative to E) adds  e = 2**d * 2**15  (a 33-entry 2**-x table with
# linear interpolation, then a right shift by d's integer part) as  B += e << 7  and
# A += (e * v) >> 8 (e <= 2**15, |v| < 2**15: the product fits 31 bits). A term larger than the
# state (d > 0) first moves the state down by s = ceil(d) (A, B >> s; E += s): the state is only
# ever shifted, never multiplied, and the decay is exact: E += w. When B reaches 2**23 the
# block is renormalised (A, B >> 1; E += 1). The division is a Newton reciprocal.
#
# Widths: A, B, E and every message fit 24 bits; every intermediate fits a signed 32-bit
# register (term * v < 2**30, normalised numerator * r < 2**30, Dn * r < 2**30, B before
# renormalising < 2**23 + 2**22). Values leaving a range are saturated
# and counted: `wkv_v_sat` (v beyond 16 bits), `wkv_k_sat` (k beyond the exponent register),
# `wkv_out_sat` (the result beyond 16 bits), `wkv_a_sat` (A beyond 24 bits).
WKV_STATE_BITS = 24              # A, B
WKV_V_BITS = 16                  # v and the result: 16-bit on v's grid
WKV_E_BITS = 24                  # the exponent register
WKV_E_FRAC_MAX, WKV_E_FRAC_MIN = 16, 6   # its fraction bits (chosen at conversion)
WKV_E_EMPTY = -(1 << (WKV_E_BITS - 1)) + 1   # E of an empty state (aa = bb = 0; pp = -inf)
EXP2_FRAC = 15                   # 2**-x on [0, 1] as integers 2**14 .. 2**15
EXP2_SEG_BITS = 5                # 32 segments, linear interpolation
WKV_B_SHIFT = 7                  # a term of weight 1 adds 2**15 << 7 = 2**22 to B
WKV_A_SHIFT = 8                  # and (2**15 * v) >> 8 to A
WKV_B_BOUND = 1 << 23            # B is renormalised below this
RECIP_IN_BITS = 16               # the divisor normalised to [2**15, 2**16)
RECIP_FRAC = 29                  # r ~ 2**29 / Dn, in (2**13, 2**14]
RECIP_SEED_BITS = 5              # a 32-entry seed table on the divisor's 5 bits after its leading 1
RECIP_ITERS = 2                  # Newton steps r <- r * (2**14 - (Dn * r >> 16)) >> 13


def exp2_table() -> np.ndarray:
    """2**-x * 2**15 at x = 0, 1/32, ..., 1 (33 entries)."""
    xs = np.arange((1 << EXP2_SEG_BITS) + 1) / float(1 << EXP2_SEG_BITS)
    return np.rint((1 << EXP2_FRAC) * 2.0 ** -xs).astype(np.int64)


_EXP2 = exp2_table()


def exp2_neg(m: np.ndarray, frac: int) -> np.ndarray:
    """2**(-m / 2**frac) * 2**15 for integers m >= 0: the table on m's fraction, linear
    interpolation (slope < 2**10 times a remainder < 2**(frac-5)), then >> m's integer part."""
    m = np.asarray(m, np.int64)
    ip = m >> frac
    fp = m & ((1 << frac) - 1)
    if frac >= EXP2_SEG_BITS:
        rb = frac - EXP2_SEG_BITS
        i, r = fp >> rb, fp & ((1 << rb) - 1)
    else:
        rb, i, r = 0, fp << (EXP2_SEG_BITS - frac), np.zeros_like(fp)
    t0 = _EXP2[i]
    y = t0 - (((t0 - _EXP2[i + 1]) * r) >> rb)
    return np.where(ip >= 31, 0, y >> np.minimum(ip, 31))


def recip_seed_table() -> np.ndarray:
    """2**29 / Dn at the middle of each of the 32 slices of [2**15, 2**16)."""
    mid = (1 << 15) + ((np.arange(1 << RECIP_SEED_BITS) + 0.5) * (1 << (15 - RECIP_SEED_BITS)))
    return np.floor((1 << RECIP_FRAC) / mid).astype(np.int64)


_RSEED = recip_seed_table()


def bit_length(x: np.ndarray) -> np.ndarray:
    """Bits of each non-negative integer below 2**52 (a leading-zero count on a board)."""
    x = np.asarray(x, np.int64)
    return np.where(x > 0, np.frexp(np.maximum(x, 1).astype(np.float64))[1], 0).astype(np.int64)


def reciprocal(dn: np.ndarray) -> np.ndarray:
    """r ~ 2**29 / dn for dn in [2**15, 2**16): a seed from dn's top bits, then Newton steps
    r <- (r * (2**14 - ((dn * r) >> 16))) >> 13 (from below; every product < 2**30)."""
    r = _RSEED[(dn >> (15 - RECIP_SEED_BITS)) & ((1 << RECIP_SEED_BITS) - 1)]
    for _ in range(RECIP_ITERS):
        r = (r * ((1 << 14) - ((dn * r) >> 16))) >> 13
    return r


def divide(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(n / d) * 2**15 for 0 < d < 2**25, |n| <~ d: both shifted so that d lands in [2**15, 2**16),
    then (nn * r) >> 14 with r the Newton reciprocal."""
    sh = bit_length(d) - RECIP_IN_BITS
    dn = np.where(sh >= 0, d >> np.maximum(sh, 0), d << np.maximum(-sh, 0))
    nn = np.where(sh >= 0, n >> np.maximum(sh, 0), n << np.maximum(-sh, 0))
    return (nn * reciprocal(dn)) >> (RECIP_FRAC - 15)


def _merge(a: np.ndarray, b: np.ndarray, e: np.ndarray, d: np.ndarray, frac: int):
    """A fresh term 2**(d / 2**frac) relative to the state's exponent: where d > 0 the state moves
    down by s = ceil(d) first. Returns (A, B, E, term) with term = 2**(d - s) * 2**15."""
    s = np.where(d > 0, (d + (1 << frac) - 1) >> frac, 0)
    sc = np.minimum(s, 31)
    return a >> sc, b >> sc, e + (s << frac), exp2_neg((s << frac) - d, frac)


def wkv_step(k: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray, e: np.ndarray, p: dict,
             u: np.ndarray, w: np.ndarray, counter: Counter = None):
    """One token of the integer WKV. k on the 2**-k_frac grid (k * log2 e), v on 2**-v_frac;
    (a, b, e) the state (`wkv_init`); u, w per channel on 2**-e_frac (w < 0). Returns
    (wkv on v's grid, a, b, e), as the float WKV: out = (e1 aa + e2 v) / (e1 bb + e2) with the
    bonus u, then aa, bb <- decayed state plus e^k v, e^k."""
    f = int(p["e_frac"])
    vtop = (1 << (WKV_V_BITS - 1)) - 1
    etop = (1 << (WKV_E_BITS - 1)) - 1
    sh = f - int(p["k_frac"])
    kk = k << sh if sh >= 0 else k >> -sh
    vs = np.clip(v, -vtop, vtop)
    ks = np.clip(kk, -etop, etop)
    if counter is not None:
        counter("wkv_v_sat", int(np.count_nonzero(vs != v)))
        counter("wkv_k_sat", int(np.count_nonzero(ks != kk)))
    # the output, with the bonus u on the current token
    a1, b1, _, t = _merge(a, b, e, np.clip(ks + u, -etop, etop) - e, f)
    out = divide(a1 + ((t * vs) >> WKV_A_SHIFT), b1 + (t << WKV_B_SHIFT))
    o = np.clip(out, -vtop, vtop)
    # the state: decay (exact, saturating at the empty exponent), then the fresh term e^k v
    e = np.maximum(e + w, WKV_E_EMPTY)
    a, b, e, t = _merge(a, b, e, ks - e, f)
    a = a + ((t * vs) >> WKV_A_SHIFT)
    b = b + (t << WKV_B_SHIFT)
    big = b >= WKV_B_BOUND
    a, b, e = np.where(big, a >> 1, a), np.where(big, b >> 1, b), np.where(big, e + (1 << f), e)
    atop = (1 << 23) - 1
    ac = np.clip(a, -atop, atop)
    if counter is not None:
        counter("wkv_out_sat", int(np.count_nonzero(o != out)))
        counter("wkv_a_sat", int(np.count_nonzero(ac != a)))
        counter("wkv_renorm", int(np.count_nonzero(big)))
    return o, ac, b, np.minimum(e, etop)


def wkv_init(batch: int, n: int):
    """An empty state: A = B = 0, E = the empty exponent."""
    z = np.zeros((batch, n), np.int64)
    return z, z.copy(), np.full((batch, n), WKV_E_EMPTY, np.int64)

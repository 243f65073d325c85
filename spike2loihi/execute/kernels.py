"""Lava 0.10.0's fixed-point arithmetic as vectorised numpy integer code (Lava-free).

The kernels both emulators share: `execute.process_emulator` (Lava processes one by one,
checked against Lava's simulator) and `execute.model_emulator` (the whole converted model).

* `lava_weights`: the integer weights Lava's Dense/Sparse use from the first step on;
* `DenseKernel`: exact integer matrix products with one weight matrix, as fast as BLAS allows;
* `Int8Kernel`: the same with int8 mantissas in onnxruntime's `MatMulInteger`; `SharedInput`: several
  of them that read one input, as one product;
* `dense_graded_output`: what `PyDenseModelBitAcc` stores for a graded input;
* `lif_update`: one step of `PyLifModelBitAcc`;
* `lif_reset_due`: whether `PyLifResetModelBitAcc` (netx's `reset_interval`) zeroes u and v
  before this step.

Exactness: Lava's int32 arithmetic is replayed by computing the mathematically exact
value in int64 and wrapping it to int32 (`_wrap32`) exactly where Lava's int32 arrays
would wrap; that is valid because wrapping commutes with + and *, and every int64
intermediate is bounded: |u|,|v|,|a| < 2**31 and decay factors <= 4096 give products
< 2**43; a binary accumulation is at most 255 * n_in * 2**7 (a weight_exp <= 7 shift);
graded matrix products that could exceed 2**63 wrap modulo 2**64, which is still exact
modulo 2**32, the only thing Lava keeps. Matrix products run in float32 (float64) BLAS
only when a bound on every partial sum, max|W| * max_b sum_j |s_bj|, is below 2**24
(2**53), where those formats hold every integer exactly; otherwise in int64.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from spike2loihi import ort_fork
from spike2loihi.convert.fixed_point import (ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET,
                                             STATE_MAX, V_LIMIT, SignMode, infer_sign_mode)

__all__ = ["lava_weights", "DenseKernel", "dense_graded_output", "lif_update", "lif_reset_due"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


# ---------------------------------------------------------------------------
# Integer helpers
# ---------------------------------------------------------------------------
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def _wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement int32 wrap of an int64 array (what an int32 store does); `x` itself (as int64)
    when every value is already an int32 value."""
    x = np.asarray(x, dtype=np.int64)
    if not x.size or (x.max() <= _I32_MAX and x.min() >= _I32_MIN):
        return x
    return x.astype(np.int32).astype(np.int64)


def _decay(x: np.ndarray, factor: int) -> np.ndarray:
    """Lava: sign(x*f) * (|x*f| >> 12), i.e. round toward zero, then int32 cast. For int32 values x and
    0 <= f <= 4096 (every du, dv) |result| <= |x|: nothing to wrap."""
    p = x * np.int64(factor)
    if not 0 <= factor <= DECAY_UNITY:
        return _wrap32(np.sign(p) * (np.abs(p) >> DECAY_SHIFT))
    p += (p >> 63) & (DECAY_UNITY - 1)     # toward zero: a negative product rounds up
    p >>= DECAY_SHIFT
    return _wrap32(p)


def max_magnitude(x: np.ndarray) -> int:
    """max |x| of an integer array (0 when empty), without a temporary |x|."""
    return max(int(x.max()), -int(x.min())) if x.size else 0


def _int64(x) -> np.ndarray:
    return np.asarray(x).astype(np.int64)


def lava_weights(weights: np.ndarray, sign_mode: Optional[SignMode], num_weight_bits: int,
                 sparse: bool = False) -> Tuple[np.ndarray, SignMode]:
    """The integer weights Lava's Dense/Sparse use from the first step on.

    Dense stores weights in an int32 Var at build time (float -> int truncates
    toward zero), then on the first step: sign mode = given or inferred,
    clip to [-256, 255] (MIXED), [0, 255] (EXCITATORY, NULL) or [-255, 0]
    (INHIBITORY), then zero the low 8 - nwb + isMixed bits with a floor shift
    (on magnitudes for INHIBITORY). Sparse infers the sign mode before the
    int32 cast.
    """
    w = np.asarray(weights)
    if sign_mode is not None:
        mode = SignMode(sign_mode)
    elif sparse:
        mode = infer_sign_mode(w)
    else:
        mode = infer_sign_mode(np.trunc(w) if np.issubdtype(w.dtype, np.floating) else w)
    wi = np.trunc(w).astype(np.int64) if np.issubdtype(w.dtype, np.floating) else w.astype(np.int64)
    wi = _wrap32(wi)
    mixed = int(mode is SignMode.MIXED)
    inh = mode is SignMode.INHIBITORY
    if inh:
        wi = -wi
    wi = np.clip(wi, -256 * mixed, 255)
    k = 8 - int(num_weight_bits) + mixed
    wi = (wi >> k) << k
    if inh:
        wi = -wi
    return wi, mode


class DenseKernel:
    """Exact integer matrix products with one weight matrix, as fast as BLAS allows.

    `w` is the integer weight matrix (n_out, n_in) Lava uses from the first step
    on. Weights that share trailing zero bits (Lava's truncation leaves
    `8 - nwb + isMixed` of them) are multiplied as `w >> k` and the sum is
    shifted back, which keeps more products inside float32's exact range.
    `accumulate(s)` returns sum_j w_ij s_bj exactly (modulo 2**64 at worst):
    in float32 BLAS, whole or in column blocks, while every partial sum is
    bounded by 2**24 (then any summation order is exact); in float64 below
    2**53; else in int64. Pass `max_abs` when |s| is known to be bounded (an
    encoder's clip limit) to skip measuring the input.
    """

    def __init__(self, w: np.ndarray, k: Optional[int] = None):
        w = np.asarray(w)
        if not np.issubdtype(w.dtype, np.integer):
            w = w.astype(np.int64)
        self.k = _common_trailing_zeros(w) if k is None else int(k)
        base = w >> self.k if self.k else w
        self.max_w = int(np.abs(base.astype(np.int64, copy=False)).max()) if w.size else 0
        self.n_out, self.n_in = w.shape
        # One stored copy: float32 holds every |w| < 2**24 exactly (all 8-bit Lava weights).
        kind = "f32" if self.max_w < _F32_EXACT else "i64"
        self._w = {kind: np.ascontiguousarray(base, dtype=np.float32 if kind == "f32" else np.int64)}

    def bound(self, top: int) -> int:
        """An upper bound on |sum_j W_ij s_bj| for inputs |s| <= top."""
        return (self.max_w * self.n_in * int(top)) << self.k

    @classmethod
    def from_mantissa(cls, mantissa: np.ndarray, k: int) -> "DenseKernel":
        """The kernel of Lava weights `mantissa << k` (no int64 copy of the matrix is made)."""
        return cls(mantissa, k=0)._shifted(k)

    def _shifted(self, k: int) -> "DenseKernel":
        self.k = int(k)
        return self

    @property
    def w(self) -> np.ndarray:
        """The integer weight matrix (n_out, n_in)."""
        return self._w_as("i64") << self.k

    def _w_as(self, kind: str) -> np.ndarray:
        if kind not in self._w:
            have = self._w["f32"] if "f32" in self._w else self._w["i64"]
            self._w[kind] = have.astype({"f32": np.float32, "f64": np.float64, "i64": np.int64}[kind])
        return self._w[kind]

    def accumulate(self, s: np.ndarray, max_abs: Optional[int] = None) -> np.ndarray:
        """sum_j W_ij s_bj exactly (mod 2**64 at worst), s of shape (batch, n_in)."""
        if s.shape[1] == 0 or self.max_w == 0:
            return np.zeros((s.shape[0], self.n_out), dtype=np.int64)
        return self._exact(s, max_abs) << self.k

    @staticmethod
    def _mm(s: np.ndarray, w: np.ndarray) -> np.ndarray:
        # batch 1 as a matrix-vector product (faster in BLAS than a 1-row GEMM)
        return (w @ s[0])[None, :] if s.shape[0] == 1 else s @ w.T

    def _exact(self, s: np.ndarray, max_abs: Optional[int]) -> np.ndarray:
        if max_abs is None:
            a = np.abs(s)
            max_s = int(a.max())
            bound = self.max_w * int(a.sum(axis=1).max())
        else:
            max_s = int(max_abs)
            bound = self.max_w * max_s * self.n_in
        if max_s == 0:
            return np.zeros((s.shape[0], self.n_out), dtype=np.int64)
        if bound < _F32_EXACT:
            return self._mm(s.astype(np.float32), self._w_as("f32")).astype(np.int64)
        chunk = (_F32_EXACT - 1) // (self.max_w * max_s)
        if chunk >= 128:   # column blocks whose every partial sum stays below 2**24
            sf = s.astype(np.float32)
            w = self._w_as("f32")
            out = np.zeros((s.shape[0], self.n_out), dtype=np.int64)
            for j in range(0, self.n_in, chunk):
                out += self._mm(sf[:, j:j + chunk], w[:, j:j + chunk]).astype(np.int64)
            return out
        if bound < _F64_EXACT:
            return self._mm(s.astype(np.float64), self._w_as("f64")).astype(np.int64)
        return s @ self._w_as("i64").T  # int64 matmul: exact modulo 2**64

    def accumulate_binary(self, mask: np.ndarray) -> np.ndarray:
        """Sum of the weight columns where mask is set (exact: < 2**24 in float32)."""
        if mask.shape[0] == 1 and self.max_w * mask.shape[1] < _F32_EXACT:
            if "f32T" not in self._w:   # rows = input neurons: a spike selects one contiguous row
                self._w["f32T"] = np.ascontiguousarray(self._w_as("f32").T)
            rows = self._w["f32T"][np.flatnonzero(mask[0])]
            return rows.sum(axis=0, dtype=np.float32).astype(np.int64)[None, :] << self.k
        return self.accumulate(mask.astype(np.int64))


def row_magnitudes(m: np.ndarray, rows: int = 4096) -> Tuple[int, int]:
    """(max |m_ij|, max_i sum_j |m_ij|) of an integer matrix, a block of rows at a time (no full-size temporary)."""
    top = l1 = 0
    for i in range(0, m.shape[0], rows):
        a = np.abs(m[i:i + rows].astype(np.int32))
        top = max(top, int(a.max()) if a.size else 0)
        l1 = max(l1, int(a.sum(axis=1).max()) if a.size else 0)
    return top, l1


def _common_trailing_zeros(w: np.ndarray) -> int:
    """Trailing zero bits shared by every entry of an integer array (0 if all are 0):
    those of the bitwise OR of all magnitudes."""
    acc = int(np.bitwise_or.reduce(np.abs(w.astype(np.int64, copy=False)), axis=None)) if w.size else 0
    return (acc & -acc).bit_length() - 1 if acc else 0


def dense_graded_output(kernel: DenseKernel, s: np.ndarray, weight_exp: int, counter=None,
                        max_abs: Optional[int] = None) -> np.ndarray:
    """What `PyDenseModelBitAcc` stores in `a_buff` for a graded input `s` (int64 (batch, n_in)).

    acc = W.s in int32 (wraps), then `acc << weight_exp` (int32) or `acc >> -weight_exp`
    (floor). `counter(key, count)` receives wrap counts when given.
    """
    top = max_magnitude(s) if max_abs is None else int(max_abs)
    exact = kernel.accumulate(s, top)
    no_wrap = kernel.bound(top) < (1 << 31)   # no sum can leave int32: Lava's accumulator does not wrap
    acc = exact if no_wrap else _wrap32(exact)  # Lava: int32 weights . int32 s_in wraps
    if counter is not None:
        counter("acc_wrap32", 0 if no_wrap else np.count_nonzero(acc != exact))
    if weight_exp <= 0:   # a floor shift gives the same in every width: shift, then widen
        return (acc >> -weight_exp).astype(np.int64, copy=False)
    shifted = acc.astype(np.int64, copy=False) << weight_exp
    out = _wrap32(shifted)  # int32 left shift
    if counter is not None:
        counter("shift_wrap32", np.count_nonzero(out != shifted))
    return out


def lif_update(u: np.ndarray, v: np.ndarray, a: np.ndarray, du: int, dv: int, eff_vth: int,
               bias: np.ndarray | int = 0, counter=None):
    """One step of `PyLifModelBitAcc`: returns (u, v, spikes as bool), v after reset.

    `a` is the summed input (int64, values as int32), `eff_vth` = vth << 6,
    `bias` = bias_mant << bias_exp in int32. `counter(key, count)` receives
    wrap/saturation/spike counts when given.
    """
    a6 = _wrap32(a << ACT_SHIFT)
    pre = _decay(u, DECAY_UNITY - (du + DS_OFFSET))
    pre += a6
    pre = _wrap32(pre)
    # Lava's 24-bit "wrap": one +-2**24 correction, +2**23 kept, -2**23 -> +2**23 (values above 2**23 land
    # above -2**23, so the two corrections never meet)
    u_new = pre
    if pre.size and (pre.max() > STATE_MAX or pre.min() <= -STATE_MAX):
        u_new = pre.copy()
        np.subtract(u_new, 2 * STATE_MAX, out=u_new, where=pre > STATE_MAX)
        np.add(u_new, 2 * STATE_MAX, out=u_new, where=pre <= -STATE_MAX)
    vsum = _decay(v, DECAY_UNITY - (dv + DM_OFFSET))
    vsum += u_new
    if not (np.isscalar(bias) and bias == 0):
        vsum = vsum + bias
    vsum = _wrap32(vsum)
    v_new = np.clip(vsum, -V_LIMIT, V_LIMIT)
    s = v_new > eff_vth
    v_new[s] = 0
    if counter is not None:
        c = lambda k, m: counter(k, np.count_nonzero(m))  # noqa: E731
        c("u_wrap_pos", pre > STATE_MAX)
        c("u_wrap_neg", pre < -STATE_MAX)
        c("u_edge_pos", pre == STATE_MAX)
        c("u_edge_neg", pre == -STATE_MAX)
        c("u_beyond_24bit", (u_new > STATE_MAX) | (u_new < -STATE_MAX))
        c("v_sat_pos", vsum > V_LIMIT)
        c("v_sat_neg", vsum < -V_LIMIT)
        c("a_shift_wrap32", a6 != (a << ACT_SHIFT))
        c("spikes", s)
    return u_new, v_new, s


def lif_reset_due(time_step: int, reset_interval: int, reset_offset: int) -> bool:
    """`PyLifResetModelBitAcc`: u and v are zeroed *before* step `time_step` (1 = the first step)
    when `time_step % reset_interval == reset_offset % reset_interval`; the step then runs as
    `lif_update`. netx's `Network(reset_interval=R, reset_offset=o)` gives its k-th block
    (k = 0 for the first it builds) the offset o + 1 + k: the resets are staggered by one step
    per layer, the latency of one Dense."""
    return reset_interval > 0 and time_step % reset_interval == reset_offset % reset_interval


# ---------------------------------------------------------------------------
# int8 weights, exact int32 accumulation: onnxruntime's MatMulInteger
# ---------------------------------------------------------------------------
_THREADS = {"n": 0}   # 0: onnxruntime's choice (every core)
_REBUILD = object()   # Int8Kernel._session in a forked child: build a new session before the next product


def set_threads(n: Optional[int]) -> None:
    """Threads of the integer kernels built from now on (None or 0: onnxruntime's choice)."""
    _THREADS["n"] = int(n or 0)


class Int8Kernel:
    """Exact integer matrix products with an int8 weight mantissa, in onnxruntime's `MatMulInteger`.

    The weights stay 8-bit (a quarter of the float copy's bytes, which is what bounds a batch-1 step):
    `MatMulInteger(x uint8 [b, n_in], m int8 [n_in, n_out], zero point 128)` computes
    sum_j m_ij x_bj exactly in int32 for x in -128..127. Wider inputs are split into base-256 digits,
    s = sum_d 256^d lo_d with every lo_d in -128..127, each digit's product exact in int32
    (|product| <= 128 * max|m| * n_in < 2**31, checked at construction) and the digits summed in int64:
    the same exact integers as `DenseKernel`, shifted left by `k` (Lava's truncated weight bits).
    Built once per chip Dense of a model; `usable(m)` says whether a mantissa qualifies.
    """

    def __init__(self, mantissa: np.ndarray, k: int, source: Optional[Callable[[], np.ndarray]] = None):
        """`source`: a function that makes the mantissa again when needed (after a fork, for `w`), so that this
        kernel keeps no copy of it (a stacked `SharedInput` mantissa); without it the mantissa is kept."""
        m = np.ascontiguousarray(mantissa, dtype=np.int8)
        self._source = source
        self._mantissa = None if source is not None else m
        self.k = int(k)
        self.n_out, self.n_in = m.shape
        self.max_w, self.row_l1 = row_magnitudes(m)   # max |m_ij|, max_i sum_j |m_ij|
        self._session = self._build(m) if m.size and self.max_w else None
        ort_fork.rebuild_after_fork(self)

    @property
    def mantissa(self) -> np.ndarray:
        return self._mantissa if self._mantissa is not None else np.ascontiguousarray(self._source(), dtype=np.int8)

    def on_fork_in_child(self) -> None:
        """In a forked child: the inherited session can neither run nor be freed (`ort_fork`); the next
        product builds a new one."""
        if self._session is not None:
            self._session = _REBUILD

    def _ready(self):
        if self._session is _REBUILD:
            self._session = self._build(self.mantissa)
        return self._session

    @staticmethod
    def usable(mantissa: np.ndarray) -> bool:
        m = np.asarray(mantissa)
        if m.dtype != np.int8 or m.ndim != 2 or not m.size:
            return False
        if _ort() is None:
            return False
        return 128 * row_magnitudes(m)[0] * m.shape[1] < (1 << 31)

    def _build(self, m: np.ndarray):
        from onnx import TensorProto, helper

        ort = _ort()
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["x", "w", "zp"], ["y"])], "int8_dense",
            [helper.make_tensor_value_info("x", TensorProto.UINT8, ["b", self.n_in])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, ["b", self.n_out])],
            [helper.make_tensor("w", TensorProto.INT8, [self.n_in, self.n_out],
                                np.ascontiguousarray(m.T).tobytes(), raw=True),
             helper.make_tensor("zp", TensorProto.UINT8, [], [128])])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        proto.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = _THREADS["n"]
        so.inter_op_num_threads = 1
        so.log_severity_level = 4
        return ort_fork.session(lambda: ort.InferenceSession(proto.SerializeToString(), so,
                                                             providers=["CPUExecutionProvider"]))

    @property
    def w(self) -> np.ndarray:
        """The integer weight matrix (n_out, n_in)."""
        return self.mantissa.astype(np.int64) << self.k

    def _run(self, x: np.ndarray) -> np.ndarray:
        """MatMulInteger on unsigned digits x (uint8, digit + 128): int32 (rows, n_out)."""
        return self._ready().run(None, {"x": x})[0]

    def bound(self, top: int) -> int:
        """An upper bound on |sum_j W_ij s_bj| for inputs |s| <= top: the largest row of |m|, summed, times
        top, shifted by k."""
        return (self.row_l1 * int(top)) << self.k

    def accumulate(self, s: np.ndarray, max_abs: Optional[int] = None) -> np.ndarray:
        """sum_j W_ij s_bj exactly, s of shape (batch, n_in) (any integers): int32 where `bound` proves every
        sum fits it, else int64."""
        s = np.asarray(s)
        if self._session is None or s.shape[1] == 0:
            return np.zeros((s.shape[0], self.n_out), dtype=np.int64)
        top = int(max_abs) if max_abs is not None else max_magnitude(s)
        if top == 0:
            return np.zeros((s.shape[0], self.n_out), dtype=np.int64)
        # D balanced base-256 digits hold |s| <= 127 * (256^D - 1) / 255; with C = 128 (256^D - 1) / 255,
        # s + C lies in 0 .. 256^D - 1 and its bytes are the digits plus 128 (what the zero point 128
        # takes off again). All D digits go in one call (the weights are read once).
        D = 1
        while top > 127 * ((1 << (8 * D)) - 1) // 255:
            D += 1
        b = s.shape[0]
        digits = np.empty((D * b, self.n_in), np.uint8)
        if D == 1:
            np.add(s, 128, out=digits, casting="unsafe")
            out = self._run(digits)                     # exact in int32 (`usable`)
            if self.bound(top) >= (1 << 31):            # shifted by k it may leave int32
                out = out.astype(np.int64)
        else:
            x = s + 128 * ((1 << (8 * D)) - 1) // 255
            np.copyto(digits[:b], x, casting="unsafe")            # an unsafe cast keeps the low byte
            for d in range(1, D):
                np.right_shift(x, 8 * d, out=digits[d * b:(d + 1) * b], casting="unsafe")
            parts = self._run(digits).reshape(D, b, self.n_out)
            # Horner over the digits: every partial sum is sum_j m_ij p_bj with |p| <= top + 2^(8(D-1)-1), so
            # where bound() of that stays below 2^31 the whole sum runs in int32 (no wrap is possible)
            if self.bound(top + (1 << (8 * D - 9))) < (1 << 31):
                out = parts[D - 1]              # (ours: onnxruntime's output array, updated in place)
            else:
                out = parts[D - 1].astype(np.int64)
            for d in range(D - 2, -1, -1):
                out <<= 8
                out += parts[d]
        if self.k:
            out <<= self.k
        return out

    def accumulate_binary(self, mask: np.ndarray) -> np.ndarray:
        """Sum of the weight columns where mask is set."""
        return self.accumulate(np.asarray(mask).astype(np.int8), max_abs=1)


_ORT = {}


def _ort():
    """onnxruntime, or None where it cannot be imported (then `DenseKernel` serves)."""
    if "m" not in _ORT:
        try:
            import onnxruntime
        except Exception:   # noqa: BLE001 - any import failure means: not available
            onnxruntime = None
        _ORT["m"] = onnxruntime
    return _ORT["m"]


def dense_kernel(mantissa: np.ndarray, k: int):
    """The fastest exact kernel for Lava weights `mantissa << k`, chosen once per chip Dense: `Int8Kernel`
    for an int8 mantissa where onnxruntime is there (measured faster than float BLAS at every size of the
    bundled model, batch 1 and 64), else `DenseKernel` (float BLAS on exact integers). Both give the same
    integers."""
    if Int8Kernel.usable(mantissa):
        return Int8Kernel(mantissa, k)
    return DenseKernel.from_mantissa(mantissa, k)


class SharedInput:
    """Dense layers that read one input (the chip placement's k, v and r of a block all read `[x ; prev]`) as one
    product: their int8 mantissas stacked in one `Int8Kernel`, so the input's digits are made once and the
    weights go through one call. Each member (`member(name)`, a kernel like the others) takes its column block
    of the sums and shifts it by its own truncated weight bits.

    The sums of the last input are kept (with a copy of that input) and served while a member's input is equal
    to it, element for element: a member whose input differs gets the product of its own input. So sharing
    never depends on the graph being read right; it only saves work where inputs are equal.
    """

    def __init__(self, mantissas: dict, ks: dict):
        self._mantissas = mantissas
        self._ks = ks
        self._kernel = None
        self._cols = {}
        start = 0
        for name, m in mantissas.items():
            self._cols[name] = slice(start, start + m.shape[0])
            start += m.shape[0]
        self._input = None
        self._sums = None

    @staticmethod
    def usable(mantissas) -> bool:
        """Two or more int8 mantissas with one fan-in, each usable by `Int8Kernel`."""
        ms = list(mantissas)
        return len(ms) > 1 and len({m.shape[1] for m in ms}) == 1 and all(Int8Kernel.usable(m) for m in ms)

    def member(self, name: str) -> "_SharedMember":
        m = np.asarray(self._mantissas[name])
        return _SharedMember(self, name, int(self._ks[name]), m.shape[0], row_magnitudes(m)[1])

    def _stacked(self) -> np.ndarray:
        return np.concatenate([np.asarray(m) for m in self._mantissas.values()])

    def sums(self, s: np.ndarray, top: int) -> np.ndarray:
        """sum_j m_ij s_bj for every member's rows (unshifted, int32 or int64, exact); not to be modified."""
        if self._input is None or self._input.shape != s.shape or not np.array_equal(self._input, s):
            if self._kernel is None:   # (the stacked copy is dropped once onnxruntime holds the weights)
                self._kernel = Int8Kernel(self._stacked(), 0, source=self._stacked)
            self._sums = self._kernel.accumulate(s, top)
            self._input = np.array(s, copy=True)
        return self._sums


class _SharedMember:
    """One member of a `SharedInput`: `accumulate` and `bound` as `Int8Kernel`'s."""

    def __init__(self, group: SharedInput, name: str, k: int, n_out: int, row_l1: int):
        self.group, self.name, self.k, self.n_out, self.row_l1 = group, name, k, n_out, row_l1

    def bound(self, top: int) -> int:
        return (self.row_l1 * int(top)) << self.k

    def accumulate(self, s: np.ndarray, max_abs: Optional[int] = None) -> np.ndarray:
        s = np.asarray(s)
        top = int(max_abs) if max_abs is not None else max_magnitude(s)
        if top == 0 or s.shape[1] == 0 or self.row_l1 == 0:
            return np.zeros((s.shape[0], self.n_out), dtype=np.int64)
        sums = self.group.sums(s, top)[:, self.group._cols[self.name]]
        if sums.dtype != np.int64 and self.bound(top) >= (1 << 31):
            sums = sums.astype(np.int64)
        return sums << self.k   # a new array (the group's sums stay as they are)

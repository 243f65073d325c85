"""Float -> Loihi fixed point, as Lava 0.10.0's bit-accurate models use it.

This module is Lava-free on purpose (it must outlive Lava and run on newer
Pythons); the arithmetic it targets is that of `PyDenseModelBitAcc`,
`PySparseModelBitAcc` and `PyLifModelBitAcc` (lava/proc/{dense,sparse,lif}),
which `spike2loihi.execute.process_emulator` reproduces bit for bit.

Units used throughout:

* **accumulation units**: the integers a Dense/Sparse sends on `a_out`, i.e.
  `floor(sum(w_lava * s) * 2**weight_exp)`, with `w_lava` the 8-bit-grid
  weights handed to Lava (`weights=`).
* **v units**: the integers held in LIF `u` and `v`. The LIF adds
  `a_in << 6` to `u`, adds `bias_mant << bias_exp` to `v` unshifted, and
  fires on `v > vth << 6`. A float membrane potential `x` is represented by
  the integer `v = x * v_scale` (the *grid* is `{k / v_scale : k integer}`).
  So an activation of float value `x` must arrive as `a_in = x * v_scale / 64`.

Every value bound for Lava is checked against Lava's bit widths; all offending
values are reported together in one `FixedPointRangeError`.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, NamedTuple, Optional

import numpy as np

from spike2loihi.errors import FixedPointError, FixedPointRangeError

# ---------------------------------------------------------------------------
# Lava 0.10.0 constants (lava/proc/lif/models.py AbstractPyLifModelFixed,
# lava/proc/dense/models.py, lava/utils/weightutils.py)
# ---------------------------------------------------------------------------
DECAY_SHIFT = 12            # decays are MSB-aligned to 12 bits: factor/4096
DECAY_UNITY = 1 << DECAY_SHIFT
DS_OFFSET = 1               # added to du: u factor is 4096 - (du + 1)
DM_OFFSET = 0               # added to dv: v factor is 4096 - dv
ACT_SHIFT = 6               # a_in << 6 before it is added to u
VTH_SHIFT = 6               # spike when v > vth << 6
STATE_BITS = 24             # u, v are 24-bit signed
STATE_MAX = 1 << (STATE_BITS - 1)           # 2**23
V_LIMIT = STATE_MAX - 1     # v saturates at +-(2**23 - 1)
MAX_WEIGHT_BITS = 8
MAX_MESSAGE_BITS = 24
#: Loihi's shared weight exponent register (NxSDK `weightExponent`, 4-bit
#: signed). Lava's Python model accepts any integer; we keep to the hardware.
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7


class SignMode(enum.Enum):
    """Same members and values as `lava.utils.weightutils.SignMode`.

    Kept here so that quantization does not import Lava; the Lava builder maps
    by `.value`. Note Lava tests `sign_mode or infer(...)`: an Enum member is
    always truthy, so an explicit NULL is used as given (clip to 0..255).
    """

    NULL = 0
    MIXED = 1
    EXCITATORY = 2
    INHIBITORY = 3


class Limit(NamedTuple):
    """Inclusive integer range of one fixed-point quantity and why."""

    lo: int
    hi: int
    what: str


#: Every range a value bound for Lava must respect (bit widths from the
#: `LavaPyType` precisions and the PyLifModelBitAcc docstring).
LIMITS: dict[str, Limit] = {
    "du": Limit(0, 4095, "12-bit unsigned"),
    "dv": Limit(0, 4095, "12-bit unsigned"),
    "bias_mant": Limit(-4096, 4095, "13-bit signed"),
    "bias_exp": Limit(0, 7, "3-bit unsigned"),
    "vth": Limit(0, (1 << 17) - 1, "17-bit unsigned"),
    "u": Limit(-STATE_MAX, STATE_MAX - 1, "24-bit signed"),
    "v": Limit(-STATE_MAX, STATE_MAX - 1, "24-bit signed"),
    "num_weight_bits": Limit(1, MAX_WEIGHT_BITS, "weight bits <= 8"),
    "weight_exp": Limit(WEIGHT_EXP_MIN, WEIGHT_EXP_MAX, "4-bit signed weight exponent"),
    "num_message_bits": Limit(0, MAX_MESSAGE_BITS, "graded payload bits <= 24"),
    # Lava clips weights to the 8-bit grid itself; beyond int32 its cast is undefined.
    "weights": Limit(-(1 << 31) + 1, (1 << 31) - 1, "int32 before Lava's 8-bit clip"),
    "payload": Limit(-STATE_MAX, STATE_MAX - 1, "24-bit signed graded payload"),
}


@dataclass(frozen=True)
class RangeViolation:
    """One offending parameter: its worst value, where, and the limit."""

    name: str
    value: Any
    limit: Limit
    index: Optional[tuple] = None
    count: int = 1
    total: int = 1
    reason: str = "out of range"

    def describe(self) -> str:
        where = "" if self.index is None else "[" + ",".join(map(str, self.index)) + "]"
        s = f"{self.name}{where}={self.value!r} ({self.reason}: allowed {self.limit.lo}..{self.limit.hi}, {self.limit.what}"
        if self.total > 1:
            s += f"; {self.count} of {self.total} values offend"
        return s + ")"


def find_violations(name: str, value: Any, limit: Limit | str | None = None) -> list[RangeViolation]:
    """Violations of one (scalar or array) value; `limit` defaults to LIMITS by name.

    Non-integers are violations too: Lava would silently truncate them.
    """
    if not isinstance(limit, Limit):   # a LIMITS key, or None for the name's last part
        limit = LIMITS[limit if limit is not None else name.rsplit(".", 1)[-1]]
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        return [RangeViolation(name, value, limit, reason="not a number")]
    if arr.size == 0:
        return []
    out: list[RangeViolation] = []
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        frac = ~np.isfinite(arr) | (arr != np.round(arr))
        if frac.any():
            idx = np.unravel_index(int(np.argmax(frac)), arr.shape) if arr.ndim else None
            val = arr[idx] if idx is not None else arr[()]
            out.append(RangeViolation(name, _py(val), limit, idx, int(frac.sum()), arr.size, "not an integer"))
            return out
    a = arr.astype(np.float64) if not np.issubdtype(arr.dtype, np.integer) else arr
    excess = np.maximum(np.asarray(limit.lo, dtype=np.float64) - a, a - np.asarray(limit.hi, dtype=np.float64))
    bad = excess > 0
    if bad.any():
        worst = int(np.argmax(excess))
        idx = np.unravel_index(worst, arr.shape) if arr.ndim else None
        val = arr[idx] if idx is not None else arr[()]
        out.append(RangeViolation(name, _py(val), limit, idx, int(bad.sum()), arr.size))
    return out


def raise_if_violations(violations: Iterable[RangeViolation]) -> None:
    """Raise one FixedPointRangeError naming every violation, if any."""
    violations = list(violations)
    if violations:
        raise FixedPointRangeError(violations)


def check_ranges(values: Mapping[str, Any], prefix: str = "") -> None:
    """Check named values against LIMITS (key = limit name) and report all at once."""
    found: list[RangeViolation] = []
    for key, val in values.items():
        if val is None:
            continue
        found += find_violations(prefix + key, val, LIMITS[key])
    raise_if_violations(found)


def _py(x: Any) -> Any:
    """numpy scalar -> Python scalar, so messages read `5000`, not `np.int64(5000)`."""
    return x.item() if hasattr(x, "item") else x


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------
def infer_sign_mode(weights: np.ndarray) -> SignMode:
    """Lava's `determine_sign_mode`: all >= 0 -> EXCITATORY, all <= 0 -> INHIBITORY."""
    w = np.asarray(weights)
    if w.size == 0 or np.min(w) >= 0:
        return SignMode.EXCITATORY
    if np.max(w) <= 0:
        return SignMode.INHIBITORY
    return SignMode.MIXED


def mantissa_range(sign_mode: SignMode, num_weight_bits: int) -> tuple[int, int]:
    """Inclusive mantissa range left after Lava's clip + truncate.

    MIXED keeps a sign bit (signed nwb-bit), EXCITATORY/NULL nwb-bit unsigned,
    INHIBITORY the negated unsigned range.
    """
    n = int(num_weight_bits)
    if sign_mode is SignMode.MIXED:
        return -(1 << (n - 1)), (1 << (n - 1)) - 1
    if sign_mode is SignMode.INHIBITORY:
        return -((1 << n) - 1), 0
    return 0, (1 << n) - 1


def truncate_bits(sign_mode: SignMode, num_weight_bits: int) -> int:
    """Low bits Lava's `truncate_weights` zeroes: 8 - nwb + isMixed."""
    return MAX_WEIGHT_BITS - int(num_weight_bits) + int(sign_mode is SignMode.MIXED)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (Lava's `loihi2round`), as int64."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


@dataclass(frozen=True)
class QuantizedWeights:
    """A float matrix as Lava Dense/Sparse parameters, with its cost.

    `weights` go to Lava as-is (they already lie on the grid Lava's first-step
    clip + truncate leave unchanged); the effective integer weight of an entry
    is `mantissa * scale` = `weights * 2**weight_exp`, and it stands for the
    float `mantissa * step`.
    """

    weights: np.ndarray         # int32, Lava `weights=` (mantissa << truncate_bits)
    mantissa: np.ndarray        # int32, signed/unsigned num_weight_bits
    weight_exp: int
    num_weight_bits: int
    sign_mode: SignMode
    scale: float                # 2**(8 - nwb + weight_exp + isMixed): accumulation units per mantissa LSB
    out_scale: float            # accumulation units per float unit of W @ x
    step: float                 # float value of one mantissa LSB (= scale / out_scale)
    clipped_fraction: float     # share of entries clipped to the mantissa range
    sqnr_db: float              # 10 log10(|W|^2 / |W - Wq|^2); inf when exact

    def dequantize(self) -> np.ndarray:
        """The float matrix the integers stand for."""
        return self.mantissa.astype(np.float64) * self.step

    def lava_kwargs(self) -> dict:
        """Keyword arguments for Dense/Sparse (sign_mode as this module's enum)."""
        return dict(weights=self.weights, weight_exp=self.weight_exp,
                    num_weight_bits=self.num_weight_bits, sign_mode=self.sign_mode)


def quantize_weights(
    weights: np.ndarray,
    *,
    out_scale: float = 1.0,
    num_weight_bits: int = 8,
    sign_mode: Optional[SignMode] = None,
    clip_percentile: Optional[float] = None,
    weight_exp: Optional[int] = None,
) -> QuantizedWeights:
    """Quantize a float matrix to an nwb-bit mantissa and one shared exponent.

    The target integer weight is `weights * out_scale` (accumulation units).
    Without `weight_exp`, the smallest exponent (finest step, most precision)
    is chosen for which no entry is clipped, or, with `clip_percentile=p`, for
    which entries up to the p-th percentile of |target| are not clipped (the
    rest saturate; `clipped_fraction` says how many). Rounding is to nearest,
    ties away from zero. `sign_mode=None` infers it as Lava does (a single-sign
    matrix gains one bit). Raises FixedPointRangeError when the needed
    exponent lies outside the weight exponent range.
    """
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise FixedPointError("weights contain NaN or inf")
    if clip_percentile is not None and not 0.0 < clip_percentile <= 100.0:
        raise FixedPointError(f"clip_percentile={clip_percentile} must lie in (0, 100]")
    if not out_scale > 0:
        raise FixedPointError(f"out_scale={out_scale} must be positive")
    check_ranges({"num_weight_bits": num_weight_bits, "weight_exp": weight_exp})
    nwb = int(num_weight_bits)
    mode = infer_sign_mode(w) if sign_mode is None else SignMode(sign_mode)
    k = truncate_bits(mode, nwb)
    m_lo, m_hi = mantissa_range(mode, nwb)
    target = w * float(out_scale)

    if weight_exp is None:
        mag = np.abs(target)
        ref = float(np.percentile(mag, clip_percentile)) if (clip_percentile and mag.size) else np.inf
        pos = target[target > 0]
        neg = target[target < 0]
        pos_ref = min(float(pos.max()), ref) if pos.size and m_hi > 0 else 0.0
        neg_ref = min(float(-neg.min()), ref) if neg.size and m_lo < 0 else 0.0

        def fits(e: int) -> bool:
            q = 2.0 ** (k + e)
            return (round_half_away(pos_ref / q) <= m_hi) and (-round_half_away(neg_ref / q) >= m_lo)

        e = WEIGHT_EXP_MIN
        while not fits(e):
            e += 1
            if e > 64:  # pragma: no cover - weights beyond 2**64 are rejected below anyway
                break
        if e > WEIGHT_EXP_MAX:
            raise FixedPointRangeError([RangeViolation("weight_exp", e, LIMITS["weight_exp"],
                                                  reason="needed to fit the weights")])
        weight_exp = e
    weight_exp = int(weight_exp)
    scale = 2.0 ** (k + weight_exp)
    raw = round_half_away(target / scale)
    mant = np.clip(raw, m_lo, m_hi)
    clipped = float(np.mean(raw != mant)) if raw.size else 0.0
    err = target - mant * scale
    sig = float(np.sum(target ** 2))
    noise = float(np.sum(err ** 2))
    if noise == 0.0:
        sqnr = math.inf
    elif sig == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(sig / noise)
    mant32 = mant.astype(np.int32)
    return QuantizedWeights(
        weights=(mant32.astype(np.int64) << k).astype(np.int32), mantissa=mant32,
        weight_exp=weight_exp, num_weight_bits=nwb, sign_mode=mode, scale=scale,
        out_scale=float(out_scale), step=scale / float(out_scale),
        clipped_fraction=clipped, sqnr_db=sqnr,
    )


def check_payload(values: np.ndarray, num_message_bits: int, name: str = "payload") -> None:
    """Graded spikes must fit `num_message_bits` signed bits (<= 24).

    Lava's Python models do not enforce this (they add int32 payloads), so a
    value that passes here behaves the same on the simulator and on the chip.
    """
    check_ranges({"num_message_bits": num_message_bits})
    n = int(num_message_bits)
    lim = Limit(-(1 << (n - 1)), (1 << (n - 1)) - 1, f"{n}-bit signed graded payload") if n else Limit(0, 1, "binary spike")
    raise_if_violations(find_violations(name, values, lim))


# ---------------------------------------------------------------------------
# LIF
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LifDecays:
    """Lava `du`, `dv` for given time constants, and the gain to fold into the input.

    Lava decays u by (4096 - (du + 1))/4096 and v by (4096 - dv)/4096 per step,
    rounding the product toward zero. spikingjelly's LIF with decay_input does
    `v += (x - v)/tau`: the leak is dv = 4096/tau and the input is scaled by
    `input_gain = 1/tau` (fold it into the weights). tau_u = 1 gives du = 4095,
    which makes u equal to this step's input; an undecaying u is not
    representable (ds_offset = 1), an undecaying v is (dv = 0).
    """

    du: int
    dv: int
    input_gain: float
    u_factor: float     # (4096 - du - 1) / 4096
    v_factor: float     # (4096 - dv) / 4096


def lif_decays(tau_v: float, tau_u: float = 1.0, decay_input: bool = True) -> LifDecays:
    """Decays from time constants in steps (tau=2 -> dv=2048, tau_u=1 -> du=4095)."""
    if not (tau_v >= 1 and tau_u >= 1):
        raise FixedPointError(f"time constants must be >= 1 step, got tau_v={tau_v}, tau_u={tau_u}")
    dv = 0 if math.isinf(tau_v) else int(round(DECAY_UNITY / tau_v))
    du = -1 if math.isinf(tau_u) else int(round(DECAY_UNITY / tau_u)) - DS_OFFSET
    check_ranges({"du": du, "dv": dv})
    gain = (1.0 / tau_v) if (decay_input and not math.isinf(tau_v)) else 1.0
    return LifDecays(du=du, dv=dv, input_gain=gain,
                     u_factor=(DECAY_UNITY - du - DS_OFFSET) / DECAY_UNITY,
                     v_factor=(DECAY_UNITY - dv - DM_OFFSET) / DECAY_UNITY)


def stock_lif_dv(tau_v: float, period: int) -> int:
    """dv of a stock (ungated) LIF that runs `period` steps per token: `period` steps of Lava's leak
    v <- v (4096 - dv) >> 12 approximate one step of decay 1/tau_v, so that one token leaks as the
    gated LIF does: dv = round(4096 (1 - (1 - 1/tau_v)^(1/period))) (tau 2, period 18: dv 155)."""
    if not (tau_v > 1 and period >= 1):
        raise FixedPointError(f"stock LIF: tau_v {tau_v} must be > 1 and the token period {period} >= 1")
    dv = int(round(DECAY_UNITY * (1.0 - (1.0 - 1.0 / tau_v) ** (1.0 / period))))
    check_ranges({"dv": dv})
    return dv


@dataclass(frozen=True)
class FixedBias:
    """Per-neuron bias as Lava's mantissa/exponent; effective = mant << exp (v units)."""

    bias_mant: np.ndarray
    bias_exp: np.ndarray
    effective: np.ndarray
    max_abs_error: float    # in v units, vs bias * v_scale


def bias_to_fixed(bias: np.ndarray | float, v_scale: float) -> FixedBias:
    """Represent `bias * v_scale` as `bias_mant << bias_exp`, finest exponent first.

    Lava adds the bias to v without the 6-bit shift applied to a_in and vth,
    and rescales it from bias_mant/bias_exp at every step. Each neuron gets the
    smallest bias_exp in 0..7 whose rounded mantissa fits 13 bits.
    """
    target = np.asarray(bias, dtype=np.float64) * float(v_scale)
    if not np.all(np.isfinite(target)):
        raise FixedPointError("bias contains NaN or inf")
    lim = LIMITS["bias_mant"]
    exp = np.zeros(target.shape, dtype=np.int64)
    mant = round_half_away(target)
    for e in range(1, 9):  # 8 = 'does not fit' sentinel
        over = (mant > lim.hi) | (mant < lim.lo)
        if not over.any():
            break
        exp = np.where(over, e, exp)
        mant = np.where(over, round_half_away(target / 2.0 ** e), mant)
    raise_if_violations(find_violations("bias_mant", mant, lim) + find_violations("bias_exp", exp, LIMITS["bias_exp"]))
    eff = mant << exp
    return FixedBias(bias_mant=mant, bias_exp=exp, effective=eff,
                     max_abs_error=float(np.max(np.abs(eff - target))) if target.size else 0.0)


@dataclass(frozen=True)
class FixedThreshold:
    """`vth` such that Lava's `v > vth << 6` equals `v / v_scale >= theta` for every integer v."""

    vth: int
    v_scale: float
    first_spiking_v: int    # smallest integer v that fires: 64 * vth + 1


def threshold_to_fixed(theta: float, v_scale: float) -> FixedThreshold:
    """Map the float rule `v_float >= theta` to Lava's strict integer rule.

    On the grid v_float = v / v_scale (v integer), `v_float >= theta` holds
    exactly for v >= c with c = ceil(theta * v_scale) (computed in exact
    rational arithmetic, no float rounding). Lava fires for v >= 64*vth + 1,
    so an exact vth exists only when c = 64*vth + 1; otherwise this raises
    FixedPointError and names the v_scale that makes it exact
    (see `v_scale_for_threshold`).
    """
    c = math.ceil(Fraction(theta) * Fraction(v_scale))
    if (c - 1) % (1 << VTH_SHIFT) != 0:
        vth_guess = max(0, (c - 1) // (1 << VTH_SHIFT))
        raise FixedPointError(
            f"no vth makes Lava's v > vth<<6 equal to v >= {theta} * v_scale at v_scale={v_scale} "
            f"(first spiking v would be {c}, Lava can only fire from 64*vth+1); "
            f"use v_scale={v_scale_for_threshold(theta, max(vth_guess, 1))!r} for vth={max(vth_guess, 1)}")
    vth = (c - 1) >> VTH_SHIFT
    check_ranges({"vth": vth})
    return FixedThreshold(vth=int(vth), v_scale=float(v_scale), first_spiking_v=int(c))


def v_scale_for_threshold(theta: float, vth: int) -> float:
    """A v_scale for which `threshold_to_fixed(theta, v_scale).vth == vth` exactly.

    Aims theta * v_scale at 64*vth + 1/2 (the middle of the interval
    (64*vth, 64*vth + 1] that yields c = 64*vth + 1), then verifies exactly.
    """
    check_ranges({"vth": vth})
    if not theta > 0:
        raise FixedPointError(f"theta={theta} must be positive to map onto vth >= 0")
    want = (1 << VTH_SHIFT) * int(vth) + 1
    s = (want - 0.5) / float(theta)
    if math.ceil(Fraction(theta) * Fraction(s)) != want:  # pragma: no cover - float rounding guard
        s = float(Fraction(want * 2 - 1, 2) / Fraction(theta))
    return s


def lif_params(
    *, theta: float, v_scale: float, tau_v: float = 2.0, tau_u: float = 1.0,
    decay_input: bool = True, bias: np.ndarray | float = 0.0,
) -> dict:
    """All LIF arguments for a float LIF (SpikeGPT: tau 2, decay_input, theta 1).

    Returns keyword arguments for `LIF` (Lava's or the emulator's) plus the
    input scale: an input of float value x must arrive as
    `a_in = x * input_gain * v_scale / 64` accumulation units.
    """
    d = lif_decays(tau_v, tau_u, decay_input)
    t = threshold_to_fixed(theta, v_scale)
    b = bias_to_fixed(bias, v_scale)
    def scalar_or_array(x: np.ndarray):
        return int(x) if np.ndim(x) == 0 else x
    return dict(du=d.du, dv=d.dv, vth=t.vth, bias_mant=scalar_or_array(b.bias_mant),
                bias_exp=scalar_or_array(b.bias_exp),
                a_in_scale=d.input_gain * float(v_scale) / (1 << ACT_SHIFT))


# ---------------------------------------------------------------------------
# Per-row weights and host-bound accumulations (the graded mapping)
# ---------------------------------------------------------------------------
INT32_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class RowQuantizedWeights:
    """A float matrix as a MIXED-sign Lava mantissa with one float step per output row.

    Row i stands for `mantissa[i] * step[i]`. The step does not go to Lava: the
    host folds it into its dequantisation of row i's accumulation, so every row
    uses the full mantissa range. Lava gets `lava_weights()` and one shared
    `weight_exp` chosen from the accumulation bound (`payload_shift`).
    """

    mantissa: np.ndarray        # int8-range int32, symmetric +-(2**(nwb-1) - 1)
    step: np.ndarray            # float64 per row
    num_weight_bits: int
    sqnr_db: float
    clipped_fraction: float     # always 0: each row's largest entry sets its step

    sign_mode: SignMode = SignMode.MIXED

    @property
    def truncate_bits(self) -> int:
        return truncate_bits(SignMode.MIXED, self.num_weight_bits)

    def lava_weights(self) -> np.ndarray:
        """`weights=` for Lava's Dense: mantissa << (8 - nwb + 1), unchanged by Lava's clip/truncate."""
        return self.mantissa.astype(np.int64) << self.truncate_bits

    def dequantize(self) -> np.ndarray:
        return self.mantissa.astype(np.float64) * self.step[:, None]


def sqnr_db(target: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(|target|^2 / |target - approx|^2); inf when exact."""
    sig = float(np.sum(np.square(target, dtype=np.float64)))
    noise = float(np.sum(np.square(target - approx, dtype=np.float64)))
    if noise == 0.0:
        return math.inf
    return -math.inf if sig == 0.0 else 10.0 * math.log10(sig / noise)


def quantize_rows(weights: np.ndarray, num_weight_bits: int = 8) -> RowQuantizedWeights:
    """Per-row symmetric quantization: step_i = max_j |W_ij| / (2**(nwb-1) - 1), ties away from zero.

    Computed in float32 (the precision of the model's weights), one pass per step, so
    that the 216M model's 177 M chip weights quantize in seconds; the SQNR sums are
    float64.
    """
    check_ranges({"num_weight_bits": num_weight_bits})
    w = np.asarray(weights, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise FixedPointError("weights contain NaN or inf")
    top = (1 << (int(num_weight_bits) - 1)) - 1
    if top < 1:
        raise FixedPointError(f"num_weight_bits={num_weight_bits}: a signed per-row mantissa needs >= 2 bits")
    n_out = w.shape[0]
    mant = np.empty(w.shape, dtype=np.int8 if top <= 127 else np.int32)
    step = np.ones(n_out)
    sig = noise = 0.0
    block = max(1, (1 << 20) // max(1, w.shape[1]))   # rows per block: bounded temporaries
    for lo in range(0, n_out, block):
        wb = w[lo:lo + block]
        row_max = np.abs(wb).max(axis=1).astype(np.float64) if wb.size else np.zeros(wb.shape[0])
        st = np.where(row_max > 0, row_max / top, 1.0)
        scaled = wb * (1.0 / st).astype(np.float32)[:, None]
        m = np.trunc(scaled + np.copysign(np.float32(0.5), scaled))     # round half away from zero
        np.clip(m, -top, top, out=m)
        err = wb - m * st.astype(np.float32)[:, None]
        sig += float(np.square(wb, dtype=np.float64).sum())
        noise += float(np.square(err, dtype=np.float64).sum())
        mant[lo:lo + block] = m
        step[lo:lo + block] = st
    sqnr = math.inf if noise == 0.0 else (-math.inf if sig == 0.0 else 10.0 * math.log10(sig / noise))
    return RowQuantizedWeights(mantissa=mant, step=step, num_weight_bits=int(num_weight_bits), sqnr_db=sqnr,
                               clipped_fraction=0.0)


def worst_row_accumulation(mantissa: np.ndarray, shift: int, input_limit: int) -> int:
    """`worst_accumulation` of the Lava weights `mantissa << shift`, without building them."""
    if not mantissa.size:
        return 0
    return int(np.abs(mantissa.astype(np.int16, copy=False)).sum(axis=1, dtype=np.int64).max()) \
        * (1 << int(shift)) * int(input_limit)


def worst_accumulation(lava_weights: np.ndarray, input_limit: int) -> int:
    """Largest |sum_j W_ij s_j| any input with |s_j| <= input_limit can produce (exact int)."""
    w = np.abs(np.asarray(lava_weights, dtype=np.int64))
    return int(w.sum(axis=1).max()) * int(input_limit) if w.size else 0


def payload_shift(worst: int, payload_bits: int = MAX_MESSAGE_BITS) -> int:
    """Smallest right shift d >= 0 after which every accumulation |a| <= worst fits
    a signed `payload_bits` payload (floor shifts: -worst >> d >= -2**(bits-1))."""
    d = 0
    while worst >= (1 << (payload_bits - 1 + d)):
        d += 1
    return d

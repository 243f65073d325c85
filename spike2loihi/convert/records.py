"""Typed quantization records: what conversion decided for each chip node, frozen.

Every chip node of a converted model has one record in `ConvertedModel.nodes`
(the artifact's manifest key `nodes`). Its class is registered per op type in the
`records` stage (`RECORDS.lookup(node)`), so reading an artifact turns each dict
into its record once, checking every field's type, and every consumer reads typed
fields (`params.weight_exp`), never string keys.

Serialisation is one `to_dict`/`from_dict` pair per record (fields named as the
artifact stores them; a field that is None is left out, and a field left out
reads as None, so artifacts written before these records load unchanged).

| op type | record | under |
|---|---|---|
| Projection, Head | `DenseParams` | both placements |
| LIF | `LifParams` | both placements |
| LayerNorm | `LayerNormParams` | `--placement chip` |
| TokenShift, Mix | `GridParams` | `--placement chip` |
| Product, ReLU2 | `ProductParams` | `--placement chip` |
| Sigmoid | `SigmoidParams` | `--placement chip` |
| Residual | `ResidualParams` | `--placement chip` |
| WKV | `WkvParams` | `--placement chip --wkv chip` |
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Optional

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.errors import RecordError

DYNAMIC, STATIC, CHIP_GRID = "dynamic", "static", "chip"
ENCODINGS = (DYNAMIC, STATIC, CHIP_GRID)


def _check_type(cls_name: str, name: str, value, hint) -> None:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:          # Optional[X]
        if value is None:
            return
        hint = next(a for a in args if a is not type(None))
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif dataclasses.is_dataclass(hint):
        ok = isinstance(value, hint)
    else:   # pragma: no cover - a record grew a field type this check does not know
        raise TypeError(f"{cls_name}.{name}: unchecked field type {hint}")
    if not ok:
        raise RecordError(f"{cls_name}.{name} = {_short(value)} is not {getattr(hint, '__name__', hint)}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Record:
    """Base of the records: checked fields, `to_dict` without Nones, `from_dict` with unknown keys refused."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_type(type(self).__name__, f.name, getattr(self, f.name), hints[f.name])

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            out[f.name] = v.to_dict() if isinstance(v, Record) else v
        return out

    @classmethod
    def from_dict(cls, d) -> "Record":
        if not isinstance(d, dict):
            raise RecordError(f"{cls.__name__}: expected an object, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RecordError(f"{cls.__name__}: unknown field {unknown[0]!r}")
        kw = {}
        for f in dataclasses.fields(cls):
            v = d.get(f.name)
            hint = hints[f.name]
            inner = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
            if isinstance(v, dict) and isinstance(inner, type) and issubclass(inner, Record):
                v = inner.from_dict(v)
            if v is None and f.default is dataclasses.MISSING and typing.get_origin(hint) is not typing.Union:
                raise RecordError(f"{cls.__name__}: field {f.name!r} is missing")
            if v is not None or f.default is dataclasses.MISSING:
                kw[f.name] = v
        try:
            return cls(**kw)
        except TypeError as exc:
            raise RecordError(f"{cls.__name__}: {exc}") from None


@dataclass(frozen=True)
class Encoding(Record):
    """How values enter a chip node.

    * `dynamic`: a `bits`-bit payload with a per-token scale (max |x| maps to the largest payload);
    * `static`: `q = clip(rint(x * inv_scale), -limit, limit)`, a calibrated scale (`frac` when the
      scale is a power of two, 2^frac);
    * `chip`: produced on the chip, integers on the 2^-frac grid, |q| <= limit.
    """

    encoding: str
    bits: int
    inv_scale: Optional[float] = None
    limit: Optional[int] = None
    frac: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        if self.encoding not in ENCODINGS:
            raise RecordError(f"Encoding.encoding = {self.encoding!r} is not one of {', '.join(ENCODINGS)}")
        if self.encoding == STATIC and (self.inv_scale is None or self.limit is None):
            raise RecordError("Encoding: a static encoding needs inv_scale and limit")


@dataclass(frozen=True)
class DenseParams(Record):
    """A chip Dense: Lava weights `mantissa << truncate_bits` (the tensor named `mantissa`), output
    `(W.s) >> -weight_exp`.

    Host-bound layers dequantise on the host with `row_scale` (a tensor: float step per row, times
    the token scale); `output_bits` is then their payload width. Layers feeding a chip op keep one
    power-of-two step (`weight_step`) and land on the 2^-out_frac grid. `group`: side-by-side layers
    run as one block-diagonal Sparse process; `in_step`: the float step of a chip-grid input;
    `folded_mix`: the input is [x ; prev] with the token-shift mix folded into the weights.
    """

    mantissa: str
    truncate_bits: int
    weight_exp: int
    num_weight_bits: int
    sign_mode: str
    input: Encoding
    row_scale: Optional[str] = None
    output_bits: Optional[int] = None
    group: Optional[str] = None
    weight_step: Optional[float] = None
    in_step: Optional[float] = None
    folded_mix: Optional[bool] = None
    out_frac: Optional[int] = None

    @property
    def input_limit(self) -> Optional[int]:
        """The largest |input| the producer sends: an encoder's clip limit (None: unbounded)."""
        if self.input.encoding == CHIP_GRID:
            return None
        return self.input.limit or ((1 << (self.input.bits - 1)) - 1)

    @property
    def fan_in_factor(self) -> int:
        """Inputs per IR input element: 2 where the mix is folded ([x ; prev])."""
        return 2 if self.folded_mix else 1


@dataclass(frozen=True)
class LifParams(Record):
    """A LIF population in Lava's fixed point: decays `du`/`dv`, threshold `vth` (spike when
    v > vth << 6), the float membrane grid `v_scale`, and how its input arrives (`input`: from the
    host; None: from a chip Dense or, with `in_frac`, a chip product on the 2^-in_frac grid)."""

    du: int
    dv: int
    vth: int
    v_scale: float
    bias_mant: int = 0
    bias_exp: int = 0
    input: Optional[Encoding] = None
    in_frac: Optional[int] = None


@dataclass(frozen=True)
class LayerNormParams(Record):
    """The on-chip LayerNorm datapath (`execute.onchip_ops.layernorm`): its shifts, grids and the
    tensors `gamma_q`, `beta_q`; `input` when the host feeds it (ln0 after the embedding)."""

    s0: int
    s1: int
    s_sq: int
    s2: int
    s3: int
    s4: int
    in_frac: int
    out_frac: int
    out_bits: int
    gamma_q: str
    beta_q: str
    input: Optional[Encoding] = None

    def datapath(self) -> dict:
        """The integer shifts and grids (what the Lava process takes)."""
        return {k: getattr(self, k) for k in ("s0", "s1", "s_sq", "s2", "s3", "s4", "in_frac", "out_frac",
                                              "out_bits")}


@dataclass(frozen=True)
class GridParams(Record):
    """A pass-through on the chip (token shift, folded mix): its values stay on the 2^-frac grid."""

    frac: int

    @property
    def out_frac(self) -> int:
        return self.frac


@dataclass(frozen=True)
class ProductParams(Record):
    """ProdNeuron `(a * b) >> exp` (relu² squares `max(x, 0)`), landing on 2^-out_frac; `input`: the
    encoding of a host operand (the WKV)."""

    exp: int
    out_frac: int
    out_bits: Optional[int] = None
    input: Optional[Encoding] = None


@dataclass(frozen=True)
class SigmoidParams(Record):
    """The 33-entry sigmoid table from the 2^-in_frac grid to 2^-out_frac."""

    in_frac: int
    out_frac: int


@dataclass(frozen=True)
class ResidualParams(Record):
    """GradedVec: x + spikes * spike_weight on the 2^-in_frac grid (2^-out_frac after a halving)."""

    spike_weight: int
    in_frac: int
    out_frac: int


@dataclass(frozen=True)
class WkvParams(Record):
    """The integer WKV (`execute.onchip_ops.wkv_step`): k arrives on 2^-k_frac (times log2 e), v on
    2^-v_frac; the exponent register and the tensors `u_q` (time_first * log2 e) and `w_q`
    (-exp(time_decay) * log2 e, clamped at -w_clamp) are on 2^-e_frac; the result is on v's grid."""

    k_frac: int
    v_frac: int
    e_frac: int
    u_q: str
    w_q: str
    w_clamp: float

    @property
    def out_frac(self) -> int:
        return self.v_frac

    def datapath(self) -> dict:
        """The grids (what the Lava process takes)."""
        return {"k_frac": self.k_frac, "v_frac": self.v_frac, "e_frac": self.e_frac}


#: The record class of a chip node, per op type.
RECORDS = registry.stage("records", lambda t, mapping, where: where == ir.CHIP,
                         "the typed quantization record of a chip node")
RECORDS.register(ir.Projection)(DenseParams)
RECORDS.register(ir.LIF)(LifParams)
RECORDS.register(ir.LayerNorm)(LayerNormParams)
RECORDS.register(ir.TokenShift, ir.Mix)(GridParams)
RECORDS.register(ir.Product, ir.ReLU2)(ProductParams)
RECORDS.register(ir.Sigmoid)(SigmoidParams)
RECORDS.register(ir.Residual)(ResidualParams)
RECORDS.register(ir.WKV)(WkvParams)


def record_for(node: ir.Op, d: dict) -> Record:
    """The record of chip node `node` from its stored dict (one RecordError line naming the node)."""
    try:
        return RECORDS.lookup(node).from_dict(d)
    except RecordError as exc:
        raise RecordError(f"node {node.name!r}: {exc}") from None


def nodes_to_dict(nodes: dict) -> dict:
    return {name: rec.to_dict() for name, rec in nodes.items()}


def out_frac(rec: Record) -> int:
    """The 2^-frac grid of a chip node's integer output under `--placement chip`."""
    frac = getattr(rec, "out_frac", None)
    if frac is None:
        raise RecordError(f"{type(rec).__name__} has no output grid")
    return int(frac)

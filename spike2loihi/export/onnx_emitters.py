"""The per-op ONNX emitters of the exporter (`spike2loihi.export.onnx`), stage by stage.

Three arithmetics (`Arithmetic`), each a pair of `spike2loihi.registry` stages, one for the
op's ONNX nodes and one for its state variables, registered per IR op type and found along the
type's MRO (a `Head` is emitted as a `Projection`):

* `FLOAT`: `onnx.float`, `onnx.float.state`, the float reference's torch ops (reference.py);
  needed by every per-token op, under any mapping (the float export);
* `HOST`: `onnx.host`, `onnx.host.state`, host_ops.py's numpy float32 formulas; needed by the
  host ops of a `--placement host` model (the converted export);
* `INTEGER`: `onnx.integer`, `onnx.integer.state`, Lava's fixed point (the emulator); needed by
  the chip ops of a `--placement host` model (the converted export).

A state stage needs a handler where the op carries state. An emitter is
`(export, node, inputs, state) -> value`: it adds the op's nodes to `export.g` (an
`onnx_builder._OnnxGraph`), reads parameters from `export.params` (`_FloatParams` or
`_ConvertedParams`, here too), takes and updates the state variables in `state`, and returns
a tensor name (a host value) or a `Payload` (integers on the chip). A state handler is
`(export, node) -> [(var, dtype, initial value)]`. The crossings: `ENCODERS` by the chip
node's input encoding name, `decoder(node)` by the chip op's facts (`spiking`, `dense`).
A `--placement chip` model puts LayerNorm, the sigmoids, the products, ... on the chip, where
`onnx.integer` has no emitter for them, so the exporter refuses it with one error naming the
first such op. The module imports nothing of the exporter but the builder (the registry
imports it on its own to enumerate the stages).

Float export (from a checkpoint): the float reference's own fp32 parameters
(`reference._prepare_weights`, RESCALE divisor included) and its ops:
F.layer_norm -> LayerNormalization (opset >= 17; its definition in ReduceMean
below), torch.sigmoid -> Sigmoid, matrix-vector products -> MatMul, the
rest op for op. Summation orders and exp differ between onnxruntime and torch,
so logits agree to float rounding (measured: < 2.2e-6 relative over 256
tokens), not bit for bit.

Converted export (from a `.s2l`): what `spike2loihi.execute.model_emulator.ModelEmulator.step`
computes, op for op.

* Host ops repeat `spike2loihi.execute.host_ops` in float32, operation for operation
  and in the same order. LayerNorm's two means are numpy's own pairwise
  summation (8 accumulators over blocks of <= 128, halves split at multiples
  of 8), spelled out in ONNX Adds, so they are bit-identical to numpy's. Add,
  Sub, Mul, Div and Sqrt are correctly rounded IEEE operations in both; Round
  is round-half-to-even like `np.rint`. The one op that is not bit-identical
  is `Exp` (sigmoid and WKV): onnxruntime's and numpy's float32 exp are both
  within about an ulp, and differ in the last bit for many arguments (the
  tests count how often that reaches a payload or flips a spike).
* Encodings at host->chip crossings and decodings at chip->host crossings are
  `host_ops.encode_dynamic` / `encode_static` / `decode` (payloads as int64).
  The encoders' finiteness check (HostNumericsError) is not in the graph.
* Chip `Dense` is exact integer arithmetic. onnxruntime has no int32 matrix
  product that wraps like Lava's accumulator, so the product is taken in
  floating point on exact integers: payloads |s| <= the encoder's limit and
  weights m (the int8 mantissa; Lava's weight is m << truncate_bits) bound
  every partial sum, in any order, any blocking and with or without FMA, by
  B = max_i sum_j |m_ij| * limit. The converter keeps B << truncate_bits
  below 2**31 by construction (quantize.py, `worst_accumulation`; re-checked
  at export), so B is far below 2**53 and float64 returns the exact integer
  sum; where B < 2**24 the MatMul runs in float32, exact for the same reason.
  Then Lava's `acc >> -weight_exp` (a floor) of acc = (m s) << truncate_bits
  is `Floor((m s) * 2**(truncate_bits + weight_exp))`, exact again (a power
  of two scales an integer below 2**53 exactly); a left shift is the product
  without Floor. The same bound means Lava's int32 accumulator never wraps,
  so no wrap is modelled; a model where one could happen is refused with an
  error naming the op.
* LIF is `spike2loihi.execute.process_emulator.lif_update` (bias 0) in int64:
  u = T(u * (4096 - du - 1) / 4096) + (a << 6), then Lava's 24-bit wrap of u;
  v = clip(T(v * (4096 - dv) / 4096) + u, +-(2**23 - 1)); spike where
  v > vth << 6; v = 0 where it spiked. T (round toward zero) is |p| div 4096,
  negated where p < 0: an integer division of a non-negative number, a floor
  in every runtime. With |a| <= 2**18 (checked at export; the converter keeps
  it below 2**16) and |u|, |v| <= 2**23 after every step, every value Lava
  stores in int32 stays below 2**31 (products are int64 in Lava's model too),
  so its int32 wraps are identities and are not modelled.

So the integer parts (Dense accumulations, membranes, spikes) are identical to
the emulator's whenever the host values that feed them are identical.

onnxruntime notes (1.23): its int64 `Sign` reads only the low 32 bits
(Sign(2**31) == -1), so T above avoids Sign; and its DivMulFusion rewrites
Div(1, d) -> Mul(., y) into Div(y, d), one rounding instead of numpy's two,
so the host sigmoid divides a vector of ones (the fusion only matches a
scalar 1). With those, the file gives the emulator's results under
onnxruntime's default (all) graph optimizations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from onnx import TensorProto

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.export.onnx_builder import ExportError

_LIF_INPUT_MAX = 1 << 18   # |a| bound under which no int32 intermediate of the LIF update can wrap
_INT32_MAX = 2 ** 31 - 1
_F32_EXACT = 1 << 24       # float32 holds every integer below this exactly

_WHAT = " (spike2loihi.export.onnx_emitters)"
ONNX_FLOAT = registry.stage("onnx.float", lambda t, mapping, where: t.per_token,
                            "the op as ONNX in the float reference's arithmetic" + _WHAT)
ONNX_HOST = registry.stage("onnx.host", lambda t, mapping, where: mapping == ir.HOST and where == ir.HOST
                           and t.per_token, "the host op as ONNX in host_ops' float32 arithmetic" + _WHAT)
ONNX_INTEGER = registry.stage("onnx.integer", lambda t, mapping, where: mapping == ir.HOST and where == ir.CHIP,
                              "the chip op as ONNX in Lava's integer arithmetic" + _WHAT)
ONNX_FLOAT_STATE = registry.stage("onnx.float.state", lambda t, mapping, where: t.per_token and bool(t.state),
                                  "the op's state variables in the float export" + _WHAT)
ONNX_HOST_STATE = registry.stage("onnx.host.state", lambda t, mapping, where: mapping == ir.HOST
                                 and where == ir.HOST and t.per_token and bool(t.state),
                                 "the host op's state variables in the converted export" + _WHAT)
ONNX_INTEGER_STATE = registry.stage("onnx.integer.state", lambda t, mapping, where: mapping == ir.HOST
                                    and where == ir.CHIP and bool(t.state),
                                    "the chip op's state variables (int64) in the converted export" + _WHAT)


@dataclass(frozen=True)
class Arithmetic:
    """The arithmetic an op is exported in: its name (in every node's doc string and in errors),
    the stage of its emitters and the stage of its state variables."""

    name: str
    ops: registry.Stage
    state: registry.Stage

    def emitter(self, node: ir.Op) -> Callable:
        fn = self.ops.find(type(node))
        if fn is None:
            raise ExportError(f"cannot export {node.name}: IR op {node.kind or type(node).__name__!r} "
                              f"({type(node).__name__}, placed on the {node.placement.where}) has no {self.name} "
                              f"ONNX form")
        return fn

    def state_vars(self, ex, node: ir.Op) -> List[tuple]:
        """[(var, dtype, initial value)] of `node` ([] for an op without state)."""
        fn = self.state.find(type(node))
        if fn is None:
            if node.state:
                raise ExportError(f"cannot export {node.name}: IR op {node.kind!r} carries state {node.state} "
                                  f"with no {self.name} ONNX form")
            return []
        return fn(ex, node)


FLOAT = Arithmetic("float", ONNX_FLOAT, ONNX_FLOAT_STATE)
HOST = Arithmetic("host", ONNX_HOST, ONNX_HOST_STATE)
INTEGER = Arithmetic("integer", ONNX_INTEGER, ONNX_INTEGER_STATE)


# ---------------------------------------------------------------------------
# Values flowing between emitters
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    """Integers on (or to/from) the chip, as in spike2loihi.execute.model_emulator: an int64 tensor and
    the float32 per-token scale travelling beside it (dynamic encodings), with the bound
    on |q| the export's exactness argument relies on."""

    q: str
    scale: Optional[str] = None
    bound: int = 0


# ---------------------------------------------------------------------------
# Parameters: the float reference's, or the converted model's
# ---------------------------------------------------------------------------
class _FloatParams:
    """The fp32 tensors the float reference computes with (reference._prepare_weights)."""

    arith_chip = arith_host = FLOAT

    def __init__(self, spec, semantics):
        import torch

        from spike2loihi.convert.quantize import float_weights
        from spike2loihi.model.reference import ReferenceModel

        self._torch = torch
        self.tensors = spec.tensors
        self.weights = {k: v.numpy() for k, v in float_weights(ReferenceModel(spec, semantics)).items()}

    def host(self, key: str) -> np.ndarray:
        t = self.tensors[key].float()
        t = t.reshape(-1) if t.dim() != 2 else t
        return np.ascontiguousarray(t.numpy(), dtype=np.float32)

    def time_decay(self, key: str) -> np.ndarray:
        return (-self._torch.exp(self.tensors[key].squeeze().float())).numpy().astype(np.float32)

    def weight(self, node: ir.Projection) -> np.ndarray:
        return self.weights[node.name]


def _neg_exp(t):
    return -np.exp(t)


class _ConvertedParams:
    """The converted model's host float32 params exactly as the emulator prepares them, and its chip nodes."""

    arith_chip, arith_host = INTEGER, HOST

    def __init__(self, model):
        from spike2loihi.execute.model_emulator import Params

        self.model = model
        self.P = Params(model)
        self.q = model.nodes

    def host(self, key: str) -> np.ndarray:
        return self.P.host(key)

    def time_decay(self, key: str) -> np.ndarray:
        return self.P.host(key, _neg_exp)


# ---------------------------------------------------------------------------
# Host ops (float32, as host_ops.py and reference.py write them)
# ---------------------------------------------------------------------------
@ONNX_FLOAT.register(ir.Embedding)
@ONNX_HOST.register(ir.Embedding)
def _embedding(ex, n, ins, st):
    g = ex.g
    x = g.op("Gather", [ex.param(n.weight), ins["token"]], axis=0)
    if n.binary:   # x = (emb[token] >= 0)
        x = g.cast(g.op("GreaterOrEqual", [x, g.f32(0.0)]), TensorProto.FLOAT)
    return x


@ONNX_FLOAT.register(ir.LayerNorm)
def _layernorm_float(ex, n, ins, st):
    """torch's F.layer_norm: LayerNormalization (opset >= 17), else its definition in ReduceMean."""
    g, x = ex.g, ins["x"]
    if g.opset >= 17:
        return g.op("LayerNormalization", [x, ex.param(n.weight), ex.param(n.bias)], axis=-1, epsilon=float(n.eps))
    mean = g.op("ReduceMean", [x], axes=[-1], keepdims=1)
    xc = g.op("Sub", [x, mean])
    var = g.op("ReduceMean", [g.op("Mul", [xc, xc])], axes=[-1], keepdims=1)
    den = g.op("Sqrt", [g.op("Add", [var, g.f32(n.eps)])])
    return g.op("Add", [g.op("Mul", [g.op("Div", [xc, den]), ex.param(n.weight)]), ex.param(n.bias)])


@ONNX_HOST.register(ir.LayerNorm)
def _layernorm_host(ex, n, ins, st):
    """host_ops.layernorm, with numpy's own pairwise summation in both means (bit for bit)."""
    g, x = ex.g, ins["x"]
    mean = g.numpy_mean_last(x, n.dim)
    xc = g.op("Sub", [x, mean])
    var = g.numpy_mean_last(g.op("Mul", [xc, xc]), n.dim)
    den = g.op("Sqrt", [g.op("Add", [var, g.f32(n.eps)])])
    y = g.op("Mul", [g.op("Div", [xc, den]), ex.param(n.weight)])
    return g.op("Add", [y, ex.param(n.bias)])


@ONNX_FLOAT_STATE.register(ir.TokenShift)
@ONNX_HOST_STATE.register(ir.TokenShift)
def _shift_state(ex, n):
    return [("prev", np.float32, 0.0)]


@ONNX_FLOAT.register(ir.TokenShift)
@ONNX_HOST.register(ir.TokenShift)
def _token_shift(ex, n, ins, st):
    prev, st["prev"] = st["prev"], ins["x"]
    return prev


@ONNX_FLOAT.register(ir.Mix)
@ONNX_HOST.register(ir.Mix)
def _mix(ex, n, ins, st):
    g = ex.g
    m = ex.params.host(n.mix)
    keep = g.init(f"1-{n.mix}", (np.float32(1) - m).astype(np.float32))
    return g.op("Add", [g.op("Mul", [ins["x"], ex.param(n.mix)]), g.op("Mul", [ins["prev"], keep])])


@ONNX_FLOAT.register(ir.Sigmoid)
def _sigmoid_float(ex, n, ins, st):
    return ex.g.op("Sigmoid", [ins["x"]])     # torch.sigmoid


@ONNX_HOST.register(ir.Sigmoid)
def _sigmoid_host(ex, n, ins, st):
    """host_ops.sigmoid: 1 / (1 + exp(-x)).

    The numerator is a vector of ones, not the scalar 1: onnxruntime's DivMulFusion
    rewrites Div(1, d) followed by Mul(., y) into Div(y, d), which rounds once where
    numpy rounds twice; it only matches a one-element constant.
    """
    g = ex.g
    e = g.op("Exp", [g.op("Neg", [ins["x"]])])
    ones = g.init(f"const:ones[{n.dim}]", np.ones(n.dim, dtype=np.float32))
    return g.op("Div", [ones, g.op("Add", [g.f32(1.0), e])])


@ONNX_FLOAT_STATE.register(ir.WKV)
@ONNX_HOST_STATE.register(ir.WKV)
def _wkv_state(ex, n):
    return [("aa", np.float32, 0.0), ("bb", np.float32, 0.0), ("pp", np.float32, -1e30)]


@ONNX_FLOAT.register(ir.WKV)
@ONNX_HOST.register(ir.WKV)
def _wkv(ex, n, ins, st):
    g = ex.g
    k, v, aa, bb, pp = ins["k"], ins["v"], st["aa"], st["bb"], st["pp"]
    tf = ex.param(n.time_first)
    td = g.init(f"-exp({n.time_decay})", ex.params.time_decay(n.time_decay))
    ww = g.op("Add", [tf, k])
    p = g.op("Max", [pp, ww])
    e1 = g.op("Exp", [g.op("Sub", [pp, p])])
    e2 = g.op("Exp", [g.op("Sub", [ww, p])])
    num = g.op("Add", [g.op("Mul", [e1, aa]), g.op("Mul", [e2, v])])
    den = g.op("Add", [g.op("Mul", [e1, bb]), e2])
    out = g.op("Div", [num, den])
    ww = g.op("Add", [pp, td])
    p = g.op("Max", [ww, k])
    e1 = g.op("Exp", [g.op("Sub", [ww, p])])
    e2 = g.op("Exp", [g.op("Sub", [k, p])])
    st["aa"] = g.op("Add", [g.op("Mul", [e1, aa]), g.op("Mul", [e2, v])])
    st["bb"] = g.op("Add", [g.op("Mul", [e1, bb]), e2])
    st["pp"] = p
    return out


@ONNX_FLOAT.register(ir.Product)
@ONNX_HOST.register(ir.Product)
def _product(ex, n, ins, st):
    return ex.g.op("Mul", [ins["a"], ins["b"]])


@ONNX_FLOAT.register(ir.ReLU2)
@ONNX_HOST.register(ir.ReLU2)
def _relu2(ex, n, ins, st):
    r = ex.g.op("Relu", [ins["x"]])
    return ex.g.op("Mul", [r, r])


@ONNX_FLOAT.register(ir.Residual)
@ONNX_HOST.register(ir.Residual)
def _residual(ex, n, ins, st):
    y = ex.g.op("Add", [ins["x"], ins["s"]])
    return ex.g.op("Mul", [y, ex.g.f32(0.5)]) if n.halve else y


# ---------------------------------------------------------------------------
# Chip ops in float (the float model: reference.py)
# ---------------------------------------------------------------------------
@ONNX_FLOAT.register(ir.Projection)
def _matmul(ex, n, ins, st):
    w = ex.params.weight(n)
    name = n.weight + (f"/{n.divisor}" if n.divisor != 1 else "") + ".T"
    return ex.g.op("MatMul", [ins["x"], ex.g.init(name, np.ascontiguousarray(w.T))])


@ONNX_FLOAT_STATE.register(ir.LIF)
def _lif_state_float(ex, n):
    return [("v", np.float32, 0.0)]


@ONNX_FLOAT.register(ir.LIF)
def _lif_float(ex, n, ins, st):
    """reference.lif_step: v += (x - v) / 2; spike = (v - 1 >= 0); v = 0 where it spiked."""
    if n.tau != 2.0 or n.theta != 1.0:
        raise ExportError(f"cannot export {n.name}: LIF with tau {n.tau}, theta {n.theta} (the float "
                          "reference has tau 2, threshold 1)")
    g, v = ex.g, st["v"]
    v = g.op("Add", [v, g.op("Div", [g.op("Sub", [ins["x"], v]), g.f32(2.0)])])
    fired = g.op("GreaterOrEqual", [g.op("Sub", [v, g.f32(1.0)]), g.f32(0.0)])
    st["v"] = g.op("Where", [fired, g.f32(0.0), v])
    return g.cast(fired, TensorProto.FLOAT)


# ---------------------------------------------------------------------------
# Chip ops in Lava's integers (the converted model: execute.py / emulator.py)
# ---------------------------------------------------------------------------
def _dense_bound(ex, n, qn, in_bound: int) -> Tuple[int, int]:
    """(worst |W s| over every input within the encoder's bound, worst output), checked for exactness."""
    from spike2loihi.convert.fixed_point import worst_accumulation

    lw = ex.params.model.tensors[qn.mantissa].astype(np.int64) << int(qn.truncate_bits)
    worst = worst_accumulation(lw, in_bound)
    e = int(qn.weight_exp)
    out = worst << e if e > 0 else worst >> -e
    if worst > _INT32_MAX or (e > 0 and out > _INT32_MAX):
        raise ExportError(f"cannot export {n.name} ({n.kind} on chip): Lava's int32 accumulator can wrap there "
                          f"(worst case 2^{math.log2(max(worst, 1)):.1f} for inputs up to {in_bound}), and ONNX has "
                          "no int32-wrapping matrix product; convert it again (the converter keeps every "
                          "accumulation inside int32)")
    return worst, out


@ONNX_INTEGER.register(ir.Projection)
def _dense(ex, n, ins, st):
    """Lava's Dense, graded input: acc = W s exact in float64, then >> -weight_exp (floor) or << weight_exp."""
    g, qn, p = ex.g, ex.params.q[n.name], ins["x"]
    _, out_bound = _dense_bound(ex, n, qn, p.bound)
    m = ex.params.model.tensors[qn.mantissa]
    worst_m = int(np.abs(m.astype(np.int64)).sum(axis=1).max()) * p.bound if m.size else 0
    dt = TensorProto.FLOAT if worst_m < _F32_EXACT else TensorProto.DOUBLE   # every partial sum exact
    mt = g.cast(g.init(qn.mantissa + ".T", np.ascontiguousarray(m.T.astype(np.int8))), dt)
    acc = g.op("MatMul", [g.cast(p.q, dt), mt])                        # sum_j m_ij s_j, exact
    if dt == TensorProto.FLOAT:
        acc = g.cast(acc, TensorProto.DOUBLE)
    shift = int(qn.truncate_bits) + int(qn.weight_exp)            # (m << k) s >> -e == m s * 2^(k+e)
    if shift != 0:
        acc = g.op("Mul", [acc, g.const(2.0 ** shift, np.float64)])
    if shift < 0:
        acc = g.op("Floor", [acc])
    return Payload(g.cast(acc, TensorProto.INT64), p.scale, out_bound)


@ONNX_INTEGER_STATE.register(ir.LIF)
def _lif_state_int(ex, n):
    return [("u", np.int64, 0), ("v", np.int64, 0)]


def _toward_zero_decay(g, x: str, factor: int) -> str:
    """Lava's decay T(x * factor / 4096): (|p| div 4096), negated where p < 0; p = x * factor.

    Not Sign(p) * ...: onnxruntime's int64 Sign looks at the low 32 bits only
    (Sign(2**31) is -1), and p reaches 2**34.
    """
    from spike2loihi.convert.fixed_point import DECAY_UNITY

    if factor == 0:
        return g.op("Mul", [x, g.const(0, np.int64)])
    p = g.op("Mul", [x, g.const(factor, np.int64)])
    q = g.op("Div", [g.op("Abs", [p]), g.const(DECAY_UNITY, np.int64)])
    return g.op("Where", [g.op("Less", [p, g.const(0, np.int64)]), g.op("Neg", [q]), q])


@ONNX_INTEGER.register(ir.LIF)
def _lif_int(ex, n, ins, st):
    """spike2loihi.execute.process_emulator.lif_update (bias 0), in int64."""
    from spike2loihi.convert.fixed_point import ACT_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET, STATE_MAX, V_LIMIT, VTH_SHIFT

    g, qn, a = ex.g, ex.params.q[n.name], ins["x"]
    if a.bound > _LIF_INPUT_MAX:
        raise ExportError(f"cannot export {n.name} (lif on chip): its input can reach {a.bound}, beyond "
                          f"{_LIF_INPUT_MAX}, where Lava's int32 membrane arithmetic could wrap")
    c = lambda v: g.const(v, np.int64)  # noqa: E731
    a6 = g.op("Mul", [a.q, c(1 << ACT_SHIFT)])
    pre = g.op("Add", [_toward_zero_decay(g, st["u"], DECAY_UNITY - (int(qn.du) + DS_OFFSET)), a6])
    # Lava's 24-bit "wrap" of u: one +-2**24 correction
    u = g.op("Where", [g.op("Greater", [pre, c(STATE_MAX)]), g.op("Sub", [pre, c(2 * STATE_MAX)]), pre])
    u = g.op("Where", [g.op("LessOrEqual", [u, c(-STATE_MAX)]), g.op("Add", [pre, c(2 * STATE_MAX)]), u])
    vsum = g.op("Add", [_toward_zero_decay(g, st["v"], DECAY_UNITY - (int(qn.dv) + DM_OFFSET)), u])
    v = g.op("Max", [g.op("Min", [vsum, c(V_LIMIT)]), c(-V_LIMIT)])
    fired = g.op("Greater", [v, c(int(qn.vth) << VTH_SHIFT)])
    st["u"] = u
    st["v"] = g.op("Where", [fired, c(0), v])
    return Payload(g.cast(fired, TensorProto.INT64), None, 1)


# -- crossings ------------------------------------------------------------------
def _encode_dynamic(ex, chip: ir.Op, x: str, enc: dict) -> Payload:
    """host_ops.encode_dynamic: q = clip(rint(x * (qmax / max|x|))), scale = max|x| / qmax (0 for x == 0)."""
    from spike2loihi.execute.host_ops import qmax

    g, top = ex.g, qmax(enc.bits)
    m = g.reduce_max_last(g.op("Abs", [x]))
    pos = g.op("Greater", [m, g.f32(0.0)])
    safe = g.op("Where", [pos, m, g.f32(1.0)])
    y = g.op("Round", [g.op("Mul", [x, g.op("Div", [g.f32(top), safe])])])
    q = g.cast(g.op("Clip", [y, g.f32(-top), g.f32(top)]), TensorProto.INT64)
    scale = g.op("Where", [pos, g.op("Div", [m, g.f32(top)]), g.f32(0.0)])
    return Payload(q, scale, top)


def _encode_static(ex, chip: ir.Op, x: str, enc: dict) -> Payload:
    """host_ops.encode_static: q = clip(rint(x * inv_scale), -limit, limit)."""
    g, limit = ex.g, int(enc.limit)
    y = g.op("Round", [g.op("Mul", [x, g.f32(np.float32(enc.inv_scale))])])
    return Payload(g.cast(g.op("Clip", [y, g.f32(-limit), g.f32(limit)]), TensorProto.INT64), None, limit)


#: input encoding name -> host value as a chip payload
ENCODERS: Dict[str, Callable] = {"dynamic": _encode_dynamic, "static": _encode_static}


def _decode_spikes(ex, node, p: Payload) -> str:
    return ex.g.cast(p.q, TensorProto.FLOAT)    # host_ops.spikes_to_float


def _decode_dense(ex, node, p: Payload) -> str:
    """host_ops.decode: acc (exact in float32: |acc| < 2**23) * row_scale * token_scale."""
    g = ex.g
    rs = g.init(ex.params.q[node.name].row_scale, ex.params.P.row_scale[node.name])
    return g.op("Mul", [g.op("Mul", [g.cast(p.q, TensorProto.FLOAT), rs]), p.scale])


def decoder(node: ir.Op) -> Optional[Callable]:
    """How a chip op's output reaches the host, read from its facts: spikes (`spiking`) as 0/1
    floats, a Dense accumulation (`dense`) dequantised; None where the op has neither."""
    return _decode_spikes if node.spiking else _decode_dense if node.dense else None

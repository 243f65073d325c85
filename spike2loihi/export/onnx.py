"""One RNN step of a SpikeGPT as an ONNX graph: the float model, or the converted one.

    proto = export_checkpoint(spec, spec.semantics("run"))    # the float model (= reference.py)
    proto = export_artifact(artifact.load("model.s2l"))        # the converted model (= execute.py)
    data = to_bytes(proto)                                     # onnx.checker full check, then bytes

The exporter walks the IR (`spike2loihi.convert.ir`) in execution order and asks a
registry keyed by IR node type and arithmetic (`@emits(HOST, ir.LayerNorm)`,
looked up along the type's MRO as `spike2loihi.execute.model_emulator.lookup` does) for the
ONNX nodes of each op. Three arithmetics: FLOAT (the float reference's torch
ops, reference.py), HOST (host_ops.py's numpy float32 formulas) and INTEGER
(Lava's fixed point, emulator.py). The float export uses FLOAT for every op;
the converted export uses HOST for host ops and INTEGER for chip ops, with the
encodings and decodings of execute.py at every host<->chip crossing.

Every ONNX node carries a doc string and metadata (`s2l.ir_node`, `s2l.ir_op`,
`s2l.layer`, `s2l.placement`, `s2l.reason`, `s2l.role` = op, encode, decode or
output) naming the IR op it belongs to and where the converter places that op
(chip or host, and why), so that Netron shows the partition node by node
(`block_groups` / `draw_block` read it back). The model's metadata
(`spike2loihi.*`, the `M_*` keys) carries the kind of export, config,
semantics, the state layout, the source's sha256, the artifact's sha256,
format version and bit widths, and the tokenizer (so `spike2loihi run
OUT.onnx --prompt` works).

Graph interface (batch is a symbolic dimension):

* inputs: `token` int64 [batch]; one tensor per state variable of an IR node,
  named `<node>/<var>` as `spike2loihi.execute.model_emulator.flatten_state` names them:
  `blocks.i.att.shift/prev`, `blocks.i.ffn.shift/prev` (token shift),
  `blocks.i.att.wkv/aa`, `/bb`, `/pp` (WKV numerator, denominator, max) as
  float32 [batch, C]; the LIF membranes `blocks.i.{att,ffn}.lif/v` float32 in
  the float export, and `.../u`, `.../v` **int64** in the converted export
  (exact integers on Lava's grid, carried as int64 so that every integer op
  is an integer op).
* outputs: `logits` float32 [batch, V], `att_spikes` and `ffn_spikes` float32
  0/1 [batch, L, C], and `<node>/<var>.next` for every state input.
  The `spike2loihi.state` metadata lists the state tensors with their dtype,
  width and initial value (`pp` starts at -1e30, everything else at 0).

Float export (from a checkpoint): the float reference's own fp32 parameters
(`reference._prepare_weights`, RESCALE divisor included) and its ops:
F.layer_norm -> LayerNormalization (opset >= 17; its definition in ReduceMean
below), torch.sigmoid -> Sigmoid, matrix-vector products -> MatMul, the
rest op for op. Summation orders and exp differ between onnxruntime and torch,
so logits agree to float rounding (measured: < 2.2e-6 relative over 256
tokens), not bit for bit.

Converted export (from a `.s2l`): what `spike2loihi.execute.model_emulator.Executor.step`
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

import contextlib
import json
import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spike2loihi import __version__
from spike2loihi.convert import ir
from spike2loihi.errors import Spike2LoihiError

FORMAT = "spike2loihi-onnx-step"
FORMAT_VERSION = 1
MIN_OPSET = 13          # Split/Squeeze/Unsqueeze take their sizes and axes as inputs
MAX_OPSET = 23          # the newest opset this onnxruntime (1.23) runs
DEFAULT_OPSET = 17      # widely supported by runtimes and converters
MIN_IR_VERSION = 10     # node metadata_props (the placement shown in Netron)
KIND_FLOAT, KIND_CONVERTED = "float", "converted"
# The arithmetic an op is exported in: FLOAT = the float reference's torch ops (reference.py),
# HOST = host_ops.py's numpy float32 formulas, INTEGER = Lava's fixed point (emulator.py).
FLOAT, HOST, INTEGER = "float", "host", "integer"

TOKEN, LOGITS, ATT_SPIKES, FFN_SPIKES = "token", "logits", "att_spikes", "ffn_spikes"
PROBE_PREFIX = "probe:"

# Model metadata keys.
M_FORMAT = "spike2loihi.format"
M_FORMAT_VERSION = "spike2loihi.format_version"
M_KIND = "spike2loihi.kind"                      # float | converted
M_TOOLCHAIN = "spike2loihi.toolchain_version"
M_CONFIG = "spike2loihi.config"                  # JSON: n_layer, n_embd, vocab_size
M_SEMANTICS = "spike2loihi.semantics"            # JSON: name, binary_embedding, rescale_layer
M_STATE = "spike2loihi.state"                    # JSON list: name, node, var, dtype, dim, init
M_PLACEMENT = "spike2loihi.placement"            # JSON: IR ops on chip / host, crossings per token
M_SOURCE_PATH = "spike2loihi.source_path"
M_SOURCE_SHA256 = "spike2loihi.source_sha256"    # the checkpoint's
M_SOURCE_FORMAT = "spike2loihi.source_format"
M_ARTIFACT_PATH = "spike2loihi.artifact_path"
M_ARTIFACT_SHA256 = "spike2loihi.artifact_sha256"
M_ARTIFACT_FORMAT_VERSION = "spike2loihi.artifact_format_version"
M_WEIGHT_BITS = "spike2loihi.weight_bits"
M_ACT_BITS = "spike2loihi.act_bits"
M_LIF_INPUT_BITS = "spike2loihi.lif_input_bits"
M_QUANTIZATION = "spike2loihi.quantization"      # JSON: the manifest's quantization options
M_TOKENIZER = "spike2loihi.tokenizer"            # the tokenizer file's text (char vocab or tokenizers JSON)
M_TOKENIZER_KIND = "spike2loihi.tokenizer_kind"
M_TOKENIZER_NAME = "spike2loihi.tokenizer_name"

_PROTOBUF_LIMIT = 2 ** 31 - 1
_LIF_INPUT_MAX = 1 << 18   # |a| bound under which no int32 intermediate of the LIF update can wrap
_INT32_MAX = 2 ** 31 - 1
_F32_EXACT = 1 << 24       # float32 holds every integer below this exactly
_ONNX_DTYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
               np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int8): TensorProto.INT8}


class ExportError(Spike2LoihiError):
    """The model cannot be exported (an op ONNX cannot express exactly, a bad opset, a size limit)."""


def state_input(node: str, var: str) -> str:
    return f"{node}/{var}"


def state_output(node: str, var: str) -> str:
    return f"{node}/{var}.next"


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
# The ONNX graph under construction
# ---------------------------------------------------------------------------
class _OnnxGraph:
    """Nodes, initializers, inputs and outputs; every node gets the current scope's doc and metadata."""

    def __init__(self, opset: int):
        self.opset = int(opset)
        self.nodes: List[onnx.NodeProto] = []
        self.inits: Dict[str, onnx.TensorProto] = {}
        self.inputs: List[onnx.ValueInfoProto] = []
        self.outputs: List[onnx.ValueInfoProto] = []
        self._used: set = set()
        self._scope: Tuple[str, str, Dict[str, str]] = ("step", "", {})
        self._consts: Dict[tuple, str] = {}

    # -- scopes and names ----------------------------------------------------
    @contextlib.contextmanager
    def scope(self, key: str, doc: str, meta: Dict[str, str]) -> Iterator[None]:
        saved = self._scope
        self._scope = (key, doc, meta)
        try:
            yield
        finally:
            self._scope = saved

    def fresh(self, hint: str) -> str:
        base = f"{self._scope[0]}/{hint}"
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    # -- tensors -------------------------------------------------------------
    def init(self, name: str, array: np.ndarray) -> str:
        """An initializer (a parameter), stored once under `name`."""
        if name not in self.inits:
            arr = np.ascontiguousarray(array)
            if arr.dtype not in _ONNX_DTYPE:
                raise ExportError(f"initializer {name}: dtype {arr.dtype} has no ONNX form here")
            self.inits[name] = numpy_helper.from_array(arr, name)
            self._used.add(name)
        return name

    def const(self, value, dtype=np.float32) -> str:
        """A shared constant: a scalar, or a 1-D int64 list (shapes, axes, split sizes)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            shown = repr(arr.tolist()).replace(" ", "")
            name = f"const:{arr.dtype.name}:{shown}"
            self._consts[key] = self.init(name, arr)
        return self._consts[key]

    def f32(self, value: float) -> str:
        return self.const(np.float32(value), np.float32)

    def i64(self, value) -> str:
        return self.const(value, np.int64)

    # -- nodes ---------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, hint: str = "", **attrs):
        outs = [self.fresh(hint or op_type) for _ in range(n_out)]
        self._add(helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"{op_type}#node"), **attrs))
        return outs[0] if n_out == 1 else outs

    def identity(self, x: str, name: str) -> str:
        """`name` (a graph output) = x."""
        self._add(helper.make_node("Identity", [x], [name], name=self.fresh("Identity#node")))
        return name

    def _add(self, node: onnx.NodeProto) -> None:
        _, doc, meta = self._scope
        node.doc_string = doc
        for k, v in meta.items():
            e = node.metadata_props.add()
            e.key, e.value = k, str(v)
        self.nodes.append(node)

    # -- opset-dependent helpers -------------------------------------------------
    def reduce_max_last(self, x: str) -> str:
        if self.opset >= 18:
            return self.op("ReduceMax", [x, self.i64([-1])], keepdims=1)
        return self.op("ReduceMax", [x], axes=[-1], keepdims=1)

    def split(self, x: str, axis: int, sizes: Sequence[int]) -> List[str]:
        if len(sizes) == 1:
            return [x]
        return self.op("Split", [x, self.i64(list(sizes))], n_out=len(sizes), axis=axis)

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", [x, self.i64([start]), self.i64([end]), self.i64([axis])])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.i64(list(shape))])

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.i64([axis])])

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", [x], to=to)

    # -- numpy's pairwise sum ----------------------------------------------------
    def numpy_mean_last(self, x: str, n: int) -> str:
        """`x.mean(axis=-1, keepdims=True, dtype=float32)` of a float32 (batch, n), bit for bit.

        numpy sums a contiguous row pairwise (`pairwise_sum` in loops_utils.h): rows
        of <= 128 with 8 accumulators, r[j] += x[i + j] for i = 8, 16, ..., then
        ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest one by one
        (rows of < 8: one by one); longer rows split at n/2 rounded down to a
        multiple of 8, each half summed so. Then the sum is divided by n in float32.
        Blocks of one size are summed together (one batched Add per step).
        """
        plan = _pairwise_plan(0, n)
        leaves = _plan_leaves(plan)
        sums: Dict[int, str] = {}           # leaf start -> (batch, 1, 1)
        by_size: Dict[int, List[int]] = {}
        for start, size in leaves:
            by_size.setdefault(size, []).append(start)
        for size, starts in by_size.items():
            nl = len(starts)
            if nl == 1:
                group = self.unsqueeze(self.slice(x, starts[0], starts[0] + size, 1), 1)
            elif starts == list(range(0, nl * size, size)) and nl * size == n:
                group = self.reshape(x, [0, nl, size])
            else:
                idx = np.asarray([list(range(s, s + size)) for s in starts], dtype=np.int64)
                group = self.op("Gather", [x, self.i64(idx)], axis=1)
            res = self._block_sums(group, nl, size)           # (batch, nl, 1)
            for start, part in zip(starts, self.split(res, 1, [1] * nl)):
                sums[start] = part

        def combine(p) -> str:
            if p[0] == "leaf":
                return sums[p[1]]
            return self.op("Add", [combine(p[1]), combine(p[2])])

        total = self.reshape(combine(plan), [0, 1])
        return self.op("Div", [total, self.f32(n)])

    def _block_sums(self, g: str, nl: int, size: int) -> str:
        """Pairwise-sum leaves (size <= 128) of g (batch, nl, size) -> (batch, nl, 1)."""
        if size < 8:
            parts = self.split(g, 2, [1] * size)
            res = parts[0]                        # 0 + x0 == x0
            for p in parts[1:]:
                res = self.op("Add", [res, p])
            return res
        m = size - size % 8
        body = g if m == size else self.slice(g, 0, m, 2)
        chunks = self.split(self.reshape(body, [0, nl, m // 8, 8]), 2, [1] * (m // 8))
        r = chunks[0]
        for c in chunks[1:]:
            r = self.op("Add", [r, c])
        lane = self.split(r, 3, [1] * 8)
        add = lambda a, b: self.op("Add", [a, b])  # noqa: E731
        res = add(add(add(lane[0], lane[1]), add(lane[2], lane[3])), add(add(lane[4], lane[5]), add(lane[6], lane[7])))
        res = self.reshape(res, [0, nl, 1])
        for i in range(m, size):
            res = add(res, self.slice(g, i, i + 1, 2))
        return res


def _pairwise_plan(start: int, n: int):
    if n <= 128:
        return ("leaf", start, n)
    n2 = n // 2
    n2 -= n2 % 8
    return ("add", _pairwise_plan(start, n2), _pairwise_plan(start + n2, n - n2))


def _plan_leaves(p) -> List[Tuple[int, int]]:
    if p[0] == "leaf":
        return [(p[1], p[2])]
    return _plan_leaves(p[1]) + _plan_leaves(p[2])


def numpy_pairwise_mean(x: np.ndarray) -> np.ndarray:
    """The same summation in numpy float32 scalars (what the ONNX nodes compute; for tests)."""
    F = np.float32

    def pw(a):
        n = len(a)
        if n <= 128:
            if n < 8:
                r = F(0)
                for v in a:
                    r = F(r + v)
                return r
            acc = [F(v) for v in a[:8]]
            i = 8
            while i < n - n % 8:
                for j in range(8):
                    acc[j] = F(acc[j] + a[i + j])
                i += 8
            res = F(F(F(acc[0] + acc[1]) + F(acc[2] + acc[3])) + F(F(acc[4] + acc[5]) + F(acc[6] + acc[7])))
            for k in range(i, n):
                res = F(res + a[k])
            return res
        n2 = n // 2
        n2 -= n2 % 8
        return F(pw(a[:n2]) + pw(a[n2:]))

    x = np.asarray(x, dtype=F)
    return np.asarray([[F(pw(row) / F(x.shape[-1]))] for row in x.reshape(-1, x.shape[-1])],
                      dtype=F).reshape(x.shape[:-1] + (1,))


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
# Registries keyed by IR node type
# ---------------------------------------------------------------------------
EMITTERS: Dict[str, Dict[type, Callable]] = {FLOAT: {}, HOST: {}, INTEGER: {}}
STATE_VARS: Dict[str, Dict[type, Callable]] = {FLOAT: {}, HOST: {}, INTEGER: {}}
DECODERS: Dict[type, Callable] = {}       # chip node type -> its output as a host float32 value
ENCODERS: Dict[str, Callable] = {}        # input encoding name -> host value as a chip payload


def emits(arith, op_type: type):
    """Register an emitter of `op_type` for one arithmetic or a tuple of them."""
    def register(fn):
        for a in (arith if isinstance(arith, tuple) else (arith,)):
            EMITTERS[a][op_type] = fn
        return fn
    return register


def state_vars(arith, op_type: type):
    def register(fn):
        for a in (arith if isinstance(arith, tuple) else (arith,)):
            STATE_VARS[a][op_type] = fn
        return fn
    return register


def _find(table: Dict[type, Callable], node: ir.Op) -> Optional[Callable]:
    for cls in type(node).__mro__:
        if cls in table:
            return table[cls]
    return None


def lookup(arith: str, node: ir.Op) -> Callable:
    fn = _find(EMITTERS[arith], node)
    if fn is None:
        raise ExportError(f"cannot export {node.name}: IR op {node.kind or type(node).__name__!r} "
                          f"({type(node).__name__}, placed on the {node.placement.where}) has no {arith} "
                          f"ONNX form")
    return fn


# ---------------------------------------------------------------------------
# Host ops (float32, as host_ops.py and reference.py write them)
# ---------------------------------------------------------------------------
@emits((FLOAT, HOST), ir.Embedding)
def _embedding(ex, n, ins, st):
    g = ex.g
    x = g.op("Gather", [ex.param(n.weight), ins["token"]], axis=0)
    if n.binary:   # x = (emb[token] >= 0)
        x = g.cast(g.op("GreaterOrEqual", [x, g.f32(0.0)]), TensorProto.FLOAT)
    return x


@emits(FLOAT, ir.LayerNorm)
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


@emits(HOST, ir.LayerNorm)
def _layernorm_host(ex, n, ins, st):
    """host_ops.layernorm, with numpy's own pairwise summation in both means (bit for bit)."""
    g, x = ex.g, ins["x"]
    mean = g.numpy_mean_last(x, n.dim)
    xc = g.op("Sub", [x, mean])
    var = g.numpy_mean_last(g.op("Mul", [xc, xc]), n.dim)
    den = g.op("Sqrt", [g.op("Add", [var, g.f32(n.eps)])])
    y = g.op("Mul", [g.op("Div", [xc, den]), ex.param(n.weight)])
    return g.op("Add", [y, ex.param(n.bias)])


@state_vars((FLOAT, HOST), ir.TokenShift)
def _shift_state(ex, n):
    return [("prev", np.float32, 0.0)]


@emits((FLOAT, HOST), ir.TokenShift)
def _token_shift(ex, n, ins, st):
    prev, st["prev"] = st["prev"], ins["x"]
    return prev


@emits((FLOAT, HOST), ir.Mix)
def _mix(ex, n, ins, st):
    g = ex.g
    m = ex.params.host(n.mix)
    keep = g.init(f"1-{n.mix}", (np.float32(1) - m).astype(np.float32))
    return g.op("Add", [g.op("Mul", [ins["x"], ex.param(n.mix)]), g.op("Mul", [ins["prev"], keep])])


@emits(FLOAT, ir.Sigmoid)
def _sigmoid_float(ex, n, ins, st):
    return ex.g.op("Sigmoid", [ins["x"]])     # torch.sigmoid


@emits(HOST, ir.Sigmoid)
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


@state_vars((FLOAT, HOST), ir.WKV)
def _wkv_state(ex, n):
    return [("aa", np.float32, 0.0), ("bb", np.float32, 0.0), ("pp", np.float32, -1e30)]


@emits((FLOAT, HOST), ir.WKV)
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


@emits((FLOAT, HOST), ir.Product)
def _product(ex, n, ins, st):
    return ex.g.op("Mul", [ins["a"], ins["b"]])


@emits((FLOAT, HOST), ir.ReLU2)
def _relu2(ex, n, ins, st):
    r = ex.g.op("Relu", [ins["x"]])
    return ex.g.op("Mul", [r, r])


@emits((FLOAT, HOST), ir.Residual)
def _residual(ex, n, ins, st):
    y = ex.g.op("Add", [ins["x"], ins["s"]])
    return ex.g.op("Mul", [y, ex.g.f32(0.5)]) if n.halve else y


# ---------------------------------------------------------------------------
# Chip ops in float (the float model: reference.py)
# ---------------------------------------------------------------------------
@emits(FLOAT, ir.Projection)
def _matmul(ex, n, ins, st):
    w = ex.params.weight(n)
    name = n.weight + (f"/{n.divisor}" if n.divisor != 1 else "") + ".T"
    return ex.g.op("MatMul", [ins["x"], ex.g.init(name, np.ascontiguousarray(w.T))])


@state_vars(FLOAT, ir.LIF)
def _lif_state_float(ex, n):
    return [("v", np.float32, 0.0)]


@emits(FLOAT, ir.LIF)
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

    lw = ex.params.model.tensors[qn["mantissa"]].astype(np.int64) << int(qn["truncate_bits"])
    worst = worst_accumulation(lw, in_bound)
    e = int(qn["weight_exp"])
    out = worst << e if e > 0 else worst >> -e
    if worst > _INT32_MAX or (e > 0 and out > _INT32_MAX):
        raise ExportError(f"cannot export {n.name} ({n.kind} on chip): Lava's int32 accumulator can wrap there "
                          f"(worst case 2^{math.log2(max(worst, 1)):.1f} for inputs up to {in_bound}), and ONNX has "
                          "no int32-wrapping matrix product; convert it again (the converter keeps every "
                          "accumulation inside int32)")
    return worst, out


@emits(INTEGER, ir.Projection)
def _dense(ex, n, ins, st):
    """Lava's Dense, graded input: acc = W s exact in float64, then >> -weight_exp (floor) or << weight_exp."""
    g, qn, p = ex.g, ex.params.q[n.name], ins["x"]
    _, out_bound = _dense_bound(ex, n, qn, p.bound)
    m = ex.params.model.tensors[qn["mantissa"]]
    worst_m = int(np.abs(m.astype(np.int64)).sum(axis=1).max()) * p.bound if m.size else 0
    dt = TensorProto.FLOAT if worst_m < _F32_EXACT else TensorProto.DOUBLE   # every partial sum exact
    mt = g.cast(g.init(qn["mantissa"] + ".T", np.ascontiguousarray(m.T.astype(np.int8))), dt)
    acc = g.op("MatMul", [g.cast(p.q, dt), mt])                        # sum_j m_ij s_j, exact
    if dt == TensorProto.FLOAT:
        acc = g.cast(acc, TensorProto.DOUBLE)
    shift = int(qn["truncate_bits"]) + int(qn["weight_exp"])            # (m << k) s >> -e == m s * 2^(k+e)
    if shift != 0:
        acc = g.op("Mul", [acc, g.const(2.0 ** shift, np.float64)])
    if shift < 0:
        acc = g.op("Floor", [acc])
    return Payload(g.cast(acc, TensorProto.INT64), p.scale, out_bound)


@state_vars(INTEGER, ir.LIF)
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


@emits(INTEGER, ir.LIF)
def _lif_int(ex, n, ins, st):
    """spike2loihi.execute.process_emulator.lif_update (bias 0), in int64."""
    from spike2loihi.convert.fixed_point import ACT_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET, STATE_MAX, V_LIMIT, VTH_SHIFT

    g, qn, a = ex.g, ex.params.q[n.name], ins["x"]
    if a.bound > _LIF_INPUT_MAX:
        raise ExportError(f"cannot export {n.name} (lif on chip): its input can reach {a.bound}, beyond "
                          f"{_LIF_INPUT_MAX}, where Lava's int32 membrane arithmetic could wrap")
    c = lambda v: g.const(v, np.int64)  # noqa: E731
    a6 = g.op("Mul", [a.q, c(1 << ACT_SHIFT)])
    pre = g.op("Add", [_toward_zero_decay(g, st["u"], DECAY_UNITY - (int(qn["du"]) + DS_OFFSET)), a6])
    # Lava's 24-bit "wrap" of u: one +-2**24 correction
    u = g.op("Where", [g.op("Greater", [pre, c(STATE_MAX)]), g.op("Sub", [pre, c(2 * STATE_MAX)]), pre])
    u = g.op("Where", [g.op("LessOrEqual", [u, c(-STATE_MAX)]), g.op("Add", [pre, c(2 * STATE_MAX)]), u])
    vsum = g.op("Add", [_toward_zero_decay(g, st["v"], DECAY_UNITY - (int(qn["dv"]) + DM_OFFSET)), u])
    v = g.op("Max", [g.op("Min", [vsum, c(V_LIMIT)]), c(-V_LIMIT)])
    fired = g.op("Greater", [v, c(int(qn["vth"]) << VTH_SHIFT)])
    st["u"] = u
    st["v"] = g.op("Where", [fired, c(0), v])
    return Payload(g.cast(fired, TensorProto.INT64), None, 1)


# -- crossings ------------------------------------------------------------------
def _encode_dynamic(ex, chip: ir.Op, x: str, enc: dict) -> Payload:
    """host_ops.encode_dynamic: q = clip(rint(x * (qmax / max|x|))), scale = max|x| / qmax (0 for x == 0)."""
    from spike2loihi.execute.host_ops import qmax

    g, top = ex.g, qmax(enc["bits"])
    m = g.reduce_max_last(g.op("Abs", [x]))
    pos = g.op("Greater", [m, g.f32(0.0)])
    safe = g.op("Where", [pos, m, g.f32(1.0)])
    y = g.op("Round", [g.op("Mul", [x, g.op("Div", [g.f32(top), safe])])])
    q = g.cast(g.op("Clip", [y, g.f32(-top), g.f32(top)]), TensorProto.INT64)
    scale = g.op("Where", [pos, g.op("Div", [m, g.f32(top)]), g.f32(0.0)])
    return Payload(q, scale, top)


def _encode_static(ex, chip: ir.Op, x: str, enc: dict) -> Payload:
    """host_ops.encode_static: q = clip(rint(x * inv_scale), -limit, limit)."""
    g, limit = ex.g, int(enc["limit"])
    y = g.op("Round", [g.op("Mul", [x, g.f32(np.float32(enc["inv_scale"]))])])
    return Payload(g.cast(g.op("Clip", [y, g.f32(-limit), g.f32(limit)]), TensorProto.INT64), None, limit)


ENCODERS.update(dynamic=_encode_dynamic, static=_encode_static)


def _decode_lif(ex, node, p: Payload) -> str:
    return ex.g.cast(p.q, TensorProto.FLOAT)    # host_ops.spikes_to_float


def _decode_dense(ex, node, p: Payload) -> str:
    """host_ops.decode: acc (exact in float32: |acc| < 2**23) * row_scale * token_scale."""
    g = ex.g
    rs = g.init(ex.params.q[node.name]["row_scale"], ex.params.P.row_scale[node.name])
    return g.op("Mul", [g.op("Mul", [g.cast(p.q, TensorProto.FLOAT), rs]), p.scale])


DECODERS.update({ir.LIF: _decode_lif, ir.Projection: _decode_dense})


# ---------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------
def _meta(node: ir.Op, role: str, where: Optional[str] = None, reason: Optional[str] = None) -> Dict[str, str]:
    layer = "" if node.layer is None else str(node.layer)
    return {"s2l.ir_node": node.name, "s2l.ir_op": node.kind, "s2l.layer": layer,
            "s2l.placement": where or node.placement.where, "s2l.reason": reason or node.placement.reason,
            "s2l.role": role}


def _doc(meta: Dict[str, str], arith: str) -> str:
    what = {"op": f"IR op {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "encode": f"host->chip crossing into {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "decode": f"chip->host crossing out of {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "state": f"state of {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "output": "step outputs"}[meta["s2l.role"]]
    return f"{what}; placement: {meta['s2l.placement']} ({meta['s2l.reason']}); arithmetic: {arith}"


class _Export:
    """One export in progress: the graph, the parameter source, the state and the probes."""

    def __init__(self, graph: ir.Graph, params, kind: str, opset: int, probes: bool):
        if not MIN_OPSET <= int(opset) <= MAX_OPSET:
            raise ExportError(f"opset {opset} is outside {MIN_OPSET}..{MAX_OPSET} (this exporter's ops need "
                              f">= {MIN_OPSET}; onnxruntime here runs up to {MAX_OPSET})")
        self.ir = graph
        self.params = params
        self.kind = kind
        self.g = _OnnxGraph(opset)
        self.probes = probes
        self.state: List[dict] = []
        self.probe_outputs: List[Tuple[str, str, int]] = []

    def arith(self, node: ir.Op) -> str:
        return self.params.arith_chip if node.placement.where == ir.CHIP else self.params.arith_host

    def param(self, key: str) -> str:
        return self.g.init(key, self.params.host(key))

    def _probe(self, name: str, value, dtype: int = TensorProto.FLOAT) -> None:
        if not self.probes:
            return
        if isinstance(value, Payload):
            self._probe(name, value.q, TensorProto.INT64)
            if value.scale is not None:
                self._probe(name + ".scale", value.scale)
            return
        out = self.g.identity(value, PROBE_PREFIX + name)
        self.probe_outputs.append((out, name, dtype))

    def _value(self, vals: dict, node: ir.Op, src_name: str):
        """The value of `src_name` as `node` receives it: encoded or decoded at a crossing (converted only)."""
        v = vals[src_name]
        src = self.ir.nodes[src_name]
        if self.kind == KIND_FLOAT or src.placement.where == node.placement.where:
            return v
        if node.placement.where == ir.CHIP:
            enc = self.params.q[node.name]["input"]
            meta = _meta(node, "encode", ir.HOST,
                         f"host_ops.encode_{enc['encoding']}: a host value as the {enc['bits']}-bit graded payload "
                         f"of chip node {node.name}")
            encoder = ENCODERS.get(enc["encoding"])
            if encoder is None:
                raise ExportError(f"cannot export {node.name}: input encoding {enc['encoding']!r} has no ONNX form")
            with self.g.scope(node.name + ".in", _doc(meta, FLOAT), meta):
                p = encoder(self, node, v, enc)
            self._probe(node.name + ".in", p)
            return p
        with self.g.scope(src.name + ".out", *self._decode_scope(src)):
            return self._decoder(src)(self, src, v)

    def _decoder(self, src: ir.Op) -> Callable:
        fn = _find(DECODERS, src)
        if fn is None:
            raise ExportError(f"cannot export {src.name}: the output of chip op {src.kind!r} has no host decoding")
        return fn

    def _state_inputs(self, node: ir.Op, arith: str) -> Dict[str, str]:
        fn = _find(STATE_VARS[arith], node)
        if fn is None:
            if node.state:
                raise ExportError(f"cannot export {node.name}: IR op {node.kind!r} carries state {node.state} "
                                  f"with no {arith} ONNX form")
            return {}
        st = {}
        for var, dtype, init in fn(self, node):
            name = state_input(node.name, var)
            et = _ONNX_DTYPE[np.dtype(dtype)]
            self.g.inputs.append(helper.make_tensor_value_info(name, et, ["batch", node.dim]))
            self.state.append({"name": name, "next": state_output(node.name, var), "node": node.name, "var": var,
                               "layer": node.layer, "dtype": np.dtype(dtype).name, "dim": node.dim,
                               "init": float(init) if np.dtype(dtype).kind == "f" else int(init)})
            st[var] = name
        return st

    def run(self, progress: Optional[Callable[[int, int], None]] = None) -> None:
        g, graph = self.g, self.ir
        g.inputs.append(helper.make_tensor_value_info(TOKEN, TensorProto.INT64, ["batch"]))
        order = [n for n in graph.nodes.values() if not isinstance(n, ir.Sampler)]
        vals: Dict[str, object] = {}
        for i, n in enumerate(order):
            arith = self.arith(n)
            fn = lookup(arith, n)
            st = self._state_inputs(n, arith)
            ins = {port: self._value(vals, n, src) for port, src in graph.inputs(n.name).items()}
            if isinstance(n, ir.Embedding):
                ins["token"] = TOKEN
            meta = _meta(n, "op")
            with g.scope(n.name, _doc(meta, arith), meta):
                vals[n.name] = fn(self, n, ins, st)
                for var, name in st.items():
                    g.identity(name, state_output(n.name, var))
            self._probe(n.name, vals[n.name])
            if progress:
                progress(i + 1, len(order))
        head = graph.of_type(ir.Head)[0]
        lifs = ir.lif_nodes(graph)
        meta = {"s2l.ir_node": "", "s2l.ir_op": "", "s2l.layer": "", "s2l.placement": ir.HOST,
                "s2l.reason": "the step's outputs, as the runner interface returns them", "s2l.role": "output"}
        with g.scope("outputs", _doc(meta, FLOAT), meta):
            logits = vals[head.name]
            if isinstance(logits, Payload):
                with g.scope(head.name + ".out", *self._decode_scope(head)):
                    logits = self._decoder(head)(self, head, logits)
            g.identity(logits, LOGITS)
            for out, pop in ((ATT_SPIKES, "att"), (FFN_SPIKES, "ffn")):
                parts = []
                for n in lifs:
                    if n.population != pop:
                        continue
                    s = vals[n.name]
                    if isinstance(s, Payload):
                        with g.scope(n.name + ".out", *self._decode_scope(n)):
                            s = self._decoder(n)(self, n, s)
                    parts.append(g.unsqueeze(s, 1))
                g.identity(g.op("Concat", parts, axis=1) if len(parts) > 1 else parts[0], out)
        L = graph.meta.get("config", {}).get("n_layer", len(lifs) // 2)
        C = lifs[0].dim if lifs else 0
        g.outputs.append(helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", head.dim]))
        g.outputs.append(helper.make_tensor_value_info(ATT_SPIKES, TensorProto.FLOAT, ["batch", L, C]))
        g.outputs.append(helper.make_tensor_value_info(FFN_SPIKES, TensorProto.FLOAT, ["batch", L, C]))
        for s in self.state:
            g.outputs.append(helper.make_tensor_value_info(s["next"], _ONNX_DTYPE[np.dtype(s["dtype"])],
                                                           ["batch", s["dim"]]))
        for out, _, dtype in self.probe_outputs:
            g.outputs.append(helper.make_tensor_value_info(out, dtype, ["batch", None]))

    def _decode_scope(self, src: ir.Op):
        meta = _meta(src, "decode", ir.HOST, f"host_ops decode of chip node {src.name}'s output for the host")
        return _doc(meta, FLOAT), meta

    def model(self, doc: str, meta: Dict[str, str]) -> onnx.ModelProto:
        g = self.g
        graph = helper.make_graph(g.nodes, "spikegpt_step", g.inputs, g.outputs, list(g.inits.values()), doc_string=doc)
        opsets = [helper.make_opsetid("", g.opset)]
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="spike2loihi",
                                  producer_version=__version__, doc_string=doc)
        proto.ir_version = max(MIN_IR_VERSION, helper.find_min_ir_version_for(opsets))
        meta = dict(meta)
        meta.update({M_FORMAT: FORMAT, M_FORMAT_VERSION: str(FORMAT_VERSION), M_KIND: self.kind,
                     M_TOOLCHAIN: __version__, M_STATE: json.dumps(self.state),
                     M_PLACEMENT: json.dumps(_placement_summary(self.ir))})
        helper.set_model_props(proto, {k: str(v) for k, v in meta.items() if v is not None})
        return proto


def _placement_summary(graph: ir.Graph) -> dict:
    counts = graph.placement_counts()
    cross = graph.crossings()
    to_chip = sum(1 for e in cross if graph.nodes[e.dst].placement.where == ir.CHIP)
    return {"chip_ops": counts[ir.CHIP], "host_ops": counts[ir.HOST], "crossings_per_token": len(cross),
            "host_to_chip": to_chip, "chip_to_host": len(cross) - to_chip}


def _tokenizer_meta(tok) -> Dict[str, str]:
    if tok is None:
        return {}
    text = tok.to_json_text() if tok.kind == "char" else tok.tok.to_str()
    name = str(getattr(tok, "path", "") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return {M_TOKENIZER: text, M_TOKENIZER_KIND: tok.kind, M_TOKENIZER_NAME: name}


_FLOAT_DOC = ("One RNN step of the float SpikeGPT ({sem} semantics), as spike2loihi's float reference computes it. "
              "Feed token and state, get logits, spikes and the next state (spike2loihi.state lists it). "
              "Every node names its IR op and where the converter places it (chip or host, and why).")
_CONVERTED_DOC = ("One RNN step of the converted SpikeGPT (Loihi 2 graded mapping): chip Dense and LIF in Lava's "
                  "exact integer arithmetic (int64 tensors; Dense products in floating point on exact integers), "
                  "host ops in float32 as spike2loihi.execute.host_ops. Every node names its IR op and its placement "
                  "(chip or host, and why).")


def export_checkpoint(spec, semantics, opset: int = DEFAULT_OPSET, source: Optional[dict] = None,
                      tokenizer=None, probes: bool = False,
                      progress: Optional[Callable[[int, int], None]] = None) -> onnx.ModelProto:
    """The float model of a checkpoint (`ModelSpec`) under `semantics`, one step, as ONNX.

    `source`: {"path", "sha256", "format"} of the checkpoint file (recorded in the metadata);
    `tokenizer` overrides spec.tokenizer; `probes` adds an output per IR node (tests).
    """
    graph = ir.build_graph(spec.config, semantics)
    ex = _Export(graph, _FloatParams(spec, semantics), KIND_FLOAT, opset, probes)
    ex.run(progress)
    src = source or {}
    meta = {M_CONFIG: json.dumps(spec.config.to_dict()), M_SEMANTICS: json.dumps(semantics.to_dict()),
            M_SOURCE_PATH: src.get("path"), M_SOURCE_SHA256: src.get("sha256"),
            M_SOURCE_FORMAT: src.get("format") or spec.source_format}
    meta.update(_tokenizer_meta(tokenizer if tokenizer is not None else spec.tokenizer))
    return ex.model(_FLOAT_DOC.format(sem=semantics.name), meta)


def export_artifact(model, opset: int = DEFAULT_OPSET, artifact_info: Optional[dict] = None, tokenizer=None,
                    probes: bool = False, progress: Optional[Callable[[int, int], None]] = None) -> onnx.ModelProto:
    """The converted model (`artifact.ConvertedModel`), one step, as ONNX: what the emulator computes.

    `artifact_info`: {"path", "sha256"} of the .s2l file; `tokenizer` overrides the stored one.
    """
    from spike2loihi.convert import artifact as A

    ex = _Export(model.graph, _ConvertedParams(model), KIND_CONVERTED, opset, probes)
    ex.run(progress)
    m = model.manifest
    src = m.get(A.K_SOURCE) or {}
    q = m.get(A.K_QUANT_CONFIG) or {}
    info = artifact_info or {}
    tok = tokenizer if tokenizer is not None else model.tokenizer()
    meta = {M_CONFIG: json.dumps(m[A.K_CONFIG]), M_SEMANTICS: json.dumps(m[A.K_SEMANTICS]),
            M_SOURCE_PATH: src.get("path"), M_SOURCE_SHA256: src.get("sha256"), M_SOURCE_FORMAT: src.get("format"),
            M_ARTIFACT_PATH: info.get("path"), M_ARTIFACT_SHA256: info.get("sha256"),
            M_ARTIFACT_FORMAT_VERSION: str(m.get(A.K_FORMAT, "")),
            M_WEIGHT_BITS: q.get("weight_bits"), M_ACT_BITS: q.get("act_bits"),
            M_LIF_INPUT_BITS: q.get("lif_input_bits"), M_QUANTIZATION: json.dumps(q)}
    meta.update(_tokenizer_meta(tok))
    return ex.model(_CONVERTED_DOC, meta)


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker.check_model with full_check (strict shape inference); one-line ExportError."""
    size = proto.ByteSize()
    if size > _PROTOBUF_LIMIT:
        raise ExportError(f"the ONNX model would be {size / 2**30:.2f} GiB, beyond protobuf's 2 GiB limit "
                          "(external data is not supported by this exporter yet)")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the exported graph fails onnx.checker: {first}") from None


def to_bytes(proto: onnx.ModelProto) -> bytes:
    """Checked (full) and serialised."""
    check(proto)
    return proto.SerializeToString()


def save(proto: onnx.ModelProto, path) -> None:
    """Check, then write atomically (a temporary file beside `path`, then rename)."""
    from pathlib import Path

    from spike2loihi.fileio import atomic_path

    data = to_bytes(proto)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def metadata(proto: onnx.ModelProto) -> Dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def node_counts(proto: onnx.ModelProto) -> Dict[str, int]:
    """ONNX nodes per IR node (crossings under `<chip node>.in` / `<chip node>.out`)."""
    out: Dict[str, int] = {}
    for n in proto.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        key = md.get("s2l.ir_node") or "outputs"
        role = md.get("s2l.role")
        key = key + (".in" if role == "encode" else ".out" if role == "decode" else "")
        out[key] = out.get(key, 0) + 1
    return out


# ---------------------------------------------------------------------------
# A picture of one block, read back from the file's node metadata
# ---------------------------------------------------------------------------
def block_groups(proto: onnx.ModelProto, layer: int):
    """The ONNX nodes of block `layer` grouped by (IR node, role), and the data edges between groups.

    Read from the nodes' metadata only, so this is the partition a Netron user sees.
    Returns (groups: {key: {"ir_node", "op", "role", "placement", "onnx_nodes", "op_types"}},
    edges: set of (src key, dst key)); producers outside the block appear as key "x".
    """
    groups, producer = {}, {}
    for inp in proto.graph.input:          # a state input belongs to the op that carries the state
        if "/" in inp.name:
            producer[inp.name] = f"{inp.name.rsplit('/', 1)[0]}|op"
    for n in proto.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        key = f"{md.get('s2l.ir_node', '')}|{md.get('s2l.role', '')}"
        for out in n.output:
            producer[out] = key
        if md.get("s2l.layer") != str(layer) or md.get("s2l.role") == "state":
            continue
        gr = groups.setdefault(key, {"ir_node": md["s2l.ir_node"], "op": md["s2l.ir_op"], "role": md["s2l.role"],
                                     "placement": md["s2l.placement"], "onnx_nodes": 0, "op_types": {}})
        gr["onnx_nodes"] += 1
        gr["op_types"][n.op_type] = gr["op_types"].get(n.op_type, 0) + 1
    edges = set()
    for n in proto.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        dst = f"{md.get('s2l.ir_node', '')}|{md.get('s2l.role', '')}"
        if dst not in groups:
            continue
        for t in n.input:
            src = producer.get(t)
            if src is None or src == dst:
                continue
            edges.add((src if src in groups else "x", dst))
    return groups, edges


def draw_block(proto: onnx.ModelProto, layer: int, out, title: str = "") -> None:
    """A PNG of block `layer`: one box per IR op (and per crossing), colored by placement,
    with its ONNX node count; host->chip and chip->host edges drawn bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    groups, edges = block_groups(proto, layer)
    halves = [("time mix (att)", lambda k: ".att." in k or ".ln1" in k),
              ("channel mix (ffn)", lambda k: ".ffn." in k or ".ln2" in k)]
    colors = {ir.CHIP: "#f4a259", ir.HOST: "#9cc5e8", "x": "#d9d9d9"}
    fig, axes = plt.subplots(2, 1, figsize=(20, 11.5))
    for ax, (label, member) in zip(axes, halves):
        keys = [k for k in groups if member(k)]
        preds = {k: [s for s, d in edges if d == k] for k in keys}
        depth = {}

        def dep(k):
            if k not in depth:
                ps = [p for p in preds.get(k, []) if p in keys]
                depth[k] = 1 + max((dep(p) for p in ps), default=0)
            return depth[k]

        for k in keys:
            dep(k)
        cols: Dict[int, List[str]] = {}
        for k in sorted(keys, key=lambda k: list(groups).index(k)):
            cols.setdefault(depth[k], []).append(k)
        pos = {"x": (0.0, 0.0)}
        for c in sorted(cols):       # rows ordered by where their inputs sit (fewer crossing lines)
            ks = cols[c]
            ys = {k: np.mean([pos[p][1] for p in preds[k] if p in pos] or [0.0]) for k in ks}
            ks = sorted(ks, key=lambda k: -ys[k])
            for r, k in enumerate(ks):
                pos[k] = (float(c), (len(ks) - 1) / 2.0 - r)
        W, H = 0.84, 0.62
        for s, d in edges:
            if d not in keys or (s not in keys and s != "x"):
                continue
            cross = s != "x" and groups[s]["placement"] != groups[d]["placement"]
            (x0, y0), (x1, y1) = pos[s], pos[d]
            ax.annotate("", xy=(x1 - W / 2, y1), xytext=(x0 + W / 2, y0),
                        arrowprops=dict(arrowstyle="-|>", lw=2.4 if cross else 0.9,
                                        color="#c0392b" if cross else "#555555", shrinkA=0, shrinkB=0))
        ax.add_patch(FancyBboxPatch((-W / 2, -H / 2), W, H, boxstyle="round,pad=0.02", fc=colors["x"], ec="#444"))
        ax.text(0, 0, "x\n(previous\nblock)", ha="center", va="center", fontsize=7.5)
        for k in keys:
            gr = groups[k]
            x, y = pos[k]
            short = gr["ir_node"].split(f"blocks.{layer}.", 1)[-1]
            role = {"encode": "encode ->chip", "decode": "decode ->host"}.get(gr["role"], gr["op"])
            ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.02",
                                        fc=colors[gr["placement"]], ec="#333",
                                        ls="--" if gr["role"] in ("encode", "decode") else "-"))
            ax.text(x, y + 0.12, short, ha="center", va="center", fontsize=7.2, weight="bold")
            ax.text(x, y - 0.13, f"{role}\n{gr['onnx_nodes']} ONNX nodes", ha="center", va="center", fontsize=6.6)
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        ax.set_title(label, loc="left", fontsize=11)
        ax.axis("off")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(fc=colors[ir.CHIP], ec="#333", label="chip (Loihi 2: Dense, LIF): Lava's integers"),
               Patch(fc=colors[ir.HOST], ec="#333", label="host (float32 as host_ops.py)"),
               Patch(fc="white", ec="#333", ls="--", label="crossing (encode / decode), on the host"),
               Line2D([0], [0], color="#c0392b", lw=2.4, label="host<->chip edge")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(title or f"block {layer}", fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(out, dpi=110)
    plt.close(fig)

"""The converted model's arithmetic per op type: the handlers of the whole-model emulator.

Four stages of `spike2loihi.registry`, each keyed by IR op type:

* `execute.host` (`HOST`): a host op on float32 values `(params, node, inputs, state) -> array`,
  written once in `execute.host_ops`; the Lava host blocks call the same handlers;
* `execute.chip` (`CHIP`): a chip op in Lava's integer arithmetic
  `(params, node, inputs as Payload, state, stats) -> Payload` (`execute.kernels` for Dense and
  LIF, `execute.onchip_ops` for the `--placement chip` ops);
* `execute.state` (`STATE`): a stateful op's initial state;
* `execute.float` (`FLOAT`): every op in float32 (the host handlers, float matmuls and the float
  LIF): calibration of `--placement chip` and the reference of each on-chip op's error.

Values crossing host->chip are encoded (`encode_input`) with the chip node's input encoding;
values crossing chip->host are decoded (`decode_output`) with the chip node's output scales.
A Lava host process that runs a group of host nodes calls `run_host_node` and these two
functions, and nothing else, for its arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.convert.fixed_point import VTH_SHIFT
from spike2loihi.convert.records import DYNAMIC
from spike2loihi.execute import host_ops, onchip_ops
from spike2loihi.execute.kernels import SharedInput, dense_graded_output, dense_kernel, lif_update

HOST = registry.stage("execute.host", lambda t, mapping, where: where == ir.HOST and t.per_token,
                      "a host op on float32 values (spike2loihi.execute.handlers)")
CHIP = registry.stage("execute.chip", lambda t, mapping, where: where == ir.CHIP,
                      "a chip op in Lava's integer arithmetic (spike2loihi.execute.handlers)")
STATE = registry.stage("execute.state", lambda t, mapping, where: bool(t.state) and t.per_token,
                       "the initial state of a stateful op (spike2loihi.execute.handlers)")
FLOAT = registry.stage("execute.float", lambda t, mapping, where: t.per_token,
                       "the op in float32 (calibration and on-chip op error references)")


def init_state(params: "Params", node: ir.Op, batch: int) -> Optional[dict]:
    """A stateful node's initial state, or None."""
    init = STATE.find(type(node))
    return init(params, node, batch) if init is not None else None


@dataclass
class Payload:
    """Integers on (or to/from) the chip, with the host-side scale that travels beside them."""

    q: np.ndarray                       # int64 (batch, n)
    scale: Optional[np.ndarray] = None  # float32 (batch, 1) per-token scale, or None


# ---------------------------------------------------------------------------
# Prepared parameters: what the handlers read (float32 host params, chip kernels)
# ---------------------------------------------------------------------------
class _Lazy(dict):
    """A dict that builds a missing entry once, on first use (a host block never runs a chip Dense, so
    it never builds its kernel)."""

    def __init__(self, build: Callable[[str], object]):
        super().__init__()
        self._build = build

    def __missing__(self, key):
        self[key] = value = self._build(key)
        return value


class Params:
    """Host float32 parameters and chip integer parameters of a ConvertedModel, ready to run: each built
    once, when a handler first asks for it (`kernels[name]`: a chip Dense's `DenseKernel`; `row_scale[name]`:
    a host-bound Dense's float step per row)."""

    def __init__(self, model: ConvertedModel, floats: Optional[dict] = None):
        self.model = model
        self.graph = model.graph
        self.q = model.nodes
        self.floats = {k: np.asarray(v, np.float32) for k, v in (floats or {}).items()}
        self._host: Dict[str, np.ndarray] = {}
        self.shared = _shared_inputs(model)
        self.kernels: Dict[str, object] = _Lazy(self._kernel)
        self.row_scale: Dict[str, np.ndarray] = _Lazy(
            lambda name: np.asarray(model.tensors[self.q[name].row_scale], dtype=np.float32))

    def _kernel(self, name: str):
        """A chip Dense's kernel: a member of its `SharedInput` group, or its own."""
        if name in self.shared:
            return self.shared[name].member(name)
        qn = self.q[name]
        return dense_kernel(self.model.tensors[qn.mantissa], qn.truncate_bits)

    @classmethod
    def float_only(cls, graph: ir.Graph, tensors: Dict[str, np.ndarray], floats: Optional[dict] = None) -> "Params":
        """Float parameters only (no chip records): to run any op's float handler, e.g. on a model's
        float checkpoint tensors during conversion; `floats`: the float matrices by node name."""
        return cls(ConvertedModel(graph=graph, nodes={}, tensors=tensors, manifest={}), floats=floats)

    def ints(self, key: str) -> np.ndarray:
        """An integer chip parameter as int64 (cached)."""
        if key not in self._host:
            self._host[key] = np.asarray(self.model.tensors[key], dtype=np.int64).reshape(-1)
        return self._host[key]

    def host(self, key: str, transform: Optional[Callable] = None) -> np.ndarray:
        """A host parameter as float32 (1-D vectors squeezed), transformed once if asked."""
        cache_key = key if transform is None else (key, transform.__name__)
        if cache_key not in self._host:
            t = np.asarray(self.model.tensors[key], dtype=np.float32)
            t = t.reshape(-1) if t.ndim != 2 else t
            self._host[cache_key] = transform(t) if transform else t
        return self._host[cache_key]


def _shared_inputs(model: ConvertedModel) -> Dict[str, SharedInput]:
    """Chip Dense layers that read the same chip payload (one carrier: `ir.carrier`), grouped (node name -> its
    group)."""
    g = model.graph
    groups: Dict[str, list] = {}
    for n in g.nodes.values():
        if not n.dense or n.placement.where != ir.CHIP or n.name not in model.nodes:
            continue
        src = g.inputs(n.name).get("x")
        if src is None or g.nodes[src].placement.where != ir.CHIP:
            continue   # encoded on the way in: each projection has its own encoding
        groups.setdefault(ir.carrier(g, src), []).append(n.name)
    out: Dict[str, SharedInput] = {}
    for names in groups.values():
        mantissas = {name: model.tensors[model.nodes[name].mantissa] for name in names}
        if SharedInput.usable(mantissas.values()):
            group = SharedInput(mantissas, {name: model.nodes[name].truncate_bits for name in names})
            out.update(dict.fromkeys(names, group))
    return out


def encode_input(params: Params, node: ir.Op, value: np.ndarray, stats: Optional["Stats"] = None) -> Payload:
    """A host value entering chip node `node`, encoded as its input encoding says."""
    enc = params.q[node.name].input
    if enc.encoding == DYNAMIC:
        q, scale = host_ops.encode_dynamic(value, enc.bits, where=node.name)
        return Payload(q, scale)
    q, clipped = host_ops.encode_static(value, enc.inv_scale, enc.limit, where=node.name)
    if stats is not None:
        stats.add(node.name, "clipped", clipped)
        stats.add(node.name, "encoded", q.size)
    return Payload(q, None)


def decode_output(params: Params, node: ir.Op, p: Payload) -> np.ndarray:
    """A chip node's output arriving at a host op, as float32: spikes as 0/1, a Dense's accumulation
    dequantised with its row scales and the token scale."""
    if node.spiking:
        return host_ops.spikes_to_float(p.q)
    return host_ops.decode(p.q, params.row_scale[node.name], p.scale)


def run_host_node(params: Params, node: ir.Op, inputs: dict, state: dict) -> np.ndarray:
    return HOST.lookup(node)(params, node, inputs, state)


# ---------------------------------------------------------------------------
# Host handlers (also the float op of each host-type node): (params, node, inputs, state) -> float32
# ---------------------------------------------------------------------------
@HOST.register(ir.Embedding)
@FLOAT.register(ir.Embedding)
def _embedding(P, n, ins, st):
    return host_ops.embed(P.host(n.weight), ins["token"], n.binary)


@HOST.register(ir.LayerNorm)
@FLOAT.register(ir.LayerNorm)
def _layernorm(P, n, ins, st):
    return host_ops.layernorm(ins["x"], P.host(n.weight), P.host(n.bias), n.eps)


@STATE.register(ir.TokenShift)
def _shift_init(P, n, batch):
    return {"prev": np.zeros((batch, n.dim), np.int64 if n.placement.where == ir.CHIP else np.float32)}


@HOST.register(ir.TokenShift)
@FLOAT.register(ir.TokenShift)
def _token_shift(P, n, ins, st):
    prev, st["prev"] = st["prev"], ins["x"]
    return prev


@HOST.register(ir.Mix)
@FLOAT.register(ir.Mix)
def _mix(P, n, ins, st):
    return host_ops.mix(ins["x"], ins["prev"], P.host(n.mix))


@HOST.register(ir.Sigmoid)
@FLOAT.register(ir.Sigmoid)
def _sigmoid(P, n, ins, st):
    return host_ops.sigmoid(ins["x"])


def _neg_exp(t):
    return -np.exp(t)


@STATE.register(ir.WKV)
def _wkv_init(P, n, batch):
    """Float aa, bb, pp on the host; on the chip the integer mantissas aa, bb and exponent pp."""
    if n.placement.where == ir.CHIP:
        return dict(zip(("aa", "bb", "pp"), onchip_ops.wkv_init(batch, n.dim)))
    z = lambda: np.zeros((batch, n.dim), np.float32)  # noqa: E731
    return {"aa": z(), "bb": z(), "pp": np.full((batch, n.dim), host_ops.PP_INIT, np.float32)}


@HOST.register(ir.WKV)
@FLOAT.register(ir.WKV)
def _wkv(P, n, ins, st):
    out, st["aa"], st["bb"], st["pp"] = host_ops.wkv(ins["k"], ins["v"], st["aa"], st["bb"], st["pp"],
                                                     P.host(n.time_first), P.host(n.time_decay, _neg_exp))
    return out


@HOST.register(ir.Product)
@FLOAT.register(ir.Product)
def _product(P, n, ins, st):
    return host_ops.product(ins["a"], ins["b"])


@HOST.register(ir.ReLU2)
@FLOAT.register(ir.ReLU2)
def _relu2(P, n, ins, st):
    return host_ops.relu2(ins["x"])


@HOST.register(ir.Residual)
@FLOAT.register(ir.Residual)
def _residual(P, n, ins, st):
    return host_ops.residual(ins["x"], ins["s"], n.halve)


@FLOAT.register(ir.Projection)
def _matmul_float(P, n, ins, st):
    return ins["x"] @ P.floats[n.name].T


@FLOAT.register(ir.LIF)
def _lif_float(P, n, ins, st):
    """spikingjelly's LIF: v += (x - v) / tau; spike where v >= theta; hard reset to 0."""
    v = st.get("v_float")
    v = np.zeros_like(ins["x"]) if v is None else v
    v = v + (ins["x"] - v) / np.float32(n.tau)
    y = (v >= n.theta).astype(np.float32)
    st["v_float"] = np.where(y > 0, 0, v).astype(np.float32)
    return y


# ---------------------------------------------------------------------------
# Chip handlers: (params, node, inputs as Payload, state, stats) -> Payload
# ---------------------------------------------------------------------------
def _counter(stats, n):
    return stats.counter(n.name) if stats is not None else None


@CHIP.register(ir.Projection)
def _dense(P, n, ins, st, stats):
    p = ins["x"]
    qn = P.q[n.name]
    # host encoders clip to their limit; chip inputs are bounded only by their producers
    a = dense_graded_output(P.kernels[n.name], p.q, qn.weight_exp, _counter(stats, n), max_abs=qn.input_limit)
    if stats is not None:
        stats.peak(n.name, "max_abs_out", int(np.abs(a).max()) if a.size else 0)
    scale = p.scale
    if scale is None and qn.in_step is not None:   # a chip input on a fixed grid
        scale = np.full((a.shape[0], 1), qn.in_step, np.float32)
    return Payload(a, scale)


# -- `--placement chip`: the ops of spike2loihi.execute.onchip_ops -------------
@CHIP.register(ir.LayerNorm)
def _chip_layernorm(P, n, ins, st, stats):
    qn = P.q[n.name]
    return Payload(onchip_ops.layernorm(ins["x"].q, qn.datapath(), P.ints(qn.gamma_q), P.ints(qn.beta_q),
                                        _counter(stats, n)))


@CHIP.register(ir.TokenShift)
def _chip_shift(P, n, ins, st, stats):
    prev, st["prev"] = st["prev"], ins["x"].q
    return Payload(prev)


@CHIP.register(ir.Mix)
def _chip_mix(P, n, ins, st, stats):
    """The mix is folded into the next projection's weights: pass [x ; prev] on."""
    return Payload(np.concatenate([ins["x"].q, ins["prev"].q], axis=1))


@CHIP.register(ir.Sigmoid)
def _chip_sigmoid(P, n, ins, st, stats):
    return Payload(onchip_ops.sigmoid(ins["x"].q, P.q[n.name].in_frac))


@CHIP.register(ir.ReLU2)
def _chip_relu2(P, n, ins, st, stats):
    return Payload(onchip_ops.relu2(ins["x"].q, P.q[n.name].exp, _counter(stats, n)))


@CHIP.register(ir.Product)
def _chip_product(P, n, ins, st, stats):
    return Payload(onchip_ops.product(ins["a"].q, ins["b"].q, P.q[n.name].exp, _counter(stats, n)))


@CHIP.register(ir.Residual)
def _chip_residual(P, n, ins, st, stats):
    return Payload(onchip_ops.residual(ins["x"].q, ins["s"].q, P.q[n.name].spike_weight, _counter(stats, n)))


@CHIP.register(ir.WKV)
def _chip_wkv(P, n, ins, st, stats):
    qn = P.q[n.name]
    out, st["aa"], st["bb"], st["pp"] = onchip_ops.wkv_step(ins["k"].q, ins["v"].q, st["aa"], st["bb"], st["pp"],
                                                            qn.datapath(), P.ints(qn.u_q), P.ints(qn.w_q),
                                                            _counter(stats, n))
    if stats is not None:   # the exponent range used (empty states excluded)
        used = st["pp"][st["bb"] > 0]
        if used.size:
            stats.peak(n.name, "wkv_e_max", int(used.max()))
            stats.low(n.name, "wkv_e_min", int(used.min()))
    return Payload(out)


@STATE.register(ir.LIF)
def _lif_init(P, n, batch):
    return {"u": np.zeros((batch, n.dim), np.int64), "v": np.zeros((batch, n.dim), np.int64)}


@CHIP.register(ir.LIF)
def _lif(P, n, ins, st, stats):
    qn = P.q[n.name]
    st["u"], st["v"], s = lif_update(st["u"], st["v"], ins["x"].q, qn.du, qn.dv, qn.vth << VTH_SHIFT, 0,
                                     _counter(stats, n))
    return Payload(s.astype(np.int64), None)


def lif_idle(P: Params, n: ir.LIF, st: dict, steps: int) -> None:
    """`steps` steps of a stock LIF with no input (what an ungated LIF does between tokens)."""
    qn = P.q[n.name]
    zero = np.zeros_like(st["u"])
    for _ in range(steps):
        st["u"], st["v"], _ = lif_update(st["u"], st["v"], zero, qn.du, qn.dv, qn.vth << VTH_SHIFT, 0)


# ---------------------------------------------------------------------------
# Statistics (conversion report, activity)
# ---------------------------------------------------------------------------
class Stats:
    """Per-node counters: clipping at static encoders, peak outputs, wraps, spikes."""

    def __init__(self):
        self.counts: Dict[str, Dict[str, int]] = {}

    def add(self, node: str, key: str, n: int) -> None:
        d = self.counts.setdefault(node, {})
        d[key] = d.get(key, 0) + int(n)

    def peak(self, node: str, key: str, value: int) -> None:
        d = self.counts.setdefault(node, {})
        d[key] = max(d.get(key, 0), int(value))

    def low(self, node: str, key: str, value: int) -> None:
        d = self.counts.setdefault(node, {})
        d[key] = min(d.get(key, int(value)), int(value))

    def counter(self, node: str):
        return lambda key, n: self.add(node, key, n)

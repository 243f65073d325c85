"""The whole-model emulator: a converted model executed token by token, batched.

Chip ops run in Lava's integer arithmetic (`spike2loihi.execute.process_emulator`'s
`DenseKernel`, `dense_graded_output`, `lif_update`: the code that is checked
bit for bit against Lava's simulator); host ops run in `spike2loihi.execute.host_ops`,
which the Lava host ProcessModels call too. So this defines, token by token,
what the Lava graph must compute: every logit and every spike.

Behaviour is kept with the node type in two registries, `HOST_HANDLERS` and
`CHIP_HANDLERS` (`@handles(HOST, ir.LayerNorm)`), looked up along the type's
MRO. Values crossing host->chip are encoded (`encode_input`) with the chip
node's input encoding; values crossing chip->host are decoded
(`decode_output`) with the chip node's output scales. A Lava host process
that runs a group of host nodes calls `run_host_node` and these two
functions, and nothing else, for its arithmetic.

Generation on the graph (DESIGN.md "Tokens and time steps"): every op,
including each LIF, advances exactly once per token, as here. The Lava graph
keeps that true between generated tokens with token-gated LIFs (see
docs/CONVERSION.md); `idle_steps` reproduces what a stock, ungated LIF
would compute instead (it keeps leaking for the steps between two tokens).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from spike2loihi.execute import host_ops, onchip_ops
from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.execute.process_emulator import DenseKernel, dense_graded_output, lif_update
from spike2loihi.convert.fixed_point import VTH_SHIFT

HOST_HANDLERS: Dict[type, Callable] = {}
CHIP_HANDLERS: Dict[type, Callable] = {}
STATE_INIT: Dict[type, Callable] = {}


def handles(where: str, op_type: type):
    def register(fn):
        (HOST_HANDLERS if where == ir.HOST else CHIP_HANDLERS)[op_type] = fn
        return fn
    return register


def initial_state(op_type: type):
    def register(fn):
        STATE_INIT[op_type] = fn
        return fn
    return register


def init_state(params: "Params", node: ir.Op, batch: int) -> Optional[dict]:
    """A stateful node's initial state (STATE_INIT, along the type's MRO), or None."""
    for cls in type(node).__mro__:
        if cls in STATE_INIT:
            return STATE_INIT[cls](params, node, batch)
    return None


def lookup(table: Dict[type, Callable], node: ir.Op) -> Callable:
    for cls in type(node).__mro__:
        if cls in table:
            return table[cls]
    raise KeyError(f"no handler for {type(node).__name__} ({node.name}) placed on the {node.placement.where}")


@dataclass
class Payload:
    """Integers on (or to/from) the chip, with the host-side scale that travels beside them."""

    q: np.ndarray                       # int64 (batch, n)
    scale: Optional[np.ndarray] = None  # float32 (batch, 1) per-token scale, or None


# ---------------------------------------------------------------------------
# Prepared parameters: what the handlers read (float32 host params, chip kernels)
# ---------------------------------------------------------------------------
class Params:
    """Host float32 parameters and chip integer parameters of a ConvertedModel, ready to run."""

    def __init__(self, model: ConvertedModel, kernels: bool = True):
        self.model = model
        self.graph = model.graph
        self.q = model.nodes
        self._host: Dict[str, np.ndarray] = {}
        self.kernels: Dict[str, DenseKernel] = {}
        self.row_scale: Dict[str, np.ndarray] = {}
        for node in self.graph.nodes.values() if kernels else ():
            if isinstance(node, ir.Projection) and node.placement.where == ir.CHIP:
                qn = self.q[node.name]
                self.kernels[node.name] = DenseKernel.from_mantissa(model.tensors[qn["mantissa"]],
                                                                    int(qn["truncate_bits"]))
                if qn.get("row_scale"):
                    self.row_scale[node.name] = np.asarray(model.tensors[qn["row_scale"]], dtype=np.float32)

    @classmethod
    def float_only(cls, graph: ir.Graph, tensors: Dict[str, np.ndarray]) -> "Params":
        """Float parameters only (no chip kernels): to run any op's float handler, e.g. on a model's
        float checkpoint tensors during conversion."""
        return cls(ConvertedModel(graph=graph, nodes={}, tensors=tensors, manifest={}), kernels=False)

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


def encode_input(params: Params, node: ir.Op, value: np.ndarray, stats: Optional["Stats"] = None) -> Payload:
    """A host value entering chip node `node`, encoded as its input encoding says."""
    enc = params.q[node.name]["input"]
    if enc["encoding"] == "dynamic":
        q, scale = host_ops.encode_dynamic(value, enc["bits"], where=node.name)
        return Payload(q, scale)
    q, clipped = host_ops.encode_static(value, enc["inv_scale"], enc["limit"], where=node.name)
    if stats is not None:
        stats.add(node.name, "clipped", clipped)
        stats.add(node.name, "encoded", q.size)
    return Payload(q, None)


def decode_output(params: Params, node: ir.Op, p: Payload) -> np.ndarray:
    """A chip node's output arriving at a host op, as float32."""
    if isinstance(node, ir.LIF):
        return host_ops.spikes_to_float(p.q)
    return host_ops.decode(p.q, params.row_scale[node.name], p.scale)


# ---------------------------------------------------------------------------
# Host handlers: (params, node, inputs, state) -> float32 array
# ---------------------------------------------------------------------------
@handles(ir.HOST, ir.Embedding)
def _embedding(P, n, ins, st):
    return host_ops.embed(P.host(n.weight), ins["token"], n.binary)


@handles(ir.HOST, ir.LayerNorm)
def _layernorm(P, n, ins, st):
    return host_ops.layernorm(ins["x"], P.host(n.weight), P.host(n.bias), n.eps)


@initial_state(ir.TokenShift)
def _shift_init(P, n, batch):
    return {"prev": np.zeros((batch, n.dim), np.int64 if n.placement.where == ir.CHIP else np.float32)}


@handles(ir.HOST, ir.TokenShift)
def _token_shift(P, n, ins, st):
    prev, st["prev"] = st["prev"], ins["x"]
    return prev


@handles(ir.HOST, ir.Mix)
def _mix(P, n, ins, st):
    return host_ops.mix(ins["x"], ins["prev"], P.host(n.mix))


@handles(ir.HOST, ir.Sigmoid)
def _sigmoid(P, n, ins, st):
    return host_ops.sigmoid(ins["x"])


def _neg_exp(t):
    return -np.exp(t)


@initial_state(ir.WKV)
def _wkv_init(P, n, batch):
    z = lambda: np.zeros((batch, n.dim), np.float32)  # noqa: E731
    return {"aa": z(), "bb": z(), "pp": np.full((batch, n.dim), host_ops.PP_INIT, np.float32)}


@handles(ir.HOST, ir.WKV)
def _wkv(P, n, ins, st):
    out, st["aa"], st["bb"], st["pp"] = host_ops.wkv(ins["k"], ins["v"], st["aa"], st["bb"], st["pp"],
                                                     P.host(n.time_first), P.host(n.time_decay, _neg_exp))
    return out


@handles(ir.HOST, ir.Product)
def _product(P, n, ins, st):
    return host_ops.product(ins["a"], ins["b"])


@handles(ir.HOST, ir.ReLU2)
def _relu2(P, n, ins, st):
    return host_ops.relu2(ins["x"])


@handles(ir.HOST, ir.Residual)
def _residual(P, n, ins, st):
    return host_ops.residual(ins["x"], ins["s"], n.halve)


def run_host_node(params: Params, node: ir.Op, inputs: dict, state: dict) -> np.ndarray:
    return lookup(HOST_HANDLERS, node)(params, node, inputs, state)


# ---------------------------------------------------------------------------
# Chip handlers: (params, node, inputs as Payload, state, stats) -> Payload
# ---------------------------------------------------------------------------
@handles(ir.CHIP, ir.Projection)
def _dense(P, n, ins, st, stats):
    p = ins["x"]
    counter = stats.counter(n.name) if stats is not None else None
    qn = P.q[n.name]
    enc = qn["input"]
    # host encoders clip to their limit; chip inputs are bounded only by their producers
    limit = None if enc["encoding"] == "chip" else (enc.get("limit") or host_ops.qmax(enc["bits"]))
    a = dense_graded_output(P.kernels[n.name], p.q, int(qn["weight_exp"]), counter, max_abs=limit)
    if stats is not None:
        stats.peak(n.name, "max_abs_out", int(np.abs(a).max()) if a.size else 0)
    scale = p.scale
    if scale is None and qn.get("in_step") is not None:   # a chip input on a fixed grid
        scale = np.full((a.shape[0], 1), qn["in_step"], np.float32)
    return Payload(a, scale)


# -- `--placement chip`: the ops of spike2loihi.execute.onchip_ops ---------------------
def _counter(stats, n):
    return stats.counter(n.name) if stats is not None else None


@handles(ir.CHIP, ir.LayerNorm)
def _chip_layernorm(P, n, ins, st, stats):
    qn = P.q[n.name]
    return Payload(onchip_ops.layernorm(ins["x"].q, qn, P.ints(qn["gamma_q"]), P.ints(qn["beta_q"]),
                                        _counter(stats, n)))


@handles(ir.CHIP, ir.TokenShift)
def _chip_shift(P, n, ins, st, stats):
    prev, st["prev"] = st["prev"], ins["x"].q
    return Payload(prev)


@handles(ir.CHIP, ir.Mix)
def _chip_mix(P, n, ins, st, stats):
    """The mix is folded into the next projection's weights: pass [x ; prev] on."""
    return Payload(np.concatenate([ins["x"].q, ins["prev"].q], axis=1))


@handles(ir.CHIP, ir.Sigmoid)
def _chip_sigmoid(P, n, ins, st, stats):
    return Payload(onchip_ops.sigmoid(ins["x"].q, int(P.q[n.name]["in_frac"])))


@handles(ir.CHIP, ir.ReLU2)
def _chip_relu2(P, n, ins, st, stats):
    return Payload(onchip_ops.relu2(ins["x"].q, int(P.q[n.name]["exp"]), _counter(stats, n)))


@handles(ir.CHIP, ir.Product)
def _chip_product(P, n, ins, st, stats):
    return Payload(onchip_ops.product(ins["a"].q, ins["b"].q, int(P.q[n.name]["exp"]), _counter(stats, n)))


@handles(ir.CHIP, ir.Residual)
def _chip_residual(P, n, ins, st, stats):
    return Payload(onchip_ops.residual(ins["x"].q, ins["s"].q, int(P.q[n.name]["spike_weight"]),
                                       _counter(stats, n)))


@initial_state(ir.LIF)
def _lif_init(P, n, batch):
    return {"u": np.zeros((batch, n.dim), np.int64), "v": np.zeros((batch, n.dim), np.int64)}


@handles(ir.CHIP, ir.LIF)
def _lif(P, n, ins, st, stats):
    qn = P.q[n.name]
    counter = stats.counter(n.name) if stats is not None else None
    st["u"], st["v"], s = lif_update(st["u"], st["v"], ins["x"].q, int(qn["du"]), int(qn["dv"]),
                                     int(qn["vth"]) << VTH_SHIFT, 0, counter)
    return Payload(s.astype(np.int64), None)


def lif_idle(P: Params, n: ir.LIF, st: dict, steps: int) -> None:
    """`steps` steps of a stock LIF with no input (what an ungated LIF does between tokens)."""
    qn = P.q[n.name]
    zero = np.zeros_like(st["u"])
    for _ in range(steps):
        st["u"], st["v"], _ = lif_update(st["u"], st["v"], zero, int(qn["du"]), int(qn["dv"]),
                                         int(qn["vth"]) << VTH_SHIFT, 0)


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

    def counter(self, node: str):
        return lambda key, n: self.add(node, key, n)


# ---------------------------------------------------------------------------
# The executor
# ---------------------------------------------------------------------------
@dataclass
class Step:
    logits: np.ndarray                 # float32 (batch, V)
    spikes: Dict[str, np.ndarray]      # LIF node name -> bool (batch, C)


class Executor:
    """Runs a ConvertedModel on a batch of independent sequences, one token each per `step`."""

    def __init__(self, model: ConvertedModel, batch_size: int = 1, stats: bool = False,
                 params: Optional[Params] = None, trace: Optional[Callable[[str, object], None]] = None):
        self.model = model
        self.trace = trace   # trace(name, value): every node's output, and "<chip node>.in" payloads
        self.graph = model.graph
        self.params = params or Params(model)
        self.batch = int(batch_size)
        self.stats = Stats() if stats else None
        self.order = [n for n in self.graph.nodes.values() if not isinstance(n, ir.Sampler)]
        self.inputs = {n.name: self.graph.inputs(n.name) for n in self.order}
        self.head = self.graph.of_type(ir.Head)[0]
        self.lifs = ir.lif_nodes(self.graph)
        self.state = self.initial_state()

    def initial_state(self) -> Dict[str, Dict[str, np.ndarray]]:
        return {n.name: s for n in self.order for s in [init_state(self.params, n, self.batch)] if s is not None}

    def get_state(self) -> Dict[str, Dict[str, np.ndarray]]:
        """A deep copy, restorable with `set_state` (np.savez-able via `flatten_state`)."""
        return {k: {v: a.copy() for v, a in d.items()} for k, d in self.state.items()}

    def set_state(self, state) -> None:
        self.state = {k: {v: np.array(a) for v, a in d.items()} for k, d in state.items()}

    def _value(self, vals, node: ir.Op, src_name: str):
        v = vals[src_name]
        src = self.graph.nodes[src_name]
        if src.placement.where == node.placement.where:
            return v
        if node.placement.where == ir.CHIP:
            p = encode_input(self.params, node, v, self.stats)
            if self.trace is not None:
                self.trace(node.name + ".in", p)
            return p
        return decode_output(self.params, src, v)

    def step(self, tokens) -> Step:
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if tokens.shape[0] != self.batch:
            raise ValueError(f"step: {tokens.shape[0]} tokens for batch size {self.batch}")
        vals: Dict[str, object] = {}
        for n in self.order:
            ins = {port: self._value(vals, n, src) for port, src in self.inputs[n.name].items()}
            st = self.state.get(n.name)
            if n.placement.where == ir.HOST:
                if isinstance(n, ir.Embedding):
                    ins["token"] = tokens
                vals[n.name] = lookup(HOST_HANDLERS, n)(self.params, n, ins, st)
            else:
                vals[n.name] = lookup(CHIP_HANDLERS, n)(self.params, n, ins, st, self.stats)
            if self.trace is not None:
                self.trace(n.name, vals[n.name])
        logits = decode_output(self.params, self.head, vals[self.head.name])
        spikes = {n.name: vals[n.name].q.astype(bool) for n in self.lifs}
        if self.stats is not None:   # (spikes are counted by lif_update's counter)
            for name, s in spikes.items():
                self.stats.add(name, "neuron_steps", s.size)
        return Step(logits, spikes)

    def idle(self, steps: int) -> None:
        """What stock (ungated) LIFs do during `steps` steps without a token: they leak."""
        for n in self.lifs:
            lif_idle(self.params, n, self.state[n.name], steps)

    def run(self, tokens: np.ndarray, on_step: Optional[Callable[[int, Step], None]] = None) -> List[Step]:
        """Teacher-forced over tokens (batch, T) or (T,) for batch 1; returns one Step per token."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim == 1:
            tokens = tokens[None, :]
        out = []
        for t in range(tokens.shape[1]):
            s = self.step(tokens[:, t])
            out.append(s)
            if on_step is not None:
                on_step(t, s)
        return out


def spikes_by_population(graph: ir.Graph, spikes: Dict[str, np.ndarray], batch_index: int = 0):
    """(att [L, C], ffn [L, C]) bool arrays of one batch row."""
    lifs = ir.lif_nodes(graph)
    att = np.stack([spikes[n.name][batch_index] for n in lifs if n.population == "att"])
    ffn = np.stack([spikes[n.name][batch_index] for n in lifs if n.population == "ffn"])
    return att, ffn


def flatten_state(state: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """{'node/var': array}: for np.savez."""
    return {f"{k}/{v}": a for k, d in state.items() for v, a in d.items()}


def unflatten_state(flat) -> Dict[str, Dict[str, np.ndarray]]:
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for key in flat:
        node, var = key.rsplit("/", 1)
        out.setdefault(node, {})[var] = np.array(flat[key])
    return out

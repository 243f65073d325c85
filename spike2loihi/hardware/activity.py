"""Measured activity, traffic and energy of a converted model, per token.

Three layers, each frozen data:

1. **Counts** (`count_activity`): what a backend measured while running the
   model teacher-forced over a token sequence: for every IR node, how often it
   ran, how many output elements it produced and how many were nonzero; for every
   chip node fed by the host, how many payload elements it received and how many
   were nonzero. The emulator backend takes them from `Executor(trace=...)`.
   Other backends register a counter in `COUNTERS` (the extension point: the
   Lava simulator's counts must be identical, element for element).
2. **Activity** (`measure`): per token, from the counts and the graph only:
   firing rate of every LIF population; input density of every chip Dense;
   synaptic events split into graded multiply-accumulates and binary
   accumulates (nonzero input payload elements x fan-out: a zero payload is not
   sent on Loihi and costs nothing); neuron updates; host floating-point
   operations by kind, counted per host node from its op type's `host_cost`
   (formulas in terms of the node's width, written from the code in
   `execute.host_ops`) times the node's measured executions; host<->chip crossings,
   messages and bytes (payload bits from the encodings); time steps.
3. **Report** (`build_report`): estimates from a hardware profile for each
   system (tokens/s, energy per token broken down into chip synaptic, chip
   neuron, static, host float, IO) beside two baselines under the same 45 nm
   accounting (a dense all-float run of the same model; SpikeGPT's method: one
   assumed firing rate of 0.15, float ops left out) and the published figures of
   the only LM run on Loihi 2 so far (a different model). Every figure carries its
   status: published, measured here, or estimate.
"""
from __future__ import annotations

import ast
import operator
import dataclasses
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.convert.records import DYNAMIC
from spike2loihi.errors import Spike2LoihiError

PUBLISHED, MEASURED, ESTIMATE = "published", "measured here", "estimate"
TAG = {PUBLISHED: "P", MEASURED: "M", ESTIMATE: "E"}
OP_KINDS = ("exp", "division", "multiply", "add", "sqrt", "sigmoid", "compare", "convert")
PAPER_RATE = 0.15          # SpikeGPT's assumed firing rate (arXiv 2302.13939)
PAPER_RATIO = 32.2         # SpikeGPT's published "fewer operations" figure (TMLR version)


class ActivityError(Spike2LoihiError):
    """The activity run cannot be made (backend, tokens)."""


# ---------------------------------------------------------------------------
# Host float operations: each op type's `host_cost` (spike2loihi.convert.ir), and the crossings.
# ---------------------------------------------------------------------------
#: Host work at the crossings (spike2loihi.execute.host_ops), n = elements crossing.
CROSSING_OPS: Dict[str, Dict[str, str]] = {
    # isfinite n, |x| max n, m>0 twice, clip 2n; x * (top/safe): 1 division + n mults; rint n; m/top 1 division
    "encode_dynamic": {"compare": "4*n + 2", "multiply": "n", "division": "2", "convert": "n"},
    # isfinite n, rint(x * inv_scale) n mults + n, |y| > limit n, clip 2n
    "encode_static": {"compare": "4*n", "multiply": "n", "convert": "n"},
    "decode_dense": {"convert": "n", "multiply": "2*n"},   # acc -> float32, * row_scale * token_scale
    "decode_spikes": {"convert": "n"},                     # 0/1 -> float32
}

#: The LIF in float (the dense baseline): V += (X - V) / 2; spike V >= 1; reset.
FLOAT_LIF_OPS: Dict[str, str] = {"add": "2*n", "multiply": "n", "compare": "n"}

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def evaluate_formula(expr: str, env: Dict[str, int]) -> int:
    """An integer formula of the tables above (+, -, *, integers and names only)."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return int(env[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"formula {expr!r}: only +, -, * of integers and names")
    return ev(ast.parse(expr, mode="eval"))


def host_ops_per_execution(node: ir.Op) -> Dict[str, int]:
    """Float operations by kind of one execution of a host node (its type's `host_cost`)."""
    if node.host_cost is None:
        raise KeyError(f"{type(node).__name__} ({node.name}) states no host_cost: add it to the op type")
    env = node.cost_env()
    return {k: evaluate_formula(f, env) for k, f in node.host_cost.items()}


def _add_ops(total: Dict[str, int], ops: Dict[str, int], times: int = 1) -> None:
    for k, v in ops.items():
        total[k] = total.get(k, 0) + v * times


# ---------------------------------------------------------------------------
# 1. Counts: what a backend measured
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeCounts:
    """One node over the whole run (sums over tokens)."""

    name: str
    executions: int = 0
    out_elements: int = 0
    out_nonzero: int = 0
    in_elements: int = 0        # payload into a chip node from the host (0 otherwise)
    in_nonzero: int = 0


@dataclass(frozen=True)
class Counts:
    backend: str
    tokens: int
    nodes: Tuple[NodeCounts, ...]

    def node(self, name: str) -> NodeCounts:
        for n in self.nodes:
            if n.name == name:
                return n
        return NodeCounts(name)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "tokens": self.tokens, "nodes": [asdict(n) for n in self.nodes]}


def _count_emulator(model, tokens: np.ndarray, progress: Optional[Callable[[int, int], None]] = None) -> Counts:
    """Counts from the whole-model emulator's trace hook (every node's output, every chip input payload)."""
    from spike2loihi.execute.model_emulator import Executor

    tally: Dict[str, List[int]] = {}   # name -> [executions, out elements, out nonzero, in elements, in nonzero]

    def trace(name: str, value) -> None:
        arr = value.q if hasattr(value, "q") else value
        if name.endswith(".in"):
            t = tally.setdefault(name[:-3], [0, 0, 0, 0, 0])
            t[3] += arr.size
            t[4] += int(np.count_nonzero(arr))
        else:
            t = tally.setdefault(name, [0, 0, 0, 0, 0])
            t[0] += 1
            t[1] += arr.size
            t[2] += int(np.count_nonzero(arr))

    ex = Executor(model, batch_size=1, trace=trace)
    total = len(tokens)
    ex.run(np.asarray(tokens, dtype=np.int64)[None, :],
           (lambda t, _s: progress(t + 1, total)) if progress is not None else None)
    nodes = tuple(NodeCounts(name, *tally.get(name, [0, 0, 0, 0, 0])) for name in model.graph.nodes)
    return Counts("emulator", total, nodes)


def _count_lava_sim(model, tokens: np.ndarray, progress: Optional[Callable[[int, int], None]] = None) -> Counts:
    """Counts from the Lava process graph in Lava's simulator: its host blocks count what they run, send
    and receive; chip-to-chip outputs (Wo -> LIF) are also sent to the host for counting (probes)."""
    from spike2loihi.backends.lava_sim import require_lava

    check_lava_counts(model)
    require_lava()
    from spike2loihi.lava.runtime import run_graph

    total = len(tokens)
    res = run_graph(model, [int(t) for t in tokens], 0, count=True,
                    progress=(lambda phase, done, tot: progress(done, tot)) if progress is not None else None)
    nodes = tuple(NodeCounts(name, *res.node_counts.get(name, [0] * 5)) for name in model.graph.nodes)
    return Counts("lava-sim", total, nodes)


#: backend name -> counter(model, tokens, progress) -> Counts; the emulator's and the Lava simulator's
#: counts are equal element for element (tested).
COUNTERS: Dict[str, Callable] = {"emulator": _count_emulator, "lava-sim": _count_lava_sim}
KNOWN_BACKENDS = ("emulator", "lava-sim")


def check_lava_counts(model) -> None:
    """One line unless Lava's simulator can count this model's activity (the host placement)."""
    if ir.placement_of(model.graph) != ir.HOST:
        raise ActivityError("--backend lava-sim: activity counts from Lava's simulator cover --placement host models "
                            "only so far; use --backend emulator (the two agree on host models, tested)")


def check_backend(backend: str) -> None:
    """Raise a one-line ActivityError unless `backend` can count activity."""
    if backend in COUNTERS:
        return
    raise ActivityError(f"unknown activity backend {backend!r}; choose one of {', '.join(sorted(COUNTERS))}")


def count_activity(model, tokens, backend: str = "emulator",
                   progress: Optional[Callable[[int, int], None]] = None) -> Counts:
    """Run `model` teacher-forced over `tokens` on `backend` and count what every node did."""
    check_backend(backend)
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if tokens.size < 1:
        raise ActivityError("the activity run needs at least one token")
    return COUNTERS[backend](model, tokens, progress)


# ---------------------------------------------------------------------------
# 2. Activity per token
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerActivity:
    """One chip node per token: a LIF's firing rate, or a Dense's input density and synaptic events."""

    name: str
    kind: str                          # lif | projection | head
    layer: Optional[int]
    population: str = ""               # att | ffn (LIF)
    neurons: int = 0
    firing_rate: Optional[float] = None
    input_density: Optional[float] = None     # nonzero fraction of the input payload
    input_kind: str = ""               # graded | binary | on-chip
    input_nonzero: float = 0.0         # nonzero input elements per token (messages into the group)
    synaptic_events: float = 0.0       # per token
    dense_macs: int = 0                # n_out x n_in (every synapse, zeros included)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Activity:
    """Per-token measures of one run (all `measured here`, the time steps counted from the graph)."""

    backend: str
    tokens: int
    layers: Tuple[LayerActivity, ...]
    graded_macs: float                 # graded synaptic events per token
    binary_acs: float                  # binary synaptic events per token
    lif_input_events: float            # host payloads into LIFs through identity synapses (in graded_macs)
    neuron_updates: float              # one per neuron per token (LIF + graded readout)
    neurons_on_chip: int
    host_ops: Tuple[Tuple[str, float], ...]          # kind -> per token (crossing work included)
    host_ops_by_type: Tuple[Tuple[str, Tuple[Tuple[str, float], ...]], ...]
    crossings: int                     # host<->chip edges used per token
    crossings_to_chip: int
    messages_to_chip: float            # nonzero payload elements host->chip per token
    messages_to_host: float            # nonzero payload elements chip->host per token (spikes included)
    elements_to_chip: float
    elements_to_host: float
    bytes_to_chip: float               # every element at its payload width (dense transfer)
    bytes_to_host: float
    bytes_to_chip_nonzero: float       # nonzero elements only (payload bits, addresses not counted)
    bytes_to_host_nonzero: float
    time_steps: int                    # a token's critical path: the graph's Dense depth
    token_period: int                  # steps per generated token (the artifact's schedule, else time_steps)
    host_round_trips: int
    dense_macs: int                    # all chip Dense synapses (the float model's MACs per token)
    lif_neurons: int

    def ops(self) -> Dict[str, float]:
        return dict(self.host_ops)

    @property
    def host_flops(self) -> float:
        return float(sum(v for _, v in self.host_ops))

    def rates(self) -> Dict[str, float]:
        return {la.name: la.firing_rate for la in self.layers if la.kind == "lif"}

    def mean_rate(self) -> float:
        lifs = [la for la in self.layers if la.kind == "lif"]
        n = sum(la.neurons for la in lifs)
        return sum(la.firing_rate * la.neurons for la in lifs) / n if n else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [la.to_dict() for la in self.layers]
        d["host_ops"] = dict(self.host_ops)
        d["host_ops_by_type"] = {k: dict(v) for k, v in self.host_ops_by_type}
        d["host_flops"] = self.host_flops
        d["mean_firing_rate"] = self.mean_rate()
        return d


def _payload_bits(model, node: ir.Op, direction: str) -> int:
    rec = model.nodes.get(node.name)
    if direction == "in":
        enc = getattr(rec, "input", None)
        return int(enc.bits) if enc is not None else 0
    if node.spiking:
        return 1
    return int(getattr(rec, "output_bits", None) or 24)


@dataclass
class _Tally:
    """Per-token sums over the chip nodes, which each node's `activity.chip` handler adds to."""

    graded: float = 0.0
    binary: float = 0.0
    lif_in: float = 0.0
    updates: float = 0.0
    neurons_on_chip: int = 0
    dense_macs: int = 0
    lif_neurons: int = 0


@dataclass(frozen=True)
class _Seen:
    """What one chip node saw over the run: its counts and where its inputs and outputs are."""

    model: object
    counts: "Counts"
    node: ir.Op
    tokens: int

    @property
    def c(self) -> NodeCounts:
        return self.counts.node(self.node.name)

    def sources(self) -> List[ir.Op]:
        g = self.model.graph
        return [g.nodes[s] for s in g.inputs(self.node.name).values()]

    @property
    def from_host(self) -> bool:
        return any(s.placement.where == ir.HOST for s in self.sources())

    @property
    def to_host(self) -> bool:
        g = self.model.graph
        return any(g.nodes[e.dst].placement.where == ir.HOST for e in g.consumers(self.node.name))

    def direct_nonzero(self) -> int:
        """Nonzero inputs through one-to-one synapses (from chip ops that are not a Dense, --placement chip)."""
        return sum(self.counts.node(s.name).out_nonzero for s in self.sources()
                   if s.placement.where == ir.CHIP and not s.dense)


#: Synaptic events, neuron updates and the per-layer row of one chip node per op type.
ACTIVITY = registry.stage("activity.chip", lambda t, mapping, where: where == ir.CHIP and not t.folds_on_chip,
                          "synaptic events and neuron updates of a chip op (spike2loihi.hardware.activity)")


@ACTIVITY.register(ir.Projection)
def _dense_activity(s: _Seen, t: _Tally) -> LayerActivity:
    n, c, T = s.node, s.c, s.tokens
    srcs = s.sources()
    spiking_src = any(x.spiking for x in srcs)
    if s.from_host:
        nz, el = c.in_nonzero, c.in_elements
    else:  # fed on chip: the source's output is this Dense's input
        src = s.counts.node(srcs[0].name)
        nz, el = src.out_nonzero, src.out_elements
    events = nz * n.dim / T
    if spiking_src:
        t.binary += events
    else:
        t.graded += events
    rec = s.model.nodes.get(n.name)
    macs = n.dim * n.n_in * (rec.fan_in_factor if rec is not None else 1)
    t.dense_macs += macs
    if s.to_host:  # graded readout neurons
        t.updates += c.out_elements / T
        t.neurons_on_chip += n.dim
    return LayerActivity(n.name, n.kind, n.layer, "", n.dim if s.to_host else 0,
                         input_density=nz / el if el else 0.0, input_kind="binary" if spiking_src else "graded",
                         input_nonzero=nz / T, synaptic_events=events, dense_macs=macs)


@ACTIVITY.register(ir.LIF)
def _lif_activity(s: _Seen, t: _Tally) -> LayerActivity:
    n, c, T = s.node, s.c, s.tokens
    rate = c.out_nonzero / c.out_elements if c.out_elements else 0.0
    # identity synapse per neuron from the host, or one-to-one from an on-chip product
    events = (c.in_nonzero if s.from_host else s.direct_nonzero()) / T
    t.lif_in += events
    t.graded += events
    t.updates += c.out_elements / T
    t.neurons_on_chip += n.dim
    t.lif_neurons += n.dim
    return LayerActivity(n.name, n.kind, n.layer, n.population, n.dim, firing_rate=rate,
                         input_density=(c.in_nonzero / c.in_elements) if c.in_elements else None,
                         input_kind="graded" if s.from_host else "on-chip",
                         input_nonzero=c.in_nonzero / T, synaptic_events=events)


@ACTIVITY.register(ir.LayerNorm, ir.TokenShift, ir.Sigmoid, ir.Product, ir.ReLU2, ir.Residual)
def _population_activity(s: _Seen, t: _Tally) -> LayerActivity:
    """`--placement chip` populations, as the planner maps them (estimates)."""
    from spike2loihi.hardware.planner import chip_node

    n, c, T = s.node, s.c, s.tokens
    pop = chip_node(s.model.graph, n, s.model.nodes.get(n.name))
    nz = s.direct_nonzero() + (c.in_nonzero if s.from_host else 0)
    events = (nz + pop.internal_synapses * c.executions) / T
    t.graded += events
    t.updates += pop.neurons * c.executions / T
    t.neurons_on_chip += pop.neurons
    return LayerActivity(n.name, n.kind, n.layer, "", pop.neurons, input_kind="on-chip", input_nonzero=nz / T,
                         synaptic_events=events)


def _population_kinds() -> set:
    return {cls.kind for cls in ir.OP_TYPES.values() if ACTIVITY.find(cls) is _population_activity}


def measure(model, counts: Counts, plan=None) -> Activity:
    """Per-token activity of `model` from `counts` (and the planner's time figures, if given)."""
    from spike2loihi.hardware import planner

    g = model.graph
    T = counts.tokens
    t = _Tally()
    layers = [ACTIVITY.lookup(n)(_Seen(model, counts, n, T), t) for n in g.nodes.values()
              if n.placement.where == ir.CHIP and not n.folds_on_chip]
    graded, binary, lif_in, updates = t.graded, t.binary, t.lif_in, t.updates
    neurons_on_chip, dense_macs, lif_neurons = t.neurons_on_chip, t.dense_macs, t.lif_neurons
    # host float operations: per host node from its type's formulas x its measured executions
    ops: Dict[str, int] = {}
    by_type: Dict[str, Dict[str, int]] = {}
    for n in g.nodes.values():
        if n.placement.where != ir.HOST:
            continue
        runs = counts.node(n.name).executions
        per = host_ops_per_execution(n)
        _add_ops(ops, per, runs)
        _add_ops(by_type.setdefault(type(n).__name__, {}), per, runs)
    # crossings: encode on the way in, decode on the way out; messages and bytes
    cross = g.crossings()
    m_in = m_out = e_in = e_out = b_in = b_out = bn_in = bn_out = 0.0
    for e in cross:
        src, dst = g.nodes[e.src], g.nodes[e.dst]
        if dst.placement.where == ir.CHIP:   # host -> chip
            c = counts.node(dst.name)
            enc = getattr(model.nodes.get(dst.name), "input", None)
            kind = "encode_dynamic" if enc is not None and enc.encoding == DYNAMIC else "encode_static"
            per_el = {k: evaluate_formula(f, {"n": 1}) - evaluate_formula(f, {"n": 0}) for k, f in
                      CROSSING_OPS[kind].items()}
            fixed = {k: evaluate_formula(f, {"n": 0}) for k, f in CROSSING_OPS[kind].items()}
            runs = c.executions
            _add_ops(ops, per_el, c.in_elements)
            _add_ops(ops, fixed, runs)
            _add_ops(by_type.setdefault("crossing: " + kind, {}), per_el, c.in_elements)
            _add_ops(by_type["crossing: " + kind], fixed, runs)
            bits = _payload_bits(model, dst, "in")
            m_in += c.in_nonzero
            e_in += c.in_elements
            b_in += c.in_elements * bits / 8
            bn_in += c.in_nonzero * bits / 8
        else:                                 # chip -> host
            c = counts.node(src.name)
            kind = "decode_spikes" if src.spiking else "decode_dense"
            per = {k: evaluate_formula(f, {"n": 1}) for k, f in CROSSING_OPS[kind].items()}
            _add_ops(ops, per, c.out_elements)
            _add_ops(by_type.setdefault("crossing: " + kind, {}), per, c.out_elements)
            bits = _payload_bits(model, src, "out")
            m_out += c.out_nonzero
            e_out += c.out_elements
            b_out += c.out_elements * bits / 8
            bn_out += c.out_nonzero * bits / 8
    depth = plan.dense_depth if plan is not None else planner.dense_depth(g)
    steps = plan.steps_per_token if plan is not None else depth
    period = (plan.token_period or steps) if plan is not None else steps
    trips = plan.host_round_trips if plan is not None else planner.host_round_trips(g)
    per_token = {k: v / T for k, v in ops.items()}
    ordered = tuple((k, per_token.get(k, 0.0)) for k in OP_KINDS)
    by_type_t = tuple((t, tuple((k, v / T) for k, v in sorted(d.items()))) for t, d in by_type.items())
    return Activity(
        backend=counts.backend, tokens=T, layers=tuple(layers), graded_macs=graded, binary_acs=binary,
        lif_input_events=lif_in, neuron_updates=updates, neurons_on_chip=neurons_on_chip, host_ops=ordered,
        host_ops_by_type=by_type_t, crossings=len(cross),
        crossings_to_chip=sum(1 for e in cross if g.nodes[e.dst].placement.where == ir.CHIP),
        messages_to_chip=m_in / T, messages_to_host=m_out / T, elements_to_chip=e_in / T,
        elements_to_host=e_out / T, bytes_to_chip=b_in / T, bytes_to_host=b_out / T,
        bytes_to_chip_nonzero=bn_in / T, bytes_to_host_nonzero=bn_out / T, time_steps=steps, token_period=period,
        host_round_trips=trips, dense_macs=dense_macs, lif_neurons=lif_neurons)


# ---------------------------------------------------------------------------
# 3. Estimates, baselines, published figures
# ---------------------------------------------------------------------------
def _fig(value, status: str, note: str = "") -> dict:
    out = {"value": value, "status": status}
    if note:
        out["note"] = note
    return out


def _host_price(host) -> Dict[str, float]:
    """pJ per host op kind (45 nm, from the profile's host block)."""
    return {"exp": host.e_fp32_exp_pj.value, "division": host.e_fp32_div_pj.value,
            "multiply": host.e_fp32_mult_pj.value, "add": host.e_fp32_add_pj.value,
            "sqrt": host.e_fp32_sqrt_pj.value, "sigmoid": host.e_fp32_sigmoid_pj.value,
            "compare": host.e_fp32_compare_pj.value, "convert": host.e_convert_pj.value}


def _float_lif_ops(act: Activity) -> Dict[str, float]:
    return {k: evaluate_formula(f, {"n": act.lif_neurons}) for k, f in FLOAT_LIF_OPS.items()}


def baselines(act: Activity, host) -> dict:
    """Energy per token (uJ) under one 45 nm accounting (SpikeGPT's E_MAC / E_AC and H14 op prices).

    - dense float: the same model all in fp32 on a host: every synapse a MAC, every host op,
      the LIFs in float (no encode/decode: nothing crosses);
    - paper (rate 0.15): SpikeGPT's method: every MAC becomes an AC at one assumed rate, float ops
      left out;
    - paper (measured rates): the same method with each Dense at its block's measured rate
      (att projections: the att LIF's, ffn projections: the ffn LIF's, head: the mean);
    - measured here: this model's graded mapping priced the same way: graded synaptic events as
      MACs, binary ones as ACs, every host op counted (crossing work included), LIF updates in float.
    """
    price = _host_price(host)
    e_mac, e_ac = host.e_mac_pj.value, host.e_ac_pj.value
    pj = 1e-6  # pJ -> uJ
    float_ops = {k: v for k, v in act.ops().items()}
    by_type = dict(act.host_ops_by_type)
    for k in list(by_type):
        if k.startswith("crossing: "):
            for kind, v in by_type[k]:
                float_ops[kind] -= v
    lif_ops = _float_lif_ops(act)
    host_float_dense = sum(float_ops[k] * price[k] for k in float_ops) * pj
    host_float_measured = sum(v * price[k] for k, v in act.ops().items()) * pj
    lif_float = sum(v * price[k] for k, v in lif_ops.items()) * pj
    dense_syn = act.dense_macs * e_mac * pj
    rates = {(la.layer, la.population): la.firing_rate for la in act.layers if la.kind == "lif"}
    mean = act.mean_rate()
    measured_rate_ac = 0.0
    for la in act.layers:
        if la.kind == "lif":
            continue
        pop = "att" if ".att." in la.name else "ffn" if ".ffn." in la.name else ""
        r = rates.get((la.layer, pop), mean)
        measured_rate_ac += la.dense_macs * r * e_ac * pj
    cols = {
        "dense float": {"synaptic": dense_syn, "neuron": lif_float, "host float": host_float_dense},
        "paper, rate 0.15": {"synaptic": act.dense_macs * PAPER_RATE * e_ac * pj, "neuron": 0.0, "host float": 0.0},
        "paper, measured rates": {"synaptic": measured_rate_ac, "neuron": 0.0, "host float": 0.0},
        "measured here": {"synaptic": (act.graded_macs * e_mac + act.binary_acs * e_ac) * pj, "neuron": lif_float,
                          "host float": host_float_measured},
    }
    for c in cols.values():
        c["total"] = sum(c.values())
    dense_total = cols["dense float"]["total"]
    dense_syn_only = cols["dense float"]["synaptic"]
    for name, c in cols.items():
        c["ratio_vs_dense_float"] = dense_total / c["total"] if c["total"] else None
        c["synaptic_ratio_vs_dense_macs"] = dense_syn_only / c["synaptic"] if c["synaptic"] else None
    status = {"dense float": ESTIMATE, "paper, rate 0.15": ESTIMATE, "paper, measured rates": ESTIMATE,
              "measured here": ESTIMATE}
    return {
        "unit": "uJ per token", "accounting": "45 nm: E_MAC 4.6 pJ, E_AC 0.9 pJ (SpikeGPT), host ops at H14 "
                                              "prices (exp, division, sqrt, sigmoid estimated)",
        "columns": cols, "status": status,
        "mean_firing_rate": _fig(mean, MEASURED),
        "paper_published_ratio": _fig(PAPER_RATIO, PUBLISHED, "SpikeGPT (TMLR): fewer operations at rate 0.15"),
        "paper_formula_ratio": _fig(e_mac / (PAPER_RATE * e_ac), ESTIMATE,
                                    "E_MAC / (0.15 E_AC): every MAC an AC at rate 0.15, our reading of the method"),
        "left_out_by_paper": {
            "host float ops (uJ)": _fig(host_float_measured, ESTIMATE, "counted ops x 45 nm prices"),
            "LIF updates in float (uJ)": _fig(lif_float, ESTIMATE),
            "graded inputs": _fig(sum(1 for la in act.layers if la.input_kind == "graded"
                                      and la.kind in ("projection", "head")),
                                  MEASURED, "chip Dense layers whose input is a graded payload (a MAC, not an AC) "
                                            "in the deployed mapping"),
        },
    }


#: The only language model published on Loihi 2 (a different model: not comparable one to one).
PUBLISHED_LM = {
    "work": "Abreu, Shrestha, Zhu, Eshraghian 2025, arXiv 2503.18002",
    "model": "370M MatMul-free LM (ternary BitLinear, MLGRU token mixer, GLU, RMSNorm); 8-bit weights, "
             "24-bit activations, fixed point",
    "status": PUBLISHED,
    "note": "published figures for a different model and system, next to ours for orientation only",
    "figures": {
        "throughput vs transformer LMs on a Jetson Orin Nano": _fig("up to 3x", PUBLISHED),
        "energy per token vs transformer LMs on a Jetson Orin Nano": _fig("2x less", PUBLISHED),
        "time to first token, 500-token prompt": _fig("6.6x lower", PUBLISHED, "described as preliminary"),
    },
    "source": "https://arxiv.org/html/2503.18002v1",
}


@dataclass(frozen=True)
class SystemEstimate:
    """Tokens/s and energy per token of one model on one system (estimates).

    Two ways to run a token:
    - decode (closed-loop generation, one token at a time): the token's whole chain runs before the
      next token exists: token period (steps) x step time + round trips x round-trip latency + bytes / host
      link;
    - prefill (teacher-forced, pipelined; DESIGN.md "Tokens and time steps"): one token enters per
      step, assuming one batched host exchange per step: step time + one round trip + bytes / host link.
    """

    profile: str
    system: str
    fits: Optional[bool]
    chips_used: Optional[int]
    time_ms: Tuple[Tuple[str, float], ...]            # decode: chip steps, host round trips, host link bytes
    tokens_per_s: Optional[float]                     # decode
    tokens_per_s_best: Optional[float]                # decode at the low end of the round-trip range
    tokens_per_s_prefill: Optional[float]
    energy_uj: Tuple[Tuple[str, float], ...]          # decode: chip synaptic, chip neuron, static, host float, IO
    energy_uj_total: Optional[float]                  # decode
    energy_uj_pessimistic: Optional[float]            # decode with Loihi 1 synop / neuron energies
    energy_uj_prefill: Optional[float]
    note: str = ""
    status: str = ESTIMATE
    inputs: Tuple[Tuple[str, object, str], ...] = ()   # (profile value, value, its status) the estimate used

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_ms"] = dict(self.time_ms)
        d["energy_uj"] = dict(self.energy_uj)
        d["inputs"] = {k: {"value": v, "status": st} for k, v, st in self.inputs}
        return d


ENERGY_PARTS = ("chip synaptic", "chip neuron", "static", "host float", "IO")


def estimate(act: Activity, plan, profile) -> SystemEstimate:
    """Tokens/s and energy per token of this activity on `profile` (with the plan made for that profile).

    Energy per token = synaptic events x e_synop + neurons x steps x e_neuron_update (every compartment is
    serviced every step) + static power x chips used x time per token + counted host ops x 45 nm prices
    + host-link bytes x e_host_io + on-chip messages (each nonzero input to every core of its group, each
    output once) x (e_spike + e_hop)."""
    t, s, e, h = profile.timing, profile.system, profile.energy, profile.host
    fits = (not plan.violations) if profile.is_hardware else None
    chips = plan.chips_needed_realistic if profile.is_hardware else None
    step_us = t.timestep_us_typical.value
    if profile.is_hardware and chips and chips > 1:
        step_us += t.sync_us_per_step_multichip.value
    rt_ms = s.host_roundtrip_ms.value
    bytes_io = act.bytes_to_chip + act.bytes_to_host
    io_bw = s.host_io_bytes_per_s.value
    link_ms = (bytes_io / io_bw * 1000.0) if io_bw else 0.0
    time = {"chip time steps": act.token_period * step_us / 1000.0,
            "host round trips": act.host_round_trips * rt_ms,
            "host link bytes": link_ms}
    total_ms = sum(time.values())
    low = s.host_roundtrip_ms.range[0] if s.host_roundtrip_ms.range else rt_ms
    best_ms = total_ms - act.host_round_trips * (rt_ms - low)
    prefill_ms = step_us / 1000.0 + (rt_ms if act.crossings else 0.0) + link_ms
    tps = 1000.0 / total_ms if total_ms > 0 else None
    tps_best = 1000.0 / best_ms if best_ms > 0 else None
    tps_prefill = 1000.0 / prefill_ms if prefill_ms > 0 else None
    used = ["timing.timestep_us_typical", "system.host_roundtrip_ms", "system.host_io_bytes_per_s"]
    if profile.is_hardware:
        used += ["energy.e_synop_pj", "energy.e_neuron_update_pj", "energy.static_w_per_chip",
                 "system.e_host_io_pj_per_byte"]
    inputs = tuple((k, profile.fact(k).value, profile.fact(k).status) for k in used)
    if not profile.is_hardware:
        note = "a CPU simulation: the step time is Lava's measured steps/s; no Loihi energy"
        return SystemEstimate(profile.name, profile.title, None, None, tuple(time.items()), tps, tps_best,
                              tps_prefill, (), None, None, None, note, inputs=inputs)
    note = "" if fits else "the model does not fit this system: figures assume it did"
    price = _host_price(h)
    pj = 1e-6
    synops = act.graded_macs + act.binary_acs
    group_cores = {m: g.realistic.cores for g in plan.groups for m in g.members}
    on_chip_msgs = sum(la.input_nonzero * group_cores.get(la.name, 1) for la in act.layers
                       if la.input_kind in ("graded", "binary")
                       or la.kind in _population_kinds()) + act.messages_to_host

    def parts(steps: int, ms: float) -> Dict[str, float]:
        return {
            "chip synaptic": synops * e.e_synop_pj.value * pj,
            "chip neuron": plan.neurons * steps * e.e_neuron_update_pj.value * pj,
            "static": e.static_w_per_chip.value * chips * ms * 1e-3 * 1e6,
            "host float": sum(v * price[k] for k, v in act.ops().items()) * pj,
            "IO": (bytes_io * s.e_host_io_pj_per_byte.value
                   + on_chip_msgs * (e.e_spike_pj.value + e.e_hop_pj.value)) * pj,
        }

    energy = parts(act.token_period, total_ms)
    total = sum(energy.values())
    pess = total
    if e.e_synop_pj.pessimistic is not None:
        pess += synops * (e.e_synop_pj.pessimistic - e.e_synop_pj.value) * pj
    if e.e_neuron_update_pj.pessimistic is not None:
        pess += plan.neurons * act.token_period * (e.e_neuron_update_pj.pessimistic - e.e_neuron_update_pj.value) * pj
    prefill = sum(parts(1, prefill_ms).values())
    return SystemEstimate(profile.name, profile.title, fits, chips, tuple(time.items()), tps, tps_best, tps_prefill,
                          tuple(energy.items()), total, pess, prefill, note, inputs=inputs)


@dataclass(frozen=True)
class Report:
    """The whole activity report: what was measured, the estimates per system, the baselines."""

    model: str
    text_source: str
    activity: Activity
    estimates: Tuple[SystemEstimate, ...]
    baselines: Tuple[Tuple[str, object], ...]
    published: Tuple[Tuple[str, object], ...]

    def to_dict(self) -> dict:
        a = self.activity
        return {
            "model": self.model, "text": self.text_source, "backend": a.backend, "tokens": a.tokens,
            "statuses": {"published": "a published figure (source given)",
                         "measured here": "counted on this run of the converted model",
                         "estimate": "derived from measured counts and estimated profile values"},
            "per_token": {
                "time_steps": _fig(a.time_steps, MEASURED, "a token's critical path = the graph's Dense depth: "
                                                           "each chip Dense adds one time step, LIFs and host ops "
                                                           "none"),
                "token_period_steps": _fig(a.token_period, MEASURED, "steps per generated token (the artifact's "
                                                                     "schedule when recorded)"),
                "host_round_trips": _fig(a.host_round_trips, MEASURED, "host->chip entries on the longest chain"),
                "crossings": _fig(a.crossings, MEASURED, f"{a.crossings_to_chip} host->chip, "
                                                         f"{a.crossings - a.crossings_to_chip} chip->host"),
                "messages_to_chip": _fig(a.messages_to_chip, MEASURED, "nonzero payload elements"),
                "messages_to_host": _fig(a.messages_to_host, MEASURED, "nonzero payload elements and spikes"),
                "bytes_to_chip": _fig(a.bytes_to_chip, MEASURED, "every element at its payload width"),
                "bytes_to_host": _fig(a.bytes_to_host, MEASURED, "every element at its payload width"),
                "bytes_to_chip_nonzero": _fig(a.bytes_to_chip_nonzero, MEASURED),
                "bytes_to_host_nonzero": _fig(a.bytes_to_host_nonzero, MEASURED),
                "graded_macs": _fig(a.graded_macs, MEASURED, "nonzero graded input elements x fan-out "
                                                             f"(incl. {a.lif_input_events:,.0f} identity synapses "
                                                             "into the ffn LIFs)"),
                "binary_acs": _fig(a.binary_acs, MEASURED, "spikes x fan-out into chip Dense layers"),
                "neuron_updates": _fig(a.neuron_updates, MEASURED, "one per neuron per token (LIF and graded "
                                                                   "readout neurons)"),
                "host_ops": {k: _fig(v, MEASURED) for k, v in a.host_ops},
                "host_flops": _fig(a.host_flops, MEASURED),
                "dense_macs": _fig(a.dense_macs, MEASURED, "every chip synapse once: what a dense float run "
                                                           "multiplies"),
            },
            "layers": [la.to_dict() for la in a.layers],
            "host_ops_by_type": {k: dict(v) for k, v in a.host_ops_by_type},
            "host_op_formulas": {cls.__name__: dict(cls.host_cost) for cls in ir.OP_TYPES.values()
                                 if cls.host_cost is not None},
            "crossing_op_formulas": CROSSING_OPS,
            "estimates": [e.to_dict() for e in self.estimates],
            "baselines_45nm": dict(self.baselines),
            "published_lm_on_loihi2": dict(self.published),
        }


def build_report(model, counts: Counts, plans: Dict[str, object], profiles: Dict[str, object],
                 model_name: str = "", text_source: str = "", plan=None) -> Report:
    """Measure, then estimate on every profile of `profiles` (name -> Profile) with its plan."""
    act = measure(model, counts, plan)
    ests = tuple(estimate(act, plans[name], prof) for name, prof in profiles.items())
    host = next(iter(profiles.values())).host
    return Report(model_name, text_source, act, ests, tuple(baselines(act, host).items()),
                  tuple(PUBLISHED_LM.items()))


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
def _si(x: Optional[float], unit: str = "") -> str:
    if x is None:
        return "n/a"
    ax = abs(x)
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if ax >= scale:
            return f"{x / scale:,.2f} {prefix}{unit}".rstrip()
    return f"{x:,.1f} {unit}".rstrip() if ax >= 10 or x == 0 else f"{x:,.3g} {unit}".rstrip()


def _uj(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    if abs(x) >= 1e3:
        return f"{x / 1e3:,.2f} mJ"
    return f"{x:,.2f} uJ" if abs(x) >= 0.01 else f"{x:.2e} uJ"


def render_text(r: Report) -> str:
    a = r.activity
    L = []
    L.append(f"Activity per token, {a.tokens:,} tokens of {r.text_source or 'the given tokens'} on the {a.backend} "
             f"backend   [M] measured here  [E] estimate  [P] published")
    L.append("")
    L.append("  Firing rate per LIF population [M] (SpikeGPT's energy claim assumed 0.15 everywhere)")
    lifs = [la for la in a.layers if la.kind == "lif"]
    for la in lifs:
        bar = "#" * int(round(la.firing_rate * 50))
        L.append(f"    {la.name:<22} {la.firing_rate:7.4f}  {bar}")
    L.append(f"    {'mean (neuron-weighted)':<22} {a.mean_rate():7.4f}")
    dens = [la for la in a.layers if la.kind in ("projection", "head")]
    if dens:
        d = [la.input_density for la in dens]
        L.append(f"  Chip Dense input density (nonzero fraction of the payload) [M]: min {min(d):.3f}, "
                 f"mean {sum(d) / len(d):.3f}, max {max(d):.3f} over {len(dens)} layers "
                 f"({sum(1 for la in dens if la.input_kind == 'graded')} graded, "
                 f"{sum(1 for la in dens if la.input_kind == 'binary')} binary)")
    L.append("")
    L.append("  Per token [M]")
    L.append(f"    time steps             {a.time_steps:>14}   (critical path = the graph's Dense depth: each chip "
             f"Dense adds one; a generated token every {a.token_period} steps)")
    L.append(f"    host round trips       {a.host_round_trips:>14}   "
             "(sequential host->chip->host on the longest chain)")
    L.append(f"    host<->chip crossings  {a.crossings:>14}   ({a.crossings_to_chip} host->chip, "
             f"{a.crossings - a.crossings_to_chip} chip->host)")
    L.append(f"    messages host->chip    {a.messages_to_chip:>14,.0f}   (nonzero payloads of "
             f"{a.elements_to_chip:,.0f} elements)")
    L.append(f"    messages chip->host    {a.messages_to_host:>14,.0f}   (nonzero payloads and spikes of "
             f"{a.elements_to_host:,.0f} elements)")
    L.append(f"    bytes host->chip       {a.bytes_to_chip:>14,.0f}   ({a.bytes_to_chip_nonzero:,.0f} B of nonzero "
             "payloads)")
    L.append(f"    bytes chip->host       {a.bytes_to_host:>14,.0f}   ({a.bytes_to_host_nonzero:,.0f} B of nonzero "
             "payloads)")
    L.append(f"    synaptic ops, graded   {a.graded_macs:>14,.0f}   multiply-accumulates (nonzero inputs x fan-out)")
    L.append(f"    synaptic ops, binary   {a.binary_acs:>14,.0f}   accumulates (spikes into chip Dense layers)")
    L.append(f"    dense MACs (float)     {a.dense_macs:>14,}   (every chip synapse once)")
    L.append(f"    neuron updates         {a.neuron_updates:>14,.0f}   (one per neuron per token; "
             f"{a.neurons_on_chip:,} neurons)")
    L.append("    host float ops         " + ", ".join(f"{k} {v:,.0f}" for k, v in a.host_ops if v)
             + f"   (total {a.host_flops:,.0f}; counted per host node from its op's host_cost, crossing work included)")
    L.append("")
    L.append("  Estimates per system [E]. decode (closed-loop generation): token period x step time + round trips x "
             "round-trip latency + bytes / host link; prefill (pipelined, teacher-forced): one token per step with "
             "one host exchange per step. Energy per token broken down for decode.")
    L.append(f"    {'system':<20} {'fits':<4} {'chips':>5} {'decode tok/s':>12} {'(best)':>8} {'prefill tok/s':>13} "
             f"{'ms: steps':>9} {'trips':>8} {'bytes':>7} {'energy decode':>13} {'prefill':>10} "
             + " ".join(f"{p:>13}" for p in ENERGY_PARTS))
    for e in r.estimates:
        t = dict(e.time_ms)
        en = dict(e.energy_uj)
        fits = "-" if e.fits is None else ("yes" if e.fits else "NO")
        L.append(f"    {e.system[:20]:<20} {fits:<4} {e.chips_used if e.chips_used is not None else '-':>5} "
                 f"{_si(e.tokens_per_s):>12} {_si(e.tokens_per_s_best):>8} {_si(e.tokens_per_s_prefill):>13} "
                 f"{t['chip time steps']:>9,.2f} {t['host round trips']:>8,.1f} {t['host link bytes']:>7,.1f} "
                 f"{_uj(e.energy_uj_total):>13} {_uj(e.energy_uj_prefill):>10} "
                 + " ".join(f"{_uj(en.get(p)):>13}" for p in ENERGY_PARTS))
    for e in r.estimates:
        if e.note:
            L.append(f"    {e.system}: {e.note}")
    if r.estimates and r.estimates[0].inputs:
        L.append(f"    profile values used ({r.estimates[0].system}): " + ", ".join(
            f"{k.split('.')[-1]} {v:g} [{TAG[PUBLISHED] if st == PUBLISHED else TAG[ESTIMATE]}]"
            for k, v, st in r.estimates[0].inputs if v is not None))
    L.append("    (best) = decode at the low end of the round-trip range. Decode energy with Loihi 1 synop/neuron "
             "energies: " + ", ".join(f"{e.system} {_uj(e.energy_uj_pessimistic)}" for e in r.estimates
                                      if e.energy_uj_pessimistic is not None))
    b = dict(r.baselines)
    cols = b["columns"]
    L.append("")
    L.append(f"  Baselines under one 45 nm accounting [E] ({b['unit']}; {b['accounting']})")
    L.append(f"    {'':<24} {'synaptic':>12} {'neuron':>10} {'host float':>12} {'total':>12} "
             f"{'synaptic: fewer than dense':>27} {'total: fewer than dense':>24}")

    def x(v):
        return f"{v:,.1f}x" if v else "-"
    for name, c in cols.items():
        L.append(f"    {name:<24} {c['synaptic']:>12,.2f} {c['neuron']:>10,.2f} {c['host float']:>12,.2f} "
                 f"{c['total']:>12,.2f} {x(c['synaptic_ratio_vs_dense_macs']):>27} "
                 f"{x(c['ratio_vs_dense_float']):>24}")
    L.append(f"    SpikeGPT's published figure: {PAPER_RATIO}x fewer operations at rate 0.15 [P]; its formula "
             f"E_MAC / (0.15 E_AC) gives {b['paper_formula_ratio']['value']:.1f}x [E]; the same formula with this "
             "model's "
             f"measured rates (mean {b['mean_firing_rate']['value']:.3f}; each Dense at its block's att or ffn LIF "
             f"rate, the head at the mean) gives {cols['paper, measured rates']['synaptic_ratio_vs_dense_macs']:.1f}x "
             "[E]")
    lo = b["left_out_by_paper"]
    L.append(f"    left out by the paper's method: host float ops {_uj(lo['host float ops (uJ)']['value'])}, "
             f"LIF updates {_uj(lo['LIF updates in float (uJ)']['value'])}, and "
             f"{lo['graded inputs']['value']} chip Dense layers take graded inputs (MACs, not ACs) in the deployed "
             f"mapping: measured here the model saves "
             f"{cols['measured here']['ratio_vs_dense_float']:.2f}x against the dense float run, not "
             f"{PAPER_RATIO}x")
    p = dict(r.published)
    L.append("")
    L.append(f"  Published, a different model [P]: {p['work']}: {p['model']}")
    L.append("    " + "; ".join(f"{k}: {v['value']}" for k, v in p["figures"].items()))
    return "\n".join(L)


def plot(r: Report, axes) -> None:
    """Three panels: firing rate per layer, energy under the 45 nm accounting, Loihi 2 energy per system."""
    a = r.activity
    ax = axes[0]
    lifs = [la for la in a.layers if la.kind == "lif"]
    names = [la.name.replace("blocks.", "b") for la in lifs]
    colors = ["tab:blue" if la.population == "att" else "tab:orange" for la in lifs]
    ax.bar(range(len(lifs)), [la.firing_rate for la in lifs], color=colors)
    ax.axhline(PAPER_RATE, color="k", ls="--", lw=1, label="SpikeGPT's assumed rate 0.15")
    ax.set_xticks(range(len(lifs)), names, rotation=90, fontsize=7)
    ax.set_ylabel("firing rate (spikes per neuron per token)")
    ax.set_title(f"Measured firing rate per LIF population [measured here], {a.tokens:,} tokens "
                 "(blue att, orange ffn)")
    ax.legend(fontsize=8)

    ax = axes[1]
    cols = dict(r.baselines)["columns"]
    parts = ("synaptic", "neuron", "host float")
    bottom = [0.0] * len(cols)
    for part, color in zip(parts, ("tab:blue", "tab:green", "tab:red")):
        vals = [c[part] for c in cols.values()]
        ax.bar(range(len(cols)), vals, bottom=bottom, color=color, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(cols)), list(cols), fontsize=8)
    ax.set_ylabel("uJ per token")
    ax.set_title("Energy per token under one 45 nm accounting [estimate]")
    ax.legend(fontsize=8)

    ax = axes[2]
    ests = [e for e in r.estimates if e.energy_uj]
    width = 0.8 / len(ENERGY_PARTS)
    for i, (part, color) in enumerate(zip(ENERGY_PARTS, ("tab:blue", "tab:green", "tab:gray", "tab:red",
                                                          "tab:purple"))):
        vals = [max(dict(e.energy_uj)[part], 1e-6) for e in ests]
        ax.bar([x - 0.4 + width * (i + 0.5) for x in range(len(ests))], vals, width=width, color=color, label=part)
    ax.set_yscale("log")
    top = max((max(dict(e.energy_uj).values()) for e in ests), default=1.0)
    ax.set_ylim(top=top * 300)
    ax.set_xticks(range(len(ests)), [f"{e.system}: {_uj(e.energy_uj_total)} per token, {_si(e.tokens_per_s)} "
                                     f"tokens/s" for e in ests], fontsize=8)
    ax.set_ylabel("uJ per token (log scale)")
    ax.set_title("Loihi 2 energy per token by part and system [estimate]: static power x host round-trip time "
                 "dominates", fontsize=10)
    ax.legend(fontsize=8, ncol=len(ENERGY_PARTS), loc="upper center")


def render_png(out, report: Optional[Report], plan, title: str = "",
               comparison: Optional[List["PlacementColumn"]] = None) -> None:
    """The report's plots as one PNG into the binary file `out`: rates, energies and cores (or cores alone),
    and with `comparison` (profile --compare) the placements side by side."""
    from spike2loihi.hardware import planner
    from spike2loihi import plots

    n = (4 if report is not None else 1) + (1 if comparison else 0)
    width = max(9, 0.22 * len(plan.groups) + 3)
    fig, axes = plots.subplots(n, 1, figsize=(width, 4.2 * n))
    axes = list(np.atleast_1d(axes))
    if report is not None:
        plot(report, axes[:3])
    planner.plot_cores(plan, axes[3] if report is not None else axes[0])
    if comparison:
        plot_comparison(comparison, axes[-1])
    plots.finish(fig, out, title)


def plot_comparison(cols: List["PlacementColumn"], ax) -> None:
    """Per placement: round trips and steps per token [M]; decode tokens/s and mJ per token on the
    first system [E] (each metric relative to the first column, labelled with its value)."""
    metrics = [("host round trips / token", lambda c: c.host_round_trips),
               ("steps / generated token", lambda c: c.token_period),
               ("cores (realistic)", lambda c: c.cores_realistic)]
    sysname = ""
    if all(c.per_system for c in cols):
        sysname = cols[0].per_system[0][0]
        metrics += [("decode tokens/s [E]", lambda c: c.per_system[0][1] or 0.0),
                    ("mJ per token [E]", lambda c: (c.per_system[0][3] or 0.0) / 1000.0)]
    width = 0.8 / len(cols)
    for j, c in enumerate(cols):
        vals = [f(c) for _, f in metrics]
        base = [f(cols[0]) or 1 for _, f in metrics]
        xs = [i + (j - (len(cols) - 1) / 2) * width for i in range(len(metrics))]
        bars = ax.bar(xs, [v / b for v, b in zip(vals, base)], width=width, label=f"{c.model} ({c.placement})")
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:,.3g}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(range(len(metrics)), [m for m, _ in metrics], fontsize=8)
    ax.set_ylabel(f"relative to {cols[0].model}")
    ax.set_title("Placements side by side (values on the bars; [E] estimates"
                 + (f" on {sysname})" if sysname else ")"))
    ax.legend(fontsize=8)


__all__ = ["CROSSING_OPS", "FLOAT_LIF_OPS", "COUNTERS", "Counts", "NodeCounts", "Activity",
           "LayerActivity", "SystemEstimate", "Report", "count_activity", "measure", "estimate", "baselines",
           "build_report", "render_text", "render_png", "evaluate_formula", "check_backend", "host_ops_per_execution",
           "PUBLISHED_LM", "ActivityError"]


# ---------------------------------------------------------------------------
# Placements side by side (`profile MODEL --compare OTHER`)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlacementColumn:
    """One model's column of the side-by-side comparison (from its plan and, with a text, its report)."""

    model: str
    placement: str
    host_round_trips: int
    crossings: int
    token_period: int
    cores_realistic: int
    chips_realistic: int
    bytes_per_token: Optional[float] = None                       # host<->chip, every element
    per_system: Tuple[Tuple[str, Optional[float], Optional[float], Optional[float], Optional[bool]], ...] = ()
    # (system, decode tokens/s, prefill tokens/s, decode energy uJ per token, fits)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_system"] = [{"system": s, "decode_tokens_per_s": t, "prefill_tokens_per_s": p, "energy_uj": e,
                            "fits": f} for s, t, p, e, f in self.per_system]
        return d


def placement_column(model, name: str, plan, report: Optional[Report]) -> PlacementColumn:
    col = PlacementColumn(name, ir.placement_of(model.graph), plan.host_round_trips, plan.crossings,
                          plan.token_period or plan.steps_per_token, plan.cores_realistic, plan.chips_needed_realistic)
    if report is None:
        return col
    a = report.activity
    rows = tuple((e.system, e.tokens_per_s, e.tokens_per_s_prefill, e.energy_uj_total, e.fits)
                 for e in report.estimates)
    return dataclasses.replace(col, bytes_per_token=a.bytes_to_chip + a.bytes_to_host, per_system=rows)


def render_comparison(cols: List[PlacementColumn], system: str) -> str:
    """The columns side by side: round trips, bytes, steps, cores; tokens/s and energy on each system [E]."""
    w = max(24, max(len(f"{c.model} ({c.placement})") for c in cols) + 2)
    head = "".join(f"{c.model + ' (' + c.placement + ')':>{w}}" for c in cols)
    L = ["Placements side by side  [M] measured/counted  [E] estimate", f"  {'':<46}{head}"]

    def row(label, vals):
        L.append(f"  {label:<46}" + "".join(f"{v:>{w}}" for v in vals))

    row("host round trips per token [M]", [f"{c.host_round_trips}" for c in cols])
    row("host<->chip crossings per token [M]", [f"{c.crossings}" for c in cols])
    if all(c.bytes_per_token is not None for c in cols):
        row("bytes per token, host<->chip [M]", [f"{c.bytes_per_token:,.0f}" for c in cols])
    row("on-chip steps per generated token [M]", [f"{c.token_period}" for c in cols])
    row(f"cores / chips on {system} (realistic) [E]", [f"{c.cores_realistic:,} / {c.chips_realistic}" for c in cols])
    systems = [s for s, *_ in cols[0].per_system]
    for s in systems:
        vals = {c.model: {r[0]: r[1:] for r in c.per_system}.get(s) for c in cols}
        row(f"{s}: fits (realistic bound) [E]",
            [{True: "yes", False: "NO", None: "-"}[vals[c.model][3] if vals[c.model] else None]
             for c in cols])
        row(f"{s}: decode tokens/s [E]", [_f3(vals[c.model][0] if vals[c.model] else None) for c in cols])
        row(f"{s}: prefill tokens/s [E]", [_f3(vals[c.model][1] if vals[c.model] else None) for c in cols])
        row(f"{s}: energy per token, decode [E]", [_uj(vals[c.model][2] if vals[c.model] else None) for c in cols])
    if any(r[4] is False for c in cols for r in c.per_system):
        L.append("  NO: the model does not fit that system under the realistic bound; its figures assume it did")
    if any(c.placement == ir.CHIP for c in cols):
        kinds = " and ".join(cls.kind for cls in ir.OP_TYPES.values() if cls.microcoded)
        L.append(f"  --placement chip: the {kinds} populations need microcoded neurons on a board: unverified")
    return "\n".join(L)


def _f3(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:,.3g}"

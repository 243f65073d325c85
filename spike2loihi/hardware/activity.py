"""Measured activity, traffic and energy of a converted model, per token.

Three layers, each frozen data:

1. **Counts** (`count_activity`): what a backend measured while running the
   model teacher-forced over a token sequence: for every IR node, how often it
   ran, how many output elements it produced and how many were nonzero; for every
   chip node fed by the host, how many payload elements it received and how many
   were nonzero. The emulator backend takes them from `ModelEmulator(trace=...)`.
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
3. **Report** (`spike2loihi.hardware.energy.build_report`): estimates from a
   hardware profile for each system beside the 45 nm baselines; rendered as text,
   JSON and PNG by `spike2loihi.hardware.activity_report`.
"""
from __future__ import annotations

import ast
import operator
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.convert.records import DYNAMIC
from spike2loihi.errors import ActivityError

PUBLISHED, MEASURED, ESTIMATE = "published", "measured here", "estimate"
TAG = {PUBLISHED: "P", MEASURED: "M", ESTIMATE: "E"}
OP_KINDS = ("exp", "division", "multiply", "add", "sqrt", "sigmoid", "compare", "convert")
PAPER_RATE = 0.15          # SpikeGPT's assumed firing rate (arXiv 2302.13939)
PAPER_RATIO = 32.2         # SpikeGPT's published "fewer operations" figure (TMLR version)


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
    from spike2loihi.execute.model_emulator import ModelEmulator

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

    ex = ModelEmulator(model, batch_size=1, trace=trace)
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
    steps_per_prompt_token: int = 1    # prefill: 1 (gated LIFs pipeline the prompt); stock LIFs: the token period

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


@ACTIVITY.register(ir.LayerNorm, ir.TokenShift, ir.Sigmoid, ir.Product, ir.ReLU2, ir.Residual, ir.WKV)
def _population_activity(s: _Seen, t: _Tally) -> LayerActivity:
    """`--placement chip` populations, as the planner maps them (estimates)."""
    from spike2loihi.hardware.populations import chip_node

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
        host_round_trips=trips, dense_macs=dense_macs, lif_neurons=lif_neurons,
        steps_per_prompt_token=model.schedule.steps_per_prefill_token)

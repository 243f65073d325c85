"""The model as a small graph of ops, each placed on the chip or on the host.

NIR-style: parameter-only frozen dataclass nodes (`Op` subclasses), named edges
`Edge(src, dst, port)`, and one `to_dict`/`from_dict`. Nodes refer to their
tensors by checkpoint key (`blocks.0.att.key.weight`), so a reader of
SPIKEGPT.md finds every weight; the quantized integers of a chip node live in
the artifact under the node's name.

Placement is a typed field (`Placement(where, reason)`), set from the op type's
`mapping` under the chosen `--placement` (`host`, the graded mapping of DESIGN.md,
`chip`, ONCHIP.md's, or `chip-wkv`, ONCHIP.md's with the WKV on the chip). Host<->chip crossings are derived from the edges. Each op
type states its intrinsic facts once (see `Op`); behaviour lives with the stages,
registered per op type through `spike2loihi.registry`, not here.

One SpikeGPT block (SPIKEGPT.md "Inference semantics") becomes, per token:

    x ─ ln1 ─ shift ─ mix_k/v/r ─ key/value/receptance ─ sigmoid, wkv ─ rwkv ─ output ─ lif ─ residual ─ x'
    x'─ ln2 ─ shift ─ mix_k/r ─ key ─ relu2 ─ value ─ gate(× sigmoid(receptance)) ─ lif ─ residual ─ x''
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Tuple

CHIP, HOST = "chip", "host"
#: `--placement chip --wkv chip`: ONCHIP.md's mapping with the WKV on the chip too.
CHIP_WKV = "chip-wkv"
IR_VERSION = 1


@dataclass(frozen=True)
class Placement:
    """Where an op runs, and why there."""

    where: str  # CHIP or HOST
    reason: str

    def __post_init__(self):
        if self.where not in (CHIP, HOST):
            raise ValueError(f"placement must be {CHIP!r} or {HOST!r}, not {self.where!r}")


#: `convert --placement [--wkv]`: the graded mapping (DESIGN.md), ONCHIP.md's, and ONCHIP.md's with the WKV
#: on the chip. The last two place every op alike except the WKV (`on_chip`: their integer on-chip ops).
MAPPINGS = (HOST, CHIP, CHIP_WKV)
ON_CHIP_MAPPINGS = (CHIP, CHIP_WKV)


def on_chip(mapping: str) -> bool:
    """Whether `mapping` is one of ONCHIP.md's (LayerNorm, gates, products on the chip)."""
    return mapping in ON_CHIP_MAPPINGS
#: In the on-chip reason of the ops whose arithmetic needs a neuron model no Loihi 2 release ships.
MICROCODED = "needs a microcoded neuron on a board: unverified"
_LINEAR = "a linear layer: Loihi Dense with 8-bit weights and graded input"


@dataclass(frozen=True)
class Op:
    """One node: its name, output width, block (None outside blocks) and placement.

    Beside its ports and state, each op type states its intrinsic facts once, here, and every
    stage reads them (no stage keeps a table of kinds):

    * `mapping`: where it runs under each `--placement` mapping, and why (`Placement`);
    * `dense`: a weight matrix, a Loihi `Dense` on the chip, which adds one time step;
    * `spiking`: its output is binary spikes (on the chip they reach a graded op through a Dense);
    * `microcoded`: on the chip, its arithmetic needs a neuron model that no Loihi 2 release ships;
    * `folds_on_chip`: on the chip it has no process of its own: it is folded into its consumers;
    * `per_token`: it runs once per token (False: outside the step, as the sampler);
    * `host_cost`: float operations per execution on the host, by kind, as integer formulas of
      `n` (the width) and the op's boolean parameters (what `execute.host_ops` computes);
    * `chip_input_scale`: on the chip, the factor its input on a port arrives multiplied by (folded
      into the producing Dense's weights).

    Behaviour per stage is registered against the type (`spike2loihi.registry`).
    """

    name: str
    dim: int
    layer: Optional[int]
    placement: Placement

    kind: ClassVar[str] = ""
    ports: ClassVar[Tuple[str, ...]] = ("x",)
    state: ClassVar[Tuple[str, ...]] = ()   # what the op carries from one token to the next
    mapping: ClassVar[Dict[str, Placement]] = {}
    dense: ClassVar[bool] = False
    spiking: ClassVar[bool] = False
    microcoded: ClassVar[bool] = False
    folds_on_chip: ClassVar[bool] = False
    per_token: ClassVar[bool] = True
    host_cost: ClassVar[Optional[Dict[str, str]]] = None
    chip_input_scale: ClassVar[Dict[str, float]] = {}

    def latency(self) -> int:
        """Time steps between this op receiving a token and its consumers seeing the result:
        one for a Dense on the chip, none for host ops and the other chip processes."""
        return int(self.dense and self.placement.where == CHIP)

    def cost_env(self) -> Dict[str, int]:
        """The names `host_cost` formulas may use: `n` and the op's boolean parameters as 0/1."""
        return {"n": self.dim, **{k: int(v) for k, v in self.params().items() if isinstance(v, bool)}}

    def params(self) -> dict:
        """The op's own parameters (everything but name, dim, layer, placement)."""
        base = {f.name for f in dataclasses.fields(Op)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in base}


def _both(where: str, reason: str) -> Dict[str, Placement]:
    return {m: Placement(where, reason) for m in MAPPINGS}


def _mapping(host: Placement, chip: Placement, wkv_chip: Optional[Placement] = None) -> Dict[str, Placement]:
    """Placements per mapping: `chip` under ONCHIP.md's, `wkv_chip` (default `chip`) with `--wkv chip`."""
    return {HOST: host, CHIP: chip, CHIP_WKV: wkv_chip or chip}


@dataclass(frozen=True)
class Embedding(Op):
    vocab: int = 0
    weight: str = "emb.weight"
    binary: bool = False         # x = (emb[token] >= 0)
    kind: ClassVar[str] = "embedding"
    ports: ClassVar[Tuple[str, ...]] = ("token",)
    mapping: ClassVar[Dict[str, Placement]] = _both(HOST, "a table lookup of the token id (and the binary step)")
    # x = table[token] is a copy; the binary embedding adds x >= 0 and a float cast.
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"compare": "n * binary", "convert": "n * binary"}


@dataclass(frozen=True)
class LayerNorm(Op):
    weight: str = ""
    bias: str = ""
    eps: float = 1e-5
    kind: ClassVar[str] = "layernorm"
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "needs the mean, the variance and a division"),
        Placement(CHIP, "Dense sums for mean and variance, Lava's InvSqrt algorithm; " + MICROCODED))
    microcoded: ClassVar[bool] = True
    # mean: n-1 adds + 1 division; x - mean: n; var: n mults, n-1 adds, 1 division; + eps: 1;
    # sqrt: 1; xc / sqrt: n divisions; * weight: n mults; + bias: n adds.
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"add": "4*n - 1", "multiply": "2*n", "division": "n + 2",
                                                     "sqrt": "1"}


@dataclass(frozen=True)
class TokenShift(Op):
    """Outputs the previous token's input (zeros before the first token). On the chip a delay
    (an axon delay where tokens are evenly spaced; the Lava graph's gated process is the
    lowering's choice, not the op's arithmetic)."""

    kind: ClassVar[str] = "token_shift"
    state: ClassVar[Tuple[str, ...]] = ("prev",)
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "holds the previous token's LayerNorm output, a host value"),
        Placement(CHIP, "a one-token delay on the chip (balanced path)"))
    host_cost: ClassVar[Optional[Dict[str, str]]] = {}        # hands on the previous value


@dataclass(frozen=True)
class Mix(Op):
    """x * m + prev * (1 - m), m = the time_mix vector. On the chip it is folded into the next
    projection, whose weights become [W diag(m) | W diag(1 - m)] over [x ; prev]."""

    mix: str = ""
    kind: ClassVar[str] = "mix"
    ports: ClassVar[Tuple[str, ...]] = ("x", "prev")
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "mixes two host values (token shift)"),
        Placement(CHIP, "folded into the next projection's weights: W diag(m) on x, W diag(1-m) on the "
                              "delayed x"))
    folds_on_chip: ClassVar[bool] = True
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"add": "2*n", "multiply": "2*n"}   # x*m + prev*(1 - m)


@dataclass(frozen=True)
class Projection(Op):
    """y = W x, W = `weight` (n_out x n_in) divided by `divisor` (the RESCALE quirk)."""

    n_in: int = 0
    weight: str = ""
    divisor: int = 1
    kind: ClassVar[str] = "projection"
    mapping: ClassVar[Dict[str, Placement]] = _both(CHIP, _LINEAR)
    dense: ClassVar[bool] = True


@dataclass(frozen=True)
class Head(Projection):
    """The output projection to logits."""

    kind: ClassVar[str] = "head"


@dataclass(frozen=True)
class Sigmoid(Op):
    kind: ClassVar[str] = "sigmoid"
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "exp and division have no standard-neuron form"),
        Placement(CHIP, "a 33-entry piecewise-linear table; " + MICROCODED))
    microcoded: ClassVar[bool] = True
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"sigmoid": "n"}   # 1 / (1 + exp(-x)), one op per element


@dataclass(frozen=True)
class WKV(Op):
    """RWKV-4 WKV in log-sum-exp form; decay used as -exp(time_decay). On the chip (`--wkv chip`,
    `execute.onchip_ops.wkv_step`) every exponent is a power of two, so its key input arrives
    multiplied by log2(e) (`chip_input_scale`, folded into the key Dense's weights)."""

    time_decay: str = ""
    time_first: str = ""
    kind: ClassVar[str] = "wkv"
    ports: ClassVar[Tuple[str, ...]] = ("k", "v")
    state: ClassVar[Tuple[str, ...]] = ("aa", "bb", "pp")
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "exp, running max and division have no standard-neuron form"),
        Placement(HOST, "exp, running max and division have no standard-neuron form"),
        Placement(CHIP, "a block exponent per channel, 2^x table and Newton reciprocal (24-bit state); "
                  + MICROCODED))
    microcoded: ClassVar[bool] = True
    chip_input_scale: ClassVar[Dict[str, float]] = {"k": 1.0 / math.log(2.0)}
    # ww=u+k; p=max; e1,e2=exp(.-p); (e1*aa+e2*v)/(e1*bb+e2); ww=pp+w; p=max; e1,e2=exp; aa, bb updates.
    # (-exp(time_decay) is computed once per run, not per token.)
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"add": "10*n", "multiply": "6*n", "exp": "4*n",
                                                     "division": "n", "compare": "2*n"}


@dataclass(frozen=True)
class Product(Op):
    kind: ClassVar[str] = "product"
    ports: ClassVar[Tuple[str, ...]] = ("a", "b")
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "a product of two host values (no standard-neuron form)"),
        Placement(CHIP, "Lava's ProdNeuron: (a*b) >> exp"))
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"multiply": "n"}


@dataclass(frozen=True)
class ReLU2(Op):
    kind: ClassVar[str] = "relu2"
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "squares a host value (no standard-neuron form)"),
        Placement(CHIP, "Lava's GradedReluVec, then ProdNeuron squares it"))
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"compare": "n", "multiply": "n"}   # max(x, 0), then r*r


@dataclass(frozen=True)
class LIF(Op):
    """spikingjelly LIFNode: v += (x - v) / tau; spike where v >= theta; hard reset to 0."""

    tau: float = 2.0
    theta: float = 1.0
    population: str = ""     # "att" or "ffn"
    kind: ClassVar[str] = "lif"
    state: ClassVar[Tuple[str, ...]] = ("v",)
    mapping: ClassVar[Dict[str, Placement]] = _both(CHIP, "a LIF population: Loihi's LIF neuron")
    spiking: ClassVar[bool] = True


@dataclass(frozen=True)
class Residual(Op):
    """x + s, then halved when `halve` (after every sixth block under run semantics)."""

    halve: bool = False
    kind: ClassVar[str] = "residual"
    ports: ClassVar[Tuple[str, ...]] = ("x", "s")
    mapping: ClassVar[Dict[str, Placement]] = _mapping(
        Placement(HOST, "x feeds the next LayerNorm, a host op"),
        Placement(CHIP, "Lava's GradedVec sums x and the spikes (24-bit)"))
    host_cost: ClassVar[Optional[Dict[str, str]]] = {"add": "n", "multiply": "n * halve"}   # halved after block 6k


@dataclass(frozen=True)
class Sampler(Op):
    """Next token from the logits (argmax or temperature / top-p); outside the per-token step."""

    kind: ClassVar[str] = "sampler"
    ports: ClassVar[Tuple[str, ...]] = ("logits",)
    mapping: ClassVar[Dict[str, Placement]] = _both(HOST, "softmax and a random draw over the vocabulary")
    per_token: ClassVar[bool] = False
    host_cost: ClassVar[Optional[Dict[str, str]]] = {}   # outside the per-token step (generation only)


OP_TYPES: Dict[str, type] = {cls.kind: cls for cls in
                             (Embedding, LayerNorm, TokenShift, Mix, Projection, Head, Sigmoid, WKV,
                              Product, ReLU2, LIF, Residual, Sampler)}


def placement_table(mapping: str) -> Dict[str, Placement]:
    """kind -> Placement under one mapping, read from the op types."""
    if mapping not in MAPPINGS:
        raise ValueError(f"placement {mapping!r}: expected one of {', '.join(MAPPINGS)}")
    return {kind: cls.mapping[mapping] for kind, cls in OP_TYPES.items()}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    port: str   # the destination's input port


@dataclass
class Graph:
    """Nodes in execution order (a valid topological order for one token) and edges."""

    nodes: Dict[str, Op]
    edges: List[Edge]
    meta: dict = dataclasses.field(default_factory=dict)

    def inputs(self, name: str) -> Dict[str, str]:
        """port -> source node of `name`."""
        return {e.port: e.src for e in self.edges if e.dst == name}

    def consumers(self, name: str) -> List[Edge]:
        return [e for e in self.edges if e.src == name]

    def crossings(self) -> List[Edge]:
        """Edges whose ends are placed differently: every host<->chip transfer per token."""
        return [e for e in self.edges
                if self.nodes[e.src].placement.where != self.nodes[e.dst].placement.where]

    def by_kind(self, kind: str) -> List[Op]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def of_type(self, cls: type) -> List[Op]:
        return [n for n in self.nodes.values() if isinstance(n, cls)]

    def placement_counts(self) -> Dict[str, int]:
        out = {CHIP: 0, HOST: 0}
        for n in self.nodes.values():
            out[n.placement.where] += 1
        return out

    # -- serialisation ------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "ir_version": IR_VERSION,
            "meta": self.meta,
            "nodes": [{"name": n.name, "op": n.kind, "dim": n.dim, "layer": n.layer,
                       "placement": {"where": n.placement.where, "reason": n.placement.reason},
                       "params": n.params()} for n in self.nodes.values()],
            "edges": [[e.src, e.dst, e.port] for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Graph":
        if d.get("ir_version") != IR_VERSION:
            raise ValueError(f"IR version {d.get('ir_version')!r} is not {IR_VERSION}")
        nodes = {}
        for nd in d["nodes"]:
            op_cls = OP_TYPES.get(nd["op"])
            if op_cls is None:
                raise ValueError(f"unknown IR op {nd['op']!r} (node {nd['name']!r})")
            nodes[nd["name"]] = op_cls(name=nd["name"], dim=nd["dim"], layer=nd["layer"],
                                       placement=Placement(**nd["placement"]), **nd["params"])
        return cls(nodes, [Edge(*e) for e in d["edges"]], dict(d.get("meta", {})))


class _Builder:
    def __init__(self, mapping: str):
        self.nodes: Dict[str, Op] = {}
        self.edges: List[Edge] = []
        self.mapping = mapping

    def add(self, cls, name, dim, layer=None, inputs=(), placement: Optional[Placement] = None, **params) -> str:
        if name in self.nodes:
            raise ValueError(f"duplicate IR node {name!r}")
        place = placement or cls.mapping[self.mapping]
        self.nodes[name] = cls(name=name, dim=dim, layer=layer, placement=place, **params)
        for port, src in zip(cls.ports, inputs):
            self.edges.append(Edge(src, name, port))
        return name


def build_graph(config, semantics, placement: str = HOST) -> Graph:
    """The IR of a SpikeGPT model (`ModelConfig`) under `Semantics` (run or train).

    `placement` "host" is the graded mapping (DESIGN.md); "chip" moves LayerNorm,
    the token shifts and mixes, both sigmoids, relu², the products and the residual
    onto the chip (ONCHIP.md); "chip-wkv" (`--placement chip --wkv chip`) moves the WKV too, so
    that only the token enters and only the logits leave. Execution order is the order of SPIKEGPT.md's
    equations. The sampler is the last node; it is outside the per-token step
    (generation drives it).
    """
    if placement not in MAPPINGS:
        raise ValueError(f"placement {placement!r}: expected one of {', '.join(MAPPINGS)}")
    C, V, F = config.n_embd, config.vocab_size, config.ffn_dim
    b = _Builder(placement)
    x = b.add(Embedding, "emb", C, vocab=V, binary=bool(semantics.binary_embedding), inputs=("token",))
    b.edges.clear()  # the token is the graph's input, not a node
    x = b.add(LayerNorm, "ln0", C, inputs=(x,), weight="blocks.0.ln0.weight", bias="blocks.0.ln0.bias")
    for i in range(config.n_layer):
        p = f"blocks.{i}."
        div = semantics.weight_divisor(i)
        # time mix (SRWKV)
        h = b.add(LayerNorm, p + "ln1", C, i, (x,), weight=p + "ln1.weight", bias=p + "ln1.bias")
        prev = b.add(TokenShift, p + "att.shift", C, i, (h,))
        mixed = {m: b.add(Mix, p + f"att.mix_{m}", C, i, (h, prev), mix=p + f"att.time_mix_{m}") for m in "kvr"}
        k = b.add(Projection, p + "att.key", C, i, (mixed["k"],), n_in=C, weight=p + "att.key.weight")
        v = b.add(Projection, p + "att.value", C, i, (mixed["v"],), n_in=C, weight=p + "att.value.weight")
        r = b.add(Projection, p + "att.receptance", C, i, (mixed["r"],), n_in=C,
                  weight=p + "att.receptance.weight")
        r = b.add(Sigmoid, p + "att.sigmoid", C, i, (r,))
        wkv = b.add(WKV, p + "att.wkv", C, i, (k, v), time_decay=p + "att.time_decay",
                    time_first=p + "att.time_first")
        y = b.add(Product, p + "att.rwkv", C, i, (r, wkv))
        o = b.add(Projection, p + "att.output", C, i, (y,), n_in=C, weight=p + "att.output.weight", divisor=div)
        s = b.add(LIF, p + "att.lif", C, i, (o,), population="att")
        x = b.add(Residual, p + "att.residual", C, i, (x, s))
        # channel mix (SRFFN)
        h = b.add(LayerNorm, p + "ln2", C, i, (x,), weight=p + "ln2.weight", bias=p + "ln2.bias")
        prev = b.add(TokenShift, p + "ffn.shift", C, i, (h,))
        mk = b.add(Mix, p + "ffn.mix_k", C, i, (h, prev), mix=p + "ffn.time_mix_k")
        mr = b.add(Mix, p + "ffn.mix_r", C, i, (h, prev), mix=p + "ffn.time_mix_r")
        k = b.add(Projection, p + "ffn.key", F, i, (mk,), n_in=C, weight=p + "ffn.key.weight")
        kk = b.add(ReLU2, p + "ffn.relu2", F, i, (k,))
        v = b.add(Projection, p + "ffn.value", C, i, (kk,), n_in=F, weight=p + "ffn.value.weight", divisor=div)
        r = b.add(Projection, p + "ffn.receptance", C, i, (mr,), n_in=C, weight=p + "ffn.receptance.weight")
        r = b.add(Sigmoid, p + "ffn.sigmoid", C, i, (r,))
        g = b.add(Product, p + "ffn.gate", C, i, (r, v))
        s = b.add(LIF, p + "ffn.lif", C, i, (g,), population="ffn")
        x = b.add(Residual, p + "ffn.residual", C, i, (x, s), halve=semantics.halves_after(i))
    x = b.add(LayerNorm, "ln_out", C, inputs=(x,), weight="ln_out.weight", bias="ln_out.bias")
    logits = b.add(Head, "head", V, inputs=(x,), n_in=C, weight="head.weight")
    b.add(Sampler, "sampler", 1, inputs=(logits,))
    meta = {"config": config.to_dict(), "semantics": semantics.to_dict(), "placement": placement}
    return Graph(b.nodes, b.edges, meta)


def host_round_trips(graph: Graph) -> int:
    """Host->chip entries on the longest chain of one token: each waits for a host<->chip round
    trip (milliseconds on a board; DESIGN.md "Tokens and time steps")."""
    best: Dict[str, int] = {}
    for n in graph.nodes.values():
        best[n.name] = max((best[s] + int(graph.nodes[s].placement.where == HOST and n.placement.where == CHIP)
                            for s in graph.inputs(n.name).values()), default=0)
    return max(best.values(), default=0)


def with_placement(graph: Graph, placement: str) -> Graph:
    """The same ops and edges under another mapping (each op's `mapping[placement]`)."""
    nodes = {k: dataclasses.replace(n, placement=type(n).mapping[placement]) for k, n in graph.nodes.items()}
    return Graph(nodes, list(graph.edges), {**graph.meta, "placement": placement})


def placement_of(graph: Graph) -> str:
    """"host" or "chip": the mapping the graph was built with (artifacts before it: "host")."""
    return graph.meta.get("placement", HOST)


def carrier(graph: Graph, name: str) -> str:
    """The chip node whose output carries `name`'s: a mix folded on the chip reads its token shift's
    `[x ; prev]`, so that token shift carries it; any other node carries its own. Chip nodes with one carrier
    read the same values."""
    return graph.inputs(name)["prev"] if graph.nodes[name].folds_on_chip else name


def lif_nodes(graph: Graph) -> List[LIF]:
    """The spiking populations in order: att and ffn of block 0, then block 1, ..."""
    return [n for n in graph.nodes.values() if n.spiking]


def logits_node(graph: Graph) -> Op:
    """The node whose output is the logits: the sampler's input."""
    sampler = next(n for n in graph.nodes.values() if not n.per_token)
    return graph.nodes[graph.inputs(sampler.name)["logits"]]


def describe(graph: Graph) -> List[str]:
    """A printable listing: one line per node (op, width, inputs, placement, reason), then totals."""
    lines = [f"{'node':<26} {'op':<11} {'width':>6}  {'inputs':<40} where  why (host only)"]
    for n in graph.nodes.values():
        ins = ", ".join(f"{p}={s}" for p, s in graph.inputs(n.name).items()) or ("token" if n.kind == "embedding" else "")
        why = n.placement.reason if n.placement.where == HOST else ""
        lines.append(f"{n.name:<26} {n.kind:<11} {n.dim:>6}  {ins:<40} {n.placement.where:<5}  {why}")
    counts = graph.placement_counts()
    cross = graph.crossings()
    to_chip = sum(1 for e in cross if graph.nodes[e.dst].placement.where == CHIP)
    lines.append(f"{len(graph.nodes)} ops ({counts[CHIP]} chip, {counts[HOST]} host), {len(graph.edges)} edges; "
                 f"{len(cross)} host<->chip crossings per token ({to_chip} host->chip, {len(cross) - to_chip} chip->host), "
                 f"{host_round_trips(graph)} host round trips on a token's critical path")
    return lines

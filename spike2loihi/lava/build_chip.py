"""IR + artifact of `--placement chip` -> a Lava process graph (the host placement is `build.py`).

Chip side, one process (or two) per IR chip node:

* LayerNorm: `FxpLayerNorm`; token shift + the mixes: `TokenShiftCat` (gated), whose
  [x ; prev] output feeds the projections with the mixes folded into their weights;
* projections: Lava `Dense` (`DelayDense` where its output must wait for a slower path);
* sigmoid: `FxpSigmoid`; products: Lava `ProdNeuron` (vth 0); relu²: Lava
  `GradedReluVec` then `ProdNeuron`;
* LIF: `TokenLIF` (gated, as in the host placement);
* residual: Lava `GradedVec` (vth 0) summing x through an identity `DelayDense`
  (weights 2 I, weight_exp -1) that waits as long as the block's spikes take, and the
  spikes through a `Dense` of weight 2^frac.

Host side: the input/output block (embedding, head readout, sampler; it decides which
step a token enters, and sends every gate and that entry flag) and one block per layer
(WKV, and the spike record). They call `spike2loihi.execute.model_emulator` (host_ops) and nothing else.

Time: a Dense adds one step, a LIF's spikes one more on their way to the residual, and
everything else none (`spike2loihi.convert.schedule.edge_latency`). A token entering at step t
is at node n at step t + offset(n). Where the inputs of a node arrive at different
steps, the early one waits in a `DelayDense`. Stateful chip processes (token shifts,
LIFs) are gated by the entry flag of their token, so between generated tokens they hold
their state; every other chip process is stateless, so the values of the steps without a
token never meet a token's values.
"""
from __future__ import annotations

import collections
from typing import Callable, Dict, List, Optional

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.lava.build import (IO_PLAN, BlockRunner, HostPlan, LavaGraph, PortSpec, Records, _safe,
                                    sample_and_record)
from spike2loihi.convert.schedule import edge_latency, schedule

RUNNER = "spike2loihi.lava.build_chip:ChipHostRunner"


def _block(n: ir.Op) -> str:
    return IO_PLAN if n.layer is None else f"block{n.layer}"


def _gated(g: ir.Graph) -> List[ir.Op]:
    return [n for n in g.nodes.values() if n.placement.where == ir.CHIP and isinstance(n, (ir.LIF, ir.TokenShift))]


def chip_host_plans(g: ir.Graph) -> List[HostPlan]:
    """The IO block and one block per layer, with their ports."""
    plans: Dict[str, List[str]] = collections.OrderedDict({IO_PLAN: []})
    for n in g.nodes.values():
        if n.placement.where == ir.HOST:
            plans.setdefault(_block(n), []).append(n.name)
    ins = {p: [] for p in plans}
    outs = {p: [] for p in plans}
    for name in plans:
        if name != IO_PLAN:
            outs[IO_PLAN].append(PortSpec(f"entered_{name}", 1, "float", "entered", name))
            ins[name].append(PortSpec(f"entered_{name}", 1, "float", "entered", IO_PLAN))
    for n in _gated(g):
        outs[IO_PLAN].append(PortSpec(f"gate_{_safe(n.name)}", 1, "int", "gate", n.name, ((n.name, 0, 1),)))
    for e in g.edges:
        s, d = g.nodes[e.src], g.nodes[e.dst]
        if s.placement.where == ir.HOST and d.placement.where == ir.CHIP:
            outs[_block(s)].append(PortSpec(f"to_{_safe(d.name)}", d.dim, "int", "to_chip", d.name,
                                            ((d.name, 0, d.dim),)))
        elif s.placement.where == ir.CHIP and d.placement.where == ir.HOST and not isinstance(d, ir.Sampler):
            ins[_block(d)].append(PortSpec(f"from_{_safe(s.name)}", s.dim, "int", "from_chip", s.name,
                                           ((s.name, 0, s.dim),)))
    head = g.of_type(ir.Head)[0]
    ins[IO_PLAN].append(PortSpec("from_head", head.dim, "int", "from_chip", head.name, ((head.name, 0, head.dim),)))
    for n in ir.lif_nodes(g):
        ins[f"block{n.layer}"].append(PortSpec(f"spikes_{_safe(n.name)}", n.dim, "int", "spikes", n.name,
                                               ((n.name, 0, n.dim),)))
    return [HostPlan(p, tuple(nodes), tuple(ins[p]), tuple(outs[p])) for p, nodes in plans.items()]


# ---------------------------------------------------------------------------
# Host blocks
# ---------------------------------------------------------------------------
class ChipHostRunner(BlockRunner):
    """One host block's work per step under `--placement chip`; validity comes from entry flags."""

    def __init__(self, plan: HostPlan, model: ConvertedModel, records: str, run_args: dict):
        super().__init__(plan, model, records, run_args, chip_host_plans(model.graph))
        self.g = self.graph
        self.port = {p.name: p for p in plan.in_ports + plan.out_ports}
        self.entries: List[bool] = []
        self.io = plan.name == IO_PLAN
        g = self.graph      # looked up once, not per step
        self.emb, self.head, self.sampler = (g.of_type(t)[0] for t in (ir.Embedding, ir.Head, ir.Sampler))
        self.inputs = {n: g.inputs(n) for n in plan.nodes}
        self.sends = {n: [(self.port[f"to_{_safe(e.dst)}"], g.nodes[e.dst]) for e in g.consumers(n)]
                      for n in plan.nodes}

    def valid(self, s: int, node: str) -> bool:
        t = s - self.off[node]
        return 0 <= t < len(self.entries) and self.entries[t]

    def _step(self, s: int, pm) -> None:
        (self._io_step if self.io else self._block_step)(s, pm)

    def _io_step(self, s: int, pm) -> None:
        if s < len(self.prompt):
            tok, entered = self.prompt[s], True
        elif self.next_token is not None:
            (tok, entered), self.next_token = (self.next_token, True), None
        else:
            tok, entered = 0, False
        self.entries.append(entered)
        for p in self.plan.out_ports:
            if p.kind == "entered":
                self._send(pm, p, np.array([1.0 if entered else 0.0], np.float32))
            elif p.kind == "gate":
                self._send(pm, p, np.array([int(self.valid(s, p.node))], np.int32))
        for p in self.plan.out_ports:
            if p.kind == "to_chip":
                if entered:
                    x = self.ex.run_host_node(self.params, self.emb, {"token": np.array([tok])}, None)
                    q = self.ex.encode_input(self.params, self.g.nodes[p.node], x).q[0]
                else:
                    q = np.zeros(p.width, np.int64)
                self._send(pm, p, q.astype(np.int32))
        acc = np.asarray(self._recv(pm, self.port["from_head"]), np.int64)[None, :]
        if self.valid(s, self.sampler.name):
            logits = self.ex.decode_output(self.params, self.head, self._payload(self.head, acc))
            sample_and_record(self, self.row, logits)

    def _payload(self, node: ir.Op, acc: np.ndarray):
        step = self.model.nodes[node.name]["in_step"]
        return self.ex.Payload(acc, np.full((1, 1), step, np.float32))

    def _block_step(self, s: int, pm) -> None:
        entered = self._recv(pm, self.port[f"entered_{self.plan.name}"])
        self.entries.append(bool(entered[0] > 0.5))
        got = {}
        for p in self.plan.in_ports:
            if p.kind == "from_chip":
                acc = np.asarray(self._recv(pm, p), np.int64)[None, :]
                got[p.node] = self.ex.decode_output(self.params, self.g.nodes[p.node],
                                                    self._payload(self.g.nodes[p.node], acc))
        for name in self.plan.nodes:   # WKV
            n = self.g.nodes[name]
            ins = {port: got[src] for port, src in self.inputs[name].items()}
            ok = self.valid(s, name)
            out = self.ex.run_host_node(self.params, n, ins, self.state.get(name)) if ok else None
            for port, dst in self.sends[name]:
                q = self.ex.encode_input(self.params, dst, out).q[0] if ok else np.zeros(dst.dim, np.int64)
                self._send(pm, port, q.astype(np.int32))
        for p in self.plan.in_ports:
            if p.kind == "spikes":
                spk = self._recv(pm, p)
                if self.valid(s, p.node):
                    self._record_spikes(p.node, spk)


# ---------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------
def _lags(g: ir.Graph, off: Dict[str, int]) -> Dict[tuple, int]:
    """(src, dst, port) -> steps the value must wait on that chip->chip edge."""
    out = {}
    for e in g.edges:
        s, d = g.nodes[e.src], g.nodes[e.dst]
        if s.placement.where == ir.CHIP and d.placement.where == ir.CHIP:
            lag = off[d.name] - off[s.name] - edge_latency(s, d)
            if lag:
                out[(e.src, e.dst, e.port)] = lag
    return out


def _absorber(g: ir.Graph, src: str) -> Optional[str]:
    """The projection upstream of `src` (through single-input, single-consumer ops) that can hold a lag."""
    n = g.nodes[src]
    while True:
        if len(g.consumers(n.name)) != 1:
            return None
        if isinstance(n, ir.Projection):
            return n.name
        ins = list(g.inputs(n.name).values())
        if len(ins) != 1 or g.nodes[ins[0]].placement.where != ir.CHIP:
            return None
        n = g.nodes[ins[0]]


def spike_weight(name: str, weight: int) -> tuple:
    """(Dense weight, weight_exp) for a spike entering the residual with weight 2^f: 2^m << (f - m),
    m = min(7, f) (MIXED 8-bit weights are even and at most 254)."""
    f = int(weight).bit_length() - 1
    if weight != 1 << f or not 1 <= f <= 14:
        raise ValueError(f"{name}: spike weight {weight} is not 2^1 .. 2^14 (Dense weight 2^7 << weight_exp 7)")
    m = min(7, f)
    return 1 << m, f - m


def build_chip(model: ConvertedModel, records: Records, run_args: dict,
               connect: Optional[Callable[[object, object], None]] = None) -> LavaGraph:
    """The Lava processes and connections of a `--placement chip` model (nothing runs yet)."""
    link = connect or (lambda src, dst: src.connect(dst))
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.graded.process import GradedReluVec, GradedVec
    from lava.proc.prodneuron.process import ProdNeuron
    from lava.utils.weightutils import SignMode as LavaSignMode

    from spike2loihi.lava.onchip import FxpLayerNorm, FxpSigmoid, TokenShiftCat
    from spike2loihi.lava.processes import PyTokenLifModel, TokenLIF, host_block_classes

    if run_args.get("probes"):
        raise ValueError("activity counts from Lava's simulator cover --placement host models only so far")
    g, q = model.graph, model.nodes
    sched = schedule(g)
    off = sched.offsets
    lags = _lags(g, off)
    absorbed: Dict[str, int] = collections.Counter()
    for (src, dst, port), lag in list(lags.items()):
        a = _absorber(g, src)
        if a is not None:
            absorbed[a] += lag
            del lags[(src, dst, port)]
    plans = chip_host_plans(g)
    procs: Dict[str, object] = {}
    model_map: Dict[object, type] = {}
    for plan in plans:
        proc_cls, model_cls = host_block_classes(plan)
        p = proc_cls(plan=plan, model=model, records=str(records.folder), run_args=run_args, runner=RUNNER)
        procs[plan.name] = p
        model_map[p] = model_cls
    ins: Dict[tuple, object] = {}     # (node, port) -> Lava in-port
    outs: Dict[str, object] = {}      # node -> Lava out-port
    extra: Dict[str, object] = {}     # helper processes (residual paths, relu before the square)
    for n in g.nodes.values():
        if n.placement.where != ir.CHIP or isinstance(n, ir.Mix):
            continue
        qn = q[n.name]
        if isinstance(n, ir.LayerNorm):
            p = FxpLayerNorm((n.dim,), {k: v for k, v in qn.items() if isinstance(v, int)},
                             model.tensors[qn["gamma_q"]], model.tensors[qn["beta_q"]], name=n.name)
            ins[(n.name, "x")], outs[n.name] = p.a_in, p.s_out
        elif isinstance(n, ir.TokenShift):
            p = TokenShiftCat((n.dim,), name=n.name)
            ins[(n.name, "x")], outs[n.name] = p.a_in, p.s_out
            ins[(n.name, "gate")] = p.gate
        elif isinstance(n, ir.Projection):
            w = (model.tensors[qn["mantissa"]].astype(np.int64) << int(qn["truncate_bits"])).astype(np.int32)
            kw = dict(weight_exp=int(qn["weight_exp"]), num_weight_bits=int(qn["num_weight_bits"]),
                      sign_mode=LavaSignMode[qn["sign_mode"]], num_message_bits=int(qn["input"]["bits"]),
                      name=n.name)
            p = DelayDense(weights=w, delays=int(absorbed[n.name]), **kw) if absorbed[n.name] else \
                Dense(weights=w, **kw)
            ins[(n.name, "x")], outs[n.name] = p.s_in, p.a_out
        elif isinstance(n, ir.Sigmoid):
            p = FxpSigmoid(n.dim, 0, n.dim, int(qn["in_frac"]), name=n.name)
            ins[(n.name, "x")], outs[n.name] = p.a_in, p.s_out
        elif isinstance(n, ir.Product):
            p = ProdNeuron(shape=(n.dim,), vth=0, exp=int(qn["exp"]))
            ins[(n.name, "a")], ins[(n.name, "b")], outs[n.name] = p.a_in1, p.a_in2, p.s_out
        elif isinstance(n, ir.ReLU2):
            relu = GradedReluVec(shape=(n.dim,), vth=0)
            p = ProdNeuron(shape=(n.dim,), vth=0, exp=int(qn["exp"]))
            link(relu.s_out, p.a_in1)
            link(relu.s_out, p.a_in2)
            extra[n.name + ".relu"] = relu
            ins[(n.name, "x")], outs[n.name] = relu.a_in, p.s_out
        elif isinstance(n, ir.LIF):
            p = TokenLIF(shape=(n.dim,), du=int(qn["du"]), dv=int(qn["dv"]), vth=int(qn["vth"]),
                         bias_mant=int(qn["bias_mant"]), bias_exp=int(qn["bias_exp"]), name=n.name)
            model_map[p] = PyTokenLifModel
            ins[(n.name, "x")], outs[n.name] = p.a_in, p.s_out
            ins[(n.name, "gate")] = p.gate
        elif isinstance(n, ir.Residual):
            p = GradedVec(shape=(n.dim,), vth=0)
            w, wexp = spike_weight(n.name, int(qn["spike_weight"]))
            eye = np.eye(n.dim, dtype=np.int32)
            spk = Dense(weights=w * eye, weight_exp=wexp, num_weight_bits=8,
                        sign_mode=LavaSignMode.MIXED, num_message_bits=0)
            x_src = g.inputs(n.name)["x"]
            lag = off[n.name] - off[x_src] - edge_latency(g.nodes[x_src], n)
            if lag < 1:
                raise ValueError(f"{n.name}: x arrives {lag} steps early; the x path needs at least one step")
            xd = DelayDense(weights=2 * eye, delays=lag - 1, weight_exp=-1, num_weight_bits=8,
                            sign_mode=LavaSignMode.MIXED, num_message_bits=24)
            lags.pop((x_src, n.name, "x"), None)
            link(spk.a_out, p.a_in)
            link(xd.a_out, p.a_in)
            extra[n.name + ".spikes"], extra[n.name + ".x"] = spk, xd
            ins[(n.name, "s")], ins[(n.name, "x")], outs[n.name] = spk.s_in, xd.s_in, p.s_out
        else:
            raise ValueError(f"no Lava process for chip node {n.name} ({n.kind})")
        procs[n.name] = p
    if lags:
        raise ValueError(f"unbalanced chip paths the builder cannot delay: {sorted(lags)}")
    # chip -> chip edges (a mix reads its token shift's [x ; prev])
    for e in g.edges:
        s, d = g.nodes[e.src], g.nodes[e.dst]
        if s.placement.where != ir.CHIP or d.placement.where != ir.CHIP or isinstance(d, ir.Mix):
            continue
        if isinstance(s, ir.Mix):
            s = g.nodes[g.inputs(s.name)["prev"]]
        link(outs[s.name], ins[(e.dst, e.port)])
    # host <-> chip
    for plan in plans:
        hp = procs[plan.name]
        for p in plan.out_ports:
            if p.kind == "to_chip":   # the chip node's input port that the host feeds
                port = next(e.port for e in g.edges if e.dst == p.node and g.nodes[e.src].placement.where == ir.HOST)
                link(getattr(hp, p.name), ins[(p.node, port)])
            elif p.kind == "gate":
                link(getattr(hp, p.name), ins[(p.node, "gate")])
            elif p.kind == "entered":
                link(getattr(hp, p.name), getattr(procs[p.node], p.name))
        for p in plan.in_ports:
            if p.kind in ("from_chip", "spikes"):
                link(outs[p.node], getattr(hp, p.name))
    procs.update(extra)
    return LavaGraph(sched, plans, procs, model_map, records)

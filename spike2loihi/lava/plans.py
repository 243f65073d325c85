"""Host plans: which host IR nodes each Lava host block runs, and its ports (Lava-free data).

A host block is one Lava process on the host: the input/output stage (`io`: embedding,
ln0/ln_out where they are host ops, the head's readout, the sampler) or one block of the
model. Its ports are `PortSpec`s; their `kind` says what crosses:

* `to_chip`: a payload into a chip process (`port` names the IR input port it feeds);
* `gate`: the one-bit token gate of a gated chip process (LIF, token shift);
* `from_chip`: a chip process's output (Dense accumulations, or a LIF's spikes under the host
  placement); `spikes`: a LIF's spikes recorded by its block (`--placement chip`);
* `probe`: a chip output that stays on the chip, sent to the host only to be counted;
* `host_out` / `host_in`: a host value (plus a valid flag) between two blocks;
* `entered`: the IO block's flag that a token entered at this step (`--placement chip`).

`host_plans` lays out the host placement, `chip_host_plans` the `--placement chip` one.
"""
from __future__ import annotations

import collections
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from spike2loihi.convert import ir

IO_PLAN = "io"


def _safe(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", name)


@dataclass(frozen=True)
class PortSpec:
    name: str
    width: int
    dtype: str          # "int" (payloads, spikes, gates) or "float" (host values + valid flag)
    kind: str           # "to_chip", "gate", "from_chip", "host_out", "host_in"
    node: str           # the chip process (a chip node, or a group of side-by-side Dense), or host source node
    members: Tuple[Tuple[str, int, int], ...] = ()   # chip ports: (IR chip node, start, stop) in the vector
    port: str = "x"     # to_chip: the IR input port of the chip node it feeds


@dataclass(frozen=True)
class HostPlan:
    name: str
    nodes: Tuple[str, ...]
    in_ports: Tuple[PortSpec, ...]
    out_ports: Tuple[PortSpec, ...]

    @property
    def safe_name(self) -> str:
        return _safe(self.name)


def _plan_of(node: ir.Op) -> str:
    return IO_PLAN if node.layer is None else f"block{node.layer}"


def encoder_of(graph: ir.Graph, chip: str) -> str:
    """The host node whose value a chip node's input carries (through chip-to-chip edges)."""
    src = next(iter(graph.inputs(chip).values()))
    while graph.nodes[src].placement.where == ir.CHIP:
        src = next(iter(graph.inputs(src).values()))
    return src


def chip_groups(model) -> Dict[str, List[str]]:
    """Chip process name -> its IR chip nodes: Dense layers the conversion grouped (same block,
    same step, shared weight_exp and input bits) become one block-diagonal Sparse process; a mix
    folded into its projections has no process."""
    out: Dict[str, List[str]] = collections.OrderedDict()
    for n in model.graph.nodes.values():
        if n.placement.where == ir.CHIP and not n.folds_on_chip:
            out.setdefault(getattr(model.nodes[n.name], "group", None) or n.name, []).append(n.name)
    return out


def host_plans(graph: ir.Graph, groups: Optional[Dict[str, List[str]]] = None,
               probes: bool = False) -> List[HostPlan]:
    """The host blocks and their ports. With `probes`, the output of every chip process that
    feeds only chip processes (Wo -> LIF) is also sent to its encoder's block, which counts it
    (the activity report's counts from the simulator)."""
    nodes = graph.nodes
    if groups is None:
        groups = {n.name: [n.name] for n in nodes.values() if n.placement.where == ir.CHIP}
    plans: Dict[str, List[str]] = collections.OrderedDict()
    plans[IO_PLAN] = []
    for n in nodes.values():
        if n.placement.where == ir.HOST:
            plans.setdefault(_plan_of(n), []).append(n.name)
    owner = {name: g for g, names in plans.items() for name in names}
    ins: Dict[str, Dict[str, PortSpec]] = {g: {} for g in plans}
    outs: Dict[str, Dict[str, PortSpec]] = {g: {} for g in plans}

    def slices(members, width_of):
        out, start = [], 0
        for m in members:
            out.append((m, start, start + width_of(m)))
            start += width_of(m)
        return tuple(out), start

    for proc, members in groups.items():
        enc = {owner[encoder_of(graph, m)] for m in members}
        if len(enc) != 1:
            raise ValueError(f"{proc}: its members are encoded in different host blocks")
        enc = enc.pop()
        first = nodes[members[0]]
        src = next(iter(graph.inputs(first.name).values()))
        if nodes[src].placement.where == ir.HOST:
            mem, width = slices(members, lambda m: nodes[next(iter(graph.inputs(m).values()))].dim)
            outs[enc][f"to_{_safe(proc)}"] = PortSpec(f"to_{_safe(proc)}", width, "int", "to_chip", proc, mem)
        if first.spiking:
            outs[enc][f"gate_{_safe(proc)}"] = PortSpec(f"gate_{_safe(proc)}", 1, "int", "gate", proc,
                                                      ((first.name, 0, 1),))
        consumers = {owner[e.dst] for m in members for e in graph.consumers(m)
                     if nodes[e.dst].placement.where == ir.HOST}
        if probes and not consumers and first.dense:
            mem, width = slices(members, lambda m: nodes[m].dim)
            ins[enc][f"probe_{_safe(proc)}"] = PortSpec(f"probe_{_safe(proc)}", width, "int", "probe", proc, mem)
        for g in consumers:
            if g != enc:
                raise ValueError(f"{proc}: its encoder and its consumers are in different host blocks")
            mem, width = slices(members, lambda m: nodes[m].dim)
            ins[g][f"from_{_safe(proc)}"] = PortSpec(f"from_{_safe(proc)}", width, "int", "from_chip", proc, mem)
    for e in graph.edges:
        s, d = nodes[e.src], nodes[e.dst]
        if s.placement.where == ir.HOST and d.placement.where == ir.HOST and owner[e.src] != owner[e.dst]:
            p = f"h_{_safe(e.src)}"
            outs[owner[e.src]][p] = PortSpec(p, s.dim + 1, "float", "host_out", e.src)
            ins[owner[e.dst]][p] = PortSpec(p, s.dim + 1, "float", "host_in", e.src)
    return [HostPlan(g, tuple(names), tuple(ins[g].values()), tuple(outs[g].values()))
            for g, names in plans.items()]


def _block(n: ir.Op) -> str:
    return IO_PLAN if n.layer is None else f"block{n.layer}"


def _gated(g: ir.Graph) -> List[ir.Op]:
    """The stateful chip ops: gated by the entry flag of their token, so that they hold their state
    between generated tokens."""
    return [n for n in g.nodes.values() if n.placement.where == ir.CHIP and n.state]


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
                                            ((d.name, 0, d.dim),), port=e.port))
        elif s.placement.where == ir.CHIP and d.placement.where == ir.HOST and d.per_token:
            ins[_block(d)].append(PortSpec(f"from_{_safe(s.name)}", s.dim, "int", "from_chip", s.name,
                                           ((s.name, 0, s.dim),)))
    head = ir.logits_node(g)
    ins[IO_PLAN].append(PortSpec("from_head", head.dim, "int", "from_chip", head.name, ((head.name, 0, head.dim),)))
    for n in ir.lif_nodes(g):   # recorded by their block's host process, or the IO block's where it has none
        rec = _block(n) if _block(n) in plans else IO_PLAN
        ins[rec].append(PortSpec(f"spikes_{_safe(n.name)}", n.dim, "int", "spikes", n.name, ((n.name, 0, n.dim),)))
    return [HostPlan(p, tuple(nodes), tuple(ins[p]), tuple(outs[p])) for p, nodes in plans.items()]



"""Chip nodes as neurocore populations: what the resource planner maps, one registration per op type.

The `plan.chip` stage: each chip op type's handler turns a node (with its quantization record,
or convert's defaults when planning shapes) into a frozen `ChipNode`: its neurons, the synapses
ending on it, its payload widths and the op's facts. `spike2loihi.hardware.planner` groups them
into cores; `spike2loihi.hardware.activity` counts their events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from spike2loihi import registry
from spike2loihi.convert import ir


@dataclass(frozen=True)
class ChipNode:
    """What the planner needs of one chip node (from the IR and the quantization)."""

    name: str
    kind: str                   # the IR op kind
    layer: Optional[int]
    n_out: int
    n_in: int                   # inputs per output (Dense); 1 for a LIF
    weight_bits: Optional[int]  # Dense only
    input_bits: Optional[int]   # payload bits of a host input, None if fed on chip
    input_from: str             # host | chip
    output_to: str              # host | chip
    output_bits: Optional[int]  # payload bits of a host-bound Dense output (None: spikes or on chip)
    du: Optional[int] = None
    dv: Optional[int] = None
    vth: Optional[int] = None
    group: Optional[str] = None  # side-by-side Dense layers run as one block-diagonal Sparse process
    neurons: Optional[int] = None  # on-chip ops (--placement chip): neurons of the population (else n_out)
    own_synapses: int = 0          # synapses ending on it that no Dense node accounts for
    own_fan_in: int = 0            # input axons per neuron from those synapses
    internal_synapses: int = 0     # on-chip ops: synapses inside the population (in own_synapses)
    dense: bool = False            # the op's facts (spike2loihi.convert.ir.Op)
    spiking: bool = False
    microcoded: bool = False


@dataclass(frozen=True)
class PlanDefaults:
    """Quantization as `convert` would choose it by default, for planning shapes without converting."""

    weight_bits: int = 8
    act_bits: int = 8
    lif_input_bits: int = 16
    output_bits: int = 24
    groups: Tuple[Tuple[str, str], ...] = ()   # node -> side-by-side group (as `convert` forms them)

    def group_of(self, name: str) -> Optional[str]:
        return dict(self.groups).get(name)


#: The chip node of the planner per op type: (graph, node, its record or None, defaults) -> ChipNode.
PLAN = registry.stage("plan.chip", lambda t, mapping, where: where == ir.CHIP and not t.folds_on_chip,
                      "the neurocore population of a chip op (spike2loihi.hardware.planner)")


# ---------------------------------------------------------------------------
# Chip nodes from a graph (+ quantization)
# ---------------------------------------------------------------------------
def _ends(graph: ir.Graph, n: ir.Op):
    srcs = [graph.nodes[s] for s in graph.inputs(n.name).values()]
    dsts = [graph.nodes[e.dst] for e in graph.consumers(n.name)]
    input_from = ir.HOST if any(s.placement.where == ir.HOST for s in srcs) else ir.CHIP
    output_to = ir.HOST if any(d.placement.where == ir.HOST for d in dsts) else ir.CHIP
    return srcs, input_from, output_to


def _input_bits(rec, input_from: str, default: Optional[int]) -> Optional[int]:
    if input_from != ir.HOST:
        return None
    if rec is None:
        return default
    return rec.input.bits if getattr(rec, "input", None) is not None else None


@PLAN.register(ir.Projection)
def _plan_dense(graph, n, rec, d: PlanDefaults) -> ChipNode:
    _, input_from, output_to = _ends(graph, n)
    factor = rec.fan_in_factor if rec is not None else 1   # [x ; prev] under --placement chip
    wbits = rec.num_weight_bits if rec is not None else d.weight_bits
    to_lif = any(graph.nodes[e.dst].spiking for e in graph.consumers(n.name))
    out_bits = rec.output_bits if rec is not None else (None if to_lif else d.output_bits)
    return ChipNode(n.name, n.kind, n.layer, n.dim, n.n_in * factor, wbits,
                    _input_bits(rec, input_from, d.act_bits), input_from, output_to,
                    out_bits if output_to == ir.HOST and out_bits else None,
                    group=(rec.group if rec is not None else d.group_of(n.name)), dense=True)


@PLAN.register(ir.LIF)
def _plan_lif(graph, n, rec, d: PlanDefaults) -> ChipNode:
    srcs, input_from, output_to = _ends(graph, n)
    own = sum(n.dim for s in srcs if not (s.dense or s.placement.where == ir.HOST))
    du, dv, vth = (rec.du, rec.dv, rec.vth) if rec is not None else (4095, 2048, None)
    return ChipNode(n.name, n.kind, n.layer, n.dim, 1, None, _input_bits(rec, input_from, d.lif_input_bits),
                    input_from, output_to, None, du, dv, vth, own_synapses=own, own_fan_in=1 if own else 0,
                    spiking=True)


def _population(neurons: Callable[[int], int], internal: Callable[[int], int]):
    """An on-chip op as a population of `neurons(d)` neurons with `internal(d)` synapses inside it; every
    input that is not a Dense adds one one-to-one synapse per channel (estimates of the ONCHIP.md mapping)."""
    def plan_op(graph, n, rec, d: PlanDefaults) -> ChipNode:
        srcs, input_from, output_to = _ends(graph, n)
        inner = internal(n.dim)
        direct = sum(1 for s in srcs if not s.dense)
        return ChipNode(n.name, n.kind, n.layer, n.dim, 1, None, _input_bits(rec, input_from, None), input_from,
                        output_to, None, neurons=neurons(n.dim), own_synapses=inner + direct * n.dim,
                        own_fan_in=direct + (1 if inner else 0), internal_synapses=inner,
                        microcoded=type(n).microcoded)
    return plan_op


# LayerNorm: centring, square and output populations + two sum neurons + the InvSqrt neuron, with two sum and
# two broadcast connections; token shift: the value and its held copy; relu²: GradedReluVec + ProdNeuron (two
# inputs each); the rest one neuron per channel (the WKV: two, below).
PLAN.register(ir.LayerNorm)(_population(lambda d: 3 * d + 3, lambda d: 4 * d))
PLAN.register(ir.TokenShift)(_population(lambda d: 2 * d, lambda d: d))
PLAN.register(ir.ReLU2)(_population(lambda d: 2 * d, lambda d: 2 * d))
PLAN.register(ir.Sigmoid, ir.Product, ir.Residual)(_population(lambda d: d, lambda d: 0))
# WKV (--wkv chip): per channel a state neuron (the mantissas A, B and the exponent) and an output neuron that
# divides, one-to-one between them
PLAN.register(ir.WKV)(_population(lambda d: 2 * d, lambda d: d))


def chip_node(graph: ir.Graph, n: ir.Op, rec=None, defaults: Optional[PlanDefaults] = None) -> ChipNode:
    """One chip node as the planner sees it (its `plan.chip` handler)."""
    return PLAN.lookup(n)(graph, n, rec, defaults or PlanDefaults())


def chip_nodes(graph: ir.Graph, quant: Dict[str, object], defaults: Optional[PlanDefaults] = None) -> List[ChipNode]:
    """The chip nodes of `graph` with their records (`ConvertedModel.nodes`), or with `defaults` where a node
    has none (planning shapes). A mix folded into its projections has no population of its own."""
    return [chip_node(graph, n, quant.get(n.name), defaults) for n in graph.nodes.values()
            if n.placement.where == ir.CHIP and not n.folds_on_chip]


def default_groups(graph: ir.Graph) -> Tuple[Tuple[str, str], ...]:
    """Host-bound Dense layers of one block that handle a token at the same time step form a group, as
    `convert` forms them (the Lava graph runs them as one block-diagonal Sparse process)."""
    from spike2loihi.convert.schedule import schedule

    offsets = schedule(graph).offsets
    side_by_side: Dict[tuple, List[str]] = {}
    for n in graph.nodes.values():
        if n.placement.where == ir.CHIP and n.dense and not any(graph.nodes[e.dst].spiking
                                                                 for e in graph.consumers(n.name)):
            side_by_side.setdefault((n.layer, offsets[n.name]), []).append(n.name)
    return tuple((name, "+".join(names)) for names in side_by_side.values() if len(names) > 1 for name in names)

"""IR + artifact -> a Lava process graph (nothing runs yet); one builder for both placements.

Chip side: one process (or a few) per chip unit, from its op type's lowering
(`spike2loihi.lava.lowering`): a chip node, or a group of side-by-side Dense layers the
conversion grouped into one block-diagonal Sparse process. Every chip -> host edge leaves from
a neuron: a Dense/Sparse accumulation through its readout `GradedVec` (vth 0, same step, every
value passed), a LIF through its own `s_out`. The simulator graph and the Loihi 2 graph are
this one graph; only the host <-> chip links differ (`connect`). Host side: one `HostBlock`
per model block plus one for the input/output stage (`spike2loihi.lava.plans`), each
running its runner (`spike2loihi.lava.blocks`): coarse, because every Lava process is an
OS process in the simulator.

The two placements differ only in the host side (`HOST_SIDE`):

* host placement: `host_plans` and `HostRunner`. Every value a host block handles carries
  a `valid` flag (is there a token at this node in this step?): stateful host ops advance
  only on valid steps, LIF gates are the flags of their inputs, and chip processes are sent
  zeros otherwise; where a node's inputs arrive at different offsets the host keeps the
  earlier one in a FIFO.
* `--placement chip`: `chip_host_plans` and `ChipHostRunner`. The IO block decides which
  step a token enters and sends every gate and that entry flag; stateful chip processes
  (token shifts, LIFs) are gated by it, every other chip process is stateless.

Schedule (DESIGN.md "Tokens and time steps", `ConvertedModel.schedule`): token t enters the
embedding at step t; a Dense delivers one step after it receives (a LIF's spikes one more
on their way to an on-chip residual); everything else passes values on within the step.
Where the inputs of a chip node arrive at different steps, the early one waits in a
`DelayDense` (the projection upstream takes the wait; a residual's x path takes its own).
Teacher-forced prefill pipelines one token per step; a generated token costs
`token_period = critical path + 1` steps.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.convert.schedule import Schedule, edge_latency
from spike2loihi.lava.blocks import ChipHostRunner, HostRunner, Records
from spike2loihi.lava.lowering import LOWER, READOUT_SUFFIX, Lowered, LowerContext, readout
from spike2loihi.lava.plans import IO_PLAN, HostPlan, chip_groups, chip_host_plans, host_plans


@dataclass
class LavaGraph:
    schedule: Schedule
    plans: List[HostPlan]
    procs: Dict[str, object]                 # chip unit / host plan / helper name -> Lava process
    model_map: Dict[object, type] = field(default_factory=dict)   # process instance -> ProcessModel class
    records: Optional[Records] = None
    boundaries: Tuple = ()                   # hardware graphs: the host/chip crossings (spike2loihi.lava.hw.Boundary)
    lowered: Dict[str, Lowered] = field(default_factory=dict)      # chip unit -> its Lava side

    @property
    def anchor(self):
        return self.procs[IO_PLAN]

    def process_count(self) -> int:
        return len(self.procs)


def _host_side_host(model: ConvertedModel, groups, run_args: dict):
    return host_plans(model.graph, groups, probes=bool(run_args.get("probes"))), HostRunner


def _host_side_chip(model: ConvertedModel, groups, run_args: dict):
    if run_args.get("probes"):
        raise ValueError("activity counts from Lava's simulator cover --placement host models only so far")
    return chip_host_plans(model.graph), ChipHostRunner


#: Per placement: (model, chip units, run args) -> (host plans, runner class of their blocks).
HOST_SIDE = {ir.HOST: _host_side_host, ir.CHIP: _host_side_chip, ir.CHIP_WKV: _host_side_chip}


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
    """The Dense upstream of `src` (through single-input, single-consumer ops) that can hold a lag."""
    n = g.nodes[src]
    while True:
        if len(g.consumers(n.name)) != 1:
            return None
        if n.dense:
            return n.name
        ins = list(g.inputs(n.name).values())
        if len(ins) != 1 or g.nodes[ins[0]].placement.where != ir.CHIP:
            return None
        n = g.nodes[ins[0]]


def waits(model: ConvertedModel) -> Tuple[Dict[str, int], Dict[tuple, int]]:
    """(steps each Dense delays its output, chip->chip waits no Dense upstream can hold) of the schedule."""
    g = model.graph
    lags = _lags(g, model.schedule.offsets)
    absorbed: Dict[str, int] = collections.Counter()
    for (src, dst, port), lag in list(lags.items()):
        a = _absorber(g, src)
        if a is not None:
            absorbed[a] += lag
            del lags[(src, dst, port)]
    return absorbed, lags


def _leaving(unit: str, lowered: Dict[str, Lowered], extra: Dict[str, object], link) -> object:
    """The out-port through which `unit`'s output leaves the chip: a neuron's. A synapse's accumulation
    (Dense/Sparse) goes through its readout `GradedVec`, made once per unit and kept in `extra`."""
    low = lowered[unit]
    if not low.synaptic:
        return low.out
    name = unit + READOUT_SUFFIX
    if name not in extra:
        extra[name] = readout(unit, int(low.out.shape[0]))
        link(low.out, extra[name].a_in)
    return extra[name].s_out


def build(model: ConvertedModel, records: Records, run_args: dict,
          connect: Optional[Callable[[object, object], None]] = None) -> LavaGraph:
    """The Lava processes and connections of a converted model (nothing runs yet).

    With `run_args["probes"]` chip-to-chip outputs are also sent to the host, which counts them
    (the activity report's counts from the simulator; host placement only).

    Every connection is made by `connect(out_port, in_port)` (default: `out_port.connect(in_port)`);
    the hardware builder (`spike2loihi.lava.hw`) passes one that puts Lava's embedded-IO adapters
    on the host/chip boundary.
    """
    from spike2loihi.lava.procs.processes import host_block_classes

    link = connect or (lambda src, dst: src.connect(dst))
    g = model.graph
    sched = model.schedule
    groups = chip_groups(model)
    plans, runner = HOST_SIDE[ir.placement_of(g)](model, groups, run_args)
    absorbed, lags = waits(model)
    procs: Dict[str, object] = {}
    model_map: Dict[object, type] = {}
    for plan in plans:
        proc_cls, model_cls = host_block_classes(plan)
        p = proc_cls(plan=plan, model=model, records=str(records.folder), run_args=run_args, runner=runner)
        procs[plan.name] = p
        model_map[p] = model_cls
    ctx = LowerContext(model, link, sched.offsets, absorbed, lags)
    lowered: Dict[str, Lowered] = {}
    unit_of: Dict[str, str] = {}
    extra: Dict[str, object] = {}
    for unit, members in groups.items():
        nodes = [g.nodes[m] for m in members]
        low = LOWER.lookup(nodes[0])(ctx, nodes)
        lowered[unit] = low
        procs[unit] = low.proc
        extra.update(low.extra)
        if low.model is not None:
            model_map[low.proc] = low.model
        unit_of.update({m: unit for m in members})
    if lags:
        raise ValueError(f"unbalanced chip paths the builder cannot delay: {sorted(lags)}")
    for e in g.edges:   # chip -> chip (a mix reads its token shift's [x ; prev])
        s, d = g.nodes[e.src], g.nodes[e.dst]
        if s.placement.where == ir.CHIP and d.placement.where == ir.CHIP and not d.folds_on_chip:
            link(lowered[unit_of[ir.carrier(g, e.src)]].out, lowered[unit_of[e.dst]].ins[e.port])
    for plan in plans:   # host <-> chip, host <-> host
        hp = procs[plan.name]
        for port in plan.out_ports:
            out = getattr(hp, port.name)
            if port.kind == "to_chip":
                link(out, lowered[port.node].ins[port.port])
            elif port.kind == "gate":
                if "gate" in lowered[port.node].ins:   # a stock LIF has none: the port stays unconnected
                    link(out, lowered[port.node].ins["gate"])
            else:   # host_out, entered: to every other block with an in-port of that name
                for other in plans:
                    if other.name != plan.name and any(p.name == port.name for p in other.in_ports):
                        link(out, getattr(procs[other.name], port.name))
        for port in plan.in_ports:
            if port.kind in ("from_chip", "probe", "spikes"):
                link(_leaving(port.node, lowered, extra, link), getattr(hp, port.name))
    procs.update(extra)
    return LavaGraph(sched, plans, procs, model_map, records, lowered=lowered)

"""The process inventory: every Lava process type of the graph a board would run, with its count, its
side (chip or host), whether a Loihi 2 neurocore model is publicly known to exist, and the source.

Lava-free (it runs where Lava is missing): the process types of each chip unit come from its op
type's `lava.processes` registration (`spike2loihi.lava.lowering`), tested equal to the graph the
builder makes; the host blocks are the host plans; the adapters are one per host<->chip edge of the
board graph (`spike2loihi.lava.hw.build_hw`, whose boundaries the tests compare with these counts).

What a process type is on a board is a fact about the Lava process, stated once in `PROCESS_FACTS`:

* `lava-loihi`: a public source shows the process running on Loihi 2 neurocores (its neurocore model
  ships in the closed lava-loihi, LOIHI2.md section 4.2);
* `microcode`: it needs a neuron model that no public release ships (ours: a custom microcoded
  neuron would have to be written);
* `unknown`: no public source says either way;
* `host`: a Python process on the host CPU (no neurocore model needed).
"""
from __future__ import annotations

import collections
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

from spike2loihi.convert import ir
from spike2loihi.convert.schedule import LIF_STOCK

LAVA_LOIHI, MICROCODE, UNKNOWN, HOST_CPU = "lava-loihi", "microcode", "unknown", "host"
HOST, CHIP = "host", "chip"


@dataclass(frozen=True)
class ProcessFact:
    neurocore_model: str
    source: str


_RELEASE_040 = "lava-nc/lava RELEASE.md (v0.4.0 notes, f061d006): LIF, Sigma-Delta and Dense execute on Loihi NeuroCores"
_PILOTNET = ("lava-nc/lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/run.ipynb (v0.6.0): netx Dense + LIF(Reset) "
             "blocks run with Loihi2HwCfg on a Loihi 2 partition; tests/lava/lib/dl/netx/test_hdf5_nx.py")
_OPT_SOLVER = ("lava-nc/lava-optimization src/lava/lib/optimization/solvers/generic/solver.py maps it to a lava-loihi "
               "neurocore model (NcModelDense / NcModelSparse) for Loihi2HwCfg")
_LAVA_VA = "lava-nc/lava tutorials/lava_va/"

#: Per Lava process type: is a Loihi 2 neurocore model publicly known, and the source that says so
#: (found in Lava's, lava-dl's and Intel's public repositories; none re-run here: no board).
PROCESS_FACTS: Dict[str, ProcessFact] = {
    "Dense": ProcessFact(LAVA_LOIHI, f"{_RELEASE_040}; {_PILOTNET}; {_OPT_SOLVER}"),
    "Sparse": ProcessFact(LAVA_LOIHI, f"{_OPT_SOLVER}; lava-nc/lava issue #436 (Sparse on Loihi 2, closed); "
                                      f"{_LAVA_VA}Tutorial04-Creating_network_motifs.ipynb runs GradedSparse on Loihi 2"),
    "DelayDense": ProcessFact(LAVA_LOIHI, "stated, no public board run found: lava-nc/lava issue #636 (synaptic delays "
                                          "on Loihi, closed) and PR #693 (the chip model sizes delay bits from "
                                          "max_delay); lava-dl netx builds DelayDense with max_delay 62"),
    "LIF": ProcessFact(LAVA_LOIHI, f"{_RELEASE_040}; {_PILOTNET}; lava-nc/lava issue #829 (the Loihi 2 LIF model "
                                   "scales parameters differently from the CPU float model)"),
    "GradedVec": ProcessFact(LAVA_LOIHI, f"{_LAVA_VA}Tutorial01-Fixed_point_dot_product.ipynb and Tutorial04 run "
                                         "GradedVec between graded Dense/Sparse with Loihi2HwCfg on Loihi 2 (its chip "
                                         "model is not named publicly; likely microcode shipped in lava-loihi)"),
    "GradedReluVec": ProcessFact(UNKNOWN, "lava-nc/lava src/lava/proc/graded/models.py (v0.10.0): CPU model only; "
                                          "no public Loihi 2 run found (PR #860 names none)"),
    "ProdNeuron": ProcessFact(LAVA_LOIHI, f"{_LAVA_VA}Tutorial02-Fixed_point_elementwise_product.ipynb runs "
                                          "ProductVec (ProdNeuron) on Loihi 2 (chip model not named publicly)"),
    "TokenLIF": ProcessFact(MICROCODE, "spike2loihi: Lava's LIF with a token gate; no Loihi 2 neuron model has "
                                       "the gate (docs/LAVA.md)"),
    "FxpLayerNorm": ProcessFact(MICROCODE, "spike2loihi: mean, variance and InvSqrt in one neuron (ONCHIP.md)"),
    "FxpSigmoid": ProcessFact(MICROCODE, "spike2loihi: a 33-entry piecewise-linear table (ONCHIP.md)"),
    "TokenShiftCat": ProcessFact(MICROCODE, "spike2loihi: a gated one-token memory (ONCHIP.md)"),
    "HostBlock": ProcessFact(HOST_CPU, "spike2loihi: a Python process (embedding, host ops, sampling)"),
    "PyToNxAdapter": ProcessFact(LAVA_LOIHI, "lava.proc.embedded_io ships only in lava-loihi (absent from lava "
                                             "0.10.0); every Loihi2HwCfg tutorial uses it for host -> chip input "
                                             f"({_PILOTNET}); an embedded C process, not a neurocore model"),
    "NxToPyAdapter": ProcessFact(LAVA_LOIHI, "lava.proc.embedded_io ships only in lava-loihi; every Loihi2HwCfg "
                                             "tutorial uses it for chip -> host output; an embedded C process"),
}


@dataclass(frozen=True)
class InventoryRow:
    process: str
    count: int
    where: str                 # chip | host
    neurocore_model: str       # lava-loihi | microcode | unknown | host
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def unit_processes(model) -> Dict[str, List[str]]:
    """Chip unit -> the Lava process types its lowering builds (readout neurons included)."""
    from spike2loihi.lava.build import waits
    from spike2loihi.lava.lowering import PROCESSES
    from spike2loihi.lava.plans import chip_groups

    g = model.graph
    absorbed, _ = waits(model)
    out = {}
    for unit, members in chip_groups(model).items():
        nodes = [g.nodes[m] for m in members]
        to_host = any(g.nodes[e.dst].placement.where == ir.HOST for m in members for e in g.consumers(m))
        out[unit] = PROCESSES.lookup(nodes[0])(model, nodes, bool(absorbed.get(unit, 0)), to_host)
    return out


def _plans(model, groups):
    from spike2loihi.lava.plans import chip_host_plans, host_plans

    g = model.graph
    return host_plans(g, groups) if ir.placement_of(g) == ir.HOST else chip_host_plans(g)


def _adapters(model, groups, plans, lif_where: str) -> Tuple[int, int]:
    """(host->chip, chip->host) adapters of the board graph: one per Lava edge that crosses."""
    g = model.graph
    stock = model.schedule.lif == LIF_STOCK   # Lava's own LIFs: on the chip, and no gate
    side = {unit: (lif_where if isinstance(g.nodes[m[0]], ir.LIF) and not stock else CHIP)
            for unit, m in groups.items()}
    kinds = ("to_chip",) if stock else ("to_chip", "gate")
    to_chip = sum(1 for p in plans for port in p.out_ports if port.kind in kinds and side.get(port.node) == CHIP)
    to_host = sum(1 for p in plans for port in p.in_ports
                  if port.kind in ("from_chip", "spikes", "probe") and side.get(port.node) == CHIP)
    unit_of = {m: u for u, ms in groups.items() for m in ms}
    for e in g.edges:   # chip -> chip edges of the IR whose ends sit on different sides (a LIF on the host)
        s, d = unit_of.get(e.src), unit_of.get(e.dst)
        if s is not None and d is not None and side[s] != side[d]:
            if side[s] == CHIP:
                to_host += 1
            else:
                to_chip += 1
    return to_chip, to_host


def inventory(model, lif_where: str = CHIP, board: bool = True) -> List[InventoryRow]:
    """The processes of the model's Lava graph: on a board (`board`, with the embedded-IO adapters) or in
    the simulator; `lif_where`: where the LIF populations run on the board (chip, or host as Python)."""
    counts: Dict[Tuple[str, str], int] = collections.Counter()
    g = model.graph
    lif_where = lif_where if board and model.schedule.lif != LIF_STOCK else CHIP   # (stock LIFs: on the chip)
    from spike2loihi.lava.plans import chip_groups

    groups = chip_groups(model)
    plans = _plans(model, groups)
    for unit, procs in unit_processes(model).items():
        where = lif_where if isinstance(g.nodes[groups[unit][0]], ir.LIF) else CHIP
        extra_readout = (board and where == CHIP and lif_where == HOST and "GradedVec" not in procs
                         and any(isinstance(g.nodes[e.dst], ir.LIF) for m in groups[unit] for e in g.consumers(m))
                         and g.nodes[groups[unit][0]].dense)
        for p in procs + (["GradedVec"] if extra_readout else []):
            counts[(p, where)] += 1
    counts[("HostBlock", HOST)] += len(plans)
    if board:
        to_chip, to_host = _adapters(model, groups, plans, lif_where)
        if to_chip:
            counts[("PyToNxAdapter", HOST)] += to_chip
        if to_host:
            counts[("NxToPyAdapter", HOST)] += to_host
    rows = []
    for (proc, where), n in sorted(counts.items(), key=lambda kv: (kv[0][1] != CHIP, kv[0][0])):
        fact = PROCESS_FACTS.get(proc, ProcessFact(UNKNOWN, "not in spike2loihi's table"))
        rows.append(InventoryRow(proc, int(n), where, fact.neurocore_model if where == CHIP or proc.endswith("Adapter")
                                 else HOST_CPU, fact.source if where == CHIP or proc.endswith("Adapter")
                                 else "runs as a Python process on the host CPU"))
    return rows


def not_board_ready(rows: List[InventoryRow]) -> List[InventoryRow]:
    """Chip processes without a publicly known Loihi 2 neurocore model."""
    return [r for r in rows if r.where == CHIP and r.neurocore_model != LAVA_LOIHI]


def render(rows: List[InventoryRow]) -> str:
    """One line per row, with the first of its sources (JSON and processes.json carry them all)."""
    lines = [f"{'process':<15} {'count':>5}  {'where':<5} {'neurocore model':<15} source"]
    for r in rows:
        lines.append(f"{r.process:<15} {r.count:>5}  {r.where:<5} {r.neurocore_model:<15} {r.source.split('; ')[0]}")
    return "\n".join(lines)

"""Resource planner: every chip node of a converted model mapped to Loihi 2 neurocores.

Computed from the IR and the per-node quantization alone, before anything is
built, and returned as frozen data (`Plan`, one `GroupPlan` per core group) that
prints alone (`render_text`), serialises (`Plan.to_dict`, embeddable in a deploy
bundle) and plots (`plot_cores`).

Mapping rules (the assumptions are repeated in every plan, `Plan.assumptions`):

* Synapses live in the core of the neuron they feed (Loihi's dendritic
  accumulation), so the unit of placement is a **core group**: a set of neurons
  plus every synapse that ends on them.
  - `blocks.i.att.output` (Wo) feeds the att LIF on chip: Wo's C x C synapses
    and the LIF's C neurons form one group.
  - A Dense whose consumers are host ops (key, value, receptance, ffn key/value/
    receptance, head) needs one graded readout neuron per output so that the
    accumulation can leave the chip (the Loihi 2 embedded-IO adapters read
    neurons): n_out neurons + n_out x n_in synapses.
  - The ffn LIF gets its graded input from the host through one identity
    synapse per neuron (one-to-one).
  - Host-bound Dense layers that the converter groups side by side (same block,
    same time step: key/value/receptance, ffn key/receptance; `group` in the
    artifact) run as one block-diagonal Sparse process in the Lava graph: one
    group whose cores may receive every member's input.
* A group is split across cores by output rows (neurons); every core of a group
  receives the group's whole input (fan-in = n_in axons per core).
* Two bounds for the synapses a core holds, both reported:
  - **ceiling** (dense packing): the whole core memory (words x word bits, 128 KiB)
    holds weights at `num_weight_bits` each (131,072 8-bit synapses), with
    neurons per core up to the hardware maximum (8,192);
  - **realistic** (SynMem): the compiler's cost-database budget (12,000 units) at
    0.315 units per dense 8-bit synapse (about 38,000 synapses) from published
    compiler logs, scaled by weight_bits / 8, with the planning default of 4,096
    neurons per core.
* Groups do not share cores (each Lava process gets its own cores); packing small
  groups together would lower the counts of small models.
* Chips = max(cores / usable cores per chip, neurons / neurons per chip,
  synapses / synapses per chip). The verdict for the chosen system uses the
  realistic bound.

Time: each chip Dense adds `numerics.dense_delay_steps` (1) time steps, LIFs and
host ops none, so the steps per token are the graph's **Dense depth** (the
longest chain of chip Dense layers). Host round trips per token are the
longest chain of host->chip entries. (Once the Lava graph fills the artifact's
`schedule`, its token period replaces this.)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from spike2loihi.convert import ir
from spike2loihi.hardware.populations import (ChipNode, PlanDefaults, chip_nodes,  # noqa: F401
                                              default_groups)
from spike2loihi.hardware.profiles import Profile

CEILING, REALISTIC = "ceiling", "realistic"
BOUNDS = (CEILING, REALISTIC)
BOUND_TEXT = {CEILING: "dense-packing ceiling (8-bit weights fill the 128 KiB core memory)",
              REALISTIC: "realistic SynMem bound (compiler logs: 12,000 units, 0.315 per 8-bit synapse)"}

ASSUMPTIONS = (
    "synapses sit in the core of the neuron they feed; a group (neurons + the synapses ending on them) "
    "is split across cores by output rows, and every core of a group receives the group's whole input",
    "a Dense whose consumers are host ops has one graded readout neuron per output (to leave the chip "
    "through the embedded-IO adapters)",
    "the ffn LIF receives its host input through one identity synapse per neuron",
    "side-by-side host-bound Dense layers (the artifact's `group`) form one block-diagonal Sparse process: one "
    "group, whose fan-in is the sum of its members' inputs",
    "groups do not share cores",
    "--placement chip: each on-chip op is a population (LayerNorm 3C+3 neurons and 4C internal synapses, "
    "token shift 2C, relu² 2F, others one neuron per channel) fed one-to-one by every non-Dense input; a mix is "
    "folded into the projections after it (2C inputs each)",
    "ceiling: the whole core memory holds weights at num_weight_bits each, up to neurons_per_core_max "
    "neurons per core; realistic: SynMem budget / units per synapse (scaled by weight_bits / 8), up to "
    "neurons_per_core_plan neurons per core",
    "time steps per token = the graph's Dense depth x dense_delay_steps (each chip Dense adds a step; "
    "LIFs and host ops add none), until the Lava graph's schedule is recorded in the artifact",
)


@dataclass(frozen=True)
class CoreSplit:
    """One group under one bound: how many cores and what limits them."""

    cores: int
    neurons_per_core: int        # the largest share (balanced split)
    synapses_per_core: int
    syn_capacity: int            # synapses one core holds under this bound
    limit: str                   # what sets the neurons per core

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GroupPlan:
    """One core group: its neurons, the synapses ending on them, and its cores under both bounds."""

    name: str                    # the node that owns the neurons
    members: Tuple[str, ...]     # every chip node in the group (Dense first)
    layer: Optional[int]
    role: str
    neurons: int
    synapses: int
    fan_in: int                  # input axons per core
    weight_bits: int
    weight_bytes: int
    ceiling: CoreSplit
    realistic: CoreSplit

    def split(self, bound: str) -> CoreSplit:
        return self.ceiling if bound == CEILING else self.realistic

    def to_dict(self) -> dict:
        d = asdict(self)
        d["members"] = list(self.members)
        return d


@dataclass(frozen=True)
class PlanViolation:
    """One reason the model does not fit: what, where, the value, the limit, and a hint."""

    what: str
    where: str
    value: str
    limit: str
    hint: str

    def line(self) -> str:
        return f"{self.where}: {self.what}: {self.value}, limit {self.limit}. Hint: {self.hint}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SystemFit:
    """How a model sits on one system (chips needed under both bounds, and whether it fits)."""

    profile: str
    system: str
    chips: Optional[int]          # None: no chip limit (simulator)
    chips_needed_ceiling: int
    chips_needed_realistic: int
    fits_ceiling: Optional[bool]
    fits_realistic: Optional[bool]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """The resource plan of one model on one profile: frozen, printable and serialisable."""

    profile: str
    system: str
    kind: str                      # hardware | simulator
    model: Tuple[Tuple[str, object], ...]
    groups: Tuple[GroupPlan, ...]
    neurons: int
    synapses: int
    weight_bytes: int
    cores_ceiling: int
    cores_realistic: int
    chips_needed_ceiling: int
    chips_needed_realistic: int
    cores_per_chip: int
    chips_available: Optional[int]
    steps_per_token: int           # a token's critical path: the graph's Dense depth x dense_delay_steps
    dense_depth: int
    host_round_trips: int          # longest chain of host->chip entries per token
    crossings: int                 # host<->chip edges per token
    crossings_to_chip: int
    violations: Tuple[PlanViolation, ...]
    systems: Tuple[SystemFit, ...] = ()
    steps_source: str = "dense depth"  # or "schedule" (the Lava graph's, from the artifact)
    token_period: int = 0          # steps per generated token (the schedule's; else the critical path)
    assumptions: Tuple[str, ...] = ASSUMPTIONS
    status: str = "estimate"       # counts are exact; cores and chips depend on estimated limits

    @property
    def fits(self) -> bool:
        return not self.violations

    def cores(self, bound: str) -> int:
        return self.cores_ceiling if bound == CEILING else self.cores_realistic

    def to_dict(self) -> dict:
        return {
            "profile": self.profile, "system": self.system, "kind": self.kind, "model": dict(self.model),
            "status": self.status, "fits": self.fits,
            "totals": {"neurons": self.neurons, "synapses": self.synapses, "weight_bytes": self.weight_bytes,
                       "cores": {CEILING: self.cores_ceiling, REALISTIC: self.cores_realistic},
                       "chips_needed": {CEILING: self.chips_needed_ceiling, REALISTIC: self.chips_needed_realistic},
                       "cores_per_chip": self.cores_per_chip, "chips_available": self.chips_available},
            "time": {"steps_per_token": self.steps_per_token, "dense_depth": self.dense_depth,
                     "steps_source": self.steps_source, "token_period_steps": self.token_period,
                     "host_round_trips_per_token": self.host_round_trips,
                     "crossings_per_token": self.crossings, "crossings_to_chip": self.crossings_to_chip,
                     "note": "steps per token = the critical path from the embedding to the logits: the graph's "
                             "Dense depth (each chip Dense adds one time step; LIFs and host ops add none), or "
                             "the Lava graph's schedule when the artifact records it"},
            "groups": [g.to_dict() for g in self.groups],
            "violations": [v.to_dict() for v in self.violations],
            "systems": [s.to_dict() for s in self.systems],
            "assumptions": list(self.assumptions),
            "bounds": dict(BOUND_TEXT),
        }


def graph_for_shapes(n_layer: int, n_embd: int, vocab: int, semantics: str = "run") -> ir.Graph:
    """The IR of a SpikeGPT model of these sizes (no weights needed)."""
    from spike2loihi.model.spec import ModelConfig, Semantics

    return ir.build_graph(ModelConfig(n_layer, n_embd, vocab), Semantics.named(semantics, vocab))


# ---------------------------------------------------------------------------
# Time: Dense depth and host round trips
# ---------------------------------------------------------------------------
def dense_depth(graph: ir.Graph) -> int:
    """Chip Dense layers on the longest chain of one token (each adds one time step): the
    schedule's critical path (spike2loihi.convert.schedule)."""
    from spike2loihi.convert.schedule import schedule

    return schedule(graph).critical_path


host_round_trips = ir.host_round_trips


# ---------------------------------------------------------------------------
# Groups and splits
# ---------------------------------------------------------------------------
def _groups(nodes: List[ChipNode], graph: ir.Graph) -> List[Tuple[str, List[ChipNode]]]:
    """(group name, members) in graph order: a LIF with the Dense layers feeding it (LIF last), a LIF
    fed by the host, or host-bound Dense layers (several when the converter grouped them side by side)."""
    by_name = {n.name: n for n in nodes}
    units: Dict[str, List[ChipNode]] = {}
    for n in nodes:
        if not n.dense:
            units.setdefault(n.name, []).append(n)
            continue
        chip_dst = [e.dst for e in graph.consumers(n.name) if e.dst in by_name]
        key = chip_dst[0] if chip_dst else (n.group or n.name)
        units.setdefault(key, []).append(n)
    return [(name, sorted(members, key=lambda m: not m.dense)) for name, members in units.items()]


def _split(neurons: int, per_row: int, out_axons: int, npc: int, syn_cap: int, axons_out_max: int) -> CoreSplit:
    """Cores for `neurons` rows of `per_row` synapses each, at most `npc` neurons and `syn_cap` synapses a core."""
    caps = {"neurons per core": npc}
    if per_row > 0:
        caps["synaptic memory"] = syn_cap // per_row
    if out_axons > 0:
        caps["output axons"] = axons_out_max // out_axons
    limit = min(caps, key=lambda k: (caps[k], list(caps).index(k)))
    rows = caps[limit]
    if rows < 1:
        return CoreSplit(cores=0, neurons_per_core=0, synapses_per_core=per_row, syn_capacity=syn_cap,
                         limit=f"one neuron's {per_row:,} synapses exceed a core ({syn_cap:,})")
    cores = math.ceil(neurons / rows)
    share = math.ceil(neurons / cores)
    if cores == 1:
        limit = "whole group in one core"
    return CoreSplit(cores=cores, neurons_per_core=share, synapses_per_core=share * per_row,
                     syn_capacity=syn_cap, limit=limit)


def syn_capacity(profile: Profile, weight_bits: int, bound: str) -> int:
    """Synapses one core holds under `bound` at `weight_bits` per weight."""
    mem = profile.chip.core_memory
    if bound == CEILING:
        return (mem.words.value * mem.word_bits.value) // weight_bits
    units = mem.synmem_units_per_dense_synapse.value * weight_bits / 8
    return int(math.floor(mem.synmem_units_budget.value / units)) if units > 0 else 10 ** 12


def _group_plan(name: str, members: List[ChipNode], profile: Profile) -> GroupPlan:
    chip = profile.chip
    dense = [m for m in members if m.dense]
    lif = next((m for m in members if m.spiking), None)
    owner = next((m for m in members if not m.dense), None)
    one_to_one = False
    if owner is not None and (not owner.spiking or owner.own_synapses):   # --placement chip populations
        neurons = owner.neurons or owner.n_out
        synapses = sum(f.n_out * f.n_in for f in dense) + owner.own_synapses
        per_row = max(1, math.ceil(synapses / neurons))
        fan_in = sum(f.n_in for f in dense) + owner.own_fan_in * owner.n_out
        feeds = " + ".join(f.name.rsplit(".", 1)[-1] for f in dense)
        role = f"{owner.kind}{' <- ' + feeds if feeds else ''} (on-chip op{', microcoded' if owner.microcoded else ''})"
        lif = owner
    elif lif is not None and dense:
        neurons, per_row = lif.n_out, sum(f.n_in for f in dense)
        synapses, fan_in = neurons * per_row, per_row
        role = f"{' + '.join(f.name.rsplit('.', 1)[-1] for f in dense)} -> LIF (synapses in the LIF's cores)"
    elif lif is not None:
        neurons, per_row = lif.n_out, 1
        synapses, fan_in, one_to_one = neurons, 0, True
        role = "LIF, host input through one identity synapse per neuron"
    else:
        neurons = sum(m.n_out for m in dense)
        per_row = max(m.n_in for m in dense)
        synapses = sum(m.n_out * m.n_in for m in dense)
        fan_in = sum(m.n_in for m in dense)   # a core may hold rows of every member
        if len(dense) > 1:
            role = (f"block-diagonal Sparse ({'+'.join(m.name.rsplit('.', 1)[-1] for m in dense)}) -> host "
                    "(graded readout neurons)")
        else:
            role = f"{dense[0].kind} -> host (graded readout neurons)"
    wbits = max((m.weight_bits for m in dense), default=8)
    owner = lif or dense[0]
    out_axons = 1 if any(m.output_to == ir.HOST for m in members) else 0
    splits = {}
    for bound, npc in ((CEILING, chip.neurons_per_core_max.value), (REALISTIC, chip.neurons_per_core_plan.value)):
        splits[bound] = _split(neurons, per_row, out_axons, npc, syn_capacity(profile, wbits, bound),
                               chip.axons_out_per_core_max.value)
    if one_to_one:
        fan_in = splits[REALISTIC].neurons_per_core
    return GroupPlan(name=name, members=tuple(m.name for m in members), layer=owner.layer, role=role,
                     neurons=neurons, synapses=synapses, fan_in=fan_in, weight_bits=wbits,
                     weight_bytes=math.ceil(synapses * wbits / 8),
                     ceiling=splits[CEILING], realistic=splits[REALISTIC])


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------
def _numeric_violations(nodes: List[ChipNode], profile: Profile) -> List[PlanViolation]:
    num = profile.numerics
    wmax, pmax = num.weight_bits_max.value, num.graded_payload_bits.value
    lif = num.lif.value
    out = []
    for n in nodes:
        if n.weight_bits is not None and n.weight_bits > wmax:
            out.append(PlanViolation("weight mantissa bits", n.name, f"{n.weight_bits} bits", f"{wmax} bits "
                                 "(numerics.weight_bits_max)", f"convert again with --weight-bits {wmax}"))
        if n.input_bits is not None and n.input_bits > pmax:
            out.append(PlanViolation("input payload bits", n.name, f"{n.input_bits} bits", f"{pmax} bits "
                                 "(numerics.graded_payload_bits)", f"convert again with --act-bits <= {pmax}"))
        if n.output_bits is not None and n.output_bits > pmax:
            out.append(PlanViolation("output payload bits", n.name, f"{n.output_bits} bits", f"{pmax} bits "
                                 "(numerics.graded_payload_bits)", "shift the accumulation into the payload "
                                 "(a larger weight_exp shift)"))
        for var, bits_key in (("du", "decay_bits"), ("dv", "decay_bits"), ("vth", "vth_bits")):
            val = getattr(n, var)
            if val is not None and not 0 <= val < (1 << lif[bits_key]):
                out.append(PlanViolation(f"LIF {var}", n.name, str(val), f"0..{(1 << lif[bits_key]) - 1} "
                                     f"(numerics.lif.{bits_key} = {lif[bits_key]})",
                                     "convert again: the converter picks LIF parameters inside these ranges"))
    return out


def _group_violations(groups: List[GroupPlan], profile: Profile) -> List[PlanViolation]:
    chip = profile.chip
    amax = chip.axons_in_per_core_max.value
    out = []
    for g in groups:
        if g.fan_in > amax:
            out.append(PlanViolation("input axons per core", g.name, f"{g.fan_in:,} inputs reach every core of "
                                 "the group", f"{amax:,} (chip.axons_in_per_core_max)",
                                 "split the input dimension across cores with partial-sum neurons (not built) "
                                 "or narrow the layer"))
        for bound in BOUNDS:
            s = g.split(bound)
            if s.cores == 0:
                out.append(PlanViolation(f"one neuron's synapses exceed a core ({bound} bound)", g.name,
                                     f"{s.synapses_per_core:,} synapses of {g.weight_bits} bits",
                                     f"{s.syn_capacity:,} synapses per core", "lower --weight-bits or split the "
                                     "input dimension (not built)"))
    return out


def _capacity_violations(plan_totals: dict, profile: Profile, head: Optional[GroupPlan],
                         others: Tuple[SystemFit, ...]) -> List[PlanViolation]:
    if not profile.is_hardware:
        return []
    chips = profile.system.chips.value
    need_r, need_c = plan_totals["chips_realistic"], plan_totals["chips_ceiling"]
    if need_r <= chips:
        return []
    per_chip = profile.chip.neurocores_usable.value
    fitting = [s for s in others if s.fits_realistic and s.chips is not None]
    hints = []
    if fitting:
        best = min(fitting, key=lambda s: s.chips)
        hints.append(f"{best.system} ({best.chips:,} chips) fits it")
    else:
        hints.append("no packaged system fits it")
    if need_c <= chips:
        hints.append(f"it fits only at the dense-packing ceiling ({need_c:,} chips), which compiler logs have not "
                     "shown")
    if head is not None and head.realistic.cores:
        hints.append(f"keeping the head on the host would free {head.realistic.cores:,} cores")
    return [PlanViolation("neurocores", "model",
                      f"needs {plan_totals['cores_realistic']:,} cores = {need_r:,} chips (realistic SynMem bound; "
                      f"{plan_totals['cores_ceiling']:,} cores = {need_c:,} chips at the dense-packing ceiling)",
                      f"{chips * per_chip:,} usable cores on {profile.title} ({chips:,} chip{'s' if chips != 1 else ''}"
                      f" x {per_chip})", "; ".join(hints))]


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------
def _chips_needed(cores: int, neurons: int, synapses: int, profile: Profile) -> int:
    chip = profile.chip
    return max(math.ceil(cores / chip.neurocores_usable.value),
               math.ceil(neurons / chip.neurons_per_chip_max.value),
               math.ceil(synapses / chip.synapses_per_chip_max.value), 1 if cores else 0)


def _fit(groups: List[GroupPlan], neurons: int, synapses: int, profile: Profile) -> SystemFit:
    cc = sum(g.ceiling.cores for g in groups)
    cr = sum(g.realistic.cores for g in groups)
    nc, nr = _chips_needed(cc, neurons, synapses, profile), _chips_needed(cr, neurons, synapses, profile)
    chips = profile.system.chips.value if profile.is_hardware else None
    return SystemFit(profile=profile.name, system=profile.title, chips=chips, chips_needed_ceiling=nc,
                     chips_needed_realistic=nr, fits_ceiling=None if chips is None else nc <= chips,
                     fits_realistic=None if chips is None else nr <= chips)


def plan_units(units: List[Tuple[str, List[ChipNode]]], profile: Profile) -> Tuple[List[GroupPlan], SystemFit]:
    """Core groups and the system fit of chip nodes grouped by the caller (a network that is not a
    SpikeGPT graph: a netx file's Dense -> LIF blocks), by the same rules as `plan`."""
    groups = [_group_plan(name, members, profile) for name, members in units]
    return groups, _fit(groups, sum(g.neurons for g in groups), sum(g.synapses for g in groups), profile)


def plan(graph: ir.Graph, quant: Dict[str, object], profile: Profile, model_info: Optional[dict] = None,
         compare: Tuple[Profile, ...] = (), schedule: Optional[dict] = None,
         defaults: Optional[PlanDefaults] = None) -> Plan:
    """Map every chip node of `graph` onto `profile`'s neurocores; `compare`: other systems to size it on.

    `schedule`: the artifact's recorded schedule (`critical_path_steps`), which then gives the steps
    per token instead of the Dense depth."""
    nodes = chip_nodes(graph, quant, defaults)
    groups = [_group_plan(name, members, profile) for name, members in _groups(nodes, graph)]
    neurons = sum(g.neurons for g in groups)
    synapses = sum(g.synapses for g in groups)
    this = _fit(groups, neurons, synapses, profile)
    systems = tuple(_fit([_group_plan(n, m, p) for n, m in _groups(nodes, graph)], neurons, synapses, p)
                    for p in compare)
    totals = {"cores_ceiling": sum(g.ceiling.cores for g in groups),
              "cores_realistic": sum(g.realistic.cores for g in groups),
              "chips_ceiling": this.chips_needed_ceiling, "chips_realistic": this.chips_needed_realistic}
    head = next((g for g in groups if g.name == ir.logits_node(graph).name), None)
    violations = (_numeric_violations(nodes, profile) + _group_violations(groups, profile)
                  + _capacity_violations(totals, profile, head, systems))
    depth = dense_depth(graph)
    steps, steps_source = depth * profile.numerics.dense_delay_steps.value, "dense depth"
    period = steps
    if schedule and isinstance(schedule.get("critical_path_steps"), int):
        steps, steps_source = schedule["critical_path_steps"], "schedule"
        period = schedule.get("token_period_steps") if isinstance(schedule.get("token_period_steps"), int) else steps
    cross = graph.crossings()
    info = dict(model_info or {})
    cfg = graph.meta.get("config") or {}
    for k in ("n_layer", "n_embd", "vocab_size"):
        if k in cfg:
            info.setdefault(k, cfg[k])
    return Plan(
        profile=profile.name, system=profile.title, kind=profile.kind, model=tuple(info.items()),
        groups=tuple(groups), neurons=neurons, synapses=synapses,
        weight_bytes=sum(g.weight_bytes for g in groups),
        cores_ceiling=totals["cores_ceiling"], cores_realistic=totals["cores_realistic"],
        chips_needed_ceiling=this.chips_needed_ceiling, chips_needed_realistic=this.chips_needed_realistic,
        cores_per_chip=profile.chip.neurocores_usable.value, chips_available=this.chips,
        steps_per_token=steps, dense_depth=depth, steps_source=steps_source, token_period=period,
        host_round_trips=host_round_trips(graph), crossings=len(cross),
        crossings_to_chip=sum(1 for e in cross if graph.nodes[e.dst].placement.where == ir.CHIP),
        violations=tuple(violations), systems=systems)


def plan_model(model, profile: Profile, compare: Tuple[Profile, ...] = (), name: str = "") -> Plan:
    """The plan of a converted model (`artifact.ConvertedModel`)."""
    from spike2loihi.convert.artifact import K_SCHEDULE

    info = {"model": name} if name else {}
    return plan(model.graph, model.nodes, profile, info, compare, model.manifest.get(K_SCHEDULE))


def plan_shapes(n_layer: int, n_embd: int, vocab: int, profile: Profile, compare: Tuple[Profile, ...] = (),
                weight_bits: int = 8, act_bits: int = 8, lif_input_bits: int = 16) -> Plan:
    """The plan of a SpikeGPT model of these sizes with convert's default quantization (nothing converted)."""
    g = graph_for_shapes(n_layer, n_embd, vocab)
    defaults = PlanDefaults(weight_bits, act_bits, lif_input_bits, groups=default_groups(g))
    return plan(g, {}, profile, {"model": f"shapes {n_layer} x {n_embd}, vocabulary {vocab} (default quantization)"},
                compare, defaults=defaults)


def packaged_profiles() -> Tuple[Profile, ...]:
    """The packaged hardware systems (not the simulator), smallest first."""
    from spike2loihi.hardware.profiles import available_profiles, load_profile

    profs = [load_profile(n) for n in available_profiles()]
    return tuple(sorted((p for p in profs if p.is_hardware), key=lambda p: p.system.chips.value))

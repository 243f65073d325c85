"""The resource plan rendered: the printable summary and the cores-per-group panel.

Renders a frozen `spike2loihi.hardware.planner.Plan`; computes nothing new.
"""
from __future__ import annotations

from spike2loihi.convert import ir
from spike2loihi.hardware.planner import GroupPlan, Plan


def _short(name: str) -> str:
    """b0.att.key, or b0.att.key+value+receptance for a side-by-side group."""
    first, *rest = name.split("+")
    return "+".join([first.replace("blocks.", "b")] + [r.rsplit(".", 1)[-1] for r in rest])


def _role_short(g: GroupPlan) -> str:
    if "(on-chip op" in g.role:
        kind = g.role.split(" ", 1)[0]
        if kind == "lif":
            return "LIF<chip"
        return {"layernorm": "LN", "token_shift": "shift"}.get(kind, kind) + ("*" if ir.OP_TYPES[kind].microcoded else "")
    if g.role.startswith("block-diagonal"):
        return "Sparse>host"
    if len(g.members) > 1:
        return "Dense>LIF"
    if "identity" in g.role:
        return "LIF<host"
    return "Head>host" if g.name == "head" or g.role.startswith("head") else "Dense>host"


def _steps_text(p: Plan) -> str:
    if p.steps_source == "schedule":
        return (f"the critical path recorded in the artifact's schedule = the graph's Dense depth {p.dense_depth}: "
                f"each chip Dense adds one step (under --placement chip, so does each LIF's spike Dense into the "
                f"residual); a generated token every {p.token_period} steps")
    return "the graph's Dense depth: each chip Dense adds one step"


def render_text(p: Plan) -> str:
    """The mapped summary: one line per core group, totals, chips per system, violations."""
    info = dict(p.model)
    title = info.get("model") or ""
    lines = [f"Resource plan on {p.system} ({p.profile}){': ' + title if title else ''}",
             f"  model: {info.get('n_layer')} layers x {info.get('n_embd')}, vocabulary {info.get('vocab_size')}; "
             f"{len(p.groups)} core groups (neurons + the synapses ending on them)",
             "",
             f"  {'group':<30} {'role':<11} {'neurons':>8} {'synapses':>12} {'w bits':>6} {'weight kB':>10} "
             f"{'fan-in':>6} {'cores ceil':>10} {'cores real':>10}  limit (realistic)"]
    for g in p.groups:
        role = _role_short(g)
        lines.append(f"  {_short(g.name):<30} {role[:11]:<11} {g.neurons:>8,} {g.synapses:>12,} {g.weight_bits:>6} "
                     f"{g.weight_bytes / 1000:>10,.1f} {g.fan_in:>6,} {g.ceiling.cores:>10,} "
                     f"{g.realistic.cores:>10,}  {g.realistic.limit}")
    lines.append(f"  {'total':<30} {'':<11} {p.neurons:>8,} {p.synapses:>12,} {'':>6} {p.weight_bytes / 1000:>10,.1f} "
                 f"{'':>6} {p.cores_ceiling:>10,} {p.cores_realistic:>10,}")
    lines += ["",
              f"  chips needed ({p.cores_per_chip} usable cores a chip): {p.chips_needed_realistic:,} realistic "
              f"(SynMem bound), {p.chips_needed_ceiling:,} at the dense-packing ceiling [estimate]"]
    if p.systems:
        lines.append("  per system:")
        for s in p.systems:
            verdict = ("fits" if s.fits_realistic else
                       "fits only at the ceiling" if s.fits_ceiling else "does not fit")
            lines.append(f"    {s.system:<14} {s.chips:>6,} chips: needs {s.chips_needed_realistic:,} realistic / "
                         f"{s.chips_needed_ceiling:,} ceiling: {verdict}")
    lines += ["",
              f"  per token: {p.steps_per_token} time steps ({_steps_text(p)}), "
              f"{p.host_round_trips} sequential host round trips, {p.crossings} host<->chip crossings "
              f"({p.crossings_to_chip} host->chip, {p.crossings - p.crossings_to_chip} chip->host)"]
    if p.kind != "hardware":
        lines.append(f"  {p.system}: no chip limit applies; the counts above are what a Loihi 2 mapping needs")
    if p.violations:
        n = len(p.violations)
        lines += ["", f"  DOES NOT FIT {p.system}: {n} violation{'s' if n != 1 else ''}"]
        lines += [f"  - {v.line()}" for v in p.violations]
    elif p.kind == "hardware":
        lines += ["", f"  fits {p.system}: {p.chips_needed_realistic:,} of {p.chips_available:,} chips "
                      f"({p.cores_realistic:,} of {p.chips_available * p.cores_per_chip:,} usable cores, realistic)"]
    lines += ["", "  [estimate] cores and chips rest on estimated limits; neurons, synapses and bytes are counted "
                  "from the model. Assumptions: see --json (plan.assumptions)."]
    if any("(on-chip op" in g.role for g in p.groups):
        lines.append("  --placement chip: on-chip op populations are estimates of their neuron mapping; roles "
                     "marked * need a microcoded neuron on a board: unverified.")
    return "\n".join(lines)


def plot_cores(p: Plan, ax) -> None:
    """Cores per core group, both bounds, on a matplotlib axis."""
    names = [_short(g.name) for g in p.groups]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [g.ceiling.cores for g in p.groups], width=0.4, label="dense-packing ceiling")
    ax.bar([x + 0.2 for x in xs], [g.realistic.cores for g in p.groups], width=0.4, label="realistic (SynMem)")
    ax.set_xticks(list(xs), names, rotation=90, fontsize=6 if len(names) > 40 else 7)
    ax.set_ylabel("neurocores")
    if max((g.realistic.cores for g in p.groups), default=0) > 50 * max(1, min(g.ceiling.cores for g in p.groups)):
        ax.set_yscale("log")
    ax.set_title(f"Cores per group on {p.system} [estimate]: {p.cores_realistic:,} realistic, "
                 f"{p.cores_ceiling:,} ceiling; {p.chips_needed_realistic:,} / {p.chips_needed_ceiling:,} chips")
    ax.legend(fontsize=8)

"""The activity report rendered: text, PNG panels, and placements side by side (`profile --compare`).

Everything here renders the frozen records of `spike2loihi.hardware.activity` (Activity),
`spike2loihi.hardware.energy` (Report, SystemEstimate) and `spike2loihi.hardware.planner`
(Plan); it computes nothing new.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.hardware.activity import ESTIMATE, PAPER_RATE, PAPER_RATIO, PUBLISHED, TAG
from spike2loihi.hardware.energy import ENERGY_PARTS, Report


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
    from spike2loihi.hardware import plan_report
    from spike2loihi import plots

    n = (4 if report is not None else 1) + (1 if comparison else 0)
    width = max(9, 0.22 * len(plan.groups) + 3)
    fig, axes = plots.subplots(n, 1, figsize=(width, 4.2 * n))
    axes = list(np.atleast_1d(axes))
    if report is not None:
        plot(report, axes[:3])
    plan_report.plot_cores(plan, axes[3] if report is not None else axes[0])
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
    from spike2loihi.hardware.energy import PUBLISHED_LM

    L.append(f"  [P] beside it, the only LM published on Loihi 2 ({PUBLISHED_LM['work']}; a different model: "
             f"{PUBLISHED_LM['model'].split(';')[0]}):")
    for what, fig in PUBLISHED_LM["figures"].items():
        L.append(f"      {fig['value']} {what} [P]" + (f" ({fig['note']})" if fig.get("note") else ""))
    for c in cols:
        if ir.on_chip(c.placement):
            kinds = " and ".join(cls.kind for cls in ir.OP_TYPES.values()
                                 if cls.microcoded and cls.mapping[c.placement].where == ir.CHIP)
            L.append(f"  {c.placement}: the {kinds} populations need microcoded neurons on a board: unverified")
    return "\n".join(L)


def _f3(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:,.3g}"

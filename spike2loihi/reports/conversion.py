"""The conversion report: text, JSON and PNG rendered from the same LayerRecords."""
from __future__ import annotations

import json
import math
from typing import List, Optional

from spike2loihi.convert import ir
from spike2loihi.convert.report import LayerRecord, ordered_worst_first


def _f(x, fmt: str, none: str = "-") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return none
    return format(x, fmt)


def render_text(records: List[LayerRecord], summary: dict) -> str:
    proj, lifs = ordered_worst_first(records)
    lines = ["Chip Dense layers, worst weight SQNR first",
             f"  {'node':<24} {'shape':>10} {'w bits':>6} {'w exp':>5} {'SQNR dB':>7} {'input':>11} "
             f"{'clip %':>7} {'acc worst':>9} {'headroom':>8} {'shift':>5} {'peak':>5}"]
    for r in proj:
        enc = f"{r.act_encoding[:3]} {r.act_bits}b" if r.act_encoding else "-"
        lines.append(f"  {r.node:<24} {r.shape:>10} {r.weight_bits:>6} {r.weight_exp:>5} "
                     f"{_f(r.weight_sqnr_db, '.1f'):>7} {enc:>11} {_f(r.act_clipped_pct, '.3f'):>7} "
                     f"{_f(r.acc_worst_bits, '.1f'):>7} b {_f(r.acc_headroom_bits, '.1f'):>6} b "
                     f"{r.out_shift:>5} {_f(r.out_peak_bits, '.1f'):>5}")
    lines += ["", "LIF populations, worst spike flip rate first",
              f"  {'node':<24} {'vth':>6} {'v_scale':>9} {'input':>8} {'clip %':>7} "
              f"{'rate float':>10} {'rate quant':>10} {'flips %':>7} {'wraps':>5}"]
    for r in lifs:
        enc = f"{r.act_bits}b" if r.act_bits else "from Wo"
        lines.append(f"  {r.node:<24} {r.vth:>6} {r.v_scale:>9.1f} {enc:>8} {_f(r.act_clipped_pct, '.3f'):>7} "
                     f"{_f(r.spike_rate_float, '.4f'):>10} {_f(r.spike_rate_quant, '.4f'):>10} "
                     f"{_f(100 * r.flip_rate if r.flip_rate is not None else None, '.2f'):>7} {r.wraps:>5}")
    ops = sorted((r for r in records if r.op not in ("projection", "head", "lif")),
                 key=lambda r: (-(r.op_error_pct or 0), r.node))
    if ops:
        placement = summary.get("placement") or ir.CHIP
        micro = [c.kind for c in ir.OP_TYPES.values() if c.microcoded and c.mapping[placement].where == ir.CHIP]
        lines += ["", f"On-chip fixed-point ops (--placement {placement}), largest error vs the float op first;",
                  f"{' and '.join(micro)} need a microcoded neuron on a board: unverified",
                  f"  {'node':<24} {'op':<10} {'bits':>4} {'grid':>6} {'shift':>5} {'sat %':>7} {'wraps':>5} "
                  f"{'error vs float':>14}"]
        for r in ops:
            lines.append(f"  {r.node:<24} {r.op:<10} {_f(r.act_bits, 'd'):>4} {r.act_encoding or '-':>6} "
                         f"{_f(r.out_shift, 'd'):>5} {_f(r.act_clipped_pct, '.3f'):>7} {_f(r.wraps, 'd'):>5} "
                         f"{_f(r.op_error_pct, '.3f'):>13}%")
    wkv = [r for r in records if r.exp_frac is not None]
    if wkv:
        lines += ["", "WKV on the chip (block exponent per channel): the exponent register and what the report run used",
                  f"  {'node':<24} {'e frac':>6} {'|E| limit':>9} {'E used (log2)':>17} {'renorms':>8} "
                  f"{'clamped decays':>14} {'sat':>4} {'error vs float':>14}"]
        for r in wkv:
            used = f"{r.exp_min:.1f} .. {r.exp_max:.1f}" if r.exp_min is not None else "-"
            lines.append(f"  {r.node:<24} {r.exp_frac:>6} {r.exp_limit:>9.0f} {used:>17} {_f(r.renorms, 'd'):>8} "
                         f"{_f(r.decay_clamped, 'd'):>14} {_f(r.wraps, 'd'):>4} {_f(r.op_error_pct, '.3f'):>13}%")
    top1 = summary.get("top1_agreement")
    lines += ["", f"over the first {summary.get('tokens')} calibration tokens: next-token top-1 agreement with float "
                  f"{_f(top1, '.4f')}, mean spike flip rate {_f(100 * (summary.get('mean_flip_rate') or 0), '.2f')}%, "
                  f"wraps/saturations {summary.get('total_wraps')} "
                  + ("(static on-chip scales: counted, not excluded by construction)"
                     if ir.on_chip(summary.get("placement") or ir.HOST) else "(0 by construction)"),
              "(flips and agreement are spike chaos as much as quantization: see `eval` for bits per "
              "character against the noise floor)"]
    return "\n".join(lines)


def render_json(records: List[LayerRecord], summary: dict, extra: Optional[dict] = None) -> str:
    out = {k: v for k, v in summary.items() if k != "layers"}
    out["layers"] = [r.to_dict() for r in records]
    if extra:
        out.update(extra)
    return json.dumps(out, indent=2)


def render_png(records: List[LayerRecord], out, title: str = "") -> None:
    """Three panels: weight SQNR per Dense, spike rates and flips per LIF, accumulator headroom.

    `out` is a binary file object (the caller writes it atomically)."""
    from spike2loihi import plots

    proj = [r for r in records if r.op in ("projection", "head")]
    lifs = [r for r in records if r.op == "lif"]
    ops = [r for r in records if r.op not in ("projection", "head", "lif")]
    fig, axes = plots.subplots(4 if ops else 3, 1, figsize=(max(8, 0.28 * max(len(proj), len(ops)) + 2),
                                                             15 if ops else 11))
    ax = axes[0]
    ax.bar(range(len(proj)), [r.weight_sqnr_db for r in proj], color="tab:blue")
    ax.set_xticks(range(len(proj)), [r.node for r in proj], rotation=90, fontsize=7)
    ax.set_ylabel("weight SQNR (dB)")
    ax.set_title("Chip Dense layers: weight SQNR (higher is better)")
    ax = axes[1]
    xs = range(len(lifs))
    ax.plot(xs, [r.spike_rate_float for r in lifs], "o-", label="spike rate, float")
    ax.plot(xs, [r.spike_rate_quant for r in lifs], "s--", label="spike rate, converted")
    ax.bar(xs, [r.flip_rate for r in lifs], color="tab:red", alpha=0.5, label="spike flip rate")
    ax.set_xticks(list(xs), [r.node for r in lifs], rotation=90, fontsize=7)
    ax.set_ylabel("fraction of neuron-tokens")
    ax.set_title("LIF populations: float vs converted spike rates, and flips")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.bar(range(len(proj)), [r.acc_headroom_bits for r in proj], color="tab:green", label="int32 headroom (worst case)")
    ax.plot(range(len(proj)), [r.out_limit_bits - (r.out_peak_bits or 0) for r in proj], "k.",
            label="output headroom: payload or LIF input limit (observed)")
    ax.set_xticks(range(len(proj)), [r.node for r in proj], rotation=90, fontsize=7)
    ax.set_ylabel("bits")
    ax.set_title("Accumulator headroom")
    ax.legend(fontsize=8)
    if ops:
        ax = axes[3]
        ax.bar(range(len(ops)), [r.op_error_pct or 0 for r in ops], color="tab:purple")
        ax.set_xticks(range(len(ops)), [r.node for r in ops], rotation=90, fontsize=7)
        ax.set_ylabel("max error, % of max |float op|")
        ax.set_title("On-chip fixed-point ops (--placement chip): error vs the float op on the same inputs")
    plots.finish(fig, out, title)

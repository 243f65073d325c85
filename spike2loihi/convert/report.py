"""The conversion report: one frozen `LayerRecord` per chip node, from a run of the converted model.

`measure` runs the converted model (the whole-model emulator, with its counters) over
the calibration tokens and completes each node's record with what it saw: clipping,
peaks, wraps, spike rates and flips against the float spikes. Text, JSON and PNG
render from the same records (`spike2loihi.reports.conversion`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

#: The report run (the converted model over the calibration tokens) uses at most this many tokens.
MEASURE_TOKENS = 128


@dataclass(frozen=True)
class LayerRecord:
    """What conversion did to one chip node, and what it cost (one row of the report)."""

    node: str
    layer: Optional[int]
    op: str                              # projection | head | lif
    shape: str
    weight_bits: Optional[int] = None
    weight_exp: Optional[int] = None
    weight_sqnr_db: Optional[float] = None
    weight_clipped_pct: Optional[float] = None
    act_encoding: Optional[str] = None   # dynamic (per token) | static (calibrated)
    act_bits: Optional[int] = None       # effective input bits
    act_clipped_pct: Optional[float] = None
    acc_worst_bits: Optional[float] = None      # log2 of the worst-case int32 accumulation
    acc_headroom_bits: Optional[float] = None   # 31 - acc_worst_bits (never negative)
    out_shift: Optional[int] = None              # right shift into the 24-bit payload / LIF input
    out_peak_bits: Optional[float] = None        # log2 of the largest output seen in the report run
    out_limit_bits: Optional[float] = None       # log2 of the largest output allowed (payload or LIF input)
    vth: Optional[int] = None
    v_scale: Optional[float] = None
    spike_rate_float: Optional[float] = None
    spike_rate_quant: Optional[float] = None
    flip_rate: Optional[float] = None
    wraps: Optional[int] = None                  # int32/24-bit wraps and saturations seen (0 by design)
    op_error_pct: Optional[float] = None         # on-chip fixed-point ops: max error vs the float op, % of max
    exp_frac: Optional[int] = None               # WKV on the chip: fraction bits of the exponent register
    exp_limit: Optional[float] = None            # WKV: largest |exponent| (log2) the register holds
    exp_min: Optional[float] = None              # WKV: smallest and largest exponent (log2) used in the report run
    exp_max: Optional[float] = None
    decay_clamped: Optional[int] = None          # WKV: channels whose decay was clamped (exactly: see quantize_chip)
    renorms: Optional[int] = None                # WKV: block renormalisations in the report run

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------
# The report run
# ---------------------------------------------------------------------------
def measure(model, calib, recs: Dict[str, dict],
            progress: Optional[Callable[[str, int, int], None]] = None, params=None):
    """Run the converted model over the calibration tokens; returns (records, top-1 agreement).
    `params`: the emulator's prepared kernels, when the caller shares them."""
    from spike2loihi.execute.model_emulator import ModelEmulator

    ex = ModelEmulator(model, batch_size=1, stats=True, params=params)
    T = min(len(calib.tokens), MEASURE_TOKENS)
    quant_spikes = {n.name: np.zeros((T, n.dim), dtype=bool) for n in ex.lifs}
    argmax = np.zeros(T, dtype=np.int64)

    def on_step(t, step):
        for name, s in step.spikes.items():
            quant_spikes[name][t] = s[0]
        argmax[t] = int(np.argmax(step.logits[0]))
        if progress:
            progress("measure", t + 1, T)

    ex.run(np.asarray(calib.tokens[:T]), on_step)
    counts = ex.stats.counts
    wrap_keys = ("acc_wrap32", "shift_wrap32", "u_wrap_pos", "u_wrap_neg", "v_sat_pos", "v_sat_neg",
                 "a_shift_wrap32", "prod_wrap32", "residual_over24", "ln_var_sat", "ln_norm_sat",
                 "wkv_v_sat", "wkv_k_sat", "wkv_out_sat", "wkv_a_sat")
    out = []
    for name, r in recs.items():
        c = counts.get(name, {})
        r = dict(r, wraps=sum(c.get(k, 0) for k in wrap_keys))
        node = model.graph.nodes[name]
        if not (node.dense or node.spiking):    # on-chip fixed-point ops (--placement chip)
            r["act_clipped_pct"] = 100.0 * (c.get("ln_out_sat", 0) + c.get("ln_in_sat", 0)) / max(1, T * node.dim)
            if "exp_frac" in r:                 # the WKV's exponent register
                one = 2.0 ** r["exp_frac"]
                r.update(exp_min=c.get("wkv_e_min", 0) / one, exp_max=c.get("wkv_e_max", 0) / one,
                         renorms=c.get("wkv_renorm", 0))
        elif node.dense:
            peak = c.get("max_abs_out", 0)
            r["out_peak_bits"] = math.log2(peak) if peak > 0 else 0.0
            if r["act_encoding"] == "static":
                r["act_clipped_pct"] = 100.0 * c.get("clipped", 0) / max(1, c.get("encoded", 1))
            else:
                r["act_clipped_pct"] = 0.0
        else:
            fs, qs = calib.float_spikes[name][:T], quant_spikes[name]
            r.update(spike_rate_float=float(fs.mean()), spike_rate_quant=float(qs.mean()),
                     flip_rate=float((fs != qs).mean()))
            if r["act_encoding"] == "static":
                r["act_clipped_pct"] = 100.0 * c.get("clipped", 0) / max(1, c.get("encoded", 1))
        out.append(LayerRecord(**r))
    return out, float((argmax == calib.float_argmax[:T]).mean())


def report_summary(records: List[LayerRecord], calib, top1: float) -> dict:
    lifs = [r for r in records if r.op == "lif"]
    return {
        "tokens": min(len(calib.tokens), MEASURE_TOKENS),
        "top1_agreement": top1,
        "mean_flip_rate": float(np.mean([r.flip_rate for r in lifs])) if lifs else None,
        "total_wraps": int(sum(r.wraps or 0 for r in records)),
        "layers": [r.to_dict() for r in records],
    }


def ordered_worst_first(records: List[LayerRecord]):
    """(projections by SQNR ascending, LIFs by flip rate descending)."""
    proj = sorted((r for r in records if r.op in ("projection", "head")), key=lambda r: (r.weight_sqnr_db, r.node))
    lifs = sorted((r for r in records if r.op == "lif"), key=lambda r: (-(r.flip_rate or 0), r.node))
    return proj, lifs


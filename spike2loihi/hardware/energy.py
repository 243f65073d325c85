"""Estimates from measured activity: tokens/s and energy per token per Loihi 2 system, and baselines.

From an `Activity` (`spike2loihi.hardware.activity`) and a plan per hardware profile:

* `estimate`: tokens/s (decode and prefill) and energy per token broken down into chip
  synaptic, chip neuron, static, host float and IO, on one system;
* `baselines`: energy per token under one 45 nm accounting: a dense all-float run of the
  same model, SpikeGPT's method (one assumed firing rate of 0.15, float ops left out), and
  this model as measured;
* `PUBLISHED_LM`: the published figures of the only LM run on Loihi 2 so far (a different
  model);
* `Report` / `build_report`: all of it, frozen, with one `to_dict`.

Every figure carries its status: published, measured here, or estimate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

from spike2loihi.convert import ir
from spike2loihi.hardware.activity import (CROSSING_OPS, ESTIMATE, FLOAT_LIF_OPS, MEASURED, PAPER_RATE, PAPER_RATIO,
                                           PUBLISHED, Activity, Counts, _population_kinds, evaluate_formula,
                                           measure)


def _fig(value, status: str, note: str = "") -> dict:
    out = {"value": value, "status": status}
    if note:
        out["note"] = note
    return out


def _host_price(host) -> Dict[str, float]:
    """pJ per host op kind (45 nm, from the profile's host block)."""
    return {"exp": host.e_fp32_exp_pj.value, "division": host.e_fp32_div_pj.value,
            "multiply": host.e_fp32_mult_pj.value, "add": host.e_fp32_add_pj.value,
            "sqrt": host.e_fp32_sqrt_pj.value, "sigmoid": host.e_fp32_sigmoid_pj.value,
            "compare": host.e_fp32_compare_pj.value, "convert": host.e_convert_pj.value}


def _float_lif_ops(act: Activity) -> Dict[str, float]:
    return {k: evaluate_formula(f, {"n": act.lif_neurons}) for k, f in FLOAT_LIF_OPS.items()}


def baselines(act: Activity, host) -> dict:
    """Energy per token (uJ) under one 45 nm accounting (SpikeGPT's E_MAC / E_AC and H14 op prices).

    - dense float: the same model all in fp32 on a host: every synapse a MAC, every host op,
      the LIFs in float (no encode/decode: nothing crosses);
    - paper (rate 0.15): SpikeGPT's method: every MAC becomes an AC at one assumed rate, float ops
      left out;
    - paper (measured rates): the same method with each Dense at its block's measured rate
      (att projections: the att LIF's, ffn projections: the ffn LIF's, head: the mean);
    - measured here: this model's graded mapping priced the same way: graded synaptic events as
      MACs, binary ones as ACs, every host op counted (crossing work included), LIF updates in float.
    """
    price = _host_price(host)
    e_mac, e_ac = host.e_mac_pj.value, host.e_ac_pj.value
    pj = 1e-6  # pJ -> uJ
    float_ops = {k: v for k, v in act.ops().items()}
    by_type = dict(act.host_ops_by_type)
    for k in list(by_type):
        if k.startswith("crossing: "):
            for kind, v in by_type[k]:
                float_ops[kind] -= v
    lif_ops = _float_lif_ops(act)
    host_float_dense = sum(float_ops[k] * price[k] for k in float_ops) * pj
    host_float_measured = sum(v * price[k] for k, v in act.ops().items()) * pj
    lif_float = sum(v * price[k] for k, v in lif_ops.items()) * pj
    dense_syn = act.dense_macs * e_mac * pj
    rates = {(la.layer, la.population): la.firing_rate for la in act.layers if la.kind == "lif"}
    mean = act.mean_rate()
    measured_rate_ac = 0.0
    for la in act.layers:
        if la.kind == "lif":
            continue
        pop = "att" if ".att." in la.name else "ffn" if ".ffn." in la.name else ""
        r = rates.get((la.layer, pop), mean)
        measured_rate_ac += la.dense_macs * r * e_ac * pj
    cols = {
        "dense float": {"synaptic": dense_syn, "neuron": lif_float, "host float": host_float_dense},
        "paper, rate 0.15": {"synaptic": act.dense_macs * PAPER_RATE * e_ac * pj, "neuron": 0.0, "host float": 0.0},
        "paper, measured rates": {"synaptic": measured_rate_ac, "neuron": 0.0, "host float": 0.0},
        "measured here": {"synaptic": (act.graded_macs * e_mac + act.binary_acs * e_ac) * pj, "neuron": lif_float,
                          "host float": host_float_measured},
    }
    for c in cols.values():
        c["total"] = sum(c.values())
    dense_total = cols["dense float"]["total"]
    dense_syn_only = cols["dense float"]["synaptic"]
    for name, c in cols.items():
        c["ratio_vs_dense_float"] = dense_total / c["total"] if c["total"] else None
        c["synaptic_ratio_vs_dense_macs"] = dense_syn_only / c["synaptic"] if c["synaptic"] else None
    status = {"dense float": ESTIMATE, "paper, rate 0.15": ESTIMATE, "paper, measured rates": ESTIMATE,
              "measured here": ESTIMATE}
    return {
        "unit": "uJ per token", "accounting": "45 nm: E_MAC 4.6 pJ, E_AC 0.9 pJ (SpikeGPT), host ops at H14 "
                                              "prices (exp, division, sqrt, sigmoid estimated)",
        "columns": cols, "status": status,
        "mean_firing_rate": _fig(mean, MEASURED),
        "paper_published_ratio": _fig(PAPER_RATIO, PUBLISHED, "SpikeGPT (TMLR): fewer operations at rate 0.15"),
        "paper_formula_ratio": _fig(e_mac / (PAPER_RATE * e_ac), ESTIMATE,
                                    "E_MAC / (0.15 E_AC): every MAC an AC at rate 0.15, our reading of the method"),
        "left_out_by_paper": {
            "host float ops (uJ)": _fig(host_float_measured, ESTIMATE, "counted ops x 45 nm prices"),
            "LIF updates in float (uJ)": _fig(lif_float, ESTIMATE),
            "graded inputs": _fig(sum(1 for la in act.layers if la.input_kind == "graded"
                                      and la.kind in ("projection", "head")),
                                  MEASURED, "chip Dense layers whose input is a graded payload (a MAC, not an AC) "
                                            "in the deployed mapping"),
        },
    }


#: The only language model published on Loihi 2 (a different model: not comparable one to one).
PUBLISHED_LM = {
    "work": "Abreu, Shrestha, Zhu, Eshraghian 2025, arXiv 2503.18002",
    "model": "370M MatMul-free LM (ternary BitLinear, MLGRU token mixer, GLU, RMSNorm); 8-bit weights, "
             "24-bit activations, fixed point",
    "status": PUBLISHED,
    "note": "published figures for a different model and system, next to ours for orientation only",
    "figures": {
        "throughput vs transformer LMs on a Jetson Orin Nano": _fig("up to 3x", PUBLISHED),
        "energy per token vs transformer LMs on a Jetson Orin Nano": _fig("2x less", PUBLISHED),
        "time to first token, 500-token prompt": _fig("6.6x lower", PUBLISHED, "described as preliminary"),
    },
    "source": "https://arxiv.org/html/2503.18002v1",
}


@dataclass(frozen=True)
class SystemEstimate:
    """Tokens/s and energy per token of one model on one system (estimates).

    Two ways to run a token:
    - decode (closed-loop generation, one token at a time): the token's whole chain runs before the
      next token exists: token period (steps) x step time + round trips x round-trip latency + bytes / host
      link;
    - prefill (teacher-forced, pipelined; DESIGN.md "Tokens and time steps"): one token enters per
      step (stock LIFs: per token period), assuming one batched host exchange per token: those steps'
      time + one round trip + bytes / host link.
    """

    profile: str
    system: str
    fits: Optional[bool]
    chips_used: Optional[int]
    time_ms: Tuple[Tuple[str, float], ...]            # decode: chip steps, host round trips, host link bytes
    tokens_per_s: Optional[float]                     # decode
    tokens_per_s_best: Optional[float]                # decode at the low end of the round-trip range
    tokens_per_s_prefill: Optional[float]
    energy_uj: Tuple[Tuple[str, float], ...]          # decode: chip synaptic, chip neuron, static, host float, IO
    energy_uj_total: Optional[float]                  # decode
    energy_uj_pessimistic: Optional[float]            # decode with Loihi 1 synop / neuron energies
    energy_uj_prefill: Optional[float]
    note: str = ""
    status: str = ESTIMATE
    inputs: Tuple[Tuple[str, object, str], ...] = ()   # (profile value, value, its status) the estimate used

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_ms"] = dict(self.time_ms)
        d["energy_uj"] = dict(self.energy_uj)
        d["inputs"] = {k: {"value": v, "status": st} for k, v, st in self.inputs}
        return d


ENERGY_PARTS = ("chip synaptic", "chip neuron", "static", "host float", "IO")


def estimate(act: Activity, plan, profile) -> SystemEstimate:
    """Tokens/s and energy per token of this activity on `profile` (with the plan made for that profile).

    Energy per token = synaptic events x e_synop + neurons x steps x e_neuron_update (every compartment is
    serviced every step) + static power x chips used x time per token + counted host ops x 45 nm prices
    + host-link bytes x e_host_io + on-chip messages (each nonzero input to every core of its group, each
    output once) x (e_spike + e_hop)."""
    t, s, e, h = profile.timing, profile.system, profile.energy, profile.host
    fits = (not plan.violations) if profile.is_hardware else None
    chips = plan.chips_needed_realistic if profile.is_hardware else None
    step_us = t.timestep_us_typical.value
    if profile.is_hardware and chips and chips > 1:
        step_us += t.sync_us_per_step_multichip.value
    rt_ms = s.host_roundtrip_ms.value
    bytes_io = act.bytes_to_chip + act.bytes_to_host
    io_bw = s.host_io_bytes_per_s.value
    link_ms = (bytes_io / io_bw * 1000.0) if io_bw else 0.0
    time = {"chip time steps": act.token_period * step_us / 1000.0,
            "host round trips": act.host_round_trips * rt_ms,
            "host link bytes": link_ms}
    total_ms = sum(time.values())
    low = s.host_roundtrip_ms.range[0] if s.host_roundtrip_ms.range else rt_ms
    best_ms = total_ms - act.host_round_trips * (rt_ms - low)
    prefill_ms = act.steps_per_prompt_token * step_us / 1000.0 + (rt_ms if act.crossings else 0.0) + link_ms
    tps = 1000.0 / total_ms if total_ms > 0 else None
    tps_best = 1000.0 / best_ms if best_ms > 0 else None
    tps_prefill = 1000.0 / prefill_ms if prefill_ms > 0 else None
    used = ["timing.timestep_us_typical", "system.host_roundtrip_ms", "system.host_io_bytes_per_s"]
    if profile.is_hardware:
        used += ["energy.e_synop_pj", "energy.e_neuron_update_pj", "energy.static_w_per_chip",
                 "system.e_host_io_pj_per_byte"]
    inputs = tuple((k, profile.fact(k).value, profile.fact(k).status) for k in used)
    if not profile.is_hardware:
        note = "a CPU simulation: the step time is Lava's measured steps/s; no Loihi energy"
        return SystemEstimate(profile.name, profile.title, None, None, tuple(time.items()), tps, tps_best,
                              tps_prefill, (), None, None, None, note, inputs=inputs)
    note = "" if fits else "the model does not fit this system: figures assume it did"
    price = _host_price(h)
    pj = 1e-6
    synops = act.graded_macs + act.binary_acs
    group_cores = {m: g.realistic.cores for g in plan.groups for m in g.members}
    on_chip_msgs = sum(la.input_nonzero * group_cores.get(la.name, 1) for la in act.layers
                       if la.input_kind in ("graded", "binary")
                       or la.kind in _population_kinds()) + act.messages_to_host

    def parts(steps: int, ms: float) -> Dict[str, float]:
        return {
            "chip synaptic": synops * e.e_synop_pj.value * pj,
            "chip neuron": plan.neurons * steps * e.e_neuron_update_pj.value * pj,
            "static": e.static_w_per_chip.value * chips * ms * 1e-3 * 1e6,
            "host float": sum(v * price[k] for k, v in act.ops().items()) * pj,
            "IO": (bytes_io * s.e_host_io_pj_per_byte.value
                   + on_chip_msgs * (e.e_spike_pj.value + e.e_hop_pj.value)) * pj,
        }

    energy = parts(act.token_period, total_ms)
    total = sum(energy.values())
    pess = total
    if e.e_synop_pj.pessimistic is not None:
        pess += synops * (e.e_synop_pj.pessimistic - e.e_synop_pj.value) * pj
    if e.e_neuron_update_pj.pessimistic is not None:
        pess += plan.neurons * act.token_period * (e.e_neuron_update_pj.pessimistic - e.e_neuron_update_pj.value) * pj
    prefill = sum(parts(1, prefill_ms).values())
    return SystemEstimate(profile.name, profile.title, fits, chips, tuple(time.items()), tps, tps_best, tps_prefill,
                          tuple(energy.items()), total, pess, prefill, note, inputs=inputs)


@dataclass(frozen=True)
class Report:
    """The whole activity report: what was measured, the estimates per system, the baselines."""

    model: str
    text_source: str
    activity: Activity
    estimates: Tuple[SystemEstimate, ...]
    baselines: Tuple[Tuple[str, object], ...]
    published: Tuple[Tuple[str, object], ...]

    def to_dict(self) -> dict:
        a = self.activity
        return {
            "model": self.model, "text": self.text_source, "backend": a.backend, "tokens": a.tokens,
            "statuses": {"published": "a published figure (source given)",
                         "measured here": "counted on this run of the converted model",
                         "estimate": "derived from measured counts and estimated profile values"},
            "per_token": {
                "time_steps": _fig(a.time_steps, MEASURED, "a token's critical path = the graph's Dense depth: "
                                                           "each chip Dense adds one time step, LIFs and host ops "
                                                           "none"),
                "token_period_steps": _fig(a.token_period, MEASURED, "steps per generated token (the artifact's "
                                                                     "schedule when recorded)"),
                "host_round_trips": _fig(a.host_round_trips, MEASURED, "host->chip entries on the longest chain"),
                "crossings": _fig(a.crossings, MEASURED, f"{a.crossings_to_chip} host->chip, "
                                                         f"{a.crossings - a.crossings_to_chip} chip->host"),
                "messages_to_chip": _fig(a.messages_to_chip, MEASURED, "nonzero payload elements"),
                "messages_to_host": _fig(a.messages_to_host, MEASURED, "nonzero payload elements and spikes"),
                "bytes_to_chip": _fig(a.bytes_to_chip, MEASURED, "every element at its payload width"),
                "bytes_to_host": _fig(a.bytes_to_host, MEASURED, "every element at its payload width"),
                "bytes_to_chip_nonzero": _fig(a.bytes_to_chip_nonzero, MEASURED),
                "bytes_to_host_nonzero": _fig(a.bytes_to_host_nonzero, MEASURED),
                "graded_macs": _fig(a.graded_macs, MEASURED, "nonzero graded input elements x fan-out "
                                                             f"(incl. {a.lif_input_events:,.0f} identity synapses "
                                                             "into the ffn LIFs)"),
                "binary_acs": _fig(a.binary_acs, MEASURED, "spikes x fan-out into chip Dense layers"),
                "neuron_updates": _fig(a.neuron_updates, MEASURED, "one per neuron per token (LIF and graded "
                                                                   "readout neurons)"),
                "host_ops": {k: _fig(v, MEASURED) for k, v in a.host_ops},
                "host_flops": _fig(a.host_flops, MEASURED),
                "dense_macs": _fig(a.dense_macs, MEASURED, "every chip synapse once: what a dense float run "
                                                           "multiplies"),
            },
            "layers": [la.to_dict() for la in a.layers],
            "host_ops_by_type": {k: dict(v) for k, v in a.host_ops_by_type},
            "host_op_formulas": {cls.__name__: dict(cls.host_cost) for cls in ir.OP_TYPES.values()
                                 if cls.host_cost is not None},
            "crossing_op_formulas": CROSSING_OPS,
            "estimates": [e.to_dict() for e in self.estimates],
            "baselines_45nm": dict(self.baselines),
            "published_lm_on_loihi2": dict(self.published),
        }


def build_report(model, counts: Counts, plans: Dict[str, object], profiles: Dict[str, object],
                 model_name: str = "", text_source: str = "", plan=None) -> Report:
    """Measure, then estimate on every profile of `profiles` (name -> Profile) with its plan."""
    act = measure(model, counts, plan)
    ests = tuple(estimate(act, plans[name], prof) for name, prof in profiles.items())
    host = next(iter(profiles.values())).host
    return Report(model_name, text_source, act, ests, tuple(baselines(act, host).items()),
                  tuple(PUBLISHED_LM.items()))

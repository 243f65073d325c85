"""Float SpikeGPT -> Loihi fixed point in the graded mapping (DESIGN.md "Mapping").

For every chip node of the IR:

* **Host-bound Dense** (key, value, receptance of both mixes, ffn value, head):
  weights per output row on a symmetric `weight_bits` mantissa; the row's float
  step goes to the host's dequantisation. The input is a graded payload of
  `act_bits` with a per-token scale (max |x| maps to the largest payload).
  From the exact worst case over all inputs, the converter lowers the input
  bits where Lava's int32 accumulator could wrap, and picks `weight_exp` (a
  right shift) so that every output fits the 24-bit payload. Nothing can wrap.
* **Wo -> att LIF**: one step for the whole matrix (the LIF needs one shared
  scale) and a calibrated static input scale. The LIF grid `v_scale` puts
  `vth << 6` one step below the threshold (`v > vth<<6` == `v >= 1`), and vth is
  the largest for which the worst-case input keeps `u` and `v` inside 24 bits
  (|v| <= 2 max|u|). Where `weight_exp` hits its floor (-8), the input is
  coarsened by powers of two (fewer effective bits) so the weights keep their
  full mantissa.
* **ffn LIF**: its input r*(Wfv kk) is computed on the host and sent as a
  `lif_input_bits` payload (default 16: MAPPING.md measured +0.31% bpc at 8,
  0.00% at 16) with a calibrated static scale; values beyond it clip.
* LIF decays: tau 2 with decay_input -> `du = 4095`, `dv = 2048`.

Calibration runs the float reference over the calibration tokens and records,
per layer, max |r*wkv| (Wo's input) and max |r*(Wfv kk)|. Then the converted
model runs over the same tokens for the per-layer report.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from spike2loihi import __version__
from spike2loihi.execute import host_ops
from spike2loihi.convert import ir
from spike2loihi.convert.artifact import (K_CALIBRATION, K_CONFIG, K_QUANT_CONFIG, K_REPORT, K_SCHEDULE, K_SEMANTICS,
                                  K_SOURCE, K_TOKENIZER, K_TOOLCHAIN, K_VERSIONS, TOKENIZER_TENSOR, ConvertedModel)
from spike2loihi.convert.schedule import schedule
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.convert.fixed_point import (INT32_MAX, MAX_MESSAGE_BITS, WEIGHT_EXP_MIN, SignMode, check_ranges,
                                     lif_params, payload_shift, quantize_rows, quantize_weights, v_scale_for_threshold, worst_accumulation, worst_row_accumulation)
from spike2loihi.model.spec import ModelSpec, Semantics
from spike2loihi.model.reference import ReferenceModel

#: |a| into a LIF such that u = a << 6 and |v| <= 2|u| stay inside 24 bits.
LIF_INPUT_LIMIT = ((1 << 23) - 1) // (2 << 6)
#: The ffn LIF payload: u = a << 6 and |v| <= 2|u| must fit 24 bits.
MAX_LIF_INPUT_BITS = 17
VTH_MAX = (1 << 17) - 1


class QuantizationError(Spike2LoihiError):
    """The requested conversion is not possible (bit widths, calibration data)."""


@dataclass(frozen=True)
class QuantOptions:
    weight_bits: int = 8
    act_bits: int = 8
    lif_input_bits: int = 16
    placement: str = ir.HOST     # "host" (the graded mapping) or "chip" (ONCHIP.md; spike2loihi.convert.quantize_chip)

    def check(self) -> None:
        problems = []
        if self.placement not in ir.MAPPINGS:
            problems.append(f"--placement {self.placement!r} is not one of {', '.join(ir.MAPPINGS)}")
        if not 2 <= self.weight_bits <= 8:
            problems.append(f"--weight-bits {self.weight_bits} is outside 2..8 (Loihi's weight mantissa)")
        if not 2 <= self.act_bits <= MAX_MESSAGE_BITS:
            problems.append(f"--act-bits {self.act_bits} is outside 2..{MAX_MESSAGE_BITS} (graded payload)")
        if not 2 <= self.lif_input_bits <= MAX_LIF_INPUT_BITS:
            problems.append(f"--lif-input-bits {self.lif_input_bits} is outside 2..{MAX_LIF_INPUT_BITS} "
                            f"(u = a << 6 and the membrane must fit 24 bits)")
        if problems:
            raise QuantizationError("; ".join(problems))


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

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


#: The report run (the converted model over the calibration tokens) uses at most this many tokens.
MEASURE_TOKENS = 128


@dataclass
class Calibration:
    tokens: List[int]
    info: dict
    maxima: Dict[str, List[float]]              # probe name -> per layer max |value|
    float_spikes: Dict[str, np.ndarray] = field(default_factory=dict)   # LIF node -> bool [T, C]
    float_argmax: Optional[np.ndarray] = None   # [T]
    reference: Optional[ReferenceModel] = None  # the float model it ran (its fp32 weights are reused)


def calibrate(spec: ModelSpec, sem: Semantics, tokens: List[int], info: dict,
              progress: Optional[Callable[[int, int], None]] = None) -> Calibration:
    """Run the float reference over `tokens`, keeping maxima, spikes and argmaxes."""
    if len(tokens) < 1:
        raise QuantizationError("calibration needs at least one token")
    L = spec.config.n_layer
    maxima = {k: [0.0] * L for k in ("att.output.in", "att.lif.in", "ffn.lif.in")}

    def probe(i, name, t):
        m = float(t.abs().max())
        if m > maxima[name][i]:
            maxima[name][i] = m

    ref = ReferenceModel(spec, sem, probe=probe)
    state = ref.initial_state()
    att, ffn, argmax = [], [], []
    for n, tok in enumerate(tokens):
        out = ref.step(int(tok), state)
        att.append(out.att_spikes.numpy().astype(bool))
        ffn.append(out.ffn_spikes.numpy().astype(bool))
        argmax.append(int(torch.argmax(out.logits)))
        if progress:
            progress(n + 1, len(tokens))
    for name, vals in maxima.items():
        bad = [i for i, v in enumerate(vals) if not math.isfinite(v)]
        if bad:
            raise QuantizationError(f"calibration: {name} of layer {bad[0]} is not finite in the float model")
    att, ffn = np.stack(att), np.stack(ffn)
    spikes = {}
    for i in range(L):
        spikes[f"blocks.{i}.att.lif"] = att[:, i]
        spikes[f"blocks.{i}.ffn.lif"] = ffn[:, i]
    ref.probe = lambda layer, name, t: None
    return Calibration(list(tokens), dict(info), maxima, spikes, np.asarray(argmax), ref)


# ---------------------------------------------------------------------------
# Chip nodes
# ---------------------------------------------------------------------------
def _host_bound_group(members: List[tuple], opts: QuantOptions, tensors: dict) -> Dict[str, tuple]:
    """Host-bound Dense layers that run side by side (same block, same time step): each keeps its
    per-row steps and its own per-token input scale, but they share the input bits and the output
    shift, so the Lava graph can run them as one block-diagonal Sparse process. Returns
    name -> (quant, record)."""
    rows = {name: quantize_rows(W, opts.weight_bits) for name, W in members}
    bits = opts.act_bits

    def worst_at(b):
        return {name: worst_row_accumulation(rq.mantissa, rq.truncate_bits, host_ops.qmax(b))
                for name, rq in rows.items()}

    while bits > 2 and max(worst_at(bits).values()) > INT32_MAX:
        bits -= 1   # an int32 accumulator could wrap: fewer input bits
    worst = worst_at(bits)
    over = [name for name, w in worst.items() if w > INT32_MAX]
    if over:
        raise QuantizationError(f"{over[0]}: even 2-bit inputs can overflow Lava's int32 accumulator")
    d = max(payload_shift(w, MAX_MESSAGE_BITS) for w in worst.values())
    group = "+".join(name for name, _ in members) if len(members) > 1 else None
    out = {}
    for name, rq in rows.items():
        k = rq.truncate_bits
        tensors[f"{name}.mantissa"] = rq.mantissa.astype(np.int8)
        tensors[f"{name}.row_scale"] = (rq.step * 2.0 ** (d - k)).astype(np.float32)
        quant = {"mantissa": f"{name}.mantissa", "truncate_bits": k, "weight_exp": -d,
                 "num_weight_bits": opts.weight_bits, "sign_mode": SignMode.MIXED.name,
                 "input": {"encoding": "dynamic", "bits": bits}, "row_scale": f"{name}.row_scale",
                 "output_bits": MAX_MESSAGE_BITS, "group": group}
        w = worst[name]
        rec = dict(weight_bits=opts.weight_bits, weight_exp=-d, weight_sqnr_db=rq.sqnr_db, weight_clipped_pct=0.0,
                   act_encoding="dynamic", act_bits=bits, acc_worst_bits=math.log2(max(w, 1)),
                   acc_headroom_bits=31 - math.log2(max(w, 1)), out_shift=d,
                   out_limit_bits=math.log2((1 << (MAX_MESSAGE_BITS - 1)) - 1))
        out[name] = (quant, rec)
    return out


def _lif_bound(name: str, W: np.ndarray, ymax: float, opts: QuantOptions, tensors: dict,
               pow2: bool = False) -> tuple:
    """Wo: static input scale, one weight step, and the att LIF's vth (see the module docstring).
    With `pow2` the input step is a power of two (an on-chip product's output grid)."""
    qm = host_ops.qmax(opts.act_bits)
    ymax = ymax if ymax > 0 else 1.0
    l1 = float(np.abs(W).sum(axis=1).max()) if W.size else 0.0
    xbound = max(ymax * l1, 1e-30)
    vth = int(min(VTH_MAX, max(1, math.floor((LIF_INPUT_LIMIT * 128 / xbound - 0.5) / 64))))
    while True:
        v_scale = v_scale_for_threshold(1.0, vth)
        a_in_scale = lif_params(theta=1.0, v_scale=v_scale, tau_v=2.0)["a_in_scale"]
        s_in = ymax / qm
        if pow2:
            s_in = 2.0 ** math.ceil(math.log2(s_in))
        q = quantize_weights(W, out_scale=a_in_scale * s_in, num_weight_bits=opts.weight_bits,
                             sign_mode=SignMode.MIXED)
        m_max = int(np.abs(q.mantissa).max()) if q.mantissa.size else 0
        half = 1 << (opts.weight_bits - 2)
        if q.weight_exp == WEIGHT_EXP_MIN and 0 < m_max < half:
            j = int(math.floor(math.log2(half * 2 / (m_max + 0.5))))  # weights at the exponent floor
            s_in *= 2.0 ** j
            q = quantize_weights(W, out_scale=a_in_scale * s_in, num_weight_bits=opts.weight_bits,
                                 sign_mode=SignMode.MIXED)
        for _ in range(64):   # so fine an input grid (many --act-bits) that every weight rounded to 0: coarsen
            if not (q.weight_exp == WEIGHT_EXP_MIN and q.mantissa.size and np.abs(W).max() > 0
                    and int(np.abs(q.mantissa).max()) < half):
                break
            s_in *= 2.0
            q = quantize_weights(W, out_scale=a_in_scale * s_in, num_weight_bits=opts.weight_bits,
                                 sign_mode=SignMode.MIXED)
        limit = max(1, int(math.floor(ymax / s_in + 1e-9)))
        worst = worst_accumulation(q.weights, limit)
        e = q.weight_exp
        a_worst = (worst << e) if e > 0 else -((-worst) >> -e)  # floor of the most negative
        if worst <= INT32_MAX and abs(a_worst) <= LIF_INPUT_LIMIT:
            break
        if vth == 1:
            raise QuantizationError(f"{name}: no LIF threshold keeps the membrane inside 24 bits "
                                    f"(worst-case input {xbound:.3g})")
        vth = max(1, int(vth * 0.97) - 1)
    tensors[f"{name}.mantissa"] = q.mantissa.astype(np.int8)
    eff_bits = int(math.floor(math.log2(limit))) + 2 if limit > 1 else 2
    quant = {"mantissa": f"{name}.mantissa", "truncate_bits": 8 - opts.weight_bits + 1,
             "weight_exp": int(e), "num_weight_bits": opts.weight_bits, "sign_mode": SignMode.MIXED.name,
             "input": {"encoding": "static", "bits": eff_bits, "inv_scale": float(np.float32(1.0 / s_in)),
                       "limit": limit},
             "row_scale": None, "output_bits": None, "weight_step": float(q.step)}
    rec = dict(weight_bits=opts.weight_bits, weight_exp=int(e), weight_sqnr_db=q.sqnr_db,
               weight_clipped_pct=100.0 * q.clipped_fraction, act_encoding="static", act_bits=eff_bits,
               acc_worst_bits=math.log2(max(worst, 1)), acc_headroom_bits=31 - math.log2(max(worst, 1)),
               out_shift=-int(e), out_limit_bits=math.log2(LIF_INPUT_LIMIT))
    lif = lif_params(theta=1.0, v_scale=v_scale, tau_v=2.0)
    lif_quant = {"du": lif["du"], "dv": lif["dv"], "vth": int(lif["vth"]), "v_scale": float(v_scale),
                 "bias_mant": 0, "bias_exp": 0, "input": None}
    return quant, rec, lif_quant


def _ffn_lif(xmax: float, opts: QuantOptions) -> dict:
    qm = host_ops.qmax(opts.lif_input_bits)
    xmax = xmax if xmax > 0 else 1.0
    vth = int(min(VTH_MAX, max(1, math.floor((qm * 128 / xmax - 0.5) / 64))))
    v_scale = v_scale_for_threshold(1.0, vth)
    lif = lif_params(theta=1.0, v_scale=v_scale, tau_v=2.0)
    return {"du": lif["du"], "dv": lif["dv"], "vth": int(lif["vth"]), "v_scale": float(v_scale),
            "bias_mant": 0, "bias_exp": 0,
            "input": {"encoding": "static", "bits": opts.lif_input_bits,
                      "inv_scale": float(np.float32(lif["a_in_scale"])), "limit": qm}}


def _host_tensors(spec: ModelSpec, graph: ir.Graph, host_only: bool = True) -> Dict[str, np.ndarray]:
    """Every float parameter a host node (or, host_only=False, any node) names, as float32
    (fp16/bf16 upcast exactly)."""
    out = {}
    for node in graph.nodes.values():
        if host_only and node.placement.where != ir.HOST:
            continue
        for key in node.params().values():
            if isinstance(key, str) and key in spec.tensors:
                out[key] = spec.tensors[key].float().numpy().astype(np.float32)
    return out


def float_weights(ref: ReferenceModel) -> Dict[str, np.ndarray]:
    """The fp32 matrices the reference multiplies with (RESCALE divisor applied), by node name."""
    w = {"head": ref.w.head}
    for i, b in enumerate(ref.w.blocks):
        p = f"blocks.{i}."
        w.update({p + "att.key": b.att_k, p + "att.value": b.att_v, p + "att.receptance": b.att_r,
                  p + "att.output": b.att_o, p + "ffn.key": b.ffn_k, p + "ffn.receptance": b.ffn_r,
                  p + "ffn.value": b.ffn_v})
    return w


def convert(spec: ModelSpec, sem: Semantics, calib: Calibration, opts: QuantOptions,
            source: Optional[dict] = None, progress: Optional[Callable[[str, int, int], None]] = None):
    """Quantize `spec` into a ConvertedModel; returns (model, records). Deterministic."""
    opts.check()
    graph = ir.build_graph(spec.config, sem, opts.placement)
    ref = calib.reference if calib.reference is not None and calib.reference.semantics == sem \
        else ReferenceModel(spec, sem)
    floats = float_weights(ref)
    tensors = _host_tensors(spec, graph)
    nodes: Dict[str, dict] = {}
    recs: Dict[str, dict] = {}
    chip = [n for n in graph.nodes.values() if n.placement.where == ir.CHIP]
    if opts.placement == ir.CHIP:
        ftens = {**_host_tensors(spec, graph, host_only=False), **tensors}   # every float parameter, once
        _convert_chip(graph, calib, opts, floats, ftens, tensors, nodes, recs, progress)
    else:
        _convert_host(graph, calib, opts, floats, tensors, nodes, recs, chip, progress)
    for node in graph.of_type(ir.LIF):
        qn = nodes[node.name]
        check_ranges({"du": qn["du"], "dv": qn["dv"], "vth": qn["vth"]}, prefix=node.name + ".")
        enc = qn["input"]
        recs[node.name] = dict(node=node.name, layer=node.layer, op="lif", shape=str(node.dim),
                               vth=qn["vth"], v_scale=qn["v_scale"],
                               act_encoding=enc["encoding"] if enc else None, act_bits=enc["bits"] if enc else None)
    recs = {n.name: recs[n.name] for n in chip if n.name in recs}   # graph order (shifts, mixes: none)
    if spec.tokenizer is not None:
        tensors[TOKENIZER_TENSOR] = np.frombuffer(_tokenizer_bytes(spec.tokenizer), dtype=np.uint8).copy()
    manifest = {
        K_TOOLCHAIN: __version__,
        K_VERSIONS: _versions(),
        K_SOURCE: source or {},
        K_CONFIG: spec.config.to_dict(),
        K_SEMANTICS: sem.to_dict(),
        K_TOKENIZER: ({"kind": spec.tokenizer.kind, "name": _tokenizer_name(spec.tokenizer)}
                      if spec.tokenizer is not None else None),
        K_QUANT_CONFIG: asdict(opts),
        K_SCHEDULE: schedule(graph).to_dict(),
        K_CALIBRATION: {**calib.info, "tokens": len(calib.tokens),
                        "maxima": {k: [float(np.float32(v)) for v in vals] for k, vals in calib.maxima.items()}},
    }
    model = ConvertedModel(graph=graph, nodes=nodes, tensors=tensors, manifest=manifest)
    records, top1 = measure(model, calib, recs, progress)
    if opts.placement == ir.CHIP:
        from spike2loihi.convert import quantize_chip

        errs = quantize_chip.op_errors(model, calib.tokens[:MEASURE_TOKENS], ftens)
        records = [dataclasses.replace(r, op_error_pct=errs[r.node]) if r.node in errs else r for r in records]
    model.manifest[K_REPORT] = {**report_summary(records, calib, top1), "placement": opts.placement}
    return model, records


def _convert_host(graph, calib, opts, floats, tensors, nodes, recs, chip, progress) -> None:
    """The graded mapping: chip Dense layers and LIFs (see the module docstring)."""
    offsets = schedule(graph).offsets
    groups: Dict[tuple, List[ir.Op]] = {}
    for idx, node in enumerate(chip):
        if isinstance(node, ir.Projection):
            consumers = [graph.nodes[e.dst] for e in graph.consumers(node.name)]
            if any(isinstance(c, ir.LIF) for c in consumers):
                W = floats[node.name].double().numpy()
                ymax = calib.maxima["att.output.in"][node.layer]
                q, rec, lif_q = _lif_bound(node.name, W, ymax, opts, tensors)
                lif_name = next(c.name for c in consumers if isinstance(c, ir.LIF))
                nodes[lif_name] = lif_q
                nodes[node.name] = q
                recs[node.name] = dict(node=node.name, layer=node.layer, op=node.kind,
                                       shape=f"{W.shape[0]}x{W.shape[1]}", **rec)
            else:   # side by side: same block, same time step
                groups.setdefault((node.layer, offsets[node.name]), []).append(node)
        elif isinstance(node, ir.LIF) and node.population == "ffn":
            nodes[node.name] = _ffn_lif(calib.maxima["ffn.lif.in"][node.layer], opts)
        if progress:
            progress("quantize", idx + 1, len(chip))
    for members in groups.values():
        done = _host_bound_group([(n.name, floats[n.name].numpy()) for n in members], opts, tensors)
        for n in members:
            q, rec = done[n.name]
            nodes[n.name] = q
            recs[n.name] = dict(node=n.name, layer=n.layer, op=n.kind, shape=f"{n.dim}x{n.n_in}", **rec)


def _convert_chip(graph, calib, opts, floats, ftens, tensors, nodes, recs, progress) -> None:
    """`--placement chip` (spike2loihi.convert.quantize_chip): calibrate every on-chip stream in float, then
    choose the integer formats."""
    from spike2loihi.convert import quantize_chip

    fl = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in floats.items()}
    maxima = quantize_chip.float_maxima(graph, ftens, fl, calib.tokens)
    cq = quantize_chip.ChipQuantizer(graph, maxima, fl, ftens, opts, _lif_bound, out=tensors)
    try:
        cq.run()
    except ValueError as e:
        raise QuantizationError(str(e)) from None
    nodes.update(cq.nodes)
    for node in graph.nodes.values():
        if node.placement.where == ir.CHIP and not isinstance(node, ir.LIF) and node.name in cq.recs:
            shape = f"{node.dim}x{node.n_in}" if isinstance(node, ir.Projection) else str(node.dim)
            recs[node.name] = dict(node=node.name, layer=node.layer, op=node.kind, shape=shape,
                                   **cq.recs[node.name])
    if progress:
        progress("quantize", 1, 1)


def _tokenizer_bytes(tok) -> bytes:
    if tok.kind == "char":
        return tok.to_json_text().encode("utf-8")
    return tok.tok.to_str().encode("utf-8")


def _tokenizer_name(tok) -> str:
    from pathlib import Path

    return Path(tok.path).name if getattr(tok, "path", "") else ""


def _versions() -> dict:
    from importlib import metadata

    out = {"numpy": np.__version__, "torch": torch.__version__}
    try:
        out["lava-nc"] = metadata.version("lava-nc")
    except metadata.PackageNotFoundError:
        out["lava-nc"] = None
    return out


# ---------------------------------------------------------------------------
# The report run
# ---------------------------------------------------------------------------
def measure(model: ConvertedModel, calib: Calibration, recs: Dict[str, dict],
            progress: Optional[Callable[[str, int, int], None]] = None):
    """Run the converted model over the calibration tokens; returns (records, top-1 agreement)."""
    from spike2loihi.execute.model_emulator import Executor

    ex = Executor(model, batch_size=1, stats=True)
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
                 "a_shift_wrap32", "prod_wrap32", "residual_over24", "ln_var_sat", "ln_norm_sat")
    out = []
    for name, r in recs.items():
        c = counts.get(name, {})
        r = dict(r, wraps=sum(c.get(k, 0) for k in wrap_keys))
        if r["op"] not in ("projection", "head", "lif"):    # on-chip fixed-point ops (--placement chip)
            r["act_clipped_pct"] = 100.0 * (c.get("ln_out_sat", 0) + c.get("ln_in_sat", 0)) / max(1, T * model.graph.nodes[name].dim)
        elif r["op"] in ("projection", "head"):
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


def report_summary(records: List[LayerRecord], calib: Calibration, top1: float) -> dict:
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


"""Float SpikeGPT -> Loihi fixed point: the conversion pass (options, calibration, the artifact).

`convert` builds the IR under the chosen `--placement`, calibrates, and lets the
placement's quantizer choose every chip node's record, op by op through its stage:

* `--placement host` (the graded mapping): `spike2loihi.convert.quantize_host`;
* `--placement chip` (LayerNorm, gates, products and residual on chip, ONCHIP.md):
  `spike2loihi.convert.quantize_chip`.

Calibration runs the float reference over the calibration tokens and records,
per layer, the maxima of the probed inputs (Wo's r*wkv, the LIFs' inputs), the
float spikes and the float argmaxes. Then the converted model runs over the same
tokens for the per-layer report (`spike2loihi.convert.report`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from spike2loihi import __version__
from spike2loihi.convert import ir
from spike2loihi.convert.artifact import (K_CALIBRATION, K_CONFIG, K_QUANT_CONFIG, K_REPORT, K_SCHEDULE, K_SEMANTICS,
                                          K_SOURCE, K_TOKENIZER, K_TOOLCHAIN, K_VERSIONS, TOKENIZER_TENSOR,
                                          ConvertedModel)
from spike2loihi.convert.fixed_point import MAX_MESSAGE_BITS, check_ranges, stock_lif_dv
from spike2loihi.convert.quantize_host import MAX_LIF_INPUT_BITS, HostQuantizer
from spike2loihi.convert.report import MEASURE_TOKENS, measure, report_summary
from spike2loihi.convert.schedule import LIF_MODES, LIF_STOCK, schedule
from spike2loihi.errors import QuantizationError
from spike2loihi.model.reference import ReferenceModel
from spike2loihi.model.spec import ModelSpec, Semantics


@dataclass(frozen=True)
class QuantOptions:
    weight_bits: int = 8
    act_bits: int = 8
    lif_input_bits: int = 16
    placement: str = ir.HOST     # "host" (the graded mapping) or "chip" (ONCHIP.md; spike2loihi.convert.quantize_chip)
    lif_weight_bits: Optional[int] = None   # the Dense feeding a LIF (Wo); None: weight_bits
    lif: Optional[str] = None    # None / "gated": the token-gated LIF; "stock": Lava's LIF, P steps per token

    def for_lif_dense(self) -> "QuantOptions":
        """The options of a Dense that feeds a LIF (Wo -> att LIF): its own weight bits if given."""
        return self if self.lif_weight_bits is None else replace(self, weight_bits=self.lif_weight_bits)

    def to_dict(self) -> dict:
        """For the manifest: an option left at None is not written (artifacts stay byte-identical)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def check(self) -> None:
        problems = []
        if self.placement not in ir.MAPPINGS:
            problems.append(f"--placement {self.placement!r} is not one of {', '.join(ir.MAPPINGS)}")
        if not 2 <= self.weight_bits <= 8:
            problems.append(f"--weight-bits {self.weight_bits} is outside 2..8 (Loihi's weight mantissa)")
        if self.lif_weight_bits is not None and not 2 <= self.lif_weight_bits <= 8:
            problems.append(f"--lif-weight-bits {self.lif_weight_bits} is outside 2..8 (Loihi's weight mantissa)")
        if self.lif is not None and self.lif not in LIF_MODES:
            problems.append(f"--lif {self.lif!r} is not one of {', '.join(LIF_MODES)}")
        if self.lif == LIF_STOCK and self.placement != ir.HOST:
            problems.append("--lif stock is for --placement host (the chip placement's token shifts are gated too)")
        if not 2 <= self.act_bits <= MAX_MESSAGE_BITS:
            problems.append(f"--act-bits {self.act_bits} is outside 2..{MAX_MESSAGE_BITS} (graded payload)")
        if not 2 <= self.lif_input_bits <= MAX_LIF_INPUT_BITS:
            problems.append(f"--lif-input-bits {self.lif_input_bits} is outside 2..{MAX_LIF_INPUT_BITS} "
                            f"(u = a << 6 and the membrane must fit 24 bits)")
        if problems:
            raise QuantizationError("; ".join(problems))


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


def _host_tensors(spec: ModelSpec, graph: ir.Graph, host_only: bool = True) -> Dict[str, np.ndarray]:
    """Every float parameter a host node (or, host_only=False, any node but a weight matrix: those are the
    reference's, `float_weights`) names, as float32 (fp16/bf16 upcast exactly)."""
    out = {}
    for node in graph.nodes.values():
        if host_only and node.placement.where != ir.HOST:
            continue
        if node.dense:   # its matrix is `float_weights`' (RESCALE divisor applied); no second copy
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
    chip = [n for n in graph.nodes.values() if n.placement.where == ir.CHIP]
    sched = schedule(graph, opts.lif)   # computed once here; the artifact records it
    if ir.on_chip(opts.placement):
        ftens = {**_host_tensors(spec, graph, host_only=False), **tensors}   # every float parameter, once
        nodes, recs = _convert_chip(graph, calib, opts, floats, ftens, tensors, progress)
    else:
        Q = HostQuantizer(graph, calib.maxima, floats, opts, tensors, sched.offsets, progress)
        Q.run()
        nodes, recs = Q.nodes, Q.recs
    for node in chip:
        if not node.spiking:
            continue
        if sched.lif == LIF_STOCK:   # Lava's own LIF, leaking every step: P steps leak as one gated step
            nodes[node.name] = replace(nodes[node.name], dv=stock_lif_dv(node.tau, sched.token_period))
        q = nodes[node.name]
        check_ranges({"du": q.du, "dv": q.dv, "vth": q.vth}, prefix=node.name + ".")
        recs[node.name] = dict(node=node.name, layer=node.layer, op=node.kind, shape=str(node.dim), vth=q.vth,
                               v_scale=q.v_scale, act_encoding=q.input.encoding if q.input else None,
                               act_bits=q.input.bits if q.input else None)
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
        K_QUANT_CONFIG: opts.to_dict(),
        K_SCHEDULE: sched.to_dict(),
        K_CALIBRATION: {**calib.info, "tokens": len(calib.tokens),
                        "maxima": {k: [float(np.float32(v)) for v in vals] for k, vals in calib.maxima.items()}},
    }
    model = ConvertedModel(graph=graph, nodes=nodes, tensors=tensors, manifest=manifest)
    from spike2loihi.execute.handlers import Params

    prepared = Params(model)     # the emulator's kernels, built once for both runs below
    records, top1 = measure(model, calib, recs, progress, params=prepared)
    if ir.on_chip(opts.placement):
        from spike2loihi.convert import quantize_chip

        errs = quantize_chip.op_errors(model, calib.tokens[:MEASURE_TOKENS], ftens, params=prepared)
        records = [dataclasses.replace(r, op_error_pct=errs[r.node]) if r.node in errs else r for r in records]
    model.manifest[K_REPORT] = {**report_summary(records, calib, top1), "placement": opts.placement}
    return model, records


def _convert_chip(graph, calib, opts, floats, ftens, tensors, progress):
    """`--placement chip` (spike2loihi.convert.quantize_chip): calibrate every on-chip stream in float,
    then choose the integer formats. Returns (records, report fields) per node."""
    from spike2loihi.convert import quantize_chip

    fl = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in floats.items()}
    maxima = quantize_chip.float_maxima(graph, ftens, fl, calib.tokens)
    cq = quantize_chip.ChipQuantizer(graph, maxima, fl, ftens, opts, out=tensors)
    try:
        cq.run()
    except ValueError as e:
        raise QuantizationError(str(e)) from None
    recs = {}
    for node in graph.nodes.values():
        if node.placement.where == ir.CHIP and not node.spiking and node.name in cq.recs:
            shape = f"{node.dim}x{node.n_in}" if node.dense else str(node.dim)
            recs[node.name] = dict(node=node.name, layer=node.layer, op=node.kind, shape=shape, **cq.recs[node.name])
    if progress:
        progress("quantize", 1, 1)
    return cq.nodes, recs


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

"""`--placement host` (the graded mapping, DESIGN.md "Mapping"): the formats of the chip nodes.

Registered per op type in the `quantize.host` stage; `HostQuantizer.run` visits the
chip nodes in graph order:

* **Host-bound Dense** (key, value, receptance of both mixes, ffn value, head):
  weights per output row on a symmetric `weight_bits` mantissa; the row's float
  step goes to the host's dequantisation. The input is a graded payload of
  `act_bits` with a per-token scale (max |x| maps to the largest payload).
  From the exact worst case over all inputs, the converter lowers the input
  bits where Lava's int32 accumulator could wrap, and picks `weight_exp` (a
  right shift) so that every output fits the 24-bit payload. Nothing can wrap.
  Layers of one block that handle a token at the same time step form a group
  (one block-diagonal Sparse process in the Lava graph): they share the input
  bits and the output shift.
* **Dense -> LIF** (Wo -> att LIF): one step for the whole matrix (the LIF needs
  one shared scale) and a calibrated static input scale (`lif_bound`). The LIF
  grid `v_scale` puts `vth << 6` one step below the threshold (`v > vth<<6` ==
  `v >= 1`), and vth is the largest for which the worst-case input keeps `u` and
  `v` inside 24 bits (|v| <= 2 max|u|). Where `weight_exp` hits its floor (-8),
  the input is coarsened by powers of two (fewer effective bits) so the weights
  keep their full mantissa.
* **LIF fed by the host** (the ffn LIF): its input r*(Wfv kk) is computed on the
  host and sent as a `lif_input_bits` payload (default 16: MAPPING.md measured
  +0.31% bpc at 8, 0.00% at 16) with a calibrated static scale; values beyond it clip.
* LIF decays: tau 2 with decay_input -> `du = 4095`, `dv = 2048`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Dict, List, Optional

import numpy as np

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.convert.fixed_point import (INT32_MAX, MAX_MESSAGE_BITS, WEIGHT_EXP_MIN, SignMode, lif_params,
                                             payload_shift, quantize_rows, quantize_weights, v_scale_for_threshold,
                                             worst_accumulation, worst_row_accumulation)
from spike2loihi.convert.records import DYNAMIC, STATIC, DenseParams, Encoding, LifParams
from spike2loihi.errors import FixedPointError, QuantizationError

#: |a| into a LIF such that u = a << 6 and |v| <= 2|u| stay inside 24 bits.
LIF_INPUT_LIMIT = ((1 << 23) - 1) // (2 << 6)
#: The ffn LIF payload: u = a << 6 and |v| <= 2|u| must fit 24 bits.
MAX_LIF_INPUT_BITS = 17
VTH_MAX = (1 << 17) - 1

QUANTIZE_HOST = registry.stage("quantize.host", lambda t, mapping, where: mapping == ir.HOST and where == ir.CHIP,
                               "integer formats of the graded mapping (spike2loihi.convert.quantize_host)")


def qmax(bits: int) -> int:
    """Largest magnitude of a signed `bits`-bit payload (symmetric range)."""
    return (1 << (int(bits) - 1)) - 1


def probe_name(node: ir.Op) -> str:
    """The calibration probe of a node's input: its name inside its block + ".in" (att.output.in)."""
    return node.name.split(".", 2)[2] + ".in"


# ---------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------
def host_bound_group(members: List[tuple], opts, tensors: dict) -> Dict[str, tuple]:
    """Host-bound Dense layers that run side by side (same block, same time step): each keeps its
    per-row steps and its own per-token input scale, but they share the input bits and the output
    shift, so the Lava graph can run them as one block-diagonal Sparse process. Returns
    name -> (DenseParams, report fields)."""
    rows = {name: quantize_rows(W, opts.weight_bits) for name, W in members}
    bits = opts.act_bits

    def worst_at(b):
        return {name: worst_row_accumulation(rq.mantissa, rq.truncate_bits, qmax(b)) for name, rq in rows.items()}

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
        quant = DenseParams(mantissa=f"{name}.mantissa", truncate_bits=k, weight_exp=-d,
                            num_weight_bits=opts.weight_bits, sign_mode=SignMode.MIXED.name,
                            input=Encoding(DYNAMIC, bits), row_scale=f"{name}.row_scale",
                            output_bits=MAX_MESSAGE_BITS, group=group)
        w = worst[name]
        rec = dict(weight_bits=opts.weight_bits, weight_exp=-d, weight_sqnr_db=rq.sqnr_db, weight_clipped_pct=0.0,
                   act_encoding=DYNAMIC, act_bits=bits, acc_worst_bits=math.log2(max(w, 1)),
                   acc_headroom_bits=31 - math.log2(max(w, 1)), out_shift=d,
                   out_limit_bits=math.log2((1 << (MAX_MESSAGE_BITS - 1)) - 1))
        out[name] = (quant, rec)
    return out


def lif_bound(name: str, W: np.ndarray, ymax: float, opts, tensors: dict, pow2: bool = False) -> tuple:
    """A Dense feeding a LIF (Wo): static input scale, one weight step, and the LIF's vth (see the
    module docstring). With `pow2` the input step is a power of two (an on-chip product's output
    grid). Returns (DenseParams, report fields, LifParams)."""
    qm = qmax(opts.act_bits)
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
    quant = DenseParams(mantissa=f"{name}.mantissa", truncate_bits=8 - opts.weight_bits + 1, weight_exp=int(e),
                        num_weight_bits=opts.weight_bits, sign_mode=SignMode.MIXED.name,
                        input=Encoding(STATIC, eff_bits, inv_scale=float(np.float32(1.0 / s_in)), limit=limit),
                        weight_step=float(q.step))
    rec = dict(weight_bits=opts.weight_bits, weight_exp=int(e), weight_sqnr_db=q.sqnr_db,
               weight_clipped_pct=100.0 * q.clipped_fraction, act_encoding=STATIC, act_bits=eff_bits,
               acc_worst_bits=math.log2(max(worst, 1)), acc_headroom_bits=31 - math.log2(max(worst, 1)),
               out_shift=-int(e), out_limit_bits=math.log2(LIF_INPUT_LIMIT))
    lif = lif_params(theta=1.0, v_scale=v_scale, tau_v=2.0)
    lif_q = LifParams(du=lif["du"], dv=lif["dv"], vth=int(lif["vth"]), v_scale=float(v_scale))
    return quant, rec, lif_q


def host_fed_lif(xmax: float, opts) -> LifParams:
    """A LIF whose graded input the host computes: a `lif_input_bits` payload on a calibrated scale."""
    qm = qmax(opts.lif_input_bits)
    xmax = xmax if xmax > 0 else 1.0
    vth = int(min(VTH_MAX, max(1, math.floor((qm * 128 / xmax - 0.5) / 64))))
    v_scale = v_scale_for_threshold(1.0, vth)
    lif = lif_params(theta=1.0, v_scale=v_scale, tau_v=2.0)
    return LifParams(du=lif["du"], dv=lif["dv"], vth=int(lif["vth"]), v_scale=float(v_scale),
                     input=Encoding(STATIC, opts.lif_input_bits, inv_scale=float(np.float32(lif["a_in_scale"])),
                                    limit=qm))


# ---------------------------------------------------------------------------
# The pass
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def naming(where: str):
    """A conversion error inside names the node it is about (one line: `node: what`)."""
    try:
        yield
    except (FixedPointError, QuantizationError, ValueError) as exc:
        text = str(exc)
        raise QuantizationError(text if text.startswith(where) else f"{where}: {text}") from None


class HostQuantizer:
    """Chooses every chip node's record for `--placement host`: `run()` calls each chip node's
    `quantize.host` handler in graph order, then quantizes the side-by-side groups."""

    def __init__(self, graph: ir.Graph, maxima: Dict[str, List[float]], floats: Dict[str, np.ndarray], opts,
                 out: Dict[str, np.ndarray], offsets: Dict[str, int],
                 progress: Optional[Callable[[str, int, int], None]] = None):
        """`offsets`: the schedule's step of each node (side-by-side layers share a step)."""
        self.g, self.maxima, self.floats, self.opts, self.out = graph, maxima, floats, opts, out
        self.progress = progress
        self.offsets = offsets
        self.nodes: Dict[str, object] = {}       # node -> record
        self.recs: Dict[str, dict] = {}          # node -> report fields
        self.groups: Dict[tuple, List[ir.Op]] = {}

    def consumers(self, name: str) -> List[ir.Op]:
        return [self.g.nodes[e.dst] for e in self.g.consumers(name)]

    def run(self) -> None:
        chip = [n for n in self.g.nodes.values() if n.placement.where == ir.CHIP]
        for idx, node in enumerate(chip):
            with naming(node.name):
                QUANTIZE_HOST.lookup(node)(self, node)
            if self.progress:
                self.progress("quantize", idx + 1, len(chip))
        for members in self.groups.values():
            with naming("+".join(n.name for n in members)):
                done = host_bound_group([(n.name, self.floats[n.name].numpy()) for n in members], self.opts,
                                        self.out)
            for n in members:
                self.nodes[n.name], rec = done[n.name]
                self.recs[n.name] = dict(node=n.name, layer=n.layer, op=n.kind, shape=f"{n.dim}x{n.n_in}", **rec)


@QUANTIZE_HOST.register(ir.Projection)
def _dense(Q: HostQuantizer, node: ir.Projection) -> None:
    """Into a LIF: the Dense + LIF pair (`lif_bound`); else host-bound, grouped by block and step."""
    lif = next((c for c in Q.consumers(node.name) if c.spiking), None)
    if lif is None:
        Q.groups.setdefault((node.layer, Q.offsets[node.name]), []).append(node)
        return
    W = Q.floats[node.name].double().numpy()
    q, rec, lif_q = lif_bound(node.name, W, Q.maxima[probe_name(node)][node.layer], Q.opts.for_lif_dense(), Q.out)
    Q.nodes[node.name], Q.nodes[lif.name] = q, lif_q
    Q.recs[node.name] = dict(node=node.name, layer=node.layer, op=node.kind, shape=f"{W.shape[0]}x{W.shape[1]}",
                             **rec)


@QUANTIZE_HOST.register(ir.LIF)
def _lif(Q: HostQuantizer, node: ir.LIF) -> None:
    """Fed by the host: a static payload; fed by a chip Dense: chosen with it (`_dense`)."""
    src = Q.g.nodes[Q.g.inputs(node.name)["x"]]
    if src.placement.where == ir.HOST:
        Q.nodes[node.name] = host_fed_lif(Q.maxima[probe_name(node)][node.layer], Q.opts)
    elif node.name not in Q.nodes:
        raise QuantizationError(f"{node.name}: its input Dense {src.name} chose no LIF parameters")

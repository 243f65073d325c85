"""A converted model's spiking Dense -> LIF layers as lava-dl netx HDF5 files, where netx holds them exactly.

netx (`lava.lib.dl.netx.hdf5.Network`) stores a dense layer's integer weights and a CUBA neuron
(iDecay, vDecay, vThMant, bias); on load it re-optimises the weight bits (`converters.netx.
netx_weight_bits`) so that Lava's Dense computes exactly W . x: the format has **no weight
exponent**. A layer is written only when that computes what the converted model computes:

* the LIF's input is one chip Dense (`blocks.i.att.output` -> `blocks.i.att.lif`; the ffn LIF's
  input is the gate, a host value or an on-chip product, not a Dense);
* the Dense's effective weights times 2^weight_exp are integers (every weight has at least
  -weight_exp trailing zero bits: Lava's `(W.x) >> -weight_exp` is then an exact division) that fit
  netx's 8-bit synapse, and netx's re-optimisation gives them back unchanged;
* no accumulation can wrap int32 in netx's shifted weights where it does not in ours;
* the LIF's bias is a multiple of 2^6 (netx fixes bias_exp = 6).

Every other LIF is listed with the reason. Each written layer is then checked: the inputs the
emulator recorded for that layer on a text are fed to netx's own Lava network (`fixed_pt`), and its
spikes must equal the emulator's, token for token (one Lava step per token: the model's LIF
advances once per token; a Dense delays by one step).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from converters.netx import NETX_BIAS_EXP
from spike2loihi.convert.fixed_point import INT32_MAX, SignMode
from spike2loihi.execute.kernels import _common_trailing_zeros, lava_weights


@dataclass(frozen=True)
class NetxLayer:
    """One LIF of the model and whether (and why not) netx holds its Dense -> LIF pair exactly."""

    lif: str
    dense: Optional[str]
    written: bool
    reason: str                      # why not written ("" when written)
    file: Optional[str] = None
    weight_exp: Optional[int] = None
    trailing_zero_bits: Optional[int] = None
    input_bits: Optional[int] = None
    netx_weight_bits: Optional[int] = None
    tokens: Optional[int] = None
    spikes_emulator: Optional[int] = None
    spikes_lava: Optional[int] = None
    spikes_equal: Optional[bool] = None
    first_divergence: Optional[dict] = None

    def to_dict(self) -> dict:
        return asdict(self)


def effective_weights(model: ConvertedModel, dense: str) -> np.ndarray:
    """The integer weights Lava's Dense of `dense` uses (after its clip and truncation)."""
    rec = model.nodes[dense]
    w = model.tensors[rec.mantissa].astype(np.int64) << rec.truncate_bits
    return lava_weights(w, SignMode[rec.sign_mode], rec.num_weight_bits)[0]


def plan_layer(model: ConvertedModel, lif: ir.Op) -> Tuple[Optional[str], Optional[np.ndarray], str, dict]:
    """(dense name, netx file weights, reason not representable ("" if it is), facts) for one LIF."""
    from converters.netx import netx_weight_bits

    src = model.graph.inputs(lif.name).get("x")
    node = model.graph.nodes.get(src) if src else None
    if node is None or not node.dense or node.placement.where != ir.CHIP:
        what = "nothing" if node is None else f"{node.kind} {src} on the {node.placement.where}"
        return None, None, f"its input is {what}, not one chip Dense (netx's dense block is Dense -> LIF)", {}
    rec, lrec = model.nodes[src], model.nodes[lif.name]
    w = effective_weights(model, src)
    e = int(rec.weight_exp)
    tz = _common_trailing_zeros(w)
    facts = {"weight_exp": e, "trailing_zero_bits": tz, "input_bits": int(rec.input.bits)}
    if not np.any(w):
        return src, None, "all weights are zero (netx's optimiser divides by the largest)", facts
    if e < 0 and tz < -e:
        return src, None, (f"weight_exp {e} (a right shift by {-e}) with weights of {tz} trailing zero bit"
                           f"{'s' if tz != 1 else ''}: netx has no weight exponent (it computes W.x exactly), so the "
                           f"floor of (W.x) >> {-e} cannot be held (convert --lif-weight-bits {9 - (-e)} or fewer "
                           "gives these weights the trailing zeros)"), facts
    file_w = w << e if e >= 0 else w >> -e
    if file_w.max(initial=0) > 254 or file_w.min(initial=0) < -256:
        return src, None, (f"weights times 2^{e} reach {int(np.abs(file_w).max())}, beyond netx's 8-bit synapse "
                           "[-256, 254]"), facts
    netx_w, nwb, wexp, mode, _ = netx_weight_bits(file_w)
    back = lava_weights(netx_w, None, nwb)[0]
    if not np.array_equal(back >> -wexp if wexp < 0 else back << wexp, file_w) or \
            (wexp < 0 and _common_trailing_zeros(back) < -wexp):
        return src, None, "netx's weight re-optimisation would change these weights", facts
    limit = rec.input.limit if rec.input.limit is not None else (1 << (int(rec.input.bits) - 1)) - 1
    worst = int(np.abs(back).sum(axis=1).max()) * int(limit)
    if worst > INT32_MAX:
        return src, None, f"netx's shifted weights could wrap int32 (worst accumulation {worst:,})", facts
    bias = int(lrec.bias_mant) << int(lrec.bias_exp) if lrec.bias_exp >= 0 else int(lrec.bias_mant) >> -lrec.bias_exp
    if bias % (1 << NETX_BIAS_EXP):
        return src, None, f"bias {bias} is not a multiple of 2^{NETX_BIAS_EXP} (netx fixes bias_exp = 6)", facts
    facts["netx_weight_bits"] = int(nwb)
    return src, file_w, "", facts


def write_netx_file(path, weights: np.ndarray, du: int, dv: int, vth: int, bias: int = 0) -> None:
    """One netx dense block (weights (n_out, n_in), a CUBA neuron) in netx's HDF5 layout, as lava-dl's
    slayer `export_hdf5` writes it."""
    import h5py

    n_out, n_in = weights.shape
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer").create_group("0")
        layer.create_dataset("type", data=np.array([b"dense"]))
        layer.create_dataset("shape", data=np.array([n_out]))
        layer.create_dataset("inFeatures", data=n_in)
        layer.create_dataset("outFeatures", data=n_out)
        layer.create_dataset("weight", data=weights.astype(np.float32))
        if bias:
            layer.create_dataset("bias", data=np.full(n_out, bias, np.float32))
        nrn = layer.create_group("neuron")
        nrn.create_dataset("type", data=b"CUBA")
        nrn.create_dataset("iDecay", data=int(du) + 1)
        nrn.create_dataset("vDecay", data=int(dv))
        nrn.create_dataset("vThMant", data=int(vth))
        nrn.create_dataset("refDelay", data=1)
        nrn.create_dataset("gradedSpike", data=False)


def record_layers(model: ConvertedModel, tokens: List[int], pairs: Dict[str, str],
                  progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """The emulator's Dense input (integer payloads) and LIF spikes of each (lif -> dense) pair, one row
    per token: {lif: {"x": (T, n_in) int64, "s": (T, n_out) int64}}."""
    from spike2loihi.execute.model_emulator import ModelEmulator

    g = model.graph
    want_in: Dict[str, str] = {}
    for lif, dense in pairs.items():
        src = g.inputs(dense)["x"]
        want_in[lif] = src if g.nodes[src].placement.where == ir.CHIP else dense + ".in"
    rows: Dict[str, Dict[str, list]] = {lif: {"x": [], "s": []} for lif in pairs}
    by_trace: Dict[str, List[Tuple[str, str]]] = {}
    for lif in pairs:
        by_trace.setdefault(want_in[lif], []).append((lif, "x"))
        by_trace.setdefault(lif, []).append((lif, "s"))

    def trace(name, value):
        for lif, var in by_trace.get(name, ()):
            rows[lif][var].append(np.asarray(value.q)[0].astype(np.int64).copy())

    emu = ModelEmulator(model, trace=trace)
    for t, tok in enumerate(tokens):
        emu.step([tok])
        if progress is not None:
            progress(t + 1, len(tokens))
    return {lif: {var: np.stack(v) for var, v in d.items()} for lif, d in rows.items()}


def layer_file_name(lif: str) -> str:
    return f"{lif}.net"

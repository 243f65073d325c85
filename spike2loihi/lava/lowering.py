"""Chip nodes -> Lava processes, one registration per op type (the `lava.chip` stage).

A handler gets the build context and one chip *unit*: a chip node, or several side-by-side
Dense layers the conversion grouped (one block-diagonal Sparse). It returns a `Lowered`:
the process, the Lava in-port for each IR input port (and `gate` for gated processes), the
out-port, helper processes, the ProcessModel to name in the run config, and whether a board
needs a neuron model of ours for it (`custom`). Lava is imported inside the handlers only,
so this registry loads (and its completeness is tested) where Lava is missing.

| op | Lava process(es) |
|---|---|
| Projection, Head | `Dense` (`DelayDense` where its output must wait for a slower path), a block-diagonal `Sparse` for a group; where its accumulation goes to the host, a readout `GradedVec` (vth 0) after it (`readout`: on a neurocore, what leaves the chip is a neuron's output) |
| LIF | `TokenLIF`, Lava's LIF with a token gate (custom on a board); with `--lif stock`, Lava's own `LIF` |
| LayerNorm | `FxpLayerNorm` (ours) |
| TokenShift | `TokenShiftCat` (ours, gated), whose [x ; prev] feeds the projections with the mixes folded in |
| Sigmoid | `FxpSigmoid` (ours) |
| WKV (`--wkv chip`) | `FxpWKV` (ours, gated) |
| Product | `ProdNeuron` (vth 0) |
| ReLU2 | `GradedReluVec` then `ProdNeuron` squaring it |
| Residual | `GradedVec` (vth 0) summing x through an identity `DelayDense` (2 I, weight_exp -1) that waits as long as the block's spikes take, and the spikes through a `Dense` of weight 2^frac |
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.convert.schedule import LIF_STOCK, edge_latency

LOWER = registry.stage("lava.chip", lambda t, mapping, where: where == ir.CHIP and not t.folds_on_chip,
                       "the Lava process of a chip op (spike2loihi.lava.lowering)")
#: Lava-free: the Lava process types a chip unit's lowering builds, by name (the process inventory reads
#: them; `tests/backends/test_loihi2_backend.py` checks them against the built graph). A handler gets
#: (model, members, delayed: its output waits in a DelayDense, to_host: its output goes to the host).
PROCESSES = registry.stage("lava.processes", lambda t, mapping, where: where == ir.CHIP and not t.folds_on_chip,
                           "the Lava process types of a chip op, by name (spike2loihi.lava.lowering)")


@PROCESSES.register(ir.Projection)
def _dense_procs(model, members, delayed: bool, to_host: bool) -> List[str]:
    kind = "Sparse" if len(members) > 1 else "DelayDense" if delayed else "Dense"
    return [kind] + (["GradedVec"] if to_host else [])   # the readout neuron


@PROCESSES.register(ir.LIF)
def _lif_procs(model, members, delayed, to_host) -> List[str]:
    return ["LIF"] if model.schedule.lif == LIF_STOCK else ["TokenLIF"]


def _always(*names: str):
    return lambda model, members, delayed, to_host: list(names)


# Op types whose lowering always builds the same processes (see the handlers below).
PROCESSES.register(ir.LayerNorm)(_always("FxpLayerNorm"))
PROCESSES.register(ir.TokenShift)(_always("TokenShiftCat"))
PROCESSES.register(ir.Sigmoid)(_always("FxpSigmoid"))
PROCESSES.register(ir.WKV)(_always("FxpWKV"))
PROCESSES.register(ir.Product)(_always("ProdNeuron"))
PROCESSES.register(ir.ReLU2)(_always("GradedReluVec", "ProdNeuron"))
# the sum, the spikes' Dense, the x path's DelayDense
PROCESSES.register(ir.Residual)(_always("GradedVec", "Dense", "DelayDense"))

@dataclass
class Lowered:
    """The Lava side of one chip unit."""

    proc: object
    ins: Dict[str, object]                      # IR input port (and "gate") -> Lava InPort
    out: object                                 # Lava OutPort
    extra: Dict[str, object] = field(default_factory=dict)   # helper processes by name
    model: Optional[type] = None                # ProcessModel to name in exception_proc_model_map
    custom: bool = False                        # needs a neuron model of ours on a board
    synaptic: bool = False                      # `out` is a synapse's accumulation (Dense/Sparse a_out): what
                                                # leaves the chip must leave through a readout neuron


@dataclass
class LowerContext:
    """What the handlers need beyond the unit: the model, the link function, the schedule and the
    waits the builder assigned (`absorbed`: steps a Dense delays its output; `lags`: waits left on
    chip->chip edges, which a residual's x path takes over)."""

    model: object
    link: Callable[[object, object], None]
    offsets: Dict[str, int]
    absorbed: Dict[str, int]
    lags: Dict[tuple, int]


def _weights(model, name: str) -> np.ndarray:
    rec = model.nodes[name]
    return (model.tensors[rec.mantissa].astype(np.int64) << rec.truncate_bits).astype(np.int32)


@LOWER.register(ir.Projection)
def _dense(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    import scipy.sparse
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode as LavaSignMode

    name = "+".join(m.name for m in members) if len(members) > 1 else members[0].name
    rec = ctx.model.nodes[members[0].name]
    kw = dict(weight_exp=rec.weight_exp, num_weight_bits=rec.num_weight_bits,
              sign_mode=LavaSignMode[rec.sign_mode], num_message_bits=rec.input.bits, name=rec.group or name)
    ws = [_weights(ctx.model, m.name) for m in members]
    delay = ctx.absorbed.get(name, 0)
    if len(ws) > 1:   # side by side: one block-diagonal Sparse (same weight_exp and input bits by conversion)
        p = Sparse(weights=scipy.sparse.block_diag(ws, format="csr", dtype=np.int32), **kw)
    elif delay:
        p = DelayDense(weights=ws[0], delays=int(delay), **kw)
    else:
        p = Dense(weights=ws[0], **kw)
    return Lowered(p, {"x": p.s_in}, p.a_out, synaptic=True)


def readout(unit: str, width: int):
    """The readout neuron of a chip unit whose accumulation leaves the chip: `GradedVec` (vth 0) forwards
    its input, every value, as a 24-bit graded spike in the same step (`v += a; s = v (|v| > 0); v = 0`).
    The one place it is made: the graph builder (accumulations bound for host ops) and the board graph
    (accumulations bound for a LIF placed on the host) both call it."""
    from lava.proc.graded.process import GradedVec

    p = GradedVec(shape=(int(width),), vth=0)
    p.name = f"{unit}{READOUT_SUFFIX}"   # (GradedVec takes no name argument)
    return p


READOUT_SUFFIX = ".readout"


@LOWER.register(ir.LIF)
def _lif(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from spike2loihi.lava.procs.processes import PyTokenLifModel, TokenLIF

    n = members[0]
    rec = ctx.model.nodes[n.name]
    if ctx.model.schedule.lif == LIF_STOCK:   # Lava's own LIF: leaks every step, no gate
        from lava.proc.lif.process import LIF

        p = LIF(shape=(n.dim,), du=rec.du, dv=rec.dv, vth=rec.vth, bias_mant=rec.bias_mant, bias_exp=rec.bias_exp,
                name=n.name)
        return Lowered(p, {"x": p.a_in}, p.s_out)
    p = TokenLIF(shape=(n.dim,), du=rec.du, dv=rec.dv, vth=rec.vth, bias_mant=rec.bias_mant, bias_exp=rec.bias_exp,
                 name=n.name)
    return Lowered(p, {"x": p.a_in, "gate": p.gate}, p.s_out, model=PyTokenLifModel, custom=True)


@LOWER.register(ir.LayerNorm)
def _layernorm(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from spike2loihi.lava.procs.onchip import FxpLayerNorm

    n = members[0]
    rec = ctx.model.nodes[n.name]
    p = FxpLayerNorm((n.dim,), rec.datapath(), ctx.model.tensors[rec.gamma_q], ctx.model.tensors[rec.beta_q],
                     name=n.name)
    return Lowered(p, {"x": p.a_in}, p.s_out, custom=True)


@LOWER.register(ir.TokenShift)
def _token_shift(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from spike2loihi.lava.procs.onchip import TokenShiftCat

    n = members[0]
    p = TokenShiftCat((n.dim,), name=n.name)
    return Lowered(p, {"x": p.a_in, "gate": p.gate}, p.s_out, custom=True)


@LOWER.register(ir.Sigmoid)
def _sigmoid(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from spike2loihi.lava.procs.onchip import FxpSigmoid

    n = members[0]
    p = FxpSigmoid(n.dim, 0, n.dim, ctx.model.nodes[n.name].in_frac, name=n.name)
    return Lowered(p, {"x": p.a_in}, p.s_out, custom=True)


@LOWER.register(ir.WKV)
def _wkv(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from spike2loihi.lava.procs.onchip import FxpWKV

    n = members[0]
    rec = ctx.model.nodes[n.name]
    p = FxpWKV((n.dim,), rec.datapath(), ctx.model.tensors[rec.u_q], ctx.model.tensors[rec.w_q], name=n.name)
    return Lowered(p, {"k": p.k_in, "v": p.v_in, "gate": p.gate}, p.s_out, custom=True)


@LOWER.register(ir.Product)
def _product(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from lava.proc.prodneuron.process import ProdNeuron

    n = members[0]
    p = ProdNeuron(shape=(n.dim,), vth=0, exp=ctx.model.nodes[n.name].exp)
    return Lowered(p, {"a": p.a_in1, "b": p.a_in2}, p.s_out)


@LOWER.register(ir.ReLU2)
def _relu2(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from lava.proc.graded.process import GradedReluVec
    from lava.proc.prodneuron.process import ProdNeuron

    n = members[0]
    relu = GradedReluVec(shape=(n.dim,), vth=0)
    p = ProdNeuron(shape=(n.dim,), vth=0, exp=ctx.model.nodes[n.name].exp)
    ctx.link(relu.s_out, p.a_in1)
    ctx.link(relu.s_out, p.a_in2)
    return Lowered(p, {"x": relu.a_in}, p.s_out, extra={n.name + ".relu": relu})


def spike_weight(name: str, weight: int) -> tuple:
    """(Dense weight, weight_exp) for a spike entering the residual with weight 2^f: 2^m << (f - m),
    m = min(7, f) (MIXED 8-bit weights are even and at most 254)."""
    f = int(weight).bit_length() - 1
    if weight != 1 << f or not 1 <= f <= 14:
        raise ValueError(f"{name}: spike weight {weight} is not 2^1 .. 2^14 (Dense weight 2^7 << weight_exp 7)")
    m = min(7, f)
    return 1 << m, f - m


@LOWER.register(ir.Residual)
def _residual(ctx: LowerContext, members: List[ir.Op]) -> Lowered:
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.graded.process import GradedVec
    from lava.utils.weightutils import SignMode as LavaSignMode

    n = members[0]
    g = ctx.model.graph
    p = GradedVec(shape=(n.dim,), vth=0)
    w, wexp = spike_weight(n.name, ctx.model.nodes[n.name].spike_weight)
    eye = np.eye(n.dim, dtype=np.int32)
    spk = Dense(weights=w * eye, weight_exp=wexp, num_weight_bits=8, sign_mode=LavaSignMode.MIXED,
                num_message_bits=0)
    x_src = g.inputs(n.name)["x"]
    lag = ctx.offsets[n.name] - ctx.offsets[x_src] - edge_latency(g.nodes[x_src], n)
    if lag < 1:
        raise ValueError(f"{n.name}: x arrives {lag} steps early; the x path needs at least one step")
    xd = DelayDense(weights=2 * eye, delays=lag - 1, weight_exp=-1, num_weight_bits=8, sign_mode=LavaSignMode.MIXED,
                    num_message_bits=24)
    ctx.lags.pop((x_src, n.name, "x"), None)
    ctx.link(spk.a_out, p.a_in)
    ctx.link(xd.a_out, p.a_in)
    return Lowered(p, {"s": spk.s_in, "x": xd.s_in}, p.s_out, extra={n.name + ".spikes": spk, n.name + ".x": xd})

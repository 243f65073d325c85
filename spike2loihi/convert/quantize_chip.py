"""`--placement chip`: fixed-point formats for the ops that move onto the chip (ONCHIP.md).

Every on-chip value stream is an integer on a power-of-two grid (`frac`), fixed
at conversion from calibration maxima with a safety margin, so that every
rescaling is a shift (Dense `weight_exp`, ProdNeuron `exp`). The arithmetic is
`spike2loihi.execute.onchip_ops`; this module picks its parameters:

* **LayerNorm** (16-bit output, fewer where a consumer's int32 accumulator could
  wrap): `onchip_ops.ln_params` from max |x|, the largest per-token sum of
  squared deviations, and max |LN(x)|.
* **Token shift and mixes**: the mix is folded into the next projection, whose
  weights become `[W diag(m) | W diag(1-m)]` over `[x ; x delayed]`.
* **Projections** feeding a host op (att key/value, head) keep per-row weight
  steps and 24-bit outputs, dequantised on the host as in the host placement.
  Projections feeding a chip op (receptances, ffn key, ffn value) use one
  power-of-two weight step, so that their output lands on a power-of-two grid
  after Lava's `weight_exp` shift.
* **Sigmoid** input on a 2^-17 grid at most; output 2^-15.
* **Products and relu²**: `exp` from the grids of their inputs and output;
  the product of two 16-bit values stays inside ProdNeuron's int32.
* **LIFs**: the att LIF as in the host placement with a power-of-two input step;
  the ffn LIF takes the gate product directly, on the grid v_scale = 2^(frac+7),
  vth = 2^(frac+1) (spike where v > 1).
* **Residual**: the stream keeps the grid of the first LayerNorm's output;
  halving adds one to its frac.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List

import numpy as np

from spike2loihi import registry
from spike2loihi.convert import ir
from spike2loihi.convert.fixed_point import (INT32_MAX, MAX_MESSAGE_BITS, WEIGHT_EXP_MIN, SignMode, lif_decays,
                                             payload_shift, quantize_rows, sqnr_db, truncate_bits,
                                             worst_row_accumulation)
from spike2loihi.convert.quantize_host import lif_bound, naming
from spike2loihi.convert.records import (CHIP_GRID, STATIC, DenseParams, Encoding, GridParams, LayerNormParams,
                                         LifParams, ProductParams, ResidualParams, SigmoidParams, WkvParams,
                                         out_frac)
from spike2loihi.execute import onchip_ops as oc

MARGIN = 2.0          # static scales: headroom over the calibrated maximum
LN_OUT_BITS = 16
CHIP_OUT_BITS = 16    # projections into products and relu²
WEIGHT_EXP_MAX = 7
#: A spike enters the residual through a Dense of weight 2^frac = 2^7 << weight_exp (<= 7): frac <= 14.
SPIKE_WEIGHT_MAX_BITS = 14
#: The WKV's exponent register holds this many times the calibrated |k + u| (unseen text went 5 past k's
#: calibrated maximum in ONCHIP.md's study); its fraction bits lie in oc.WKV_E_FRAC_MIN..MAX.
WKV_K_MARGIN = 4.0


# ---------------------------------------------------------------------------
# Calibration: the float model op by op, maxima per IR node
# ---------------------------------------------------------------------------
def float_maxima(graph: ir.Graph, tensors: Dict[str, np.ndarray], floats: Dict[str, np.ndarray],
                 tokens: List[int]) -> Dict[str, dict]:
    """Run the IR in float32 over `tokens` (every op through its `execute.float` handler: the host's
    float arithmetic, float matmuls, float LIFs); per node: max |output|, max |input| and the largest
    per-token sum((x - mean)^2) of its input (what a LayerNorm's datapath needs)."""
    from spike2loihi.execute import handlers as H

    fgraph = ir.with_placement(graph, ir.HOST)   # the float handlers and their float state
    P = H.Params.float_only(fgraph, tensors, floats)
    nodes = [n for n in fgraph.nodes.values() if n.per_token]
    inputs = {n.name: fgraph.inputs(n.name) for n in nodes}
    state = {n.name: H.init_state(P, n, 1) or {} for n in nodes}
    out: Dict[str, dict] = {n.name: {"max": 0.0} for n in nodes}
    for tok in tokens:
        vals: Dict[str, np.ndarray] = {}
        for n in nodes:
            ins = {p: vals[s] for p, s in inputs[n.name].items()}
            rec = out[n.name]
            if "token" in n.ports:
                ins["token"] = np.array([tok])
            elif "x" in ins:
                x = ins["x"]
                d = x - x.mean(axis=-1, keepdims=True)
                rec["in_max"] = max(rec.get("in_max", 0.0), float(np.abs(x).max()))
                rec["var_max"] = max(rec.get("var_max", 0.0), float((d.astype(np.float64) ** 2).sum()))
            y = H.FLOAT.lookup(n)(P, n, ins, state[n.name])
            vals[n.name] = y
            m = float(np.abs(y).max())
            if not math.isfinite(m):
                raise ValueError(f"calibration: {n.name} is not finite in the float model")
            rec["max"] = max(rec["max"], m)
    return out


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------
def fold_mix(W: np.ndarray, m: np.ndarray) -> np.ndarray:
    """[W diag(m) | W diag(1 - m)]: the projection of mix(x, prev) as one matrix over [x ; prev]."""
    m = np.asarray(m, np.float32).reshape(-1)
    return np.concatenate([W * m[None, :], W * (np.float32(1) - m)[None, :]], axis=1)


def pow2_weights(W: np.ndarray, bits: int):
    """(mantissa int8, e_w, sqnr dB): W ~ mantissa * 2**e_w, |mantissa| <= 2**(bits-1) - 1."""
    top = (1 << (bits - 1)) - 1
    wmax = float(np.abs(W).max()) if W.size else 0.0
    e_w = math.ceil(math.log2(wmax / top)) if wmax > 0 else 0
    m = np.clip(np.rint(np.asarray(W, np.float64) / 2.0 ** e_w), -top, top)
    return m.astype(np.int8), int(e_w), sqnr_db(np.asarray(W, np.float64), m * 2.0 ** e_w)


# ---------------------------------------------------------------------------
# The conversion
# ---------------------------------------------------------------------------
QUANTIZE_CHIP = registry.stage("quantize.chip", lambda t, mapping, where: ir.on_chip(mapping) and where == ir.CHIP,
                               "integer formats of the on-chip placement (spike2loihi.convert.quantize_chip)")


class ChipQuantizer:
    """Chooses every chip node's record for `--placement chip`: the projections' weights first
    (their inputs' formats depend on them), then each chip node's `quantize.chip` handler in
    graph order."""

    def __init__(self, graph: ir.Graph, maxima: Dict[str, dict], floats: Dict[str, np.ndarray],
                 tensors: Dict[str, np.ndarray], opts, out: Dict[str, np.ndarray]):
        """`tensors`: the float parameters it reads; `out`: the artifact's tensors, where it writes."""
        self.g, self.mx, self.floats, self.tensors, self.opts = graph, maxima, floats, tensors, opts
        self.out = out
        self.nodes: Dict[str, object] = {}  # node -> record
        self.recs: Dict[str, dict] = {}     # node -> report fields
        self.fmt: Dict[str, tuple] = {}     # node -> (frac, bits) of its integer output
        self.k = truncate_bits(SignMode.MIXED, opts.weight_bits)

    # -- helpers --------------------------------------------------------------
    def consumers(self, name: str) -> List[ir.Op]:
        return [self.g.nodes[e.dst] for e in self.g.consumers(name)]

    def src(self, name: str, port: str = "x") -> ir.Op:
        return self.g.nodes[self.g.inputs(name)[port]]

    def input_scale(self, p: ir.Projection) -> float:
        """The factor a chip consumer wants its output multiplied by (the consumer op's `chip_input_scale`)."""
        e = self.g.consumers(p.name)[0]
        dst = self.g.nodes[e.dst]
        return float(type(dst).chip_input_scale.get(e.port, 1.0)) if dst.placement.where == ir.CHIP else 1.0

    def matrix(self, p: ir.Projection) -> np.ndarray:
        W = np.asarray(self.floats[p.name], np.float32)
        scale = self.input_scale(p)
        if scale != 1.0:
            W = W * np.float32(scale)
        s = self.src(p.name)
        return fold_mix(W, self.tensors[s.mix]) if s.folds_on_chip else W

    def proj_consumer(self, p: ir.Op) -> ir.Op:
        return self.consumers(p.name)[0]

    def projections_fed_by(self, name: str) -> List[ir.Projection]:
        """The Dense layers reading `name`'s values, directly or through grid pass-throughs (the
        token shift and the folded mixes)."""
        out, todo, seen = {}, list(self.consumers(name)), set()
        while todo:
            c = todo.pop(0)
            if c.name in seen:
                continue
            seen.add(c.name)
            if c.dense:
                out[c.name] = c
            elif QUANTIZE_CHIP.find(type(c)) is _passthrough:
                todo += self.consumers(c.name)
        return list(out.values())

    # -- per-projection weights, decided before their inputs' formats --------
    def prepare_weights(self) -> None:
        self.w: Dict[str, dict] = {}
        for p in self.g.nodes.values():
            if not p.dense:
                continue
            cons = self.proj_consumer(p)
            W = self.matrix(p)
            if cons.spiking:
                self.w[p.name] = {"kind": "lif"}
            elif cons.placement.where == ir.HOST:
                rq = quantize_rows(W, self.opts.weight_bits)
                self.w[p.name] = {"kind": "rows", "rq": rq}
            else:
                m, e_w, sq = pow2_weights(W, self.opts.weight_bits)
                if isinstance(cons, ir.Sigmoid):   # the table wants a fine input grid
                    f_o = min(oc.SIG_MAX_IN_FRAC, oc.frac_for(self.mx[p.name]["max"], MAX_MESSAGE_BITS, MARGIN * 2))
                else:
                    f_o = oc.frac_for(self.mx[p.name]["max"] * self.input_scale(p), CHIP_OUT_BITS, MARGIN)
                self.w[p.name] = {"kind": "pow2", "m": m, "e_w": e_w, "sqnr": sq, "f_o": f_o}

    def input_limit(self, consumers: List[ir.Projection], bits: int) -> int:
        """The most bits (<= `bits`) an input may have so that no consumer's int32 accumulator wraps."""
        while bits > 2:
            top = (1 << (bits - 1)) - 1
            worst = 0
            for p in consumers:
                w = self.w[p.name]
                mant = w["rq"].mantissa if w["kind"] == "rows" else w.get("m")
                if mant is not None:
                    worst = max(worst, worst_row_accumulation(mant, self.k, top))
            if worst <= INT32_MAX:
                return bits
            bits -= 1
        raise ValueError(f"{consumers[0].name}: even 2-bit inputs can overflow Lava's int32 accumulator")

    def frac_cap(self, consumers: List[ir.Projection]) -> int:
        """Largest input frac for which every pow2 consumer's shift stays >= -8 ... <= 8 (weight_exp)."""
        cap = 40
        for p in consumers:
            w = self.w[p.name]
            if w["kind"] == "pow2":
                cap = min(cap, -WEIGHT_EXP_MIN + w["f_o"] + w["e_w"] - self.k)
        return cap

    def kk_bits(self, relu: ir.ReLU2) -> tuple:
        val = [c for c in self.consumers(relu.name) if c.dense]
        bits = self.input_limit(val, CHIP_OUT_BITS)
        f = min(oc.frac_for(self.mx[relu.name]["max"], bits, MARGIN), self.frac_cap(val))
        return f, bits

    def embedding_to_chip(self, ln0: ir.LayerNorm, emb: ir.Embedding) -> Encoding:
        table = self.tensors[emb.weight]
        m = 1.0 if emb.binary else float(np.abs(table).max())
        f = oc.frac_for(m, 16)
        self.fmt[emb.name] = (f, 16)
        # ln0's input is the embedding table: its maxima are known exactly
        x = (table >= 0).astype(np.float64) if emb.binary else table.astype(np.float64)
        d = x - x.mean(axis=1, keepdims=True)
        self.mx[ln0.name] = {**self.mx[ln0.name], "in_max": m, "var_max": float((d ** 2).sum(axis=1).max())}
        return Encoding(STATIC, 16, inv_scale=float(2.0 ** f), limit=(1 << 15) - 1, frac=f)

    def run(self) -> None:
        self.prepare_weights()
        for n in self.g.nodes.values():
            if n.placement.where == ir.CHIP:
                with naming(n.name):
                    QUANTIZE_CHIP.lookup(n)(self, n)
        for n in self.g.nodes.values():
            if n.placement.where == ir.CHIP and n.name not in self.nodes:
                raise ValueError(f"{n.name}: the chip quantizer chose no parameters for it")


# ---------------------------------------------------------------------------
# Per op type
# ---------------------------------------------------------------------------
@QUANTIZE_CHIP.register(ir.LayerNorm)
def _layernorm(Q: ChipQuantizer, n: ir.LayerNorm) -> None:
    src = Q.src(n.name)
    enc = Q.embedding_to_chip(n, src) if src.placement.where == ir.HOST else None
    f_in, _ = Q.fmt[src.name]
    C = n.dim
    cons = Q.projections_fed_by(n.name)
    bits = Q.input_limit(cons, LN_OUT_BITS) if cons else LN_OUT_BITS
    mx = Q.mx[n.name]
    in_max = mx["in_max"]
    gamma, beta = Q.tensors[n.weight], Q.tensors[n.bias]
    p, gq, bq = oc.ln_params(C, f_in, in_max, mx["var_max"], gamma, beta, mx["max"], bits, MARGIN)
    cap = Q.frac_cap(cons)
    if any(isinstance(c, ir.Residual) for c in Q.consumers(n.name)):   # the residual stream starts here
        cap = min(cap, SPIKE_WEIGHT_MAX_BITS - sum(r.halve for r in Q.g.of_type(ir.Residual)))
    if p["out_frac"] > cap:   # a consumer's weight_exp would leave Lava's range: a coarser grid
        p, gq, bq = oc.ln_params(C, f_in, in_max, mx["var_max"], gamma, beta,
                                 mx["max"] * 2.0 ** (p["out_frac"] - cap), bits, MARGIN)
    Q.out[f"{n.name}.gamma_q"] = gq.astype(np.int32)
    Q.out[f"{n.name}.beta_q"] = bq.astype(np.int32)
    Q.nodes[n.name] = LayerNormParams(**p, gamma_q=f"{n.name}.gamma_q", beta_q=f"{n.name}.beta_q", input=enc)
    Q.fmt[n.name] = (p["out_frac"], bits)
    Q.recs[n.name] = dict(act_bits=bits, act_encoding=f"2^-{p['out_frac']}", out_shift=p["s4"])


@QUANTIZE_CHIP.register(ir.TokenShift, ir.Mix)
def _passthrough(Q: ChipQuantizer, n: ir.Op) -> None:
    """A delay or a folded mix: the values keep their producer's grid."""
    Q.fmt[n.name] = Q.fmt[Q.src(n.name).name]
    Q.nodes[n.name] = GridParams(frac=Q.fmt[n.name][0])


@QUANTIZE_CHIP.register(ir.Projection)
def _projection(Q: ChipQuantizer, n: ir.Projection) -> None:
    w = Q.w[n.name]
    if w["kind"] == "lif":
        return   # Dense -> LIF: chosen with its input's product (`_product`)
    f_in, bits = Q.fmt[Q.src(n.name).name]
    top = (1 << (bits - 1)) - 1
    base = dict(truncate_bits=Q.k, num_weight_bits=Q.opts.weight_bits, sign_mode=SignMode.MIXED.name,
                input=Encoding(CHIP_GRID, bits, limit=top, frac=f_in), in_step=float(2.0 ** -f_in),
                folded_mix=bool(Q.src(n.name).folds_on_chip), mantissa=f"{n.name}.mantissa")
    if w["kind"] == "rows":
        rq = w["rq"]
        worst = worst_row_accumulation(rq.mantissa, Q.k, top)
        d = payload_shift(worst, MAX_MESSAGE_BITS)
        Q.out[f"{n.name}.mantissa"] = rq.mantissa.astype(np.int8)
        Q.out[f"{n.name}.row_scale"] = (rq.step * 2.0 ** (d - Q.k)).astype(np.float32)
        Q.nodes[n.name] = DenseParams(**base, weight_exp=-d, row_scale=f"{n.name}.row_scale",
                                      output_bits=MAX_MESSAGE_BITS)
        sq = rq.sqnr_db
    else:
        d = f_in + Q.k - w["e_w"] - w["f_o"]
        d = max(-WEIGHT_EXP_MAX, min(-WEIGHT_EXP_MIN, d))
        f_o = f_in + Q.k - w["e_w"] - d
        worst = worst_row_accumulation(w["m"], Q.k, top)
        Q.out[f"{n.name}.mantissa"] = w["m"]
        Q.nodes[n.name] = DenseParams(**base, weight_exp=-d, out_frac=int(f_o), weight_step=float(2.0 ** w["e_w"]))
        Q.fmt[n.name] = (int(f_o), CHIP_OUT_BITS)
        sq = w["sqnr"]
    Q.recs[n.name] = dict(weight_bits=Q.opts.weight_bits, weight_exp=-d, weight_sqnr_db=sq,
                          weight_clipped_pct=0.0, act_encoding=f"2^-{f_in}", act_bits=bits,
                          acc_worst_bits=math.log2(max(worst, 1)),
                          acc_headroom_bits=31 - math.log2(max(worst, 1)), out_shift=d,
                          out_limit_bits=math.log2((1 << (MAX_MESSAGE_BITS - 1)) - 1))


@QUANTIZE_CHIP.register(ir.ReLU2)
def _relu2(Q: ChipQuantizer, n: ir.ReLU2) -> None:
    f_k, _ = Q.fmt[Q.src(n.name).name]
    f, bits = Q.kk_bits(n)
    f = min(f, 2 * f_k)
    Q.nodes[n.name] = ProductParams(exp=2 * f_k - f, out_frac=f, out_bits=bits)
    Q.fmt[n.name] = (f, bits)
    Q.recs[n.name] = dict(act_bits=bits, act_encoding=f"2^-{f}", out_shift=2 * f_k - f)


@QUANTIZE_CHIP.register(ir.Sigmoid)
def _sigmoid(Q: ChipQuantizer, n: ir.Sigmoid) -> None:
    f_in, _ = Q.fmt[Q.src(n.name).name]
    Q.nodes[n.name] = SigmoidParams(in_frac=f_in, out_frac=oc.SIG_OUT_FRAC)
    Q.fmt[n.name] = (oc.SIG_OUT_FRAC, oc.SIG_OUT_FRAC + 2)
    Q.recs[n.name] = dict(act_bits=oc.SIG_OUT_FRAC + 1, act_encoding=f"2^-{oc.SIG_OUT_FRAC}")


@QUANTIZE_CHIP.register(ir.Product)
def _product(Q: ChipQuantizer, n: ir.Product) -> None:
    """The product's output grid is its consumer's input grid: Wo (and the att LIF) or the ffn LIF."""
    a, b = Q.src(n.name, "a"), Q.src(n.name, "b")
    fa = Q.fmt[a.name][0]
    enc = None
    if b.placement.where == ir.HOST:   # wkv from the host: a static 16-bit encoding
        fb = oc.frac_for(Q.mx[b.name]["max"], 16, MARGIN)
        enc = Encoding(STATIC, 16, inv_scale=float(2.0 ** fb), limit=(1 << 15) - 1, frac=fb)
    else:
        fb = Q.fmt[b.name][0]
    out = Q.consumers(n.name)[0]
    if out.dense:                      # Wo -> att LIF
        W = np.asarray(Q.floats[out.name], np.float64)
        q, rec, lif_q = lif_bound(out.name, W, Q.mx[n.name]["max"], Q.opts.for_lif_dense(), Q.out, pow2=True)
        f = int(round(-math.log2(1.0 / q.input.inv_scale)))
        q = dataclasses.replace(q, input=dataclasses.replace(q.input, encoding=CHIP_GRID, frac=f),
                                in_step=float(2.0 ** -f))
        Q.nodes[out.name], Q.nodes[Q.consumers(out.name)[0].name] = q, lif_q
        Q.recs[out.name] = rec
    else:                              # ffn gate -> ffn LIF
        f = min(oc.frac_for(Q.mx[n.name]["max"], 17, MARGIN), 15)
        lif = Q.consumers(n.name)[0]
        lp = lif_decays(tau_v=lif.tau)     # a = x 2^f, u = a << 6, v' = v/2 + u: v = v_float 2^(f+7)
        Q.nodes[lif.name] = LifParams(du=lp.du, dv=lp.dv, vth=1 << (f + 1), v_scale=2.0 ** (f + 7), in_frac=f)
    exp = fa + fb - f
    if exp < 0:
        raise ValueError(f"{n.name}: product grids 2^-{fa} x 2^-{fb} cannot reach 2^-{f} with a right shift")
    Q.nodes[n.name] = ProductParams(exp=int(exp), out_frac=int(f), input=enc)
    Q.fmt[n.name] = (int(f), 17)
    Q.recs[n.name] = dict(act_bits=16, act_encoding=f"2^-{f}", out_shift=int(exp))


@QUANTIZE_CHIP.register(ir.WKV)
def _wkv(Q: ChipQuantizer, n: ir.WKV) -> None:
    """The integer WKV's grids: k and v keep their Dense's grids; the exponent register's frac is the
    finest whose 24 bits hold WKV_K_MARGIN times the calibrated |k + u| (k * log2 e), the state's 24
    bits above it and the clamped decay."""
    f_k, f_v = Q.fmt[Q.src(n.name, "k").name][0], Q.fmt[Q.src(n.name, "v").name][0]
    l2e = 1.0 / math.log(2.0)
    u = np.asarray(Q.tensors[n.time_first], np.float64).reshape(-1) * l2e
    w = -np.exp(np.asarray(Q.tensors[n.time_decay], np.float64).reshape(-1)) * l2e
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(w))):
        raise ValueError(f"{n.name}: time_first or time_decay is not finite")
    kmax = Q.mx[Q.src(n.name, "k").name]["max"] * l2e
    span = WKV_K_MARGIN * (kmax + float(np.abs(u).max()))
    # a decay beyond this leaves nothing of the state (2^-24 of a fresh term at most): clamping it is exact
    w_clamp = 2 * span + 2 * oc.WKV_STATE_BITS + 1
    wc = np.maximum(w, -w_clamp)
    need = span + oc.WKV_STATE_BITS + float(np.abs(wc).max()) + 2
    e_frac = min(oc.WKV_E_FRAC_MAX, oc.WKV_E_BITS - 1 - math.ceil(math.log2(need)))
    if e_frac < oc.WKV_E_FRAC_MIN:
        raise ValueError(f"{n.name}: exponents up to {need:.0f} (k * log2 e up to {kmax:.1f}, time_first up to "
                         f"{np.abs(u).max():.1f}) leave {e_frac} fraction bits in the 24-bit exponent register "
                         f"(at least {oc.WKV_E_FRAC_MIN} needed)")
    Q.out[f"{n.name}.u_q"] = np.rint(u * 2.0 ** e_frac).astype(np.int32)
    Q.out[f"{n.name}.w_q"] = np.rint(wc * 2.0 ** e_frac).astype(np.int32)
    Q.nodes[n.name] = WkvParams(k_frac=int(f_k), v_frac=int(f_v), e_frac=int(e_frac), u_q=f"{n.name}.u_q",
                                w_q=f"{n.name}.w_q", w_clamp=float(w_clamp))
    Q.fmt[n.name] = (int(f_v), oc.WKV_V_BITS)
    Q.recs[n.name] = dict(act_bits=oc.WKV_V_BITS, act_encoding=f"2^-{f_v}", exp_frac=int(e_frac),
                          exp_limit=float(2.0 ** (oc.WKV_E_BITS - 1 - e_frac)),
                          decay_clamped=int(np.count_nonzero(w < -w_clamp)))


@QUANTIZE_CHIP.register(ir.LIF)
def _lif(Q: ChipQuantizer, n: ir.LIF) -> None:
    """Chosen with its input (`_product`: the Dense -> LIF pair, or the gate product)."""
    if n.name not in Q.nodes:
        raise ValueError(f"{n.name}: its input chose no LIF parameters")


@QUANTIZE_CHIP.register(ir.Residual)
def _residual(Q: ChipQuantizer, n: ir.Residual) -> None:
    f, _ = Q.fmt[Q.src(n.name).name]
    Q.nodes[n.name] = ResidualParams(spike_weight=1 << f, in_frac=f, out_frac=f + int(n.halve))
    Q.fmt[n.name] = (f + int(n.halve), oc.STATE_BITS)
    Q.recs[n.name] = dict(act_bits=oc.STATE_BITS, act_encoding=f"2^-{f + int(n.halve)}")


def op_errors(model, tokens: List[int], ftens: Dict[str, np.ndarray], params=None) -> Dict[str, float]:
    """Per on-chip fixed-point op (not a Dense, a LIF, a delay or a folded mix): max |integer result -
    float op on the same (decoded) inputs| over `tokens`, as a percentage of max |float op| (the op's
    own error, not the model's drift). A stateful op (the WKV) runs its float op with a float state
    fed the same decoded inputs. `params`: the emulator's prepared kernels, when shared."""
    from spike2loihi.execute import handlers as H
    from spike2loihi.execute.model_emulator import ModelEmulator

    g, vals = model.graph, {}
    P = H.Params.float_only(g, ftens)          # the float op of each node
    ex = ModelEmulator(model, trace=lambda name, v: vals.__setitem__(name, v), params=params)
    worst: Dict[str, List[float]] = {}
    ops = [n for n in g.nodes.values() if n.placement.where == ir.CHIP and n.host_cost
           and not (n.dense or n.spiking or n.folds_on_chip)]   # (host_cost: the ops with arithmetic)
    fstate = {n.name: H.init_state(P, dataclasses.replace(n, placement=type(n).mapping[ir.HOST]), 1) for n in ops}
    for tok in tokens:
        vals.clear()
        ex.step([int(tok)])
        for n in ops:
            ins = {}
            for port, src in g.inputs(n.name).items():
                s = g.nodes[src]
                if s.placement.where == ir.HOST:
                    ins[port] = vals[n.name + ".in"].q / 2.0 ** model.nodes[n.name].input.frac
                elif s.spiking:
                    ins[port] = vals[src].q.astype(np.float64)
                else:
                    ins[port] = vals[src].q / 2.0 ** out_frac(model.nodes[src])
                ins[port] = ins[port] / type(n).chip_input_scale.get(port, 1.0)   # (n is on the chip)
            got = vals[n.name].q / 2.0 ** out_frac(model.nodes[n.name])
            want = H.FLOAT.lookup(n)(P, n, {k: v.astype(np.float32) for k, v in ins.items()}, fstate[n.name])
            w = worst.setdefault(n.name, [0.0, 0.0])
            w[0] = max(w[0], float(np.max(np.abs(got - want))))
            w[1] = max(w[1], float(np.max(np.abs(want))))
    return {k: 100.0 * e / m if m > 0 else 0.0 for k, (e, m) in worst.items()}

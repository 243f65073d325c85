"""`--placement chip --wkv chip`: the WKV as integer ops on the chip (execute.onchip_ops.wkv_step): its
table, reciprocal and recurrence against float, its widths, long runs where the state grows, decays and
bonuses that push the exponent range, and converted models (round trips, report, bits per character)."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import DEMO, DEMO_CKPT, ROOT, convert_spec, spiking_state_dict
from converters.spikegpt import spec_from_state_dict
from spike2loihi.backends.emulator import EmulatorBackend
from spike2loihi.cli.app import main
from spike2loihi.convert import artifact, ir
from spike2loihi.execute import host_ops, onchip_ops as oc
from spike2loihi.model.reference import ReferenceModel
from spike2loihi.model.spec import ModelConfig, Semantics
from spike2loihi.reports import evaluate

L2E = 1.0 / math.log(2.0)


# ---------------------------------------------------------------------------
# The integer arithmetic
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("frac", [3, 8, 16])
def test_exp2_table_tracks_two_to_the_minus_x(frac):
    m = np.arange(0, 6 << frac)
    got = oc.exp2_neg(m, frac)
    want = 2.0 ** 15 * 2.0 ** (-m / 2.0 ** frac)
    assert np.all(np.diff(got) <= 0)                                        # monotone
    big = want >= 2 ** 12
    assert np.max(np.abs(want - got)[big] / want[big]) < 4e-4              # interpolated 32-segment table
    assert oc.exp2_neg(np.array([40 << frac]), frac)[0] == 0


def test_newton_reciprocal_and_division():
    dn = np.arange(1 << 15, 1 << 16)
    r = oc.reciprocal(dn)
    assert np.max(np.abs(r - 2.0 ** 29 / dn) / (2.0 ** 29 / dn)) < 2e-4
    assert np.all(dn * r < 2 ** 30)                                         # the int32 product
    rng = np.random.default_rng(0)
    d = rng.integers(1, 1 << 24, 5000)
    n = (rng.uniform(-1, 1, 5000) * d).astype(np.int64)
    q = oc.divide(n, d)
    assert np.max(np.abs(q - n / d * 2 ** 15)) <= 3 + 2 ** 15 * 2e-4


def _run(k, v, u, w, e_frac=14, k_frac=12, v_frac=12):
    """The integer WKV and the float WKV over (T, C) float k, v; returns (int out, float out, counts, E)."""
    T, C = k.shape
    p = {"e_frac": e_frac, "k_frac": k_frac, "v_frac": v_frac}
    uq, wq = np.rint(u * L2E * 2 ** e_frac).astype(np.int64), np.rint(w * L2E * 2 ** e_frac).astype(np.int64)
    a, b, e = oc.wkv_init(1, C)
    aa, bb, pp = np.zeros(C), np.zeros(C), np.full(C, host_ops.PP_INIT)
    counts, got, want, es = {}, [], [], []

    def count(key, n):
        counts[key] = counts.get(key, 0) + n

    for t in range(T):
        kq = np.rint(k[t] * L2E * 2 ** k_frac).astype(np.int64)[None]
        vq = np.rint(v[t] * 2 ** v_frac).astype(np.int64)[None]
        o, a, b, e = oc.wkv_step(kq, vq, a, b, e, p, uq, wq, count)
        assert np.all(np.abs(a) < 2 ** 23) and np.all((0 <= b) & (b < oc.WKV_B_BOUND))   # 24-bit state
        assert np.all(np.abs(e) < 2 ** 23)
        of, aa, bb, pp = host_ops.wkv(k[t], v[t], aa, bb, pp, u, w)
        got.append(o[0] / 2 ** v_frac)
        want.append(of)
        es.append(e[0] / 2 ** e_frac)
    return np.array(got), np.array(want), counts, np.array(es)


def test_integer_wkv_tracks_float_over_a_long_run():
    """4,000 tokens, decays from 2^-0.0036 (memory of ~400 tokens: the state grows and renormalises) to
    2^-6 per token: every output within 1% of v's range of the float WKV, nothing saturates."""
    rng = np.random.default_rng(1)
    T, C = 4000, 48
    k = 2.0 * rng.standard_normal((T, C)) + np.linspace(-3, 3, C)
    v = rng.standard_normal((T, C))
    u = rng.standard_normal(C)
    w = -np.exp(np.linspace(-6, 1.5, C))
    got, want, counts, es = _run(k, v, u, w)
    assert np.max(np.abs(got - want)) < 0.01 * np.abs(v).max()
    assert np.mean(np.abs(got - want)) < 5e-4
    assert counts["wkv_renorm"] > 0
    assert sum(counts[key] for key in ("wkv_v_sat", "wkv_k_sat", "wkv_out_sat", "wkv_a_sat")) == 0
    assert es.max() < 2 ** (23 - 14)        # the exponent stayed inside its register


@pytest.mark.parametrize("case", ["fast decay", "no decay", "big bonus", "keys far beyond calibration"])
def test_exponent_range_cases(case):
    rng = np.random.default_rng(2)
    T, C = 600, 16
    k = rng.standard_normal((T, C))
    v = rng.standard_normal((T, C))
    u = 0.5 * rng.standard_normal(C)
    w = -np.exp(rng.uniform(-3, 0, C))
    if case == "fast decay":        # decays of 2^-30 .. 2^-60 per token: the state is gone by the next token
        w = -np.exp(np.linspace(3, 3.7, C))
    elif case == "no decay":        # time_decay -12: decay 1 - 6e-6, the state sums every token
        w = -np.exp(np.full(C, -12.0))
    elif case == "big bonus":       # time_first up to 12: the current token outweighs the state by e^12
        u = np.linspace(-12, 12, C)
    else:                           # k 6x wider than a model calibrated at |k| <= 3 would expect
        k = 18 * np.tanh(k)
    got, want, counts, es = _run(k, v, u, w, e_frac=12)
    assert np.max(np.abs(got - want)) < 0.01 * np.abs(v).max(), case
    assert sum(counts[key] for key in ("wkv_v_sat", "wkv_k_sat", "wkv_out_sat", "wkv_a_sat")) == 0


def test_saturation_is_counted():
    p = {"e_frac": 10, "k_frac": 10, "v_frac": 8}
    a, b, e = oc.wkv_init(1, 3)
    seen = {}
    k = np.array([[1 << 30, 0, -(1 << 30)]])            # beyond the 24-bit exponent register
    v = np.array([[1 << 20, 5, -(1 << 20)]])            # beyond 16 bits
    out, *_ = oc.wkv_step(k, v, a, b, e, p, np.zeros(3, np.int64), np.full(3, -100, np.int64),
                          lambda key, n: seen.__setitem__(key, seen.get(key, 0) + n))
    assert seen["wkv_k_sat"] == 2 and seen["wkv_v_sat"] == 2
    assert np.all(np.abs(out) < 1 << 15)


# ---------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 256, 77), (18, 768, 50277)])
def test_one_host_round_trip_per_token(shape):
    cfg = ModelConfig(*shape)
    g = ir.build_graph(cfg, Semantics.named("run", shape[2]), ir.CHIP_WKV)
    assert ir.host_round_trips(g) == 1
    assert {n.kind for n in g.nodes.values() if n.placement.where == ir.HOST} == {"embedding", "sampler"}
    assert len(g.crossings()) == 2                       # the token in, the logits out
    wkv = g.by_kind("wkv")[0]
    assert wkv.placement.where == ir.CHIP and ir.MICROCODED in wkv.placement.reason
    assert ir.Graph.from_dict(json.loads(json.dumps(g.to_dict()))).to_dict() == g.to_dict()
    # the other two mappings keep their WKV on the host
    for m in (ir.HOST, ir.CHIP):
        assert ir.build_graph(cfg, Semantics.named("run", shape[2]), m).by_kind("wkv")[0].placement.where == ir.HOST


# ---------------------------------------------------------------------------
# Converted models
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_wkv(demo_spec):
    import sys

    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    train, _ = demo_corpus.corpus()
    return convert_spec(demo_spec, demo_spec.tokenizer.encode(train[:300]), placement=ir.CHIP_WKV)


def test_report_covers_the_wkv(demo_wkv):
    model, records = demo_wkv
    wkv = [r for r in records if r.op == "wkv"]
    assert len(wkv) == 4
    for r in wkv:
        assert r.wraps == 0 and r.decay_clamped == 0 and r.renorms > 0
        assert -r.exp_limit < r.exp_min < r.exp_max < r.exp_limit
        assert 0 < r.op_error_pct < 1.0                  # against the float WKV on the same inputs
    rec = model.nodes["blocks.0.att.wkv"]
    assert rec.out_frac == model.nodes["blocks.0.att.value"].out_frac
    # the key Dense carries log2(e): its float output grid holds k * log2 e
    assert model.manifest["report"]["placement"] == ir.CHIP_WKV


def test_wkv_chip_tracks_float_bits_per_character(demo_spec, demo_wkv):
    """2,000 held-out characters (20,000 in docs/WKV_ON_CHIP.md): within 1% of float."""
    import sys

    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    model, _ = demo_wkv
    sem = demo_spec.semantics("run")
    held = demo_spec.tokenizer.encode(demo_corpus.corpus()[1][:2000])
    res = evaluate.evaluate_backends({"torch": ReferenceModel(demo_spec, sem),
                                      "emulator": EmulatorBackend(model)}, held)
    emu = res["backends"]["emulator"]
    assert abs(emu["bits_change_pct"]) < 1.0, emu


def test_extreme_decays_and_bonuses_convert_and_run():
    """A 7-layer RESCALE checkpoint whose time_decay spans -12 .. 4 and time_first -10 .. 10."""
    sd = spiking_state_dict(7, 32, 40, seed=5, dtype=torch.bfloat16)
    for i in range(7):
        sd[f"blocks.{i}.att.time_decay"] = torch.linspace(-12, 4, 32).to(torch.bfloat16)
        sd[f"blocks.{i}.att.time_first"] = torch.linspace(-10, 10, 32).to(torch.bfloat16)
    spec = spec_from_state_dict(sd)
    toks = [int(t) for t in np.random.default_rng(5).integers(0, 40, 48)]
    model, records = convert_spec(spec, toks, placement=ir.CHIP_WKV)
    for r in records:
        if r.op == "wkv":
            assert r.wraps == 0 and r.op_error_pct < 2.0, r
            assert r.decay_clamped == 0          # -exp(4) * log2 e = -79 is inside the clamp
    be = EmulatorBackend(model)
    st = be.initial_state()
    for t in toks[:20]:
        out = be.step(t, st)
    assert np.all(np.isfinite(np.asarray(out.logits)))


def test_cli_wkv_chip(tmp_path):
    r = CliRunner()
    out = tmp_path / "w.s2l"
    res = r.invoke(main, ["convert", str(DEMO_CKPT), "-o", str(out), "--calib", str(DEMO / "calib.txt"),
                          "--calib-len", "64", "--placement", "chip", "--wkv", "chip"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["inspect", str(out), "--graph"])
    assert "1 host round trips" in res.output
    res = r.invoke(main, ["inspect", str(out)])
    assert "placement    chip-wkv (layernorm, sigmoid, wkv need a microcoded neuron" in res.output, res.output
    res = r.invoke(main, ["inspect", str(DEMO_CKPT), "--graph", "--placement", "chip-wkv"])
    assert res.exit_code == 0 and "1 host round trips" in res.output, res.output
    res = r.invoke(main, ["profile", str(out), "--hw", "kapoho_point", "--json"])
    assert res.exit_code == 0, res.output
    prof = json.loads(res.stdout)
    assert prof["host_round_trips_per_token"] == 1 and prof["placement"] == "chip-wkv"
    assert any(g["role"].startswith("wkv") and "microcoded" in g["role"] for g in prof["plan"]["groups"])
    res = r.invoke(main, ["convert", str(DEMO_CKPT), "-o", str(tmp_path / "x.s2l"), "--wkv", "chip"])
    assert res.exit_code != 0 and "--wkv chip needs --placement chip" in res.output
    assert not (tmp_path / "x.s2l").exists()

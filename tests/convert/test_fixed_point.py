"""Float -> fixed point: exponent choice, clipping report, exact thresholds, range errors.

Also: the fixed-point and emulator modules import where Lava cannot.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from spike2loihi.execute.kernels import lava_weights
from spike2loihi.execute.process_emulator import (DenseProc, GraphError, LIFProc, ProcessEmulator, ProcessGraph,
                                                 SourceProc, SparseProc)
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.convert.fixed_point import (
    LIMITS, FixedPointError, FixedPointRangeError, SignMode, bias_to_fixed, check_payload, check_ranges,
    lif_decays, lif_params, mantissa_range, quantize_weights, threshold_to_fixed, v_scale_for_threshold,
)

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------
def test_exponent_is_the_finest_that_does_not_clip():
    w = np.array([[0.5, -0.25], [0.125, 1.0]])
    q = quantize_weights(w, out_scale=256)           # targets 128, -64, 32, 256
    assert q.sign_mode is SignMode.MIXED
    # MIXED 8-bit mantissa is -128..127 and Lava doubles it: 256 needs 2**(1+1) -> weight_exp 1.
    assert (q.weight_exp, q.scale, q.num_weight_bits) == (1, 4.0, 8)
    assert q.mantissa.tolist() == [[32, -16], [8, 64]]
    assert q.weights.tolist() == [[64, -32], [16, 128]]
    assert q.clipped_fraction == 0.0 and q.sqnr_db == float("inf")
    np.testing.assert_array_equal(q.dequantize(), w)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("nwb", [2, 5, 8])
def test_random_weights_fit_and_one_finer_exponent_would_clip(seed, nwb):
    rng = np.random.default_rng(seed)
    style = seed % 3
    w = rng.normal(size=(6, 5)) * 10 ** rng.uniform(-2, 1)
    w = np.abs(w) if style == 1 else (-np.abs(w) if style == 2 else w)
    q = quantize_weights(w, out_scale=100.0, num_weight_bits=nwb)
    assert q.clipped_fraction == 0.0
    lo, hi = mantissa_range(q.sign_mode, nwb)
    assert lo <= q.mantissa.min() and q.mantissa.max() <= hi
    if q.weight_exp > -8:   # the next finer exponent must clip something
        finer = quantize_weights(w, out_scale=100.0, num_weight_bits=nwb, sign_mode=q.sign_mode,
                                 weight_exp=q.weight_exp - 1)
        assert finer.clipped_fraction > 0
    # Lava's first-step clip + truncate leave the handed-over weights unchanged...
    w_lava, mode = lava_weights(q.weights, None, nwb)
    assert mode is q.sign_mode
    np.testing.assert_array_equal(w_lava, q.weights)
    # ...and a binary one-hot input makes the Dense send floor(mantissa * scale).
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.eye(5, dtype=np.int64)))
    g.add("d", DenseProc(**q.lava_kwargs()))
    g.connect("x", "d")
    a = ProcessEmulator(g).run(5)["d"]["a_buff"][:, 0, :]     # row t = column t of W
    np.testing.assert_array_equal(a, np.floor(q.mantissa.T * q.scale).astype(np.int64))
    assert q.sqnr_db > 6.02 * nwb - 12   # about 6 dB per bit, minus the worst-case headroom


def test_single_sign_gains_a_bit():
    w = np.random.default_rng(0).uniform(0.0, 1.0, (8, 8))
    auto = quantize_weights(w, out_scale=1000, num_weight_bits=4)
    forced = quantize_weights(w, out_scale=1000, num_weight_bits=4, sign_mode=SignMode.MIXED)
    assert auto.sign_mode is SignMode.EXCITATORY
    assert auto.sqnr_db > forced.sqnr_db + 4


def test_clip_percentile_trades_outliers_for_resolution():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(20, 50))
    w[0, 0] = 40.0                                  # one outlier
    full = quantize_weights(w, out_scale=64)
    clipped = quantize_weights(w, out_scale=64, clip_percentile=99.0)
    assert full.clipped_fraction == 0.0
    assert clipped.weight_exp < full.weight_exp
    assert 0 < clipped.clipped_fraction <= 0.011
    bulk = np.abs(w) < 3

    def bulk_err(q):
        return np.abs(q.dequantize() - w)[bulk].max()
    assert bulk_err(clipped) < bulk_err(full) / 2
    assert clipped.mantissa[0, 0] == mantissa_range(clipped.sign_mode, 8)[1]   # saturated, not wrapped


def test_explicit_sign_mode_clips_the_wrong_sign_and_reports_it():
    q = quantize_weights(np.array([[1.0, -1.0, 0.5, 0.25]]), out_scale=100, sign_mode=SignMode.EXCITATORY)
    assert q.mantissa[0, 1] == 0 and q.clipped_fraction == 0.25


def test_weights_needing_too_large_an_exponent_raise():
    with pytest.raises(FixedPointRangeError, match=r"weight_exp=\d+ \(needed to fit the weights: allowed -8\.\.7"):
        quantize_weights(np.array([[1e6]]), out_scale=1.0)


# ---------------------------------------------------------------------------
# LIF
# ---------------------------------------------------------------------------
def test_spikegpt_lif_decays():
    d = lif_decays(tau_v=2.0, tau_u=1.0, decay_input=True)
    assert (d.du, d.dv, d.input_gain, d.u_factor, d.v_factor) == (4095, 2048, 0.5, 0.0, 0.5)
    assert lif_decays(float("inf")).dv == 0
    assert lif_decays(4.0, decay_input=False).input_gain == 1.0
    with pytest.raises(FixedPointRangeError, match=r"dv=4096 .*12-bit unsigned"):
        lif_decays(1.0)                             # v without memory needs dv=4096 (dm_offset=0)
    with pytest.raises(FixedPointRangeError, match=r"du=-1 "):
        lif_decays(2.0, tau_u=float("inf"))         # ds_offset=1: u always decays a little


def test_lif_decays_drive_the_emulator_like_spikegpt_halving():
    """du=4095, dv=2048: u is this step's input, v halves (toward zero) then adds u."""
    d = lif_decays(2.0)
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.array([[3, 0, 0, -5]])))
    g.add("l", LIFProc(shape=(1,), du=d.du, dv=d.dv, vth=1000))
    g.connect("x", "l")
    rec = ProcessEmulator(g).run(4)["l"]
    assert rec["u"][:, 0, 0].tolist() == [192, 0, 0, -320]
    assert rec["v"][:, 0, 0].tolist() == [192, 96, 48, 24 - 320]


def test_bias_mantissa_and_exponent():
    b = bias_to_fixed(np.array([0.5, -3.0, 100.0, 0.0]), v_scale=1000.0)
    assert b.bias_exp.tolist() == [0, 0, 5, 0]
    assert b.bias_mant.tolist() == [500, -3000, 3125, 0]
    np.testing.assert_array_equal(b.effective, b.bias_mant << b.bias_exp)
    assert b.max_abs_error == 0.0
    with pytest.raises(FixedPointRangeError, match=r"bias_exp\[1\]=8 .*3-bit unsigned"):
        bias_to_fixed(np.array([0.0, 1e6]), v_scale=1.0)


@pytest.mark.parametrize("theta", [1.0, 0.3, 7.77, 1e-3, 123.456])
@pytest.mark.parametrize("vth", [0, 1, 5, 1000, (1 << 17) - 1])
def test_threshold_mapping_is_exact_on_the_grid(theta, vth):
    """v > vth << 6  <=>  v / v_scale >= theta, for every integer v (exact rationals)."""
    v_scale = v_scale_for_threshold(theta, vth)
    t = threshold_to_fixed(theta, v_scale)
    assert t.vth == vth and t.first_spiking_v == 64 * vth + 1
    c = 64 * vth + 1
    vs = np.arange(c - 300, c + 300)
    lava_rule = vs > (t.vth << 6)
    float_rule = np.array([Fraction(int(v)) / Fraction(v_scale) >= Fraction(theta) for v in vs])
    np.testing.assert_array_equal(lava_rule, float_rule)
    # The emulated LIF (dv=0 keeps v, no input) fires exactly where the float rule says.
    vs24 = vs[(vs >= -(1 << 23)) & (vs < (1 << 23))]
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.zeros((vs24.size, 1), dtype=np.int64)))
    g.add("l", LIFProc(shape=(vs24.size,), dv=0, vth=t.vth, v=vs24))
    g.connect("x", "l")
    fired = ProcessEmulator(g).run(1)["l"]["s"][0, 0].astype(bool)
    np.testing.assert_array_equal(fired, [Fraction(int(v)) / Fraction(v_scale) >= Fraction(theta) for v in vs24])


def test_inexact_threshold_is_refused_with_a_usable_scale():
    with pytest.raises(FixedPointError, match=r"use v_scale=") as ei:
        threshold_to_fixed(1.0, 1000.0)            # first spiking v = 1000 is not 64k + 1
    suggested = float(str(ei.value).split("use v_scale=")[1].split(" ")[0])
    assert threshold_to_fixed(1.0, suggested).vth >= 1
    assert threshold_to_fixed(1.0, 64 * 15 + 1).vth == 15      # ceil(961) = 961 = 64*15 + 1


def test_lif_params_for_spikegpt():
    p = lif_params(theta=1.0, v_scale=v_scale_for_threshold(1.0, 100), tau_v=2.0, bias=0.0)
    assert (p["du"], p["dv"], p["vth"]) == (4095, 2048, 100)
    assert p["a_in_scale"] == pytest.approx(0.5 * (6400.5) / 64)


# ---------------------------------------------------------------------------
# Range errors
# ---------------------------------------------------------------------------
BAD = [("du", 4096), ("du", -1), ("dv", 5000), ("bias_mant", 4096), ("bias_mant", -4097),
       ("bias_exp", 8), ("bias_exp", -1), ("vth", 1 << 17), ("vth", -1), ("u", 1 << 23),
       ("v", -(1 << 23) - 1), ("num_weight_bits", 9), ("num_weight_bits", 0), ("weight_exp", 8),
       ("weight_exp", -9), ("num_message_bits", 25), ("payload", 1 << 23), ("weights", 2 ** 31)]


@pytest.mark.parametrize("name,value", BAD)
def test_each_limit_is_enforced(name, value):
    lim = LIMITS[name]
    check_ranges({name: lim.lo})
    check_ranges({name: lim.hi})
    with pytest.raises(FixedPointRangeError) as ei:
        check_ranges({name: value})
    msg = str(ei.value)
    assert f"{name}={value}" in msg and f"allowed {lim.lo}..{lim.hi}" in msg and lim.what in msg
    assert isinstance(ei.value, Spike2LoihiError) and "\n" not in msg


def test_all_offenders_are_reported_together():
    with pytest.raises(FixedPointRangeError) as ei:
        check_ranges({"du": 5000, "dv": 10, "bias_mant": np.array([0, 5000, -9000, 3]),
                      "bias_exp": np.array([0, 9]), "vth": 1 << 17, "num_message_bits": 32})
    msg = str(ei.value)
    assert [v.name for v in ei.value.violations] == ["du", "bias_mant", "bias_exp", "vth", "num_message_bits"]
    for part in ("du=5000", "bias_mant[2]=-9000", "2 of 4 values offend", "bias_exp[1]=9", "vth=131072",
                 "num_message_bits=32"):
        assert part in msg
    assert "dv" not in msg.replace("num_message_bits", "") and "\n" not in msg


def test_non_integers_are_refused():
    with pytest.raises(FixedPointRangeError, match=r"du=1\.5 \(not an integer"):
        check_ranges({"du": 1.5})


def test_payload_bits():
    check_payload(np.array([127, -128]), 8)
    with pytest.raises(FixedPointRangeError, match=r"payload\[1\]=128 .*8-bit signed"):
        check_payload(np.array([0, 128]), 8)


def test_emulator_graph_reports_every_bad_parameter_at_once():
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.zeros((2, 1), dtype=np.int64)))
    g.add("d", DenseProc(weights=np.zeros((2, 2)), weight_exp=9, num_weight_bits=12))
    g.add("l", LIFProc(shape=(2,), du=4096, vth=-3, bias_exp=np.array([0, 8])))
    g.connect("x", "d"), g.connect("d", "l")
    with pytest.raises(FixedPointRangeError) as ei:
        ProcessEmulator(g)
    names = [v.name for v in ei.value.violations]
    assert names == ["d.weight_exp", "d.num_weight_bits", "l.du", "l.vth", "l.bias_exp"]


def test_graph_errors():
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.zeros((2, 1), dtype=np.int64)))
    g.add("l", LIFProc(shape=(3,)))
    g.connect("x", "l")
    with pytest.raises(GraphError, match=r"width 2 != 3"):
        ProcessEmulator(g)
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.zeros((1, 1), dtype=np.int64)))
    g.add("a", LIFProc(shape=(1,)))
    g.add("b", LIFProc(shape=(1,)))
    for e in (("x", "a"), ("a", "b"), ("b", "a")):
        g.connect(*e)
    with pytest.raises(GraphError, match="cycle without a Dense"):
        ProcessEmulator(g)
    g = ProcessGraph()
    g.add("x", SourceProc(data=np.zeros((1, 1), dtype=np.int64)))
    g.add("s", SparseProc(weights=np.ones((1, 1))))
    g.connect("x", "s")
    with pytest.raises(GraphError, match="probe on unknown node 'nope'"):
        ProcessEmulator(g, probes={"nope": ("u",)})
    with pytest.raises(GraphError, match=r"node 's' has no probe \['u'\]"):
        ProcessEmulator(g, probes={"s": ("u",)})
    emu = ProcessEmulator(g)
    emu.run(1)
    with pytest.raises(GraphError, match="Sparse weights"):
        emu.set("s", "weights", np.zeros((1, 1)))


# ---------------------------------------------------------------------------
# No Lava
# ---------------------------------------------------------------------------
@pytest.mark.subprocess
def test_modules_import_and_run_where_lava_cannot_be_imported(tmp_path):
    fake = tmp_path / "lava"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('lava is blocked for this test')\n")
    code = textwrap.dedent("""
        import sys
        try:
            import lava
        except ImportError as e:
            print("blocked:", e)
        else:
            raise SystemExit("lava was importable")
        import numpy as np
        import spike2loihi.convert.fixed_point as fp
        import spike2loihi.execute.process_emulator as em
        g = em.ProcessGraph()
        g.add("x", em.SourceProc(data=np.ones((1, 2), dtype=np.int64)))
        g.add("d", em.DenseProc(weights=np.array([[3]])))
        g.add("l", em.LIFProc(shape=(1,), du=4095))
        g.connect("x", "d"); g.connect("d", "l")
        u = em.ProcessEmulator(g).run(2)["l"]["u"][:, 0, 0].tolist()
        assert not [m for m in sys.modules if m == "lava" or m.startswith("lava.")]
        print("imported", fp.__file__, em.__file__, "u", u)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "blocked: lava is blocked for this test" in out.stdout
    assert f"{ROOT / 'spike2loihi' / 'convert' / 'fixed_point.py'}" in out.stdout
    assert f"{ROOT / 'spike2loihi' / 'execute' / 'process_emulator.py'}" in out.stdout
    assert "u [0, 192]" in out.stdout

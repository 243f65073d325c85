"""host_ops: the host's float arithmetic and the host<->chip encodings, against exact references.

These are the functions the emulator and the Lava host blocks share; a silent mistake here
(a biased rounding, a wrong mix) would change both the same way, so each is checked
against an independent float64 formula with a bound derived from the format.
"""
import numpy as np
import pytest
import torch

from spike2loihi.execute import host_ops
from spike2loihi.model.reference import lif_step, wkv_step

RNG = np.random.default_rng(0)


def test_encode_dynamic_is_round_to_nearest_with_a_per_token_scale():
    x = (RNG.standard_normal((64, 300)) * RNG.uniform(0.01, 50, (64, 1))).astype(np.float32)
    x[3] = 0.0
    for bits in (4, 8, 12, 16):
        q, scale = host_ops.encode_dynamic(x, bits)
        top = host_ops.qmax(bits)
        assert q.dtype == np.int64 and scale.shape == (64, 1)
        assert np.all(np.abs(q) <= top) and np.all(np.abs(q).max(axis=1)[np.arange(64) != 3] == top)
        assert np.all(q[3] == 0) and scale[3, 0] == 0
        err = np.abs(q * scale.astype(np.float64) - x)
        # nearest, not floor: half a step, plus float32 rounding of x * top / max|x| and of the scale
        assert np.all(err <= scale * (0.5 + top * 2.0 ** -22) + 1e-30), bits
        # unbiased: the mean error is far below a rounding step (floor would be -1/2 step)
        assert abs(float(np.mean((q * scale - x) / np.where(scale > 0, scale, 1)))) < 0.02


def test_encode_static_clips_and_counts():
    x = np.array([[-3.0, -1.26, -1.24, 0.0, 0.24, 0.26, 1.0, 9.0]], dtype=np.float32)
    q, clipped = host_ops.encode_static(x, inv_scale=2.0, limit=4)
    assert q.tolist() == [[-4, -3, -2, 0, 0, 1, 2, 4]] and clipped == 2


def test_encode_static_equals_clip_of_rint_with_or_without_clipping():
    """Its shortcut (no clip pass when rint(max x * s) and rint(min x * s) are within the limit) changes
    nothing: limits on either side of the extremes, half-way values, empty rows."""
    for trial in range(200):
        x = (RNG.standard_normal((3, 50)) * 4).astype(np.float32)
        x[0, 0] = np.float32(RNG.integers(-9, 9) + 0.5)          # a tie: rint rounds to even
        inv = float(RNG.choice([0.5, 1.0, 2.0, 3.3]))
        y = np.rint(x * np.float32(inv))
        limit = int(np.abs(y).max()) + int(RNG.integers(-2, 2))
        q, clipped = host_ops.encode_static(x, inv, limit)
        assert np.array_equal(q, np.clip(y, -limit, limit).astype(np.int64)), trial
        assert clipped == int(np.count_nonzero(np.abs(y) > limit)), trial
    q, clipped = host_ops.encode_static(np.zeros((2, 0), np.float32), 1.0, 3)
    assert q.shape == (2, 0) and clipped == 0


def test_encoders_refuse_non_finite_values():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.array([[1.0, bad]], dtype=np.float32)
        with pytest.raises(host_ops.HostNumericsError, match="node.x"):
            host_ops.encode_dynamic(x, 8, where="node.x")
        with pytest.raises(host_ops.HostNumericsError):
            host_ops.encode_static(x, 1.0, 10)


def test_decode_is_acc_times_row_scale_times_token_scale():
    acc = RNG.integers(-2**23, 2**23, (5, 7))
    rs = RNG.uniform(1e-6, 1e-3, 7).astype(np.float32)
    ts = RNG.uniform(1e-3, 1, (5, 1)).astype(np.float32)
    out = host_ops.decode(acc, rs, ts)
    assert out.dtype == np.float32
    assert np.allclose(out, acc * rs.astype(np.float64) * ts, rtol=3e-7)


def _torch(x):
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


def test_float_ops_match_the_reference_formulas():
    x = RNG.standard_normal((4, 64)).astype(np.float32) * 3
    prev = RNG.standard_normal((4, 64)).astype(np.float32)
    w, b = RNG.uniform(0.5, 1.5, 64).astype(np.float32), RNG.normal(0, 0.1, 64).astype(np.float32)
    m = RNG.uniform(0, 1, 64).astype(np.float32)
    ln = torch.nn.functional.layer_norm(_torch(x), (64,), _torch(w), _torch(b), 1e-5).numpy()
    assert np.allclose(host_ops.layernorm(x, w, b, 1e-5), ln, rtol=1e-5, atol=1e-5)
    assert np.allclose(host_ops.mix(x, prev, m), x * m + prev * (1 - m), rtol=1e-6, atol=1e-6)
    assert np.allclose(host_ops.sigmoid(x), 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    assert np.array_equal(host_ops.relu2(x), np.maximum(x, 0) ** 2)
    assert np.array_equal(host_ops.residual(x, prev, True), (x + prev) * np.float32(0.5))
    assert np.array_equal(host_ops.residual(x, prev, False), x + prev)
    assert np.array_equal(host_ops.embed(x, [2, 0], True), (x[[2, 0]] >= 0).astype(np.float32))


def test_wkv_matches_the_reference_step_over_many_tokens():
    C = 32
    tf, td = RNG.uniform(-2, 0.5, C).astype(np.float32), -np.exp(RNG.uniform(-6, 1, C)).astype(np.float32)
    aa, bb, pp = (np.zeros((1, C), np.float32), np.zeros((1, C), np.float32),
                  np.full((1, C), host_ops.PP_INIT, np.float32))
    raa, rbb, rpp = _torch(aa[0]), _torch(bb[0]), _torch(pp[0])
    for _ in range(50):
        k, v = (RNG.standard_normal((1, C)) * 3).astype(np.float32), RNG.standard_normal((1, C)).astype(np.float32)
        out, aa, bb, pp = host_ops.wkv(k, v, aa, bb, pp, tf, td)
        rout, raa, rbb, rpp = wkv_step(_torch(tf), _torch(td), _torch(k[0]), _torch(v[0]), raa, rbb, rpp)
        assert np.allclose(out[0], rout.numpy(), rtol=1e-5, atol=1e-6)
        assert np.allclose(pp[0], rpp.numpy(), rtol=1e-6)
    s, v_new = lif_step(torch.zeros(3), torch.tensor([1.9, 2.0, 2.1]))
    assert s.tolist() == [0.0, 1.0, 1.0] and v_new.tolist()[0] == pytest.approx(0.95)

"""The whole-model emulator's integer kernel (int8 weights in onnxruntime's MatMulInteger) gives exactly the
integers of `DenseKernel` (float BLAS on exact integers, the kernel checked against Lava's Dense): every
input width (one base-256 digit up to int32 payloads), every truncation shift, binary inputs, zero rows."""
import numpy as np
import pytest

from spike2loihi.execute.kernels import DenseKernel, Int8Kernel, dense_graded_output, dense_kernel


@pytest.mark.parametrize("n_out,n_in", [(1, 1), (7, 300), (64, 1024), (300, 64)])
@pytest.mark.parametrize("k", [0, 1, 3])
def test_int8_kernel_equals_the_blas_kernel_at_every_input_width(n_out, n_in, k):
    rng = np.random.default_rng(n_out * 1000 + n_in + k)
    m = rng.integers(-128, 128, (n_out, n_in)).astype(np.int8)
    m[0, 0] = -128                                   # the mantissa's extremes
    fast, ref = Int8Kernel(m, k), DenseKernel.from_mantissa(m, k)
    assert np.array_equal(fast.w, ref.w)
    for top in (1, 127, 128, 255, 32767, 1 << 15, (1 << 23) - 1, (1 << 31) - 1):
        for batch in (1, 5):
            s = rng.integers(-top, top + 1, (batch, n_in))
            s[0, :min(3, n_in)] = [-top, top, -top - 1 if top < (1 << 31) - 1 else -top][:min(3, n_in)]
            want = ref.accumulate(s)
            assert np.array_equal(fast.accumulate(s), want), (top, batch)
            assert np.array_equal(fast.accumulate(s, max_abs=int(np.abs(s).max())), want)
    mask = rng.random((3, n_in)) < 0.3
    assert np.array_equal(fast.accumulate_binary(mask), ref.accumulate_binary(mask))
    assert np.array_equal(fast.accumulate(np.zeros((2, n_in), np.int64)), np.zeros((2, n_out), np.int64))


def test_through_lavas_dense_arithmetic_the_kernels_agree():
    rng = np.random.default_rng(5)
    m = rng.integers(-127, 128, (40, 500)).astype(np.int8)
    s = rng.integers(-(1 << 20), 1 << 20, (8, 500))
    for e in (-8, -3, 0, 4):
        assert np.array_equal(dense_graded_output(Int8Kernel(m, 1), s, e),
                              dense_graded_output(DenseKernel.from_mantissa(m, 1), s, e))


def test_the_kernel_is_chosen_once_per_weight_matrix():
    m = np.ones((4, 4), np.int8)
    assert isinstance(dense_kernel(m, 1), Int8Kernel)
    assert isinstance(dense_kernel(m.astype(np.int16), 1), DenseKernel)   # not an int8 mantissa
    assert isinstance(dense_kernel(np.zeros((0, 4), np.int8), 1), DenseKernel)


@pytest.mark.parametrize("k", [0, 2])
def test_sums_at_the_edge_of_int32_are_exact_in_both_widths(k):
    """Int8Kernel sums in int32 exactly when its bound (largest row of |m| x max|s|, shifted) proves they
    fit, else in int64: extreme rows (every weight -128 or 127) and inputs on either side of that edge."""
    n_in = 1000
    m = np.full((3, n_in), 127, np.int8)
    m[1] = -128
    m[2, ::2] = -128
    fast, ref = Int8Kernel(m, k), DenseKernel.from_mantissa(m, k)
    edge = ((1 << 31) - 1) // (128 * n_in << k)          # the largest top whose bound fits int32
    for top in (edge - 1, edge, edge + 1, 4 * edge):
        assert (fast.bound(top) < (1 << 31)) == (top <= edge)
        for sign in (1, -1):
            s = np.full((2, n_in), sign * top, np.int64)
            s[1, ::3] = -sign * top
            want = ref.accumulate(s)
            got = fast.accumulate(s, max_abs=top)
            assert np.array_equal(got, want), top
            acc = ((want + (1 << 31)) % (1 << 32)) - (1 << 31)   # Lava's int32 accumulator wraps
            assert np.array_equal(acc, want) == (top <= edge)   # the bound is reached: m[1] . s[0]
            for e in (-4, 0, 3):
                lava = acc >> -e if e <= 0 else ((acc << e) + (1 << 31)) % (1 << 32) - (1 << 31)
                for kernel in (fast, ref):
                    assert np.array_equal(dense_graded_output(kernel, s, e), lava), (top, e)


def test_shared_input_members_equal_their_own_kernels_and_never_serve_another_input():
    """SharedInput: k, v and r of a block as one stacked product. Each member gives its own kernel's integers
    (own truncation shift, own int32 edge); a member whose input differs from the last one gets its own product,
    not the cached one; a batch of another shape too."""
    from spike2loihi.execute.kernels import SharedInput

    rng = np.random.default_rng(3)
    ms = {name: rng.integers(-128, 128, (n_out, 96)).astype(np.int8) for name, n_out in (("k", 40), ("v", 7), ("r", 33))}
    ks = {"k": 0, "v": 2, "r": 5}
    assert SharedInput.usable(ms.values()) and not SharedInput.usable([ms["k"]])
    group = SharedInput(ms, ks)
    members = {name: group.member(name) for name in ms}
    for top in (1, 127, 3000, 1 << 20):
        for batch in (1, 4):
            s = rng.integers(-top, top + 1, (batch, 96))
            other = s.copy()
            other[-1, -1] = -other[-1, -1] - 1 if top > 1 else 1 - other[-1, -1]
            for name, member in members.items():   # same input: the cached product; then a different one
                ref = DenseKernel.from_mantissa(ms[name], ks[name])
                assert np.array_equal(member.accumulate(s, top), ref.accumulate(s)), (name, top)
                for e in (-6, 0, 2):
                    assert np.array_equal(dense_graded_output(member, s, e), dense_graded_output(ref, s, e))
                assert np.array_equal(member.accumulate(other), ref.accumulate(other)), (name, top)


def test_a_kernel_made_from_a_source_keeps_no_mantissa_and_rebuilds_from_it():
    rng = np.random.default_rng(9)
    m = rng.integers(-128, 128, (20, 50)).astype(np.int8)
    calls = []
    k = Int8Kernel(m.copy(), 3, source=lambda: calls.append(1) or m)
    assert k._mantissa is None and np.array_equal(k.w, m.astype(np.int64) << 3) and calls
    s = rng.integers(-5000, 5000, (2, 50))
    want = DenseKernel.from_mantissa(m, 3).accumulate(s)
    k.on_fork_in_child()                      # what a forked child does: a new session from the source
    assert np.array_equal(k.accumulate(s), want) and len(calls) == 2

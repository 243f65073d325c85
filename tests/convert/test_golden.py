"""Every number stays the same: the converted models' parameters and their emulator logits, spikes and
greedy tokens equal the arrays saved before the architecture rebuild (tests/golden.py)."""

import numpy as np
import pytest

import golden

DATA = golden.DATA


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_outputs_equal_the_saved_ones(name):
    want = dict(np.load(DATA / f"{name}.npz"))
    got = golden.compute(name)
    assert set(want) == set(got)
    for key in ("tokens", "digest", "spike_shape", "spikes", "logits", "generated"):
        assert np.array_equal(want[key], got[key]), f"{name}: {key} differs from the saved arrays"

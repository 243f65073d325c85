"""onnxruntime sessions across fork(): a forked child (every Lava process is one) can run and free the
emulator's integer kernels without hanging (spike2loihi.ort_fork)."""
import gc
import os
import time

import numpy as np
import pytest

from spike2loihi import ort_fork
from spike2loihi.execute import kernels

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or kernels._ort() is None, reason="needs fork and onnxruntime")


def _child_exit_code(child, seconds: float = 30.0) -> int:
    """Fork; the child runs `child()` (returns an exit code); the parent waits at most `seconds`."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


@pytest.fixture
def two_threads():
    kernels.set_threads(2)          # a session with a worker thread (the case that hung)
    yield
    kernels.set_threads(None)


def test_a_forked_child_runs_and_frees_an_inherited_integer_kernel(two_threads):
    rng = np.random.default_rng(0)
    k = kernels.Int8Kernel(rng.integers(-127, 128, (192, 160)).astype(np.int8), 1)
    s = rng.integers(-3000, 3000, (16, 160))
    want = k.accumulate(s)
    assert np.array_equal(want, (s @ k.w.T))
    time.sleep(1.0)                 # the pool's worker is now waiting on its condition variable

    def child():
        got = k_ref[0].accumulate(s)   # a new session, built in the child
        kept = ort_fork.inherited()
        del k_ref[:]
        gc.collect()                # the kernel (and its new session) freed; the inherited one kept
        return 0 if np.array_equal(got, want) and kept >= 1 else 3

    k_ref = [k]
    del k
    assert _child_exit_code(child) == 0
    assert np.array_equal(k_ref[0].accumulate(s), want)   # the parent's session still serves

"""Shared fixtures: the bundled demo checkpoint and seeded random checkpoints; shared assertions."""
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
DEMO = ROOT / "examples" / "demo"
DEMO_CKPT = DEMO / "spikegpt-demo.pth"

# Progress lines appear after 1 s of work, so on a loaded machine they would land in the stderr that tests
# compare line for line; the tests of progress itself set SPIKE2LOIHI_PROGRESS explicitly.
os.environ.setdefault("SPIKE2LOIHI_PROGRESS", "never")


def pytest_configure(config):
    """The markers: `pytest -m "not lava"` (or "not lava and not subprocess") is the fast loop."""
    config.addinivalue_line("markers", "lava: runs Lava's simulator (the Lava process graph or Lava's own processes)")
    config.addinivalue_line("markers", "subprocess: starts a Python subprocess (console script, Ctrl-C, import checks)")


@pytest.fixture(scope="session")
def demo_spec():
    from converters.spikegpt import load_checkpoint

    return load_checkpoint(DEMO_CKPT)


@pytest.fixture(scope="session")
def demo_heldout_tokens(demo_spec):
    """The first 300 held-out characters of the demo corpus, as token ids."""
    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    _, held = demo_corpus.corpus()
    return demo_spec.tokenizer.encode(held[:300])


def spiking_state_dict(n_layer, n_embd, vocab, seed=0, dtype=None, gain=3.0):
    """random_state_dict with block projections scaled by `gain`, so that both LIFs fire often."""
    import torch
    from _factories import random_state_dict

    dtype = dtype or torch.float32
    sd = random_state_dict(n_layer, n_embd, vocab, seed=seed, dtype=dtype)
    for k, t in sd.items():
        if k.startswith("blocks.") and k.endswith(".weight") and t.dim() == 2:
            sd[k] = (t.float() * gain).to(dtype)
    return sd


@contextlib.contextmanager
def deadline(seconds: float, hard: float = None):
    """The block finishes within `seconds`; an alarm at `hard` (default: `seconds`) turns a hang (a
    blocking open or read, a loop in Python code) into a failure instead of a stuck suite."""
    hard = hard or seconds

    def expired(signum, frame):
        raise TimeoutError(f"still running after {hard:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, hard)
    t0 = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < seconds, f"took {time.monotonic() - t0:.1f} s, more than {seconds:g}"


def one_line_message(excinfo, err_type, path, *fragments) -> str:
    """The raised error is exactly `err_type`, one line, names `path` and every fragment; returns the
    message with `path` replaced by "<path>"."""
    err = excinfo.value
    assert type(err) is err_type, f"{type(err).__name__}: {err}"
    msg = str(err)
    assert msg.strip(), "empty message"
    assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
    if path is not None:
        assert str(path) in msg, f"message does not name {path}: {msg}"
        msg = msg.replace(str(path), "<path>")   # fragments must come from the message, not the path
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in message: {msg}"
    return msg


def one_line_error(res, needle, code=2):
    """A CLI result that failed with exit `code` and exactly one stderr line, `error: ...needle...`."""
    assert res.exit_code == code, (res.exit_code, res.stderr, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"not one line: {res.stderr!r}"
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr
    return lines[0]


def converted_random(n_layer, n_embd, vocab, seed=3, n_tokens=24):
    """A seeded random spiking checkpoint converted with `n_tokens` seeded random calibration tokens."""
    import numpy as np

    from converters.spikegpt import spec_from_state_dict

    spec = spec_from_state_dict(spiking_state_dict(n_layer, n_embd, vocab, seed=seed))
    toks = [int(t) for t in np.random.default_rng(seed).integers(0, vocab, n_tokens)]
    return convert_spec(spec, toks)[0]


def saved_random(tmp_path_factory, filename, n_layer=2, n_embd=16, vocab=40, seed=3, n_tokens=24):
    """(model, path): `converted_random` saved as a .s2l file named `filename` in a fresh folder."""
    from spike2loihi.convert import artifact

    model = converted_random(n_layer, n_embd, vocab, seed=seed, n_tokens=n_tokens)
    path = tmp_path_factory.mktemp("model") / filename
    artifact.save(model, path)
    return model, path


def random_spec(n_layer=8, n_embd=32, vocab=50, seed=0, dtype=None):
    """A seeded random spiking checkpoint as a ModelSpec (fp32 unless `dtype`)."""
    from converters.spikegpt import spec_from_state_dict

    return spec_from_state_dict(spiking_state_dict(n_layer, n_embd, vocab, seed=seed, dtype=dtype))


def tokens_for(vocab, n, seed=0):
    """`n` seeded random token ids below `vocab`."""
    import numpy as np

    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, n)]


def convert_spec(spec, tokens, sem_name="run", **opts):
    """(ConvertedModel, records) of a ModelSpec calibrated on `tokens`, as `spike2loihi convert` makes it."""
    from spike2loihi.convert import quantize

    sem = spec.semantics(sem_name)
    cal = quantize.calibrate(spec, sem, tokens, {"source": "tokens"})
    return quantize.convert(spec, sem, cal, quantize.QuantOptions(**opts), source={"path": "memory"})


@pytest.fixture(scope="session")
def demo_converted(demo_spec):
    """The bundled model converted with its first 300 training characters as calibration."""
    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    train, _ = demo_corpus.corpus()
    return convert_spec(demo_spec, demo_spec.tokenizer.encode(train[:300]))

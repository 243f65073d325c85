"""Shared fixtures: the bundled demo checkpoint and seeded random checkpoints."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
DEMO = ROOT / "examples" / "demo"
DEMO_CKPT = DEMO / "spikegpt-demo.pth"


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


def convert_spec(spec, tokens, sem_name="run", **opts):
    """(ConvertedModel, records) of a ModelSpec calibrated on `tokens`, as `spike2loihi convert` makes it."""
    from spike2loihi import quantize

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

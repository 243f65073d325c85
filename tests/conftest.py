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

"""The bundled demo model is what the README says: small, official format, and it learned."""
import json
import sys

import numpy as np
import torch

from conftest import DEMO, DEMO_CKPT, ROOT
from spike2loihi.reports.evaluate import bigram_baseline
from spike2loihi.model.reference import ReferenceModel

sys.path.insert(0, str(ROOT / "examples"))
import demo_corpus  # noqa: E402


def test_bundled_files_follow_the_official_formats(demo_spec):
    assert DEMO_CKPT.stat().st_size <= 10 * 2**20
    raw = (DEMO / "vocab.json").read_bytes()
    assert raw[:2] == b"\xff\xfe"  # UTF-16 with a BOM, as the official trainer writes it
    vocab = json.loads(raw.decode("utf-16"))
    assert len(vocab) == 77 and sorted(vocab.values()) == [vocab[str(i)] for i in range(77)]
    cfg = demo_spec.config
    assert cfg.vocab_size == 77 and cfg.n_layer <= 6
    # at vocabulary 77 and without a rescaled block the official run semantics equal the training graph
    run, train = demo_spec.semantics("run"), demo_spec.semantics("train")
    assert run.binary_embedding and train.binary_embedding
    assert all(run.weight_divisor(i) == 1 and not run.halves_after(i) for i in range(cfg.n_layer))
    assert (DEMO / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_bundled_model_beats_the_bigram_baseline_on_held_out_text(demo_spec):
    train, held = demo_corpus.corpus()
    tok = demo_spec.tokenizer
    held_ids = tok.encode(held[:3000])
    model = ReferenceModel(demo_spec)
    state = model.initial_state()
    nll = 0.0
    for a, b in zip(held_ids[:-1], held_ids[1:]):
        nll -= float(torch.log_softmax(model.step(a, state).logits, -1)[b])
    bpc = nll / (len(held_ids) - 1) / np.log(2)
    base = bigram_baseline(tok.encode(train), held_ids, 77)["bigram_bpc"]
    metrics = json.loads((DEMO / "metrics.json").read_text())
    assert bpc < base - 0.5, (bpc, base)
    assert abs(bpc - metrics["heldout_bpc_reference_run_semantics"]) < 0.3  # same model as reported


def test_bundled_model_writes_recognisable_words(demo_spec):
    train, _ = demo_corpus.corpus()
    known = set(train.split())
    tok = demo_spec.tokenizer
    model = ReferenceModel(demo_spec)
    state = model.initial_state()
    for t in tok.encode("The for statement is used to"):
        out = model.step(t, state)
    gen = []
    for _ in range(300):
        gen.append(int(torch.argmax(out.logits)))
        out = model.step(gen[-1], state)
    words = tok.decode(gen).split()
    assert len(words) >= 20
    assert sum(w in known for w in words) / len(words) > 0.6, tok.decode(gen)

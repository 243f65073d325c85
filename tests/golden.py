"""Golden outputs: the converted models' emulator results, saved from the code before the
architecture rebuild (issue 20), so that every later change is checked to compute the same numbers.

`python tests/golden.py --save tests/data/golden` writes one `.npz` per case (run it only to
record a deliberate change of numbers, and say so); `tests/convert/test_golden.py` recomputes every case
and asserts equality: the artifact's integer parameters, then logits, spikes and greedy tokens.
`python tests/golden.py --checkpoint CKPT --save DIR` / `--check DIR` does the same for any
checkpoint (unseen models: save before a change, check after).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "golden"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

#: name -> (checkpoint recipe, placement, semantics, teacher-forced tokens, greedy tokens, options)
CASES = {
    "demo-host": ("demo", "host", "run", 128, 32, {}),
    "demo-chip": ("demo", "chip", "run", 128, 32, {}),
    "random7-host": ("random7", "host", "run", 64, 16, {}),
    "random7-chip": ("random7", "chip", "run", 64, 16, {}),
    "random7-host-a12": ("random7", "host", "run", 48, 8, {"act_bits": 12, "weight_bits": 6}),
    "random2-bf16-train": ("random2bf16", "host", "train", 48, 8, {}),
}


def _spec(recipe: str):
    import torch

    from conftest import DEMO_CKPT, spiking_state_dict
    from converters.spikegpt import load_checkpoint, spec_from_state_dict

    if recipe == "demo":
        return load_checkpoint(DEMO_CKPT)
    if recipe == "random7":   # 7 layers: RESCALE (weights divided, x halved after block 6) under run semantics
        return spec_from_state_dict(spiking_state_dict(7, 32, 50, seed=5))
    if recipe == "random2bf16":
        return spec_from_state_dict(spiking_state_dict(2, 24, 45, seed=11, dtype=torch.bfloat16))
    raise ValueError(recipe)


def _tokens(recipe: str, spec, n_calib: int, n_eval: int):
    """(calibration tokens, evaluation tokens)."""
    if recipe == "demo":
        import demo_corpus

        train, held = demo_corpus.corpus()
        return spec.tokenizer.encode(train[:300]), spec.tokenizer.encode(held[:n_eval])
    rng = np.random.default_rng(7)
    V = spec.config.vocab_size
    return [int(t) for t in rng.integers(0, V, n_calib)], [int(t) for t in rng.integers(0, V, n_eval)]


def convert_case(spec, calib, placement, semantics, opts):
    from conftest import convert_spec

    return convert_spec(spec, calib, semantics, placement=placement, **opts)[0]


def _without_none(obj):
    """A JSON value with every None-valued key left out (an absent field and a None one mean the same)."""
    if isinstance(obj, dict):
        return {k: _without_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_none(v) for v in obj]
    return obj


def parameter_digest(model) -> str:
    """sha256 over the artifact's per-node parameters (as JSON, None-valued keys left out), graph,
    schedule, calibration and every tensor."""
    from spike2loihi.convert import artifact as A

    man = A.to_bytes(model)
    h = hashlib.sha256()
    loaded = A.from_bytes(man)
    h.update(json.dumps(_without_none(_nodes_dict(loaded)), sort_keys=True).encode())
    h.update(json.dumps(loaded.graph.to_dict(), sort_keys=True).encode())
    sched = dict(loaded.manifest.get(A.K_SCHEDULE))
    offsets = sched.pop("offsets", None)   # recorded since the rebuild: must equal the graph's schedule
    if offsets is not None:
        from spike2loihi.convert.schedule import schedule

        assert offsets == schedule(loaded.graph).offsets, "the recorded schedule is not the graph's"
    h.update(json.dumps(sched, sort_keys=True).encode())
    h.update(json.dumps(loaded.manifest.get(A.K_CALIBRATION), sort_keys=True).encode())
    for name in sorted(loaded.tensors):
        t = loaded.tensors[name]
        h.update(f"{name}:{t.dtype.name}:{t.shape}".encode())
        h.update(np.ascontiguousarray(t).tobytes())
    return h.hexdigest()


def _nodes_dict(model) -> dict:
    """The per-node parameters as plain dicts (typed records through their to_dict)."""
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in model.nodes.items()}


def emulator_outputs(model, tokens, n_greedy: int) -> dict:
    """Teacher-forced logits and spikes over `tokens`, then `n_greedy` greedy tokens."""
    from spike2loihi.execute.model_emulator import ModelEmulator

    ex = ModelEmulator(model, batch_size=1)
    lifs = [n.name for n in ex.lifs]
    logits, spikes = [], []
    for t in tokens:
        s = ex.step([int(t)])
        logits.append(s.logits[0].copy())
        spikes.append(np.stack([s.spikes[n][0] for n in lifs]))
    gen = []
    nxt = int(np.argmax(logits[-1]))
    for _ in range(n_greedy):
        gen.append(nxt)
        s = ex.step([nxt])
        logits.append(s.logits[0].copy())
        spikes.append(np.stack([s.spikes[n][0] for n in lifs]))
        nxt = int(np.argmax(s.logits[0]))
    sp = np.stack(spikes).astype(bool)
    return {"logits": np.stack(logits).astype(np.float32), "spikes": np.packbits(sp, axis=-1),
            "spike_shape": np.array(sp.shape), "generated": np.array(gen, dtype=np.int64),
            "tokens": np.array(tokens, dtype=np.int64)}


def compute(name: str) -> dict:
    recipe, placement, sem, n_eval, n_greedy, opts = CASES[name]
    spec = _spec(recipe)
    calib, tokens = _tokens(recipe, spec, 24, n_eval)
    model = convert_case(spec, calib, placement, sem, opts)
    out = emulator_outputs(model, tokens, n_greedy)
    out["digest"] = np.array(parameter_digest(model))
    return out


def compute_checkpoint(path, placement: str, n_eval: int = 96, n_greedy: int = 16) -> dict:
    from converters.spikegpt import load_checkpoint

    spec = load_checkpoint(path)
    rng = np.random.default_rng(1)
    V = spec.config.vocab_size
    calib = [int(t) for t in rng.integers(0, V, 64)]
    tokens = [int(t) for t in rng.integers(0, V, n_eval)]
    model = convert_case(spec, calib, placement, "run", {})
    out = emulator_outputs(model, tokens, n_greedy)
    out["digest"] = np.array(parameter_digest(model))
    return out


def compare(want: dict, got: dict) -> list:
    """The keys whose values differ (empty: identical)."""
    return [k for k in want if not np.array_equal(np.asarray(want[k]), np.asarray(got[k]))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", help="folder to write the outputs to")
    ap.add_argument("--check", help="folder to compare the outputs with")
    ap.add_argument("--checkpoint", help="any SpikeGPT checkpoint instead of the built-in cases")
    ap.add_argument("--case", action="append", help="only these cases")
    a = ap.parse_args(argv)
    folder = Path(a.save or a.check)
    folder.mkdir(parents=True, exist_ok=True)
    if a.checkpoint:
        jobs = {f"{Path(a.checkpoint).stem}-{p}": (lambda p=p: compute_checkpoint(a.checkpoint, p))
                for p in ("host", "chip")}
    else:
        jobs = {n: (lambda n=n: compute(n)) for n in (a.case or CASES)}
    bad = 0
    for name, fn in jobs.items():
        out = fn()
        path = folder / f"{name}.npz"
        if a.save:
            np.savez_compressed(path, **out)
            print(f"saved {path}")
        else:
            diff = compare(dict(np.load(path)), out)
            bad += bool(diff)
            print(f"{name}: {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

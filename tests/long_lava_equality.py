"""Long equality runs: the Lava graph against the emulator (not part of `make test`; figures go in the notes).

    .venv/bin/python tests/long_lava_equality.py [--tokens 256] [--generate 64] [--placement host|chip|chip-wkv]
        [--lif gated|stock] [--greedy]

For the bundled model and seeded random checkpoints (8 and 13 layers: RESCALE;
bf16, fp16 and fp32 storage; vocabularies 50, 77 and 300), converted here:
teacher-forced over --tokens tokens (held-out text for the bundled model, seeded
random ids otherwise), then --generate tokens generated inside the graph (greedy
for the bundled model, seeded temperature/top-p sampling for the others). Every
logit, every spike of every population and every generated token is compared;
prints one JSON object, and exits 1 on any difference. With `--placement chip` the
models are converted with LayerNorm, gates, products and residual on the chip (each
layer is about 26 Lava processes), for the bundled model and the 7-layer checkpoint; `chip-wkv`
(`--placement chip --wkv chip`) also puts the WKV on the chip, for the same two models. With
`--lif stock` (Lava's own LIF, every token a token period apart, prefill included), the same
two models (the 7-layer one has RESCALE).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import spiking_state_dict  # noqa: E402
from converters.spikegpt import load_checkpoint, spec_from_state_dict  # noqa: E402
from spike2loihi.backends import generate  # noqa: E402
from spike2loihi.convert import quantize
from spike2loihi.backends.emulator import EmulatorBackend  # noqa: E402
from spike2loihi.execute.model_emulator import ModelEmulator, spikes_by_population  # noqa: E402
from spike2loihi.lava.runtime import run_graph  # noqa: E402


def convert(spec, tokens, placement="host", lif=None):
    sem = spec.semantics("run")
    cal = quantize.calibrate(spec, sem, tokens, {"source": "tokens"})
    return quantize.convert(spec, sem, cal, quantize.QuantOptions(placement=placement, lif=lif))[0]


def compare(model, prompt, n_new, sampling):
    t0 = time.perf_counter()
    lava = run_graph(model, prompt, n_new, **sampling)
    lava_s = time.perf_counter() - t0
    emu = generate.run(EmulatorBackend(model), prompt, max_new_tokens=n_new, **sampling)
    seq = prompt + emu.generated_tokens[:-1]
    steps = ModelEmulator(model).run(np.asarray(seq))
    logits = np.stack([s.logits[0] for s in steps])
    att = np.stack([spikes_by_population(model.graph, s.spikes)[0] for s in steps])
    ffn = np.stack([spikes_by_population(model.graph, s.spikes)[1] for s in steps])
    same_tokens = lava.generated == emu.generated_tokens
    return {"tokens_teacher_forced": len(prompt), "tokens_generated": n_new,
            "tokens_compared": len(seq), "processes": lava.processes, "steps": lava.steps,
            "logits_identical": bool(lava.logits.shape == logits.shape and np.array_equal(lava.logits, logits)),
            "spikes_identical": bool(np.array_equal(lava.att_spikes.astype(bool), att)
                                     and np.array_equal(lava.ffn_spikes.astype(bool), ffn)),
            "spikes_compared": int(att.size + ffn.size), "spike_count": int(att.sum() + ffn.sum()),
            "generated_identical": same_tokens, "lava_s": round(lava_s, 1),
            "steps_per_s": round(lava.timings["steps_per_s"], 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--generate", type=int, default=64)
    ap.add_argument("--placement", choices=("host", "chip", "chip-wkv"), default="host")
    ap.add_argument("--lif", choices=("gated", "stock"), default="gated")
    ap.add_argument("--greedy", action="store_true", help="greedy generation for every case")
    args = ap.parse_args()
    cases = []
    demo = load_checkpoint(ROOT / "examples" / "demo" / "spikegpt-demo.pth")
    calib = demo.tokenizer.encode((ROOT / "examples" / "demo" / "calib.txt").read_text())[:512]
    held = demo.tokenizer.encode((ROOT / "examples" / "demo" / "heldout.txt").read_text())[: args.tokens]
    cases.append(("bundled 4x256 vocab77 fp16, held-out text, greedy", demo, calib, held, {"greedy": True}))
    for n_layer, C, V, dtype, seed in ((8, 32, 50, torch.bfloat16, 1), (13, 24, 300, torch.float16, 2),
                                       (7, 32, 77, torch.float32, 3)):
        spec = spec_from_state_dict(spiking_state_dict(n_layer, C, V, seed=seed, dtype=dtype))
        rng = np.random.default_rng(seed)
        cases.append((f"random {n_layer}x{C} vocab{V} {str(dtype).split('.')[-1]}, sampled", spec,
                      [int(t) for t in rng.integers(0, V, 200)], [int(t) for t in rng.integers(0, V, args.tokens)],
                      {"greedy": False, "temperature": 0.9, "top_p": 0.95, "seed": seed}))
    if args.placement != "host" or args.lif == "stock":   # the bundled model and the 7-layer checkpoint
        cases = [c for c in cases if c[0].startswith(("bundled", "random 7x"))]
    if args.greedy:
        cases = [(name.replace(", sampled", ", greedy"), spec, cal, prompt, {"greedy": True})
                 for name, spec, cal, prompt, _ in cases]
    out, ok = [], True
    for name, spec, cal, prompt, sampling in cases:
        print(f"{name} ...", file=sys.stderr, flush=True)
        row = {"case": name, "placement": args.placement, "lif": args.lif,
               **compare(convert(spec, cal, args.placement, None if args.lif == "gated" else args.lif), prompt,
                         args.generate, sampling)}
        ok &= row["logits_identical"] and row["spikes_identical"] and row["generated_identical"]
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"all_identical": ok, "cases": out}, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

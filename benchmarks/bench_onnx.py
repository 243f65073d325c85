"""Tokens/s of the exported ONNX step graphs in onnxruntime, beside the float reference and the emulator.

    .venv/bin/python benchmarks/bench_onnx.py [--tokens 300] [--threads 1] [--repeats 3]

On the bundled model, in one process, on the same held-out tokens (teacher-forced,
one `step` per token, as `run` prefills): the float export (from the checkpoint)
against the float reference (torch), and the converted export (from a .s2l
converted in the same run, calibrated on 300 training characters) against the
emulator. The four are interleaved `--repeats` times and each reports its best and
median rate, so that a busy machine hurts them alike; the load average is printed
too. Also: export and session start-up times, ONNX node counts, file sizes, and
whether each pair agreed (max relative logit difference for the float pair; logits
bit for bit for the converted pair).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))


def timed_stream(backend, tokens, warmup=5):
    """(tokens/s over `tokens`, logits [T, V]) from a fresh state after `warmup` steps."""
    import numpy as np

    state = backend.initial_state()
    for t in tokens[:warmup]:
        backend.step(t, state)
    state = backend.initial_state()
    rows = []
    t0 = time.perf_counter()
    for t in tokens:
        rows.append(backend.step(t, state).logits)
    dt = time.perf_counter() - t0
    return len(tokens) / dt, np.stack([r.numpy() for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import demo_corpus
    from spike2loihi.export import onnx as OX
    from converters.spikegpt import load_checkpoint
    from spike2loihi.convert import quantize
    from spike2loihi.backends.emulator import EmulatorBackend
    from spike2loihi.backends.onnxruntime import OnnxRuntimeBackend
    from spike2loihi.model.reference import ReferenceModel

    load0 = os.getloadavg()[0]
    spec = load_checkpoint(ROOT / "examples" / "demo" / "spikegpt-demo.pth")
    sem = spec.semantics("run")
    train, held = demo_corpus.corpus()
    tokens = spec.tokenizer.encode(held[:args.tokens])
    cal = quantize.calibrate(spec, sem, spec.tokenizer.encode(train[:300]), {"source": "text"})
    model, _ = quantize.convert(spec, sem, cal, quantize.QuantOptions(), source={"path": "memory"})

    info = {}
    t0 = time.perf_counter()
    float_bytes = OX.to_bytes(OX.export_checkpoint(spec, sem))
    info["float export"] = {"export_s": round(time.perf_counter() - t0, 3), "bytes": len(float_bytes)}
    t0 = time.perf_counter()
    conv_proto = OX.export_artifact(model)
    conv_bytes = OX.to_bytes(conv_proto)
    info["converted export"] = {"export_s": round(time.perf_counter() - t0, 3), "bytes": len(conv_bytes)}
    backends = {}
    for label, data in (("float export", float_bytes), ("converted export", conv_bytes)):
        t0 = time.perf_counter()
        be = OnnxRuntimeBackend(data, threads=args.threads)
        info[label]["session_s"] = round(time.perf_counter() - t0, 3)
        import onnx

        info[label]["onnx_nodes"] = len(onnx.load_from_string(data).graph.node)
        backends[f"onnxruntime ({label})"] = be
    runners = {"reference (torch)": ReferenceModel(spec, sem), "onnxruntime (float export)": backends[
        "onnxruntime (float export)"], "emulator": EmulatorBackend(model),
        "onnxruntime (converted export)": backends["onnxruntime (converted export)"]}
    rates = {k: [] for k in runners}
    logits = {}
    for _ in range(args.repeats):
        for name, be in runners.items():
            r, lg = timed_stream(be, tokens)
            rates[name].append(r)
            logits[name] = lg
    ref, flt = logits["reference (torch)"], logits["onnxruntime (float export)"]
    rel = float((np.abs(flt - ref).max(axis=1) / np.abs(ref).max(axis=1)).max())
    same = bool(np.array_equal(logits["emulator"], logits["onnxruntime (converted export)"]))
    out = {
        "model": "examples/demo/spikegpt-demo.pth (4 layers, n_embd 256, vocabulary 77)",
        "tokens": len(tokens), "threads": args.threads, "repeats": args.repeats,
        "tokens_per_s": {k: {"best": round(max(v), 1), "median": round(statistics.median(v), 1)}
                         for k, v in rates.items()},
        "ratio_float_export_vs_reference": round(max(rates["onnxruntime (float export)"])
                                                 / max(rates["reference (torch)"]), 2),
        "ratio_converted_export_vs_emulator": round(max(rates["onnxruntime (converted export)"])
                                                    / max(rates["emulator"]), 2),
        "float_export_max_rel_logit_diff": rel, "converted_export_logits_identical": same,
        "exports": info,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)]},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

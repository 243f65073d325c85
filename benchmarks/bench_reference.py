"""Float reference speed: tokens/s, load time and peak RSS, printed as JSON.

    python benchmarks/bench_reference.py [--threads 1] [--tokens 200] [--official-src DIR]

Cases: the bundled demo model, and a seeded random checkpoint with the 216M
model's shapes (18 layers, n_embd 768, vocabulary 50277; written to a temporary
directory, about 1.1 GB). Each case runs in its own subprocess so that peak RSS
is that case's own. With --official-src pointing at a checkout of
ridgerchu/SpikeGPT (not shipped here), its src/model_run.py is timed on the same
checkpoint and thread count in the same run, and the ratio is reported.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def peak_rss_mb():
    """This process's own peak RSS (VmHWM; ru_maxrss would include the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ours(ckpt, threads, n_tokens):
    import torch

    torch.set_num_threads(threads)
    from converters.spikegpt import load_checkpoint
    from spike2loihi.model.reference import ReferenceModel

    t0 = time.perf_counter()
    spec = load_checkpoint(ckpt, find_tokenizer=False)
    model = ReferenceModel(spec)
    load_s = time.perf_counter() - t0
    state = model.initial_state()
    toks = torch.randint(0, spec.config.vocab_size, (n_tokens + 5,), generator=torch.Generator().manual_seed(0))
    for t in toks[:5].tolist():  # warm-up
        model.step(t, state)
    t0 = time.perf_counter()
    for t in toks[5:].tolist():
        model.step(t, state)
    dt = time.perf_counter() - t0
    return {"impl": "spike2loihi reference", "load_s": round(load_s, 3), "tokens": n_tokens,
            "tokens_per_s": round(n_tokens / dt, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}


def measure_official(ckpt, threads, n_tokens, src):
    import contextlib
    import io
    import types

    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("RWKV_JIT_ON", "0")
    sys.path.insert(0, str(src))
    from converters.spikegpt import load_checkpoint

    cfg = load_checkpoint(ckpt, find_tokenizer=False).config
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        from src.model_run import RWKV_RNN  # the user's checkout, not shipped here

        args = types.SimpleNamespace(RUN_DEVICE="cpu", FLOAT_MODE="fp32", MODEL_NAME=str(ckpt)[:-4],
                                     n_layer=cfg.n_layer, n_embd=cfg.n_embd, ctx_len=1024,
                                     vocab_size=cfg.vocab_size)
        model = RWKV_RNN(args)
    load_s = time.perf_counter() - t0
    toks = torch.randint(0, cfg.vocab_size, (n_tokens + 5,), generator=torch.Generator().manual_seed(0)).tolist()
    state = mem1 = mem2 = None
    for i in range(5):
        _, state, mem1, mem2 = model.forward(toks[:i + 1], state, mem1, mem2)
    t0 = time.perf_counter()
    for i in range(5, n_tokens + 5):
        _, state, mem1, mem2 = model.forward(toks[:i + 1], state, mem1, mem2)
    dt = time.perf_counter() - t0
    return {"impl": "official model_run.py", "load_s": round(load_s, 3), "tokens": n_tokens,
            "tokens_per_s": round(n_tokens / dt, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}


def make_216m_shaped(path):
    import torch

    from _factories import random_state_dict
    from converters.spikegpt import save_checkpoint

    save_checkpoint(random_state_dict(18, 768, 50277, seed=0, dtype=torch.float32), path)


def child(args):
    if args.child == "ours":
        out = measure_ours(args.ckpt, args.threads, args.tokens)
    else:
        out = measure_official(args.ckpt, args.threads, args.tokens, args.official_src)
    print(json.dumps(out))


def run_child(kind, ckpt, args, tokens):
    cmd = [sys.executable, __file__, "--child", kind, "--ckpt", str(ckpt), "--threads", str(args.threads),
           "--tokens", str(tokens)]
    if args.official_src:
        cmd += ["--official-src", str(args.official_src)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"impl": kind, "error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=300, help="tokens timed on the bundled model")
    ap.add_argument("--tokens-216m", type=int, default=30, help="tokens timed on the 216M-shaped model")
    ap.add_argument("--official-src", type=Path, help="checkout of ridgerchu/SpikeGPT to time alongside")
    ap.add_argument("--skip-216m", action="store_true")
    ap.add_argument("--child", choices=["ours", "official"], help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    cases = [("bundled demo model", ROOT / "examples" / "demo" / "spikegpt-demo.pth", args.tokens)]
    tmp = tempfile.TemporaryDirectory()
    if not args.skip_216m:
        big = Path(tmp.name) / "random216m.pth"
        print("writing a random 216M-shaped checkpoint ...", file=sys.stderr, flush=True)
        make_216m_shaped(big)
        cases.append(("random, 216M shapes (18 x 768, vocab 50277)", big, args.tokens_216m))
    report = {"threads": args.threads, "cases": []}
    for name, ckpt, n in cases:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        entry = {"case": name, "checkpoint_mb": round(ckpt.stat().st_size / 2**20, 1),
                 "ours": run_child("ours", ckpt, args, n)}
        if args.official_src:
            entry["official"] = run_child("official", ckpt, args, n)
            if "tokens_per_s" in entry["official"] and "tokens_per_s" in entry["ours"]:
                entry["speed_ratio_ours_over_official"] = round(
                    entry["ours"]["tokens_per_s"] / entry["official"]["tokens_per_s"], 3)
        report["cases"].append(entry)
    tmp.cleanup()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Conversion and the whole-model emulator: time, memory, tokens/s, printed as JSON.

    .venv/bin/python benchmarks/bench_convert.py [--threads 1] [--tokens 200] [--skip-216m]
        [--placements host,chip,chip-wkv]

Cases: the bundled model, and a seeded random checkpoint with the 216M model's
shapes (18 x 768, vocabulary 50277: the RESCALE quirk applies), written to a
temporary folder, each converted with every placement. For each case, in one run:

* `spike2loihi convert` as a user runs it (a child process: wall time and its
  own peak RSS), calibrating on --calib-len tokens;
* the emulator's teacher-forced tokens/s at batch 1 and at batch 64 (sample
  tokens per second over 64 independent sequences), and the float reference's
  tokens/s, measured in the same child process with the same thread count
  (torch threads for the reference, BLAS threads for the emulator);
* the share of the emulator's time inside the integer matrix products
  (onnxruntime's MatMulInteger), and the ratio to the reference if nothing else
  took any time: the ceiling of this arithmetic on this machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def child_speed(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from converters.spikegpt import load_checkpoint
    from spike2loihi.execute import kernels

    kernels.set_threads(args.threads)
    from spike2loihi.convert import artifact
    from spike2loihi.execute.model_emulator import ModelEmulator
    from spike2loihi.model.reference import ReferenceModel

    model = artifact.load(args.model)
    spec = load_checkpoint(args.ckpt, find_tokenizer=False)
    V = spec.config.vocab_size
    rng = np.random.default_rng(0)
    n = args.tokens
    toks = rng.integers(0, V, (64, n + 3))
    out = {}
    ref = ReferenceModel(spec)
    st = ref.initial_state()
    for t in toks[0, :3]:
        ref.step(int(t), st)
    t0 = time.perf_counter()
    for t in toks[0, 3:]:
        ref.step(int(t), st)
    out["reference_tokens_per_s"] = round(n / (time.perf_counter() - t0), 2)
    in_matmul = _time_matmuls(kernels)
    ex = ModelEmulator(model, batch_size=1)
    ex.run(toks[:1, :3])
    in_matmul[0] = 0.0
    t0 = time.perf_counter()
    ex.run(toks[:1, 3:])
    wall = time.perf_counter() - t0
    out["emulator_b1_tokens_per_s"] = round(n / wall, 2)
    out["emulator_b1_matmul_share"] = round(in_matmul[0] / wall, 3)
    nb = max(4, n // 8)
    ex = ModelEmulator(model, batch_size=64)
    ex.run(toks[:, :3])
    in_matmul[0] = 0.0
    t0 = time.perf_counter()
    ex.run(toks[:, 3:3 + nb])
    wall = time.perf_counter() - t0
    out["emulator_b64_sample_tokens_per_s"] = round(64 * nb / wall, 2)
    out["emulator_b64_matmul_share"] = round(in_matmul[0] / wall, 3)
    out["emulator_b1_over_reference"] = round(out["emulator_b1_tokens_per_s"] / out["reference_tokens_per_s"], 3)
    out["emulator_b64_over_reference"] = round(out["emulator_b64_sample_tokens_per_s"] / out["reference_tokens_per_s"], 3)
    # the ratio if everything but the integer matrix products took no time: the ceiling of this arithmetic
    out["emulator_b1_matmul_only_over_reference"] = round(
        out["emulator_b1_over_reference"] / max(out["emulator_b1_matmul_share"], 1e-9), 3)
    out["emulator_b64_matmul_only_over_reference"] = round(
        out["emulator_b64_over_reference"] / max(out["emulator_b64_matmul_share"], 1e-9), 3)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(out))


def _time_matmuls(kernels):
    """Seconds spent inside onnxruntime's MatMulInteger calls from now on (a one-element list to reset)."""
    spent = [0.0]
    run = kernels.Int8Kernel._run

    def timed(self, x):
        t0 = time.perf_counter()
        try:
            return run(self, x)
        finally:
            spent[0] += time.perf_counter() - t0
    kernels.Int8Kernel._run = timed
    return spent


_RUN_CLI = """
import sys
from spike2loihi.cli.app import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
for line in open('/proc/self/status'):
    if line.startswith('VmHWM:'):
        print('PEAK_RSS_KB', line.split()[1], file=sys.stderr)
sys.exit(code)
"""


def convert_case(ckpt, out, calib_args, threads):
    """`spike2loihi convert` in a child process; its own peak RSS (VmHWM after exec: ru_maxrss of a
    child would include the parent's memory at fork time)."""
    cmd = [sys.executable, "-c", _RUN_CLI, "convert", str(ckpt), "-o", str(out), "--threads", str(threads),
           *calib_args]
    env = dict(os.environ, SPIKE2LOIHI_PROGRESS="never", OPENBLAS_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    rss = next(int(line.split()[1]) for line in res.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return {"convert_wall_s": round(wall, 2), "convert_peak_rss_mb": round(rss / 1024, 1),
            "artifact_mb": round(Path(out).stat().st_size / 2**20, 1)}


def speed_case(model, ckpt, args, tokens):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, __file__, "--child", "--model", str(model), "--ckpt", str(ckpt),
           "--threads", str(args.threads), "--tokens", str(tokens)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=200, help="tokens timed on the bundled model")
    ap.add_argument("--tokens-216m", type=int, default=20)
    ap.add_argument("--calib-len", type=int, default=256, help="as convert's default")
    ap.add_argument("--skip-216m", action="store_true")
    ap.add_argument("--placements", default="host,chip,chip-wkv",
                    help="comma-separated placements: host, chip, chip-wkv (--placement chip --wkv chip)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_speed(args)
    import numpy as np

    tmp = tempfile.TemporaryDirectory()
    d = Path(tmp.name)
    demo = ROOT / "examples" / "demo" / "spikegpt-demo.pth"
    cases = [("bundled demo model (4 x 256, vocab 77)", demo,
              ["--calib", str(ROOT / "examples" / "demo" / "calib.txt"), "--calib-len", str(args.calib_len)],
              args.tokens)]
    if not args.skip_216m:
        import torch

        from _factories import random_state_dict
        from converters.spikegpt import save_checkpoint

        print("writing a random 216M-shaped checkpoint ...", file=sys.stderr, flush=True)
        big = d / "random216m.pth"
        save_checkpoint(random_state_dict(18, 768, 50277, seed=0, dtype=torch.float32), big)
        ids = d / "calib216m.txt"
        ids.write_text(" ".join(map(str, np.random.default_rng(1).integers(0, 50277, args.calib_len))))
        cases.append(("random, 216M shapes (18 x 768, vocab 50277, fp32)", big,
                      ["--calib-tokens-file", str(ids)], args.tokens_216m))
    report = {"threads": args.threads, "calib_len": args.calib_len, "cases": []}
    for name, ckpt, calib, tokens in cases:
        for placement in args.placements.split(","):
            print(f"{name}, --placement {placement}: convert ...", file=sys.stderr, flush=True)
            out = d / f"{ckpt.stem}-{placement}.s2l"
            options = ["--placement", "chip", "--wkv", "chip"] if placement == "chip-wkv" else ["--placement", placement]
            entry = {"case": name, "placement": placement, **convert_case(ckpt, out, calib + options, args.threads)}
            print(f"{name}, --placement {placement}: speed ...", file=sys.stderr, flush=True)
            if "error" not in entry:
                entry.update(speed_case(out, ckpt, args, tokens))
            out.unlink(missing_ok=True)
            report["cases"].append(entry)
    tmp.cleanup()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

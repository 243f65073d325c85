"""The three placements side by side, as `profile --compare` prints them, for the bundled model and the
216M shapes; printed as JSON (and the text table on stderr), with a PNG per case.

    .venv/bin/python benchmarks/compare_placements.py [--hw kapoho_point] [--hw-216m hala_point] [--tokens 200]
        [--tokens-216m 12] [--skip-216m] [--plot-dir DIR]

Each case is converted with `--placement host`, `--placement chip` and `--placement chip --wkv chip`
(the 216M shapes: a seeded random checkpoint written to a temporary folder, calibrated on 64 seeded
token ids), then `spike2loihi profile HOST --compare CHIP --compare CHIP_WKV --json` runs on held-out
text (the bundled model, on --hw) or seeded token ids (216M, on --hw-216m: it needs more than one
chip) through the emulator. Per placement: host round
trips, crossings, bytes and steps per token [M], cores and chips, tokens/s and energy per token on
every packaged system [E]; beside them the published figures of the only LM run on Loihi 2 [P].
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
CLI = [sys.executable, "-m", "spike2loihi.cli"]
PLACEMENTS = (("host", []), ("chip", ["--placement", "chip"]), ("chip-wkv", ["--placement", "chip", "--wkv", "chip"]))


def run(args, what):
    print(f"{what} ...", file=sys.stderr, flush=True)
    res = subprocess.run(CLI + args, capture_output=True, text=True, env={"SPIKE2LOIHI_PROGRESS": "never",
                                                                           **__import__("os").environ})
    if res.returncode != 0:
        raise SystemExit(f"{what}: {(res.stderr.strip().splitlines() or ['failed'])[-1]}")
    return res.stdout


def case(name, ckpt, calib_args, tokens_args, hw: str, d: Path, plot_dir):
    models = []
    for tag, opts in PLACEMENTS:
        out = d / f"{ckpt.stem}-{tag}.s2l"
        run(["convert", str(ckpt), "-o", str(out), *calib_args, *opts], f"{name}: convert ({tag})")
        models.append(out)
    compare = [a for m in models[1:] for a in ("--compare", str(m))]
    common = ["profile", str(models[0]), "--hw", hw, *tokens_args, *compare]
    text = run(common, f"{name}: profile --compare (text)")
    print(text[text.index("Placements side by side"):], file=sys.stderr)
    out = json.loads(run(common + ["--json"], f"{name}: profile --compare (json)"))
    if plot_dir:
        run(common + ["--plot", str(Path(plot_dir) / f"compare-{ckpt.stem}.png")], f"{name}: plot")
    return {"case": name, "hw": hw, "comparison": out["comparison"], "published_lm": out["published_lm"],
            "host_round_trips_per_token": {c["placement"]: c["host_round_trips"] for c in out["comparison"]}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hw", default="kapoho_point", help="the system profiled for the bundled model")
    ap.add_argument("--hw-216m", default="hala_point", help="the system profiled for the 216M shapes")
    ap.add_argument("--tokens", type=int, default=200, help="held-out characters run on the bundled model")
    ap.add_argument("--tokens-216m", type=int, default=12)
    ap.add_argument("--skip-216m", action="store_true")
    ap.add_argument("--plot-dir", help="write compare-<case>.png here")
    args = ap.parse_args()
    import numpy as np

    tmp = tempfile.TemporaryDirectory()
    d = Path(tmp.name)
    demo = ROOT / "examples" / "demo"
    cases = [("bundled demo model (4 x 256, vocab 77)", demo / "spikegpt-demo.pth",
              ["--calib", str(demo / "calib.txt")],
              ["--text", str(demo / "heldout.txt"), "--max-tokens", str(args.tokens)], args.hw)]
    if not args.skip_216m:
        import torch

        from _factories import random_state_dict
        from converters.spikegpt import save_checkpoint

        print("writing a random 216M-shaped checkpoint ...", file=sys.stderr, flush=True)
        big = d / "random216m.pth"
        save_checkpoint(random_state_dict(18, 768, 50277, seed=0, dtype=torch.float32), big)
        rng = np.random.default_rng(1)
        calib, toks = d / "calib216m.txt", d / "tokens216m.txt"
        calib.write_text(" ".join(map(str, rng.integers(0, 50277, 64))))
        toks.write_text(" ".join(map(str, rng.integers(0, 50277, args.tokens_216m))))
        cases.append(("random, 216M shapes (18 x 768, vocab 50277)", big, ["--calib-tokens-file", str(calib)],
                      ["--tokens-file", str(toks)], args.hw_216m))
    report = {"cases": [case(*c, d, args.plot_dir) for c in cases]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

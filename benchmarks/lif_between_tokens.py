"""What generation on a Lava graph would compute with stock LIFs, in bits per character.

    .venv/bin/python benchmarks/lif_between_tokens.py [--model MODEL.s2l] [--chars 5000]

In closed-loop generation the next token exists only a token period P later
(P = the graph's critical path + 1 steps). The converted graph gates each LIF so
that it advances once per token (the chosen design: exact). This script measures,
with the emulator, teacher-forced on held-out text as if every token arrived with
a token period, the two stock-LIF alternatives DESIGN.md names:

* `stock, dv 2048`: a stock LIF keeps leaking (halving) for the P - 1 steps without
  input: the membrane is all but gone before the next token;
* `stock, dv for P steps`: a stock LIF whose decay is chosen so that P steps leak by
  1/2 (dv = round(4096 (1 - 2^(-1/P)))), every token taking P steps (prefill too,
  unless dv could be switched between prefill and generation, which Lava's set()
  cannot do);
* `gated (chosen)`: the emulator as the Lava graph computes it.

Prints JSON: bits per character of each, and their change vs the gated model.
"""
import argparse
import copy
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bpc(model, tokens, idle_steps: int) -> float:
    import numpy as np
    import torch

    from spike2loihi.execute.model_emulator import ModelEmulator

    ex = ModelEmulator(model)
    total = 0.0
    for i in range(len(tokens) - 1):
        logits = ex.step([tokens[i]]).logits[0]
        total -= float(torch.log_softmax(torch.from_numpy(logits.astype(np.float64)), -1)[tokens[i + 1]])
        if idle_steps:
            ex.idle(idle_steps)
    return total / (len(tokens) - 1) / math.log(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a converted bundled model (default: convert it now)")
    ap.add_argument("--chars", type=int, default=5000)
    args = ap.parse_args()
    import subprocess
    import tempfile

    from spike2loihi.convert import artifact, ir
    from spike2loihi.convert.schedule import schedule

    tmp = tempfile.TemporaryDirectory()
    path = args.model
    if path is None:
        path = Path(tmp.name) / "demo.s2l"
        subprocess.run([sys.executable, "-m", "spike2loihi.cli", "convert",
                        str(ROOT / "examples" / "demo" / "spikegpt-demo.pth"), "-o", str(path),
                        "--calib", str(ROOT / "examples" / "demo" / "calib.txt")], check=True, capture_output=True)
    model = artifact.load(path)
    P = schedule(model.graph).token_period
    from converters.tokenizer import artifact_tokenizer
    tokens = artifact_tokenizer(model).encode((ROOT / "examples" / "demo" / "heldout.txt").read_text()[: args.chars])
    dv_p = round(4096 * (1 - 2 ** (-1 / P)))
    slow = copy.copy(model)
    slow.nodes = copy.deepcopy(model.nodes)
    for n in ir.lif_nodes(model.graph):
        slow.nodes[n.name]["dv"] = dv_p
    res = {"token_period_steps": P, "tokens": len(tokens), "dv_for_P_steps": dv_p,
           "leak_per_token_with_that_dv": round(((4096 - dv_p) / 4096) ** P, 5)}
    gated = bpc(model, tokens, 0)
    rows = {"gated (chosen)": gated, "stock, dv 2048": bpc(model, tokens, P - 1),
            f"stock, dv {dv_p} (P steps per token)": bpc(slow, tokens, P - 1)}
    res["bits_per_character"] = {k: round(v, 5) for k, v in rows.items()}
    res["change_vs_gated_pct"] = {k: round(100 * (v - gated) / gated, 3) for k, v in rows.items()}
    tmp.cleanup()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
